package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// TestBackupRestore backs up a serving percorso's streams while commands
// keep arriving, restores them into a fresh NATS server, and starts a fresh
// percorso on it with an empty PostgreSQL: it rebuilds the same read
// models from the restored stream, reads personal data with the restored
// keys, and still knows the restored commands' idempotency keys.
func TestBackupRestore(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	var paths []string
	for i := range 8 {
		st, b, _ := op.do("POST", "/v1/paths", takeInCharge(i, taxCode(t, i), "c", "cig_deroga"), "Idempotency-Key", fmt.Sprintf("tic-%d", i))
		if st != http.StatusCreated {
			t.Fatalf("take in charge: %d %v", st, b)
		}
		paths = append(paths, b["path_id"].(string))
	}
	session := func(i int) string {
		return fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":30}`, []int{1, 3, 9, 10}[i%4])
	}
	for i := range 40 {
		op.do("POST", "/v1/paths/"+paths[i%len(paths)]+"/sessions", session(i))
	}
	// Writes go on during the backup: each stream's snapshot is consistent
	// in itself.
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				post(m.HTTPURL(), op.token, "/v1/paths/"+paths[i%len(paths)]+"/sessions", session(i))
			}
		}
	}()
	dir := t.TempDir()
	var out bytes.Buffer
	err := runBackup(context.Background(), []string{"--nats-url", m.NATSURL(), "--dir", dir}, &out, io.Discard)
	close(stop)
	<-writing
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	for _, s := range []string{"PERCORSO", "KV_PERCORSO_KEYS", "KV_PERCORSO_COMMANDS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("backup output lacks stream %s: %s", s, out.String())
		}
	}

	if err := runBackup(context.Background(), []string{"--nats-url", m.NATSURL(), "--dir", dir}, io.Discard, io.Discard); err == nil {
		t.Error("a second backup into the same directory must be refused, not replace the first")
	}

	// A server that holds one of the streams already: refused before
	// anything is restored, so nothing is left behind.
	partial := natstest.Server(t, "")
	pnc, err := nats.Connect(partial.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pnc.Close()
	pjs, err := jetstream.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pjs.CreateStream(context.Background(), jetstream.StreamConfig{Name: "PERCORSO", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := runRestore(context.Background(), []string{"--nats-url", partial.ClientURL(), "--dir", dir}, io.Discard, io.Discard); err == nil {
		t.Error("restoring where a stream exists must fail")
	}
	var left []string
	for n := range pjs.StreamNames(context.Background()).Name() {
		left = append(left, n)
	}
	if len(left) != 1 {
		t.Errorf("a refused restore left streams %v, want PERCORSO alone", left)
	}

	fresh := natstest.Server(t, "")
	out.Reset()
	if err := runRestore(context.Background(), []string{"--nats-url", fresh.ClientURL(), "--dir", dir}, &out, io.Discard); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := runRestore(context.Background(), []string{"--nats-url", fresh.ClientURL(), "--dir", dir}, io.Discard, io.Discard); err == nil {
		t.Error("restoring over existing streams must fail, not merge")
	}

	// A fresh percorso on the restored server and an empty database; same
	// master key and principals (the data dir).
	restored := NewMain(Config{HTTPAddr: "127.0.0.1:0", DataDir: m.Config.DataDir, NATSURL: fresh.ClientURL(), PGURL: pgtest.New(t), Replicas: 1}, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := restored.Run(ctx); err != nil {
		t.Fatalf("starting on the restored stream: %v", err)
	}
	t.Cleanup(func() { restored.Close() })
	waitCaughtUp(t, restored)

	// The restored read models equal a replay, on the original, of the
	// stream up to the same point.
	upTo := restored.runner.Applied()
	orig := replayUpTo(t, m, upTo)
	if got, want := pgtest.Dump(t, restored.pool), pgtest.Dump(t, orig); got != want {
		t.Fatalf("read models rebuilt from the restored stream differ from the original's up to %d", upTo)
	}
	rop := client{t, restored.HTTPURL(), op.token}
	st, v, _ := rop.do("GET", "/v1/paths/"+paths[0], "")
	if w, _ := v["worker"].(map[string]any); st != 200 || w["tax_code"] != taxCode(t, 0) {
		t.Errorf("personal data after the restore: %d %v", st, v)
	}
	st, b, _ := rop.do("POST", "/v1/paths", takeInCharge(3, taxCode(t, 3), "c", "cig_deroga"), "Idempotency-Key", "tic-3")
	if st != http.StatusCreated || b["path_id"] != paths[3] {
		t.Errorf("a restored command replayed: %d %v, want path %s again", st, b, paths[3])
	}
	if st, _, _ := rop.do("POST", "/v1/paths/"+paths[1]+"/sessions", session(1)); st != http.StatusCreated {
		t.Errorf("a new command on the restored stream: %d", st)
	}
}

// upTo applies only the events up to a sequence: the stream as it was when
// a backup was taken.
type upTo struct {
	*pg.Projector
	last uint64
}

func (u upTo) Apply(ctx context.Context, items []pg.Item) error {
	var keep []pg.Item
	for _, it := range items {
		if it.Env.Seq <= u.last {
			keep = append(keep, it)
		}
	}
	return u.Projector.Apply(ctx, keep)
}

// replayUpTo replays m's stream up to a sequence into a fresh database.
func replayUpTo(t *testing.T, m *Main, last uint64) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, pgtest.New(t), pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	r := projections.NewRunner(m.js, m.codec, upTo{pg.NewProjector(pool), last}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for !(r.Running() && r.Lag() == 0 && r.Applied() >= last) {
		if time.Now().After(deadline) {
			t.Fatalf("replay up to %d did not get there: applied %d, lag %d", last, r.Applied(), r.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pool
}
