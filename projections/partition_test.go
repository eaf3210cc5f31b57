package projections_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// TestPartitionOfMatchesNATS: the runner's partition of a path is the one
// NATS's partition(n, ...) subject mapping gives, so a deployment may move
// the split to the server without moving any path.
func TestPartitionOfMatchesNATS(t *testing.T) {
	for _, n := range []int{2, 3, 7, 16} {
		tr, err := server.NewSubjectTransform(eventstore.EventSubjectRoot+"*", fmt.Sprintf("p.{{partition(%d,1)}}", n))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]int{}
		for range 500 {
			id := randomUUID()
			got, err := tr.Match(eventstore.EventSubject(id))
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("p.%d", pg.PartitionOf(id, n))
			if got != want {
				t.Fatalf("path %s of %d: NATS maps to %s, the runner to %s", id, n, got, want)
			}
			seen[pg.PartitionOf(id, n)]++
		}
		if len(seen) != n {
			t.Errorf("%d partitions: only %d got paths out of 500: %v", n, len(seen), seen)
		}
	}
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func TestParsePartition(t *testing.T) {
	for _, c := range []struct {
		in   string
		want pg.Partition
		ok   bool
	}{
		{"0/1", pg.Partition{Index: 0, Count: 1}, true},
		{"1/2", pg.Partition{Index: 1, Count: 2}, true},
		{"63/64", pg.Partition{Index: 63, Count: 64}, true},
		{"2/2", pg.Partition{}, false},
		{"-1/2", pg.Partition{}, false},
		{"0/0", pg.Partition{}, false},
		{"0/65", pg.Partition{}, false},
		{"1", pg.Partition{}, false},
		{"a/b", pg.Partition{}, false},
		{"", pg.Partition{}, false},
	} {
		got, err := pg.ParsePartition(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParsePartition(%q) = %v, %v; want %v, ok %t", c.in, got, err, c.want, c.ok)
		}
	}
	if n := pg.NewPartitionProjector(nil, pg.Partition{Index: 1, Count: 3}).Name(); n != "read_models/1of3" {
		t.Errorf("checkpoint name %q", n)
	}
	if n := pg.NewProjector(nil).Name(); n != pg.ProjectorName {
		t.Errorf("whole-stream checkpoint name %q", n)
	}
}

// fleet runs a set of runners (one layout of partitions, or several) until
// stopped.
type fleet struct {
	runners []*projections.Runner
	cancel  context.CancelFunc
	done    chan struct{}
}

func startFleet(w *world, pool *pgxpool.Pool, parts ...pg.Partition) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel, done: make(chan struct{})}
	for _, p := range parts {
		r := projections.NewRunner(w.js, w.codec, pg.NewPartitionProjector(pool, p), quiet)
		r.Batch = 50 // several commits per partition, interleaved with the others
		f.runners = append(f.runners, r)
	}
	left := make(chan struct{}, len(f.runners))
	for _, r := range f.runners {
		go func() { r.Run(ctx); left <- struct{}{} }()
	}
	go func() {
		for range f.runners {
			<-left
		}
		close(f.done)
	}()
	return f
}

func (f *fleet) stop() { f.cancel(); <-f.done }

// waitAll waits until every runner has passed the stream's last event.
func (f *fleet) waitAll(t *testing.T, w *world) {
	t.Helper()
	last := lastSeq(t, w)
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range f.runners {
		for !(r.Running() && r.Lag() == 0 && r.Applied() >= last) {
			if time.Now().After(deadline) {
				t.Fatalf("partition %v did not catch up: applied %d of %d, lag %d, poisoned %v", r.Partition(), r.Applied(), last, r.Lag(), r.Poisoned())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func lastSeq(t *testing.T, w *world) uint64 {
	t.Helper()
	stream, err := w.js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(context.Background(), eventstore.EventsWildcard)
	if err != nil {
		t.Fatal(err)
	}
	return last.Sequence
}

func halves() []pg.Partition {
	return []pg.Partition{{Index: 0, Count: 2}, {Index: 1, Count: 2}}
}

// TestTwoPartitionsEqualOne: two partitions, running side by side while
// events keep arriving, build the same read models as one projector of the
// whole stream; each applies only its own paths, and both checkpoints
// follow the whole stream.
func TestTwoPartitionsEqualOne(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.load(t, 0, 20, 80)
	pool := freshPool(t)
	f := startFleet(w, pool, halves()...)
	w.load(t, 20, 10, 60) // live writes while the partitions run
	f.waitAll(t, w)
	f.stop()

	want := freshPool(t)
	runToEnd(t, w, want)
	if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
		t.Fatalf("two partitions differ from one projector of the whole stream")
	}
	var events uint64
	if err := want.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	a, b := f.runners[0].Projected(), f.runners[1].Projected()
	if a == 0 || b == 0 || a+b != events {
		t.Errorf("partitions projected %d + %d events, the stream has %d: each event must be applied by exactly one", a, b, events)
	}
	last := lastSeq(t, w)
	for _, name := range []string{"read_models/0of2", "read_models/1of2"} {
		var seq uint64
		if err := pool.QueryRow(context.Background(), `SELECT seq FROM projection_checkpoints WHERE name = $1`, name).Scan(&seq); err != nil || seq != last {
			t.Errorf("checkpoint %s = %d (%v), want the stream's last sequence %d", name, seq, err, last)
		}
	}
}

// TestRepartition changes the number of partitions on live read models —
// 1 to 2, with one of the two stopped early, then to 3, then back to 1 —
// with events arriving in between; each layout starts where the previous
// one left every path, skips what was already applied, and the read models
// end equal to a fresh replay.
func TestRepartition(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.load(t, 0, 20, 60)
	pool := freshPool(t)
	runToEnd(t, w, pool)

	w.load(t, 20, 10, 60)
	f := startFleet(w, pool, halves()...)
	f.waitAll(t, w)
	f.stop()
	// Partition 1/2 alone goes on a little: the next layout finds 0/2 behind.
	w.load(t, 30, 5, 40)
	one := startFleet(w, pool, pg.Partition{Index: 1, Count: 2})
	one.waitAll(t, w)
	one.stop()

	w.load(t, 35, 5, 40)
	thirds := []pg.Partition{{Index: 0, Count: 3}, {Index: 1, Count: 3}, {Index: 2, Count: 3}}
	f = startFleet(w, pool, thirds...)
	f.waitAll(t, w)
	f.stop()

	w.load(t, 40, 5, 30)
	runToEnd(t, w, pool) // its own checkpoint is far behind: it skips what the others applied

	want := freshPool(t)
	runToEnd(t, w, want)
	if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
		t.Fatalf("read models after repartitioning differ from a fresh replay")
	}
}

// TestProjectorsRaceOnTheSameEvents: projectors of the same paths running
// at once race on the same events while more arrive — two layouts of
// partitions (an operator's mistake during a change of partitions), or two
// copies of the same partitions (a rolling update). The loser of each race
// retries on a fresh snapshot and skips what the winner applied.
func TestProjectorsRaceOnTheSameEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parts []pg.Partition
	}{
		{"overlapping layouts", []pg.Partition{{}, {Index: 0, Count: 2}, {Index: 1, Count: 2}}},
		{"same partitions twice", []pg.Partition{{}, {}, {Index: 1, Count: 2}, {Index: 1, Count: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.load(t, 0, 20, 120)
			pool := freshPool(t)
			f := startFleet(w, pool, tc.parts...)
			w.load(t, 20, 5, 40)
			f.waitAll(t, w)
			f.stop()
			want := freshPool(t)
			runToEnd(t, w, want)
			if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
				t.Fatalf("read models of %s differ from a fresh replay", tc.name)
			}
		})
	}
}

// TestSwitchBehindPartitions: read models switched in under running
// partitions (a rebuild's) may hold fewer events than the partitions had
// applied to the old set, and no partition checkpoints at all. The
// partitions notice their checkpoints went missing, resume from the
// switched-in set's, and fill the gap.
func TestSwitchBehindPartitions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.load(t, 0, 20, 100)
	url := pgtest.New(t)
	pool, err := pg.Connect(context.Background(), url, pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	f := startFleet(w, pool, halves()...)
	defer f.stop()
	f.waitAll(t, w)

	// A replay into a fresh set, stopped halfway.
	rb, err := pg.StartRebuild(context.Background(), pool, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	r := projections.NewRunner(w.js, w.codec, rb.Projector, quiet)
	r.Batch = 20
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	half := lastSeq(t, w) / 2
	for r.Applied() < half {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	full := freshPool(t)
	runToEnd(t, w, full)
	_, err = rb.Switch(context.Background(),
		func(context.Context, uint64) error { return nil },
		func(ctx context.Context, upTo uint64) (n int64, err error) {
			err = full.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE seq <= $1`, int64(upTo)).Scan(&n)
			return n, err
		})
	if err != nil {
		t.Fatalf("switch: %v", err)
	}
	w.load(t, 20, 5, 30)
	f.waitAll(t, w)

	want := freshPool(t)
	runToEnd(t, w, want)
	if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
		t.Fatalf("read models switched in behind the partitions were not filled up")
	}
}

// TestAdminSkipsAnyPartition: an admin skips a poison event by its
// sequence, whichever partition recorded it; another projection's record
// of the same sequence is not touched.
func TestAdminSkipsAnyPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := freshPool(t)
	part := pg.NewPartitionProjector(pool, pg.Partition{Index: 1, Count: 2})
	if err := part.RecordPoison(ctx, 42, errors.New("cannot apply")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projection_poison (name, seq, error) VALUES ('read_models_extra', 42, 'x')`); err != nil {
		t.Fatal(err)
	}
	admin := pg.NewAdmin(pool)
	if err := admin.Skip(ctx, 41, "adm"); !errors.Is(err, query.ErrNotFound) {
		t.Errorf("skipping an unrecorded sequence: %v", err)
	}
	if err := admin.Skip(ctx, 42, "adm"); err != nil {
		t.Fatalf("skip: %v", err)
	}
	if ok, err := part.Skipped(ctx, 42); err != nil || !ok {
		t.Errorf("the partition does not see the skip: %t %v", ok, err)
	}
	if err := admin.Skip(ctx, 42, "adm"); !errors.Is(err, query.ErrNotFound) {
		t.Errorf("skipping twice: %v", err)
	}
	var untouched bool
	if err := pool.QueryRow(ctx, `SELECT skipped_at IS NULL FROM projection_poison WHERE name = 'read_models_extra'`).Scan(&untouched); err != nil || !untouched {
		t.Errorf("another projection's record was skipped: %v", err)
	}
	// The skip holds for the whole-stream layout too (a rebuild's), and
	// for the other layouts; not for another sequence.
	for _, p := range []*pg.Projector{pg.NewProjector(pool), pg.NewPartitionProjector(pool, pg.Partition{Index: 2, Count: 3})} {
		if ok, err := p.Skipped(ctx, 42); err != nil || !ok {
			t.Errorf("%s does not see the skip of 42: %t %v", p.Name(), ok, err)
		}
		if ok, err := p.Skipped(ctx, 43); err != nil || ok {
			t.Errorf("%s sees a skip of 43, never recorded: %t %v", p.Name(), ok, err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projection_poison (name, seq, error, skipped_at, skipped_by) VALUES ('read_models_extra', 44, 'x', now(), 'adm')`); err != nil {
		t.Fatal(err)
	}
	if ok, err := pg.NewProjector(pool).Skipped(ctx, 44); err != nil || ok {
		t.Errorf("another projection's skip counts for read_models: %t %v", ok, err)
	}
}
