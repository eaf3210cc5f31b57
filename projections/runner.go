// Package projections runs projector workers: each consumes the event
// stream in order from its checkpoint, applies events in batches, and
// commits the checkpoint with the batch, so every event takes effect exactly
// once however often the worker is stopped, killed or restarted.
//
// A projector may own one partition of the paths (pg.Partition): it still
// reads the whole stream — reading is cheap next to writing, and one ordered
// consumer keeps each path's order without any server-side set-up — but
// decodes and applies only its own paths' events, and moves its checkpoint
// past the others'.
package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pg"
)

// Sink is where a projection applies its batches.
type Sink interface {
	Checkpoint(ctx context.Context) (uint64, error)
	Apply(ctx context.Context, items []pg.Item) error
	RecordPoison(ctx context.Context, seq uint64, cause error) error
	Skipped(ctx context.Context, seq uint64) (bool, error)
	Pass(ctx context.Context, seq uint64) error
}

// Runner feeds one projection from the stream.
type Runner struct {
	js     jetstream.JetStream
	codec  *eventstore.Codec
	sink   Sink
	part   pg.Partition
	log    *slog.Logger
	Batch  int           // events per transaction
	Linger time.Duration // how long a partial batch may wait for more

	applied   atomic.Uint64 // checkpoint after the last commit
	pending   atomic.Uint64 // events in the stream past the last delivered one
	inflight  atomic.Uint64 // delivered, not yet committed
	delivered atomic.Uint64 // events delivered since start
	projected atomic.Uint64 // events of its partition committed since start
	running   atomic.Bool
	mu        sync.Mutex
	poison    *pg.PoisonError
	notifyMu  sync.Mutex
	waiters   []chan struct{}
}

// NewRunner returns a runner. A sink that belongs to a partition
// (Partition() pg.Partition) gets only that partition's events: the filter
// and the checkpoint name come from the same place and cannot disagree.
func NewRunner(js jetstream.JetStream, codec *eventstore.Codec, sink Sink, log *slog.Logger) *Runner {
	r := &Runner{js: js, codec: codec, sink: sink, log: log, Batch: 500, Linger: 5 * time.Millisecond}
	if p, ok := sink.(interface{ Partition() pg.Partition }); ok {
		r.part = p.Partition()
	}
	return r
}

// Partition is the share of the paths the runner projects.
func (r *Runner) Partition() pg.Partition { return r.part }

// Projected counts the events of its partition the runner committed since
// it started: its throughput is the rate of this count.
func (r *Runner) Projected() uint64 { return r.projected.Load() }

// Applied is the stream sequence the projection has applied up to.
func (r *Runner) Applied() uint64 { return r.applied.Load() }

// Lag is how many events of the stream the projection has not applied yet.
func (r *Runner) Lag() uint64 { return r.pending.Load() + r.inflight.Load() }

// Delivered counts the events delivered to the runner since it started.
func (r *Runner) Delivered() uint64 { return r.delivered.Load() }

// Running reports whether the runner is consuming.
func (r *Runner) Running() bool { return r.running.Load() }

// Poisoned returns the event that stopped the projection, if any.
func (r *Runner) Poisoned() *pg.PoisonError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.poison
}

// Run consumes until ctx ends. A database or stream failure is retried with
// backoff from the last checkpoint. An event that cannot be applied stops
// the projection: it is recorded with its sequence and error, logged, and
// waited on until an admin skips it explicitly — never skipped silently,
// never retried in a hot loop.
func (r *Runner) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		before := r.applied.Load()
		err := r.consume(ctx)
		r.running.Store(false)
		if r.applied.Load() > before {
			backoff = 100 * time.Millisecond // it got somewhere: a new failure, not the same one again
		}
		if ctx.Err() != nil {
			return nil
		}
		var poison *pg.PoisonError
		if errors.As(err, &poison) {
			if err := r.holdPoison(ctx, poison); err != nil {
				return nil
			}
			backoff = 100 * time.Millisecond
			continue
		}
		if errors.Is(err, pg.ErrOverlap) {
			// Another projector of the same paths is running: not a fault
			// of this one, but worth a line (operations.md: don't).
			r.log.Info("another projector applied the same events, resuming from the checkpoint", "err", err, "retry_in", backoff)
		} else {
			r.log.Warn("projection interrupted, resuming from its checkpoint", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// deleteConsumer removes an ordered consumer the runner no longer reads
// (its current incarnation: an ordered consumer renames itself on reset).
// Best effort: a consumer the server lost, or one it cannot reach now,
// goes when its inactivity threshold runs out.
func (r *Runner) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.js.DeleteConsumer(ctx, eventstore.StreamName, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Debug("consumer left for the server to expire", "consumer", info.Name, "err", err)
	}
}

// holdPoison records the poison event and waits for an admin's skip. An
// event skipped already (a rebuild's replay meeting it again) passes at
// once, without ever showing as the poison the runner is held on.
func (r *Runner) holdPoison(ctx context.Context, p *pg.PoisonError) error {
	recorded := false
	for held := false; ; held = true {
		if !recorded {
			recorded = r.sink.RecordPoison(ctx, p.Seq, p.Err) == nil
		}
		if ok, err := r.sink.Skipped(ctx, p.Seq); err == nil && ok && r.sink.Pass(ctx, p.Seq) == nil {
			r.log.Warn("poison event skipped by an admin", "seq", p.Seq)
			r.mu.Lock()
			r.poison = nil
			r.mu.Unlock()
			return nil
		}
		if !held {
			r.mu.Lock()
			r.poison = p
			r.mu.Unlock()
			r.log.Error("projection stopped on an event it cannot apply; skip it explicitly to go on", "seq", p.Seq, "err", p.Err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (r *Runner) consume(ctx context.Context) error {
	cp, err := r.sink.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("reading checkpoint: %w", err)
	}
	r.setApplied(cp)
	r.inflight.Store(0)
	cons, err := r.js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventstore.EventsWildcard},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    cp + 1,
	})
	if err != nil {
		return fmt.Errorf("creating consumer: %w", err)
	}
	// Stopping the iterator leaves the consumer on the server until its
	// inactivity threshold: delete it, or every restart (an overlap, a
	// database away for a while) would leave one more behind.
	defer r.deleteConsumer(cons)
	// Pulls expire every 4 s, so the consumer's heartbeats come every 2 s
	// and a consumer lost with its server (a node of a cluster going down)
	// is noticed and recreated within seconds, not the default ten.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*r.Batch), jetstream.PullExpiry(4*time.Second))
	if err != nil {
		return fmt.Errorf("consuming: %w", err)
	}
	defer it.Stop()
	// What is pending now, before any delivery: resuming past the last event
	// (from another layout's checkpoint) delivers nothing that would tell.
	if info := cons.CachedInfo(); info != nil {
		r.pending.Store(info.NumPending)
	}
	// Messages are decoded as they arrive, several at a time (a decode may
	// read the key bucket), while the previous batch is being applied; the
	// batch takes them in stream order.
	futs := make(chan chan decoded, r.Batch)
	errc := make(chan error, 1)
	stop, exited := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); it.Stop(); <-exited }()
	go func() {
		defer close(exited)
		defer close(futs)
		sem := make(chan struct{}, decoders)
		for {
			m, err := it.Next()
			var seq uint64
			if err == nil {
				seq, err = r.arrived(m)
			}
			if err != nil {
				errc <- err
				return
			}
			fut := make(chan decoded, 1)
			if path, _ := eventstore.PathOf(m.Subject()); !r.part.Owns(path) {
				// Another partition's event only moves the checkpoint.
				fut <- decoded{item: pg.Item{Env: &eventstore.Envelope{Seq: seq, PathID: path}}}
			} else {
				select {
				case sem <- struct{}{}:
				case <-stop:
					return
				}
				go func() {
					defer func() { <-sem }()
					item, err := r.decode(ctx, seq, m)
					fut <- decoded{item, err}
				}()
			}
			select {
			case futs <- fut:
			case <-stop:
				return
			}
		}
	}()
	r.running.Store(true)
	var batch []pg.Item
	// A poison event ends the batch: the events before it are applied,
	// then the runner stops on it.
	var poisoned error
	take := func(fut chan decoded) error {
		d := <-fut
		var poison *pg.PoisonError
		if errors.As(d.err, &poison) && len(batch) > 0 {
			poisoned = d.err
			return nil
		}
		if d.err != nil {
			return d.err
		}
		batch = append(batch, d.item)
		return nil
	}
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			it.Stop()
			return ctx.Err()
		case fut, ok := <-futs:
			if !ok {
				return <-errc
			}
			if err := take(fut); err != nil {
				return err
			}
		}
		linger := time.After(r.Linger)
	fill:
		for len(batch) < r.Batch && poisoned == nil {
			select {
			case fut, ok := <-futs:
				if !ok {
					break fill
				}
				if err := take(fut); err != nil {
					return err
				}
			case <-linger:
				break fill
			}
		}
		if err := r.sink.Apply(ctx, batch); err != nil {
			var poison *pg.PoisonError
			if errors.As(err, &poison) {
				return err
			}
			return fmt.Errorf("applying batch ending at %d: %w", batch[len(batch)-1].Env.Seq, err)
		}
		r.inflight.Add(^uint64(len(batch) - 1))
		own := 0
		for _, it := range batch {
			if it.Event != nil {
				own++
			}
		}
		r.projected.Add(uint64(own))
		r.setApplied(batch[len(batch)-1].Env.Seq)
		if poisoned != nil {
			return poisoned
		}
	}
}

// decoders is how many messages are decoded at once.
const decoders = 8

type decoded struct {
	item pg.Item
	err  error
}

// arrived counts a message in (in stream order) and returns its sequence.
func (r *Runner) arrived(m jetstream.Msg) (uint64, error) {
	meta, err := m.Metadata()
	if err != nil {
		return 0, fmt.Errorf("message metadata: %w", err)
	}
	r.pending.Store(meta.NumPending)
	r.inflight.Add(1)
	r.delivered.Add(1)
	return meta.Sequence.Stream, nil
}

// decode decodes the message at seq, of this runner's partition.
func (r *Runner) decode(ctx context.Context, seq uint64, m jetstream.Msg) (pg.Item, error) {
	env, err := eventstore.FromHeaders(seq, m.Subject(), m.Headers().Get, m.Data())
	if err != nil {
		return pg.Item{}, &pg.PoisonError{Seq: seq, Err: err}
	}
	// The read models keep the worker's personal data (TakenInCharge), not
	// a traineeship host's: only the former is opened, so a key store away
	// holds up no other event.
	opt := eventstore.DecodeOptions{SkipPersonal: env.Type != workerpath.TypeTakenInCharge}
	ev, err := r.codec.Decode(ctx, env.Type, env.SchemaVersion, env.Data, opt)
	var openErr *eventstore.OpenError
	if errors.As(err, &openErr) {
		return pg.Item{}, fmt.Errorf("event %d: %w", seq, err) // the key store may be back soon
	}
	if err != nil {
		return pg.Item{}, &pg.PoisonError{Seq: seq, Err: err}
	}
	return pg.Item{Env: env, Event: ev}, nil
}

func (r *Runner) setApplied(seq uint64) {
	r.applied.Store(seq)
	r.notifyMu.Lock()
	ws := r.waiters
	r.waiters = nil
	r.notifyMu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// Changed returns a channel closed at the next commit, for waiters of
// read-your-writes.
func (r *Runner) Changed() <-chan struct{} {
	ch := make(chan struct{})
	r.notifyMu.Lock()
	r.waiters = append(r.waiters, ch)
	r.notifyMu.Unlock()
	return ch
}
