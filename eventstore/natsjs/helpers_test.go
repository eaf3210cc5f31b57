package natsjs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/storetest"
)

// timeout bounds every test's own calls; t.Context ends with the test.
func timeout(t testing.TB, d time.Duration) context.Context {
	ctx := context.Background()
	if tt, ok := t.(interface{ Context() context.Context }); ok {
		ctx = tt.Context()
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// provisioned connects to url and provisions the stream.
func provisioned(t testing.TB, url string, replicas int) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	_, js := natstest.Connect(t, url)
	ctx := timeout(t, 30*time.Second)
	for {
		// A request may go unanswered while a cluster moves its leaders
		// (heavily loaded machines): try again rather than wait it out.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := natsjs.Provision(actx, js, replicas)
		cancel()
		if err == nil {
			return js, st
		}
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
}

// harnesses returns a factory of conformance harnesses on the stream at
// url, provisioned with that many replicas: each call connects anew and builds a store with its own codec and
// key store, so every subtest starts with empty caches.
func harnesses(url string, replicas int) func(t *testing.T) storetest.Harness {
	return func(t *testing.T) storetest.Harness {
		js, st := provisioned(t, url, replicas)
		codec, sealer := storetest.NewCodec(t)
		return storetest.Harness{
			Store:  natsjs.New(js, st, codec),
			Sealer: sealer,
			Reopen: func(t *testing.T) storetest.Store {
				js, st := provisioned(t, url, replicas)
				return natsjs.New(js, st, codec)
			},
			Stored: func(ctx context.Context, pathID string) ([]*eventstore.Envelope, error) {
				return stored(ctx, st, pathID)
			},
			Forge: func(ctx context.Context, env *eventstore.Envelope) (uint64, error) {
				return forge(ctx, js, env)
			},
		}
	}
}

// stored reads every message on a path's subject, hopping from one to the
// next through the subject index (no consumer per read).
func stored(ctx context.Context, st jetstream.Stream, pathID string) ([]*eventstore.Envelope, error) {
	subject := eventstore.EventSubject(pathID)
	var out []*eventstore.Envelope
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		e, err := eventstore.FromHeaders(m.Sequence, m.Subject, m.Header.Get, m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		seq = m.Sequence + 1
	}
}

// forge publishes an envelope as it is, past the store's checks.
func forge(ctx context.Context, js jetstream.JetStream, env *eventstore.Envelope) (uint64, error) {
	msg := nats.NewMsg(eventstore.EventSubject(env.PathID))
	for k, v := range env.Headers() {
		msg.Header.Set(k, v)
	}
	msg.Data = env.Data
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// waitReadable waits until every node of the cluster answers direct gets
// on the stream. A new replicated stream's replicas subscribe to direct
// gets only once they are current, and the interest takes a moment to cross
// the routes: until then reads get "no responders".
func waitReadable(t testing.TB, c *natstest.Cluster) {
	t.Helper()
	ctx := timeout(t, 30*time.Second)
	for _, srv := range c.Servers {
		_, js := natstest.Connect(t, srv.ClientURL())
		for {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := js.Stream(actx, eventstore.StreamName)
			if err == nil {
				_, err = st.GetLastMsgForSubject(actx, eventstore.EventSubject("probe"))
			}
			cancel()
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("node %s does not serve reads: %v", srv.Name(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// retry runs a test's own request to the cluster until it succeeds, each
// attempt bounded: while a node is down, requests may meet "no responders"
// or go unanswered until the client reconnects and leaders move.
func retry(t testing.TB, ctx context.Context, f func(ctx context.Context) error) {
	t.Helper()
	retryEach(t, ctx, 2*time.Second, f)
}

// retryEach is retry with attempts bounded by each.
func retryEach(t testing.TB, ctx context.Context, each time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, each)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
