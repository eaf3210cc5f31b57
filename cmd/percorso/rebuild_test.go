package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// replay builds the read models from the stream alone into a fresh database.
func replay(t *testing.T, m *Main) *pgxpool.Pool {
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
	r := projections.NewRunner(m.js, m.codec, pg.NewProjector(pool), slog.New(slog.NewTextHandler(io.Discard, nil)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for !(r.Running() && r.Lag() == 0 && r.Applied() >= m.runner.Applied()) {
		if time.Now().After(deadline) {
			t.Fatalf("fresh replay did not catch up: applied %d, lag %d", r.Applied(), r.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pool
}

// waitCaughtUp waits until the live projector has applied the whole stream.
func waitCaughtUp(t *testing.T, m *Main) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !(m.runner.Running() && m.runner.Lag() == 0) {
		if time.Now().After(deadline) {
			t.Fatalf("live projector did not catch up: lag %d", m.runner.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a final batch may still be committing
	for !(m.runner.Running() && m.runner.Lag() == 0) {
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebuildUnderLiveWrites: operators keep working while an admin
// rebuilds the read models; afterwards the live set equals a fresh replay.
func TestRebuildUnderLiveWrites(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	var paths []string
	for i := range 20 {
		_, b, _ := op.do("POST", "/v1/paths", takeInCharge(i, taxCode(t, i), "c", "cig_deroga"))
		paths = append(paths, b["path_id"].(string))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 2000; i++ {
				p := paths[(i*2+w)%len(paths)]
				st, _, _ := op.do("POST", "/v1/paths/"+p+"/sessions",
					fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":30}`, []int{1, 3, 9, 10}[i%4]))
				if st == 201 {
					written.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	out, err := cli(t, m, "rebuild", "--pg-url", m.pgURL)
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if !strings.Contains(out, "rebuilt and switched") {
		t.Errorf("rebuild output: %s", out)
	}
	time.Sleep(300 * time.Millisecond) // writes continue after the switch too
	stop.Store(true)
	wg.Wait()
	if written.Load() == 0 {
		t.Fatal("no live writes happened during the rebuild")
	}
	waitCaughtUp(t, m)
	if got, want := pgtest.Dump(t, m.pool), pgtest.Dump(t, replay(t, m)); got != want {
		t.Errorf("live read models differ from a fresh replay after the rebuild (%d vs %d bytes)", len(got), len(want))
	}
	// The API still answers from the new set.
	if st, v, _ := op.do("GET", "/v1/paths/"+paths[0], ""); st != 200 || v["path_id"] != paths[0] {
		t.Errorf("read after rebuild: %d %v", st, v)
	}
}
