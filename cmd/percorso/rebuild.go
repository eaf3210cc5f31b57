package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/percorso/percorso/cmd/percorso/internal/embeddedpg"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
)

func runRebuild(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso rebuild", flag.ContinueOnError)
	fs.SetOutput(errw)
	var f toolFlags
	f.register(fs)
	pgURL := fs.String("pg-url", envOr("PERCORSO_PG_URL", ""), "PostgreSQL of the read models (default: the embedded one under --data-dir)")
	fs.Usage = func() {
		fmt.Fprintln(errw, "usage: percorso rebuild [flags]   (admin: replay the stream into fresh read models, then switch)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errors.New("rebuild takes no arguments")
	}
	url := *pgURL
	if url == "" {
		var err error
		if url, err = embeddedpg.RunningURL(f.dataDir); err != nil {
			return err
		}
	}
	t, err := openTools(ctx, f)
	if err != nil {
		return err
	}
	defer t.close()
	live, err := pg.Connect(ctx, url, pg.LiveSchema)
	if err != nil {
		return err
	}
	defer live.Close()
	if err := pg.Migrate(ctx, live); err != nil {
		return err
	}
	start := time.Now()
	bar := newProgressBar(errw, "rebuild")
	log := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	counts, err := projections.Rebuild(ctx, t.js, t.codec, live, url, log, bar.update)
	bar.finish()
	if err != nil {
		return fmt.Errorf("rebuild: %w (the live read models are unchanged)", err)
	}
	d := time.Since(start)
	if f.json {
		return json.NewEncoder(out).Encode(map[string]any{"events": counts.Events, "paths": counts.Paths, "sessions": counts.Sessions,
			"checkpoint": counts.Checkpoint, "seconds": d.Seconds(), "events_per_second": float64(counts.Events) / d.Seconds()})
	}
	fmt.Fprintf(out, "rebuilt and switched: %d events, %d paths, %d sessions, up to sequence %d, in %s (%.0f events/s)\n",
		counts.Events, counts.Paths, counts.Sessions, counts.Checkpoint, d.Round(time.Millisecond), float64(counts.Events)/d.Seconds())
	return nil
}
