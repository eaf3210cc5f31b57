// Package jstest builds, for tests, the command side exactly as
// `percorso serve` wires it — a real in-process JetStream server, the
// provisioned stream, per-worker keys on a JetStream bucket, the store and
// the idempotency bucket — so tests of the edges exercise the real thing.
package jstest

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/privacy"
)

// Master is the fixed master key of tests, so separate processes of one
// test can open each other's sealed data.
var Master = []byte("0123456789abcdef0123456789abcdef")

// World is the command side on a real JetStream.
type World struct {
	URL     string
	NC      *nats.Conn
	JS      jetstream.JetStream
	Stream  jetstream.Stream
	Sealer  *privacy.Sealer
	Codec   *eventstore.Codec
	Store   *natsjs.Store
	Handler *command.Handler
}

// New starts a JetStream server and builds the command side on it.
func New(t testing.TB) *World {
	t.Helper()
	return On(t, natstest.Server(t, "").ClientURL())
}

// On builds the command side on the JetStream server at url.
func On(t testing.TB, url string) *World {
	t.Helper()
	ctx := context.Background()
	w := &World{URL: url}
	w.NC, w.JS = natstest.Connect(t, url)
	var err error
	if w.Stream, err = natsjs.Provision(ctx, w.JS, 1); err != nil {
		t.Fatal(err)
	}
	ks, err := privacy.NewJetStreamKeyStore(ctx, w.JS, Master)
	if err != nil {
		t.Fatal(err)
	}
	if w.Sealer, err = privacy.NewSealer(Master, ks); err != nil {
		t.Fatal(err)
	}
	w.Codec = eventstore.NewCodec(w.Sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	w.Store = natsjs.New(w.JS, w.Stream, w.Codec)
	idem, err := natsjs.NewIdempotency(ctx, w.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Handler = command.New(w.Store, idem, w.Sealer)
	return w
}
