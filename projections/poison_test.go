package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
)

// An event the runner cannot decode stops the projection on it, but the
// events that arrived before it in the same batch are applied first: an
// admin's skip moves the checkpoint to the poison event, so anything left
// behind would never be applied.
func TestPoisonAfterEventsInOneBatch(t *testing.T) {
	w := newWorld(t)
	w.load(t, 0, 3, 6)
	ctx := context.Background()
	stream, err := w.js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, eventstore.EventsWildcard)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	bad := nats.NewMsg(eventstore.EventSubject(id))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": uuid.NewString(), "ce-type": "SomethingUnknown",
		"ce-source": "/percorso", "ce-subject": id, "ce-time": time.Now().UTC().Format(time.RFC3339Nano), "ce-schemaversion": "1"} {
		bad.Header.Set(k, v)
	}
	bad.Data = []byte(`{}`)
	ack, err := w.js.PublishMsg(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}

	pool := freshPool(t)
	r := projections.NewRunner(w.js, w.codec, pg.NewProjector(pool), quiet)
	r.Linger = time.Second // every event, the poison included, in the first batch
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(20 * time.Second); r.Poisoned() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the projection did not stop on the poison event")
		}
	}
	if p := r.Poisoned(); p.Seq != ack.Sequence {
		t.Fatalf("stopped on %d, want the poison event %d", p.Seq, ack.Sequence)
	}
	var events, cp int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events), (SELECT seq FROM projection_checkpoints WHERE name = $1)`,
		pg.ProjectorName).Scan(&events, &cp); err != nil {
		t.Fatalf("reading the read models: %v", err)
	}
	if events != 9 || cp != int64(last.Sequence) {
		t.Errorf("before the poison event: %d events applied, checkpoint %d; want 9 and %d", events, cp, last.Sequence)
	}
}
