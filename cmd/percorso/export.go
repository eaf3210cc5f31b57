package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/cmd/percorso/internal/embeddedpg"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pg"
)

// rowWriter writes one export format.
type rowWriter interface {
	header(cols []string) error
	row(vals []any) error
	flush() error
}

type jsonlWriter struct {
	enc  *json.Encoder
	cols []string
}

func (w *jsonlWriter) header(cols []string) error { w.cols = cols; return nil }
func (w *jsonlWriter) row(vals []any) error {
	m := make(map[string]any, len(vals))
	for i, v := range vals {
		m[w.cols[i]] = v
	}
	return w.enc.Encode(m)
}
func (w *jsonlWriter) flush() error { return nil }

type csvWriter struct{ w *csv.Writer }

func (w *csvWriter) header(cols []string) error { return w.w.Write(cols) }
func (w *csvWriter) row(vals []any) error {
	rec := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case nil:
		case time.Time:
			rec[i] = x.UTC().Format(time.RFC3339Nano)
		case json.RawMessage:
			rec[i] = string(x)
		default:
			rec[i] = fmt.Sprint(x)
		}
	}
	return w.w.Write(rec)
}
func (w *csvWriter) flush() error { w.w.Flush(); return w.w.Error() }

// exportFile creates the output file, refusing to overwrite anything and to
// leave the working directory through "..": an export holds records of
// people and must land where the admin meant.
func exportFile(name string) (*os.File, error) {
	clean := filepath.Clean(name)
	if !filepath.IsAbs(clean) && (clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator))) {
		return nil, fmt.Errorf("--out %q leaves the working directory: give an absolute path if you mean it", name)
	}
	return os.OpenFile(clean, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

func runExport(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso export", flag.ContinueOnError)
	fs.SetOutput(errw)
	var f toolFlags
	f.register(fs)
	from := fs.String("from", "", "first day, YYYY-MM-DD (inclusive)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (inclusive)")
	format := fs.String("format", "jsonl", "csv or jsonl")
	outFile := fs.String("out", "", "output file (created; never overwritten); default standard output")
	personal := fs.Bool("personal", false, "paths: include the workers' personal data")
	pgURL := fs.String("pg-url", envOr("PERCORSO_PG_URL", ""), "PostgreSQL of the read models (default: the embedded one under --data-dir)")
	fs.Usage = func() {
		fmt.Fprintln(errw, "usage: percorso export --from YYYY-MM-DD --to YYYY-MM-DD [--format csv|jsonl] [events|sessions|paths]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	what := "events"
	if fs.NArg() > 1 {
		fs.Usage()
		return errors.New("at most one of events, sessions, paths")
	}
	if fs.NArg() == 1 {
		what = fs.Arg(0)
	}
	day := func(s, name string) (time.Time, error) {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return d, fmt.Errorf("--%s must be a date YYYY-MM-DD", name)
		}
		return d, nil
	}
	fromDay, err := day(*from, "from")
	if err != nil {
		return err
	}
	toDay, err := day(*to, "to")
	if err != nil {
		return err
	}
	if toDay.Before(fromDay) {
		return errors.New("--to is before --from")
	}
	dest := out
	if *outFile != "" {
		file, err := exportFile(*outFile)
		if err != nil {
			return err
		}
		defer file.Close()
		dest = file
	}
	var w rowWriter
	switch *format {
	case "jsonl":
		w = &jsonlWriter{enc: json.NewEncoder(dest)}
	case "csv":
		w = &csvWriter{w: csv.NewWriter(dest)}
	default:
		return fmt.Errorf("--format must be csv or jsonl")
	}
	bar := newProgressBar(errw, "export "+what)
	defer bar.finish()
	switch what {
	case "events":
		t, err := openTools(ctx, f)
		if err != nil {
			return err
		}
		defer t.close()
		err = exportEvents(ctx, t.js, fromDay, toDay.AddDate(0, 0, 1), w, bar)
		if err != nil {
			return err
		}
	case "sessions", "paths":
		url := *pgURL
		if url == "" {
			if url, err = embeddedpg.RunningURL(f.dataDir); err != nil {
				return err
			}
		}
		pool, err := pg.Connect(ctx, url, pg.LiveSchema)
		if err != nil {
			return err
		}
		defer pool.Close()
		q := `SELECT seq, event_id::text, path_id::text, session_id, service, delivered_at, office, province, category, worker_ref,
			operator, standard_minutes, credited_minutes, actual_minutes, mediator_present, group_id::text, group_size,
			outside_group_range, outside_support, traineeship_id FROM sessions
			WHERE (delivered_at AT TIME ZONE 'Europe/Rome')::date BETWEEN $1 AND $2 ORDER BY seq`
		if what == "paths" {
			personalCols := "NULL AS tax_code, NULL AS given_name, NULL AS family_name, NULL AS birth_date, NULL AS disability,"
			if *personal {
				personalCols = "tax_code, given_name, family_name, birth_date::text, disability,"
			}
			q = `SELECT path_id::text, worker_ref, ` + personalCols + ` erased, category, support_kind, support_from::text,
				support_to::text, office, province, status, taken_at, closed_at, close_reason, pact_signed_at,
				credited_minutes_total, version FROM paths
				WHERE (taken_at AT TIME ZONE 'Europe/Rome')::date BETWEEN $1 AND $2 ORDER BY taken_at, path_id`
		}
		if err := exportQuery(ctx, pool, q, fromDay, toDay, w, bar); err != nil {
			return err
		}
	default:
		fs.Usage()
		return fmt.Errorf("unknown export %q: events, sessions or paths", what)
	}
	return w.flush()
}

func exportQuery(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, q string, from, to time.Time, w rowWriter, bar *progressBar) error {
	rows, err := db.Query(ctx, q, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	var cols []string
	for _, fd := range rows.FieldDescriptions() {
		cols = append(cols, fd.Name)
	}
	if err := w.header(cols); err != nil {
		return err
	}
	var n uint64
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		if err := w.row(vals); err != nil {
			return err
		}
		n++
		if n%1000 == 0 {
			bar.update(n, 0)
		}
	}
	bar.update(n, 0)
	return rows.Err()
}

// exportEvents writes the stream's events recorded in [from, until), as
// stored: personal data stays sealed.
func exportEvents(ctx context.Context, js jetstream.JetStream, from, until time.Time, w rowWriter, bar *progressBar) error {
	cols := []string{"seq", "id", "type", "schema_version", "time", "actor", "path_id", "command_id", "hash", "prev_hash", "data"}
	if err := w.header(cols); err != nil {
		return err
	}
	s, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return err
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventstore.EventsWildcard},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		return err
	}
	var n uint64
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			e, err := eventstore.FromHeaders(md.Sequence.Stream, m.Subject(), m.Headers().Get, m.Data())
			if err != nil {
				return err
			}
			if !e.Time.Before(until) {
				return nil
			}
			if !e.Time.Before(from) {
				if err := w.row([]any{e.Seq, e.ID, e.Type, strconv.Itoa(e.SchemaVersion), e.Time, e.Actor, e.PathID, e.CommandID, e.Hash, e.PrevHash, json.RawMessage(e.Data)}); err != nil {
					return err
				}
				n++
			}
			bar.update(n, md.NumPending)
			if md.NumPending == 0 || md.Sequence.Stream >= last {
				return batch.Error()
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 {
			return nil
		}
	}
}
