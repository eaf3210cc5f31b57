package projections_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
)

// failingFirst fails its first applies, as a database away for a while.
type failingFirst struct {
	*pg.Projector
	failures int64
	calls    atomic.Int64
}

func (f *failingFirst) Apply(ctx context.Context, items []pg.Item) error {
	if f.calls.Add(1) <= f.failures {
		return errors.New("database away")
	}
	return f.Projector.Apply(ctx, items)
}

// TestRestartsLeaveNoConsumers: every restart of the runner (here three
// failed applies) and its stop delete the consumer it read from, instead
// of leaving it on the server until its inactivity threshold.
func TestRestartsLeaveNoConsumers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.load(t, 0, 3, 3)
	sink := &failingFirst{Projector: pg.NewProjector(freshPool(t)), failures: 3}
	r := projections.NewRunner(w.js, w.codec, sink, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	last := lastSeq(t, w)
	deadline := time.Now().Add(30 * time.Second)
	for r.Applied() < last {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("applied %d of %d", r.Applied(), last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sink.calls.Load() <= sink.failures {
		t.Fatalf("the runner caught up without going through its failures (%d applies)", sink.calls.Load())
	}
	stream, err := w.js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 1 {
		t.Errorf("%d consumers on the stream while the runner reads, want its one", info.State.Consumers)
	}
	cancel()
	<-done
	if info, err = stream.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left on the stream after the runner stopped", info.State.Consumers)
	}
}
