package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pg"
)

// Progress reports a rebuild's progress: events applied, and the events
// known to remain.
type Progress func(done, remaining uint64)

// Rebuild replays the whole stream into a fresh set of read models while
// the live set keeps serving, catches up with live writes, checks that the
// new set holds every event of the stream, and switches atomically.
func Rebuild(ctx context.Context, js jetstream.JetStream, codec *eventstore.Codec, live *pgxpool.Pool, url string,
	log *slog.Logger, progress Progress) (pg.Counts, error) {
	rb, err := pg.StartRebuild(ctx, live, url)
	if err != nil {
		return pg.Counts{}, err
	}
	defer rb.Close()
	runner := NewRunner(js, codec, rb.Projector, log)
	runner.Batch = 2000
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	defer func() { stop(); <-done }()

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	wait := func(until func() bool) error {
		for !until() {
			if p := runner.Poisoned(); p != nil {
				return fmt.Errorf("the replay stopped on event %d (%v): skip it or fix it first", p.Seq, p.Err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			if progress != nil {
				progress(runner.Delivered(), runner.Lag())
			}
		}
		return nil
	}
	caughtUp := func() bool { return runner.Running() && runner.Lag() == 0 && runner.Delivered() > 0 }
	info, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return pg.Counts{}, err
	}
	if n, err := countEvents(ctx, js, info.CachedInfo().State.LastSeq); err != nil {
		return pg.Counts{}, err
	} else if n > 0 {
		if err := wait(caughtUp); err != nil {
			return pg.Counts{}, err
		}
	}
	if err := rb.Finish(ctx); err != nil {
		return pg.Counts{}, err
	}
	counts, err := rb.Switch(ctx,
		func(ctx context.Context, upTo uint64) error {
			return wait(func() bool { return runner.Applied() >= upTo })
		},
		func(ctx context.Context, upTo uint64) (int64, error) {
			n, err := countEvents(ctx, js, upTo)
			return int64(n), err
		})
	if progress != nil {
		progress(runner.Delivered(), 0)
	}
	return counts, err
}

// countEvents counts the stream's events (worker-index entries aside) up to
// a sequence as the server counts them for a consumer's filter, from its
// subject index: the events from the start, less those after upTo. It is
// the tally a rebuild is checked against, independent of the replay. Events
// appended meanwhile change the count after upTo, so the pair is taken
// again until that count holds still across it.
func countEvents(ctx context.Context, js jetstream.JetStream, upTo uint64) (uint64, error) {
	if upTo == 0 {
		return 0, nil
	}
	s, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return 0, err
	}
	for range 20 {
		after, err := pendingFrom(ctx, s, upTo+1)
		if err != nil {
			return 0, err
		}
		all, err := pendingFrom(ctx, s, 1)
		if err != nil {
			return 0, err
		}
		again, err := pendingFrom(ctx, s, upTo+1)
		if err != nil {
			return 0, err
		}
		if after == again && all >= after {
			return all - after, nil
		}
	}
	return 0, errors.New("projections: the stream's events could not be counted: appends never paused")
}

// pendingFrom is how many events the stream holds from seq on: the pending
// count of a consumer created there, deleted at once.
func pendingFrom(ctx context.Context, s jetstream.Stream, seq uint64) (uint64, error) {
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: eventstore.EventsWildcard, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, fmt.Errorf("counting the stream's events: %w", err)
	}
	info := c.CachedInfo()
	_ = s.DeleteConsumer(ctx, info.Name) // else it goes after a minute idle
	return info.NumPending, nil
}
