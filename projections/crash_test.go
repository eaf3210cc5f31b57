package projections_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/privacy"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// master is a fixed test master key: the child process must open the same
// sealed data as its parent.
var master = []byte("0123456789abcdef0123456789abcdef")

type world struct {
	js      jetstream.JetStream
	url     string
	codec   *eventstore.Codec
	handler *command.Handler
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	srv := natstest.Server(t, "")
	_, js := natstest.Connect(t, srv.ClientURL())
	stream, err := natsjs.Provision(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{js: js, url: srv.ClientURL()}
	w.codec = codecOn(t, js)
	idem, err := natsjs.NewIdempotency(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	sealer := sealerOn(t, js)
	w.handler = command.New(natsjs.New(js, stream, w.codec), idem, sealer)
	return w
}

func sealerOn(t testing.TB, js jetstream.JetStream) *privacy.Sealer {
	ks, err := privacy.NewJetStreamKeyStore(context.Background(), js, master)
	if err != nil {
		t.Fatal(err)
	}
	s, err := privacy.NewSealer(master, ks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func codecOn(t testing.TB, js jetstream.JetStream) *eventstore.Codec {
	return eventstore.NewCodec(sealerOn(t, js), func(err error) bool { return errors.Is(err, privacy.ErrErased) })
}

func tax(i int) string {
	first := fmt.Sprintf("VRDLCU%02dB%02dF205", 50+i%40, 1+i%28)
	c, _ := taxcode.CheckChar(first)
	return first + string(c)
}

// load appends a mixed workload: paths, sessions, pacts, a closure.
func (w *world) load(t *testing.T, from, paths, sessions int) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	w.handler.Now = func() time.Time { return now }
	var ids []string
	for i := from; i < from+paths; i++ {
		res, err := w.handler.TakeInCharge(ctx, command.Request{Actor: "op"}, workerpath.TakeInCharge{
			Worker:   workerpath.Person{TaxCode: tax(i), GivenName: "Luca", FamilyName: "Verdi", Disability: i%4 == 0},
			Category: "a", Support: workerpath.Support{Kind: workerpath.SupportCIG, From: workerpath.MustDate("2010-01-04")},
			Office: []string{"BO01", "MO02", "RE01", "PC03"}[i%4], TakenAt: time.Date(2010, 2, 1, 9, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.PathID)
	}
	for i := range sessions {
		_, err := w.handler.DeliverSession(ctx, command.Request{Actor: "op"}, ids[i%len(ids)], nil, workerpath.DeliverSession{
			Service: []int{1, 3, 9, 10, 8}[i%5], DeliveredAt: time.Date(2010, 3, 1+i%28, 9, 0, 0, 0, time.UTC), Minutes: 30 + i%40,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func freshPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := pgtest.New(t)
	pool, err := pg.Connect(context.Background(), url, pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// runToEnd runs a projector on pool until it has applied the whole stream.
func runToEnd(t *testing.T, w *world, pool *pgxpool.Pool) {
	t.Helper()
	r := projections.NewRunner(w.js, w.codec, pg.NewProjector(pool), quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	stream, err := w.js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(context.Background(), eventstore.EventsWildcard)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !(r.Running() && r.Lag() == 0 && r.Applied() >= last.Sequence) {
		if time.Now().After(deadline) {
			t.Fatalf("projector did not catch up: lag %d", r.Lag())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCancelledMidBatch stops the projector at random points, again and
// again, while events keep arriving; the read models end equal to a single
// uninterrupted replay: no event lost, none applied twice.
func TestCancelledMidBatch(t *testing.T) {
	w := newWorld(t)
	w.load(t, 0, 40, 200)
	pool := freshPool(t)
	rng := rand.New(rand.NewPCG(1, 2))
	cp := pg.NewProjector(pool)
	for round := range 25 {
		r := projections.NewRunner(w.js, w.codec, cp, quiet)
		r.Batch = 1 + rng.IntN(64)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(40))*time.Millisecond)
		r.Run(ctx)
		cancel()
		if round == 10 {
			w.load(t, 40, 10, 100) // more events arrive between crashes
		}
	}
	runToEnd(t, w, pool)
	want := freshPool(t)
	runToEnd(t, w, want)
	if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
		t.Fatalf("read models after crashes differ from a fresh replay")
	}
	var n int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions`).Scan(&n)
	if n != 300 {
		t.Errorf("sessions = %d, want 300", n)
	}
}

// TestProjectorChild is the projector run as a separate process by
// TestKilledProjector; it does nothing in a normal run.
func TestProjectorChild(t *testing.T) {
	natsURL, pgURL := os.Getenv("PERCORSO_CHILD_NATS"), os.Getenv("PERCORSO_CHILD_PG")
	if natsURL == "" {
		t.Skip("run by TestKilledProjector as a child process")
	}
	_, js := natstest.Connect(t, natsURL)
	pool, err := pg.Connect(context.Background(), pgURL, pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	r := projections.NewRunner(js, codecOn(t, js), pg.NewProjector(pool), quiet)
	r.Batch = 7 // many small commits: more places to be killed at
	r.Run(context.Background())
}

// TestKilledProjector kills a projector process with SIGKILL, repeatedly and
// mid-batch, then lets one finish: the read models equal a fresh replay.
func TestKilledProjector(t *testing.T) {
	if os.Getenv("PERCORSO_CHILD_NATS") != "" {
		t.Skip()
	}
	w := newWorld(t)
	w.load(t, 0, 30, 2500)
	pool := freshPool(t)
	var pgURL string
	pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&pgURL)
	url := strings.Replace(pool.Config().ConnString(), "/"+pool.Config().ConnConfig.Database, "/"+pgURL, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	checkpoint := func() int64 {
		var cp int64
		pool.QueryRow(context.Background(), `SELECT coalesce(max(seq), 0) FROM projection_checkpoints`).Scan(&cp)
		return cp
	}
	// Each round kills the child once it has committed something new, a
	// random moment later: mid-replay, however slow the machine is.
	var kills []int64
	for range 6 {
		before := checkpoint()
		cmd := exec.Command(os.Args[0], "-test.run=^TestProjectorChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PERCORSO_CHILD_NATS="+w.url, "PERCORSO_CHILD_PG="+url)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); checkpoint() == before && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		kills = append(kills, checkpoint())
	}
	t.Logf("checkpoints after each kill: %v", kills)
	last, err := w.js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	midway := 0
	for _, k := range kills {
		if k > 0 && uint64(k) < last.CachedInfo().State.LastSeq {
			midway++
		}
	}
	if midway < 2 {
		t.Errorf("fewer than two kills landed mid-replay: %v", kills)
	}
	runToEnd(t, w, pool)
	want := freshPool(t)
	runToEnd(t, w, want)
	if pgtest.Dump(t, pool) != pgtest.Dump(t, want) {
		t.Fatal("read models after SIGKILLs differ from a fresh replay")
	}
}
