// Package storetest is the one conformance suite every implementation of
// command.Store passes: the JetStream store on a single server and on a
// replicated cluster, and the in-memory store the use-case tests run on.
// The command layer relies on exactly these behaviours (optimistic
// concurrency, all-or-nothing appends, deduplication by event id, the hash
// chain, erasure by crypto-shredding), so they are written down once here
// rather than once per store, where two copies would drift apart.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/privacy"
)

// Store is what the suite drives: the port, plus the undecoded read of a
// path by its back-pointer chain that auditors and Verify use.
type Store interface {
	command.Store
	ReadPath(ctx context.Context, pathID string) ([]*eventstore.Envelope, error)
}

// Harness is one store under test and what the suite needs around it.
//
// The suite writes only to paths and workers it creates, with fresh ids, so
// a factory may hand out stores on one shared stream (a cluster is costly
// to start). It must not be written by others during a subtest.
type Harness struct {
	// Store is the store under test. Its codec seals with Sealer.
	Store Store
	// Sealer is the sealer behind the store's codec: the erasure test
	// destroys a worker's key with it.
	Sealer *privacy.Sealer
	// Reopen returns another store on the same stream and the same codec,
	// with its own empty cache: a second process.
	Reopen func(t *testing.T) Store
	// Stored returns every message on the path's subject in stream order,
	// regardless of back-pointers: it counts copies that a chain walk
	// could step over.
	Stored func(ctx context.Context, pathID string) ([]*eventstore.Envelope, error)
	// Forge, when set, publishes the envelope's message on its path's
	// subject as it is, with no expectation and no deduplication, as
	// someone with raw write access could; it returns the sequence. The
	// tamper tests are skipped without it.
	Forge func(ctx context.Context, env *eventstore.Envelope) (uint64, error)
}

// NewCodec returns a codec that seals personal data under per-worker keys
// kept in memory, and the sealer behind it. Harness factories share one
// codec between a store and its Reopen copies, as processes share the key
// store.
func NewCodec(t testing.TB) (*eventstore.Codec, *privacy.Sealer) {
	t.Helper()
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	sealer, err := privacy.NewSealer(master, privacy.NewMemoryKeyStore())
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.NewCodec(sealer, IsErased), sealer
}

// IsErased recognises the sealer's "key destroyed" error.
func IsErased(err error) bool { return errors.Is(err, privacy.ErrErased) }

// settle bounds how long the suite waits for reads that bypass a store's
// cache to catch up with acknowledged writes: on a replicated stream a
// follower may answer a direct get a moment before it has applied the
// latest entries.
const settle = 10 * time.Second

// eventually retries check until it reports done, or fails the test with
// its last message.
func eventually(t *testing.T, check func() (done bool, msg string)) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		done, msg := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", settle, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
