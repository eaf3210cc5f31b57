package natsjs_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/storetest"
)

// benchServer starts a server for benchmarks. syncAlways fsyncs every
// write, as a single-node deployment must run; otherwise the server syncs
// on its default interval, as an R3 cluster may.
func benchServer(b *testing.B, syncAlways bool) *server.Server {
	b.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
		NoSigs: true, NoLog: true, SyncAlways: syncAlways})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("server not ready")
	}
	b.Cleanup(s.Shutdown)
	return s
}

// Each writer appends round-robin to its own paths, and moves to new ones
// once they hold a path's typical length of events.
const (
	pathsPerWriter = 8
	eventsPerPath  = 25
)

// BenchmarkAppend measures one-event commands (a delivered session, with
// the right expected version) from concurrent writers, each on its own
// paths, against raw publishes carrying the same headers, data and
// per-subject expectation on the same connection: the store's overhead is
// the ratio x-raw.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []struct {
		name       string
		syncAlways bool
	}{{"sync=interval", false}, {"sync=always", true}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := benchServer(b, mode.syncAlways)
			js, st := provisioned(b, srv.ClientURL(), 1)
			codec, _ := storetest.NewCodec(b)
			s := natsjs.New(js, st, codec)
			for _, writers := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
					ctx := timeout(b, 10*time.Minute)
					storeTime := runWriters(b, writers, b.N, func(w int) func(i int) error {
						paths := make([]string, pathsPerWriter)
						versions := make([]uint64, len(paths))
						return func(i int) error {
							k := i % len(paths)
							if i%(len(paths)*eventsPerPath) < len(paths) {
								paths[k], versions[k] = command.NewUUID(), 0
							}
							m := command.Meta{CommandID: command.NewUUID(), Actor: "op.bianchi", CorrelationID: command.NewUUID()}
							ev := storetest.SessionDelivered(paths[k], time.Now().UTC())
							v, err := s.Append(ctx, m, []command.Write{{PathID: paths[k], Expected: versions[k], Events: []workerpath.Event{ev}}}, nil)
							versions[k] = v[paths[k]]
							return err
						}
					})
					b.StopTimer()
					rawTime := runWriters(b, writers, b.N, rawWriter(ctx, b, js, codec))
					storeRate := float64(b.N) / storeTime.Seconds()
					rawRate := float64(b.N) / rawTime.Seconds()
					b.ReportMetric(storeRate, "events/s")
					b.ReportMetric(rawRate, "raw-events/s")
					b.ReportMetric(storeRate/rawRate, "x-raw")
				})
			}
		})
	}
}

// rawWriter publishes what the store would, prepared in advance, with
// jetstream.WithExpectLastSequencePerSubject.
func rawWriter(ctx context.Context, b *testing.B, js jetstream.JetStream, codec *eventstore.Codec) func(w int) func(i int) error {
	path := command.NewUUID()
	data, err := codec.Encode(ctx, storetest.SessionDelivered(path, time.Now().UTC()))
	if err != nil {
		b.Fatal(err)
	}
	env := &eventstore.Envelope{ID: command.NewUUID(), Type: workerpath.TypeSessionDelivered, SchemaVersion: eventstore.SchemaVersion,
		PathID: path, Time: time.Now(), Actor: "op.bianchi", CommandID: command.NewUUID(), CorrelationID: command.NewUUID(),
		PrevSeq: 1, PrevHash: "0", Data: data}
	env.Hash = env.ComputeHash()
	headers := env.Headers()
	return func(int) func(i int) error {
		subjects := make([]string, pathsPerWriter)
		last := make([]uint64, len(subjects))
		return func(i int) error {
			k := i % len(subjects)
			if i%(len(subjects)*eventsPerPath) < len(subjects) {
				subjects[k], last[k] = eventstore.EventSubject(command.NewUUID()), 0
			}
			msg := nats.NewMsg(subjects[k])
			for name, v := range headers {
				msg.Header.Set(name, v)
			}
			msg.Header.Set(eventstore.HdrMsgID, command.NewUUID())
			msg.Data = data
			ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last[k]))
			if err == nil {
				last[k] = ack.Sequence
			}
			return err
		}
	}
}

// runWriters runs n operations over the given number of writers and returns
// the wall time. Each writer gets its own operation function, so its state
// (paths, versions) is its own.
func runWriters(b *testing.B, writers, n int, newWriter func(w int) func(i int) error) time.Duration {
	b.Helper()
	ops := make([]func(int) error, writers)
	for w := range ops {
		ops[w] = newWriter(w)
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if next.Add(1) > int64(n) || failed.Load() != nil {
					return
				}
				if err := ops[w](i); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return d
}

// The cold-load fixture: a 200k-event stream of 10k paths of 20 events,
// interleaved (round r holds event r of every path), built once for the
// whole run and removed by TestMain.
const (
	loadPaths  = 10_000
	loadEvents = 20
)

var loadFixture struct {
	once  sync.Once
	err   error
	dir   string
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	st    jetstream.Stream
	codec *eventstore.Codec
	paths []string
	build time.Duration
}

func closeLoadFixture() {
	f := &loadFixture
	if f.nc != nil {
		f.nc.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
		f.srv.WaitForShutdown()
	}
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

func buildLoadFixture(b *testing.B) {
	f := &loadFixture
	f.once.Do(func() { f.err = buildLoadStream(b) })
	if f.err != nil {
		b.Fatal(f.err)
	}
}

// buildLoadStream publishes properly formed envelopes (back-pointers, hash
// chain, sealed personal data on the first event) asynchronously, on a
// server of its own, and checks that every message got the sequence its
// successor's back-pointer was computed with. (A per-subject expectation
// would check the same, but makes the server read each subject's last
// message: on this interleaved stream, a block load per message.)
func buildLoadStream(b *testing.B) error {
	f := &loadFixture
	start := time.Now()
	var err error
	if f.dir, err = os.MkdirTemp("", "percorso-bench-"); err != nil {
		return err
	}
	f.srv, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: f.dir, NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go f.srv.Start()
	if !f.srv.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("server not ready")
	}
	if f.nc, err = nats.Connect(f.srv.ClientURL()); err != nil {
		return err
	}
	if f.js, err = jetstream.New(f.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if f.st, err = natsjs.Provision(ctx, f.js, 1); err != nil {
		return err
	}
	f.codec, _ = storetest.NewCodec(b)
	f.paths = make([]string, loadPaths)
	heads := make([]*eventstore.Envelope, loadPaths)
	for i := range f.paths {
		f.paths[i] = command.NewUUID()
	}
	next := uint64(1)
	type pending struct {
		fut jetstream.PubAckFuture
		seq uint64
	}
	var window []pending
	settle := func() error {
		for _, w := range window {
			select {
			case ack := <-w.fut.Ok():
				if ack.Sequence != w.seq {
					return fmt.Errorf("event stored at %d, the chain expected %d", ack.Sequence, w.seq)
				}
			case err := <-w.fut.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		window = window[:0]
		return nil
	}
	for r := range loadEvents {
		for i, p := range f.paths {
			at := time.Date(2025, 1, 13, 9, 0, 0, 0, time.UTC).Add(time.Duration(r) * 24 * time.Hour)
			var ev workerpath.Event = storetest.SessionDelivered(p, at)
			if r == 0 {
				ev = storetest.TakenInCharge(p, fmt.Sprintf("w%d", i), storetest.Person(), at)
			}
			data, err := f.codec.Encode(ctx, ev)
			if err != nil {
				return err
			}
			cmd := command.NewUUID()
			env := &eventstore.Envelope{ID: command.EventID(cmd, 0), Type: ev.EventType(), SchemaVersion: eventstore.SchemaVersion,
				PathID: p, Time: at, Actor: "op.bianchi", CommandID: cmd, CorrelationID: cmd, Data: data}
			if h := heads[i]; h != nil {
				env.PrevSeq, env.PrevHash = h.Seq, h.Hash
			}
			env.Hash = env.ComputeHash()
			env.Seq = next
			next++
			msg := nats.NewMsg(eventstore.EventSubject(p))
			for k, v := range env.Headers() {
				msg.Header.Set(k, v)
			}
			msg.Data = data
			fut, err := f.js.PublishMsgAsync(msg)
			if err != nil {
				return err
			}
			window = append(window, pending{fut, env.Seq})
			heads[i] = env
			if len(window) == 2048 {
				if err := settle(); err != nil {
					return err
				}
			}
		}
	}
	if err := settle(); err != nil {
		return err
	}
	f.build = time.Since(start)
	// The server keeps writing the burst out for seconds after the last
	// ack, and loads meanwhile take up to seconds: wait until it is done
	// (twenty quick loads in a row) so that the figures measure loads.
	for quick, deadline := 0, time.Now().Add(time.Minute); quick < 20; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server is still busy a minute after the build")
		}
		s := natsjs.New(f.js, f.st, f.codec)
		t0 := time.Now()
		if _, err := s.Load(ctx, f.paths[rand.IntN(len(f.paths))], false); err != nil {
			return err
		}
		if time.Since(t0) < 20*time.Millisecond {
			quick++
		} else {
			quick = 0
		}
	}
	return nil
}

// BenchmarkLoadCold loads 20-event paths from a 200k-event stream with a
// new Store each time, so nothing comes from the store's cache: the last
// message of the subject, then the chain of back-pointers, then decoding
// (personal data opened). The path's events sit in 20 different blocks of
// the file store, which the server may have to read back first; the warm
// figures load the same path once more, its blocks now in memory.
func BenchmarkLoadCold(b *testing.B) {
	buildLoadFixture(b)
	f := &loadFixture
	ctx := timeout(b, 10*time.Minute)
	load := func(p string) time.Duration {
		s := natsjs.New(f.js, f.st, f.codec)
		start := time.Now()
		h, err := s.Load(ctx, p, false)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if len(h.Events) != loadEvents {
			b.Fatalf("path %s: %d events, want %d", p, len(h.Events), loadEvents)
		}
		return d
	}
	cold := make([]time.Duration, 0, b.N)
	warm := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		p := f.paths[rand.IntN(len(f.paths))]
		cold = append(cold, load(p))
		b.StopTimer()
		// Again with another new Store: the server now has the path's
		// blocks in memory, so this is the store's own cost.
		warm = append(warm, load(p))
		b.StartTimer()
	}
	b.StopTimer()
	pct := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(cold, 0.50), "p50-ms")
	b.ReportMetric(pct(cold, 0.99), "p99-ms")
	b.ReportMetric(pct(warm, 0.50), "p50-warm-ms")
	b.ReportMetric(pct(warm, 0.99), "p99-warm-ms")
	b.ReportMetric(f.build.Seconds(), "setup-s")
}
