package privacy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func TestJetStreamConcurrentCreateYieldsOneKey(t *testing.T) {
	const n = 8
	tests := []struct {
		name string
		// stores returns the store each goroutine uses.
		stores func(t *testing.T, srv *server.Server) []*JetStreamKeyStore
	}{
		{"one shared store", func(t *testing.T, srv *server.Server) []*JetStreamKeyStore {
			ks := newJSStore(t, connect(t, srv))
			out := make([]*JetStreamKeyStore, n)
			for i := range out {
				out[i] = ks
			}
			return out
		}},
		{"a store and connection per goroutine, as separate processes", func(t *testing.T, srv *server.Server) []*JetStreamKeyStore {
			// Constructed concurrently too: bucket creation races as well.
			out := make([]*JetStreamKeyStore, n)
			js := make([]jetstream.JetStream, n)
			for i := range out {
				js[i] = connect(t, srv)
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range out {
				wg.Go(func() { out[i], errs[i] = NewJetStreamKeyStore(ctxT(t), js[i], testMaster) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("concurrent NewJetStreamKeyStore: %v", err)
				}
			}
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			srv, _ := startServer(t, t.TempDir())
			stores := tt.stores(t, srv)
			const ref = "0123456789abcdef0123456789abcdef"
			keys := make([][]byte, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					keys[i], errs[i] = stores[i].DataKey(ctx, ref, true)
				})
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if !bytes.Equal(keys[i], keys[0]) {
					t.Fatalf("goroutine %d got a different key", i)
				}
			}
			// Exactly one write reached the bucket: losers wrote nothing.
			info, err := stores[0].stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.LastSeq != 1 {
				t.Fatalf("bucket saw %d writes, want 1", info.State.LastSeq)
			}
			fresh := newJSStore(t, connect(t, srv))
			got, err := fresh.DataKey(ctx, ref, false)
			if err != nil || !bytes.Equal(got, keys[0]) {
				t.Fatalf("stored key differs from the one handed out: %v", err)
			}
		})
	}
}

// The store must really erase: after Destroy, the wrapped key must be gone
// from every file under the store directory, wherever it sat in the block.
func TestJetStreamDestroyErasesFromDisk(t *testing.T) {
	tests := []struct {
		name          string
		before, after int // other workers' keys written before and after the target
	}{
		{"only key in the bucket", 0, 0},
		{"first of several", 0, 3},
		{"in the middle", 3, 3},
		{"last of several", 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			dir := t.TempDir()
			srv, stop := startServer(t, dir)
			js := connect(t, srv)
			ks := newJSStore(t, js)
			const target = "feedfacefeedfacefeedfacefeedface"

			others := map[string][]byte{}
			addOthers := func(prefix string, count int) {
				for i := range count {
					ref := fmt.Sprintf("%s%02d", prefix, i)
					k, err := ks.DataKey(ctx, ref, true)
					if err != nil {
						t.Fatal(err)
					}
					others[ref] = k
				}
			}
			addOthers("before", tt.before)
			key, err := ks.DataKey(ctx, target, true)
			if err != nil {
				t.Fatal(err)
			}
			addOthers("after", tt.after)

			entry, err := ks.kv.Get(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			wrapped := bytes.Clone(entry.Value())
			if len(wrapped) != wrappedSize {
				t.Fatalf("stored value is %d bytes, want %d", len(wrapped), wrappedSize)
			}
			// The scan must be able to see the key, or its silence below
			// would prove nothing.
			waitFor(t, "wrapped key to reach the block file", func() bool {
				return len(filesContaining(t, dir, wrapped)) > 0
			})
			if hits := filesContaining(t, dir, key); len(hits) > 0 {
				t.Fatalf("unwrapped data key found on disk in %s", joinHits(hits))
			}

			if err := ks.Destroy(ctx, target); err != nil {
				t.Fatalf("Destroy: %v", err)
			}
			if hits := filesContaining(t, dir, wrapped); len(hits) > 0 {
				t.Fatalf("wrapped key still on disk after Destroy in %s", joinHits(hits))
			}

			// Across a restart: still erased, still absent, neighbours intact.
			stop()
			srv2, _ := startServer(t, dir)
			fresh := newJSStore(t, connect(t, srv2))
			if hits := filesContaining(t, dir, wrapped); len(hits) > 0 {
				t.Fatalf("wrapped key back on disk after restart in %s", joinHits(hits))
			}
			if _, err := fresh.DataKey(ctx, target, true); !errors.Is(err, ErrErased) {
				t.Fatalf("DataKey after restart: err = %v, want ErrErased", err)
			}
			for ref, want := range others {
				got, err := fresh.DataKey(ctx, ref, false)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("neighbour %s damaged by secure delete: %v", ref, err)
				}
			}
		})
	}
}

func TestJetStreamKeysSurviveRestart(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	srv, stop := startServer(t, dir)
	ks := newJSStore(t, connect(t, srv))
	const live, gone = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	liveKey, err := ks.DataKey(ctx, live, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.DataKey(ctx, gone, true); err != nil {
		t.Fatal(err)
	}
	s1, err := NewSealer(testMaster, ks)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s1.Seal(ctx, live, []byte("Mario Rossi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Destroy(ctx, gone); err != nil {
		t.Fatal(err)
	}
	stop()

	srv2, _ := startServer(t, dir)
	ks2 := newJSStore(t, connect(t, srv2))
	got, err := ks2.DataKey(ctx, live, false)
	if err != nil || !bytes.Equal(got, liveKey) {
		t.Fatalf("live key after restart: %v, same=%v", err, bytes.Equal(got, liveKey))
	}
	s2, _ := NewSealer(testMaster, ks2)
	if plain, err := s2.Open(ctx, live, sealed); err != nil || string(plain) != "Mario Rossi" {
		t.Fatalf("Open after restart: %q, %v", plain, err)
	}
	if _, err := ks2.DataKey(ctx, gone, true); !errors.Is(err, ErrErased) {
		t.Fatalf("erased key after restart: err = %v, want ErrErased", err)
	}
}

// Destroy racing with creators must end erased, with nothing but the
// tombstone left on the key's subject.
func TestJetStreamDestroyRacingCreate(t *testing.T) {
	ctx := ctxT(t)
	srv, _ := startServer(t, t.TempDir())
	const ref = "cafecafecafecafecafecafecafecafe"
	const creators = 8
	stores := make([]*JetStreamKeyStore, creators+1)
	for i := range stores {
		stores[i] = newJSStore(t, connect(t, srv), WithCacheSize(0))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, creators*50+1)
	for i := range creators {
		wg.Go(func() {
			<-start
			for range 50 {
				if _, err := stores[i].DataKey(ctx, ref, true); err != nil && !errors.Is(err, ErrErased) {
					errs <- fmt.Errorf("creator %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		<-start
		time.Sleep(time.Millisecond)
		if err := stores[creators].Destroy(ctx, ref); err != nil {
			errs <- fmt.Errorf("destroy: %w", err)
		}
	})
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := stores[0].DataKey(ctx, ref, true); !errors.Is(err, ErrErased) {
		t.Fatalf("after the race: err = %v, want ErrErased", err)
	}
	subject := stores[0].subject + ref
	info, err := stores[0].stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Fatalf("%d messages left on the key's subject, want only the tombstone", n)
	}
}

// Another process's cache goes on using a destroyed key for at most the cache
// TTL; after that it sees the erasure.
func TestJetStreamCacheTTLBoundsStaleUse(t *testing.T) {
	ctx := ctxT(t)
	srv, _ := startServer(t, t.TempDir())
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	a := newJSStore(t, connect(t, srv), WithCacheTTL(time.Minute), WithClock(clock))
	b := newJSStore(t, connect(t, srv))
	const ref = "dddddddddddddddddddddddddddddddd"
	if _, err := a.DataKey(ctx, ref, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Destroy(ctx, ref); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    error
	}{
		{0, nil},                    // cached in a, which cannot know yet
		{59 * time.Second, nil},     // still within the TTL
		{time.Second, ErrErased},    // expired: re-read, tombstone seen
		{24 * time.Hour, ErrErased}, // erasure is remembered for good
	}
	for i, st := range steps {
		advance(st.advance)
		_, err := a.DataKey(ctx, ref, false)
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("step %d: err = %v, want %v", i, err, st.want)
		}
	}
	// The local Destroy path needs no TTL at all.
	const other = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	if _, err := a.DataKey(ctx, other, true); err != nil {
		t.Fatal(err)
	}
	if err := a.Destroy(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DataKey(ctx, other, false); !errors.Is(err, ErrErased) {
		t.Fatalf("own Destroy not seen at once: %v", err)
	}
}

func TestJetStreamWrongMasterKey(t *testing.T) {
	ctx := ctxT(t)
	srv, _ := startServer(t, t.TempDir())
	js := connect(t, srv)
	const ref = "abababababababababababababababab"
	if _, err := newJSStore(t, js).DataKey(ctx, ref, true); err != nil {
		t.Fatal(err)
	}
	otherMaster := bytes.Clone(testMaster)
	otherMaster[31] ^= 1
	ks, err := NewJetStreamKeyStore(ctx, js, otherMaster)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ks.DataKey(ctx, ref, true)
	if err == nil || errors.Is(err, ErrNoKey) || errors.Is(err, ErrErased) {
		t.Fatalf("err = %v, want an unwrap failure", err)
	}
	if !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("error does not point at the master key: %v", err)
	}
}

func TestJetStreamBucketSetup(t *testing.T) {
	ctx := ctxT(t)
	srv, _ := startServer(t, t.TempDir())
	js := connect(t, srv)

	// A bucket made by the generic KV API denies deletes for good: refuse it
	// rather than promise an erasure that cannot happen.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "GENERIC"}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewJetStreamKeyStore(ctx, js, testMaster, WithBucket("GENERIC")); err == nil || !strings.Contains(err.Error(), "denies message deletes") {
		t.Fatalf("generic KV bucket accepted: %v", err)
	}

	ks := newJSStore(t, js, WithBucket("KEYS_TEST"))
	cfg := ks.stream.CachedInfo().Config
	checks := []struct {
		name string
		ok   bool
	}{
		{"stream name", cfg.Name == "KV_KEYS_TEST"},
		{"file storage", cfg.Storage == jetstream.FileStorage},
		{"two revisions per key", cfg.MaxMsgsPerSubject == 2},
		{"deletes allowed", !cfg.DenyDelete},
		{"purge denied", cfg.DenyPurge},
		{"roll-ups denied", !cfg.AllowRollup},
		{"reads answered by the leader", !cfg.AllowDirect},
		{"one replica", cfg.Replicas == 1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("bucket config: %s does not hold (%+v)", c.name, cfg)
		}
	}
	// The KV API sees it as an ordinary bucket.
	st, err := ks.kv.Status(ctx)
	if err != nil || st.History() != 2 {
		t.Fatalf("KV status: %v, %v", st, err)
	}
	// Binding twice is fine.
	newJSStore(t, js, WithBucket("KEYS_TEST"))

	if _, err := NewJetStreamKeyStore(ctx, js, testMaster, WithReplicas(0)); err == nil {
		t.Fatal("replicas 0 accepted")
	}
	if _, err := NewJetStreamKeyStore(ctx, js, make([]byte, 31)); !errors.Is(err, ErrBadMasterKey) {
		t.Fatalf("short master key: %v", err)
	}
}

// A Destroy interrupted after the tombstone (a crash, a lost connection)
// leaves the person erased but the old key on disk; calling Destroy again
// must finish the job.
func TestJetStreamDestroyCompletesInterruptedErasure(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	srv, _ := startServer(t, dir)
	ks := newJSStore(t, connect(t, srv))
	const ref = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
	if _, err := ks.DataKey(ctx, ref, true); err != nil {
		t.Fatal(err)
	}
	entry, err := ks.kv.Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := bytes.Clone(entry.Value())
	// Step 1 of Destroy only.
	if _, err := ks.kv.Update(ctx, ref, tombstone, entry.Revision()); err != nil {
		t.Fatal(err)
	}
	other := newJSStore(t, connect(t, srv))
	if _, err := other.DataKey(ctx, ref, true); !errors.Is(err, ErrErased) {
		t.Fatalf("after the tombstone alone: err = %v, want ErrErased", err)
	}
	waitFor(t, "old key on disk", func() bool { return len(filesContaining(t, dir, wrapped)) > 0 })

	if err := other.Destroy(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, wrapped); len(hits) > 0 {
		t.Fatalf("old key still on disk after the retried Destroy in %s", joinHits(hits))
	}
}

func TestJetStreamRejectsSingleRevisionBucket(t *testing.T) {
	ctx := ctxT(t)
	srv, _ := startServer(t, t.TempDir())
	js := connect(t, srv)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_ONE",
		Subjects:          []string{"$KV.ONE.>"},
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}); err != nil {
		t.Fatal(err)
	}
	_, err := NewJetStreamKeyStore(ctx, js, testMaster, WithBucket("ONE"))
	if err == nil || !strings.Contains(err.Error(), "revision") {
		t.Fatalf("single-revision bucket accepted: %v", err)
	}
}
