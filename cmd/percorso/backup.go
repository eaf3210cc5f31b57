package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Backups use the JetStream server's own snapshot and restore API — the one
// `nats stream backup` drives — so a backup is consistent per stream while
// percorso keeps serving, works on a cluster (the stream leader answers),
// and restores into any server of the same or a later version. percorso
// needs every stream of its account back, not only the events: the data
// keys (without them personal data is lost), the command records
// (idempotency) and the snapshots of long paths.

const (
	snapshotAPI = "$JS.API.STREAM.SNAPSHOT."
	restoreAPI  = "$JS.API.STREAM.RESTORE."
	// chunkSize is the piece of a snapshot sent per message, both ways.
	chunkSize = 128 << 10
	// apiWait bounds each request of the snapshot protocol: one chunk, one
	// reply.
	apiWait = 30 * time.Second
)

// streamBackup is what a backup keeps of a stream beside its data: the
// configuration and state to restore it with.
type streamBackup struct {
	Config server.StreamConfig `json:"config"`
	State  server.StreamState  `json:"state"`
}

// backupStreams writes a snapshot of every stream of the account into dir:
// <stream>.json and <stream>.snapshot each. It returns the streams' names.
func backupStreams(ctx context.Context, nc *nats.Conn, dir string) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var names []string
	for n := range js.StreamNames(ctx).Name() {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, errors.New("backup: the account has no streams")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// A backup never replaces another: one that fails halfway would
	// leave neither.
	if old, err := filepath.Glob(filepath.Join(dir, "*.snapshot")); err != nil || len(old) > 0 {
		return nil, fmt.Errorf("backup: %s already holds a backup (%d snapshots): give a new directory", dir, len(old))
	}
	for _, name := range names {
		if err := backupStream(ctx, nc, name, dir); err != nil {
			return nil, fmt.Errorf("backup of stream %s: %w", name, err)
		}
	}
	return names, nil
}

func backupStream(ctx context.Context, nc *nats.Conn, name, dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, name+".snapshot"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(server.JSApiStreamSnapshotRequest{DeliverSubject: inbox, ChunkSize: chunkSize, CheckMsgs: true})
	msg, err := nc.RequestWithContext(ctx, snapshotAPI+name, req)
	if err != nil {
		return err
	}
	var resp server.JSApiStreamSnapshotResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	for {
		chunk, err := sub.NextMsg(apiWait)
		if err != nil {
			return fmt.Errorf("receiving the snapshot: %w", err)
		}
		if len(chunk.Data) == 0 {
			// The end: no status or 204, else the reason the server gave up.
			if st := chunk.Header.Get("Status"); st != "" && st != "204" {
				return fmt.Errorf("the server ended the snapshot with %s %s", st, chunk.Header.Get("Description"))
			}
			break
		}
		if _, err := w.Write(chunk.Data); err != nil {
			return err
		}
		if chunk.Reply != "" {
			if err := chunk.Respond(nil); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	meta, err := json.MarshalIndent(streamBackup{Config: *resp.Config, State: *resp.State}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".json"), meta, 0o600)
}

// restoreStreams restores every stream backed up in dir into the server
// nc is connected to. The streams must not exist there.
func restoreStreams(ctx context.Context, nc *nats.Conn, dir string) ([]string, error) {
	metas, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(metas) == 0 {
		return nil, fmt.Errorf("restore: no stream backups in %s", dir)
	}
	// Every stream is checked absent before any is restored: a restore
	// never merges, and refusing halfway would leave a part behind.
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	for _, m := range metas {
		name := strings.TrimSuffix(filepath.Base(m), ".json")
		_, err := js.Stream(ctx, name)
		switch {
		case err == nil:
			return nil, fmt.Errorf("restore: stream %s already exists on this server: a restore never merges, restore into fresh servers", name)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("restore: checking stream %s: %w", name, err)
		}
	}
	var names []string
	for _, m := range metas {
		name := strings.TrimSuffix(filepath.Base(m), ".json")
		if err := restoreStream(ctx, nc, dir, name); err != nil {
			return names, fmt.Errorf("restore of stream %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

func restoreStream(ctx context.Context, nc *nats.Conn, dir, name string) error {
	raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return err
	}
	var meta streamBackup
	if err := json.Unmarshal(raw, &meta); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, name+".snapshot"))
	if err != nil {
		return err
	}
	defer f.Close()
	req, _ := json.Marshal(server.JSApiStreamRestoreRequest{Config: meta.Config, State: meta.State})
	msg, err := nc.RequestWithContext(ctx, restoreAPI+name, req)
	if err != nil {
		return err
	}
	var resp server.JSApiStreamRestoreResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			reply, rerr := nc.Request(resp.DeliverSubject, buf[:n], apiWait)
			if errors.Is(rerr, nats.ErrTimeout) {
				return fmt.Errorf("no answer to a chunk of the snapshot: may this user publish to $JS.SNAPSHOT.RESTORE.>? (%w)", rerr)
			}
			if rerr != nil {
				return rerr
			}
			if len(reply.Data) > 0 {
				var cr server.JSApiStreamCreateResponse
				if json.Unmarshal(reply.Data, &cr) == nil && cr.Error != nil {
					return cr.Error
				}
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	// An empty chunk ends the transfer; the answer is the restored stream.
	done, err := nc.Request(resp.DeliverSubject, nil, 5*apiWait)
	if err != nil {
		return err
	}
	var cr server.JSApiStreamCreateResponse
	if err := json.Unmarshal(done.Data, &cr); err != nil {
		return err
	}
	if cr.Error != nil {
		return cr.Error
	}
	if got, want := cr.StreamInfo.State.Msgs, meta.State.Msgs; got != want {
		return fmt.Errorf("restored %d messages, the backup holds %d", got, want)
	}
	return nil
}

// runBackup is `percorso backup --dir D`: every stream of percorso's
// account, snapshotted while serving.
func runBackup(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso backup", flag.ContinueOnError)
	fs.SetOutput(errw)
	natsURL := fs.String("nats-url", envOr("PERCORSO_NATS_URL", "nats://127.0.0.1:4250"), "NATS URL of percorso's account (env PERCORSO_NATS_URL)")
	dir := fs.String("dir", "", "directory to write the backup to (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("usage: percorso backup --dir D")
	}
	nc, err := nats.Connect(*natsURL, nats.Name("percorso-backup"))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	names, err := backupStreams(ctx, nc, *dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "backed up %d streams to %s: %s\n", len(names), *dir, strings.Join(names, ", "))
	return nil
}

// runRestore is `percorso restore --dir D`, into servers without those
// streams.
func runRestore(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso restore", flag.ContinueOnError)
	fs.SetOutput(errw)
	natsURL := fs.String("nats-url", envOr("PERCORSO_NATS_URL", "nats://127.0.0.1:4250"), "NATS URL of percorso's account (env PERCORSO_NATS_URL)")
	dir := fs.String("dir", "", "directory holding a backup (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		fs.Usage()
		return errors.New("usage: percorso restore --dir D")
	}
	nc, err := nats.Connect(*natsURL, nats.Name("percorso-restore"))
	if err != nil {
		return fmt.Errorf("connecting to NATS: %w", err)
	}
	defer nc.Close()
	names, err := restoreStreams(ctx, nc, *dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restored %d streams from %s: %s\n", len(names), *dir, strings.Join(names, ", "))
	return nil
}
