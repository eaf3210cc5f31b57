package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	if found, err := hasEvents(ctx, info); err != nil {
		return pg.Counts{}, err
	} else if found {
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

// hasEvents reports whether the stream holds any event.
func hasEvents(ctx context.Context, s jetstream.Stream) (bool, error) {
	_, err := s.GetLastMsgForSubject(ctx, eventstore.EventsWildcard)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// countEvents counts the stream's events (worker-index entries aside) up to
// a sequence as the server counts them for a consumer's filter, from its
// subject index: the events from the start, less those after upTo. It is
// the tally a rebuild is checked against, independent of the replay. Events
// appended meanwhile change the count after upTo, so the pair is taken
// again until that count holds still across it; under appends that never
// pause, the events are counted by reading the stream's headers up to upTo.
func countEvents(ctx context.Context, js jetstream.JetStream, upTo uint64) (uint64, error) {
	if upTo == 0 {
		return 0, nil
	}
	s, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return 0, err
	}
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(rand.IntN(20)+1) * time.Millisecond):
			}
		}
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
	return scanEvents(ctx, js, s, upTo)
}

// scanEvents counts the events up to upTo by reading the stream's headers.
func scanEvents(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, upTo uint64) (uint64, error) {
	// With no event at all the iterator below would wait for one forever.
	if found, err := hasEvents(ctx, s); err != nil || !found {
		return 0, err
	}
	cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventstore.EventsWildcard}, HeadersOnly: true,
	})
	if err != nil {
		return 0, err
	}
	// One iterator for the whole count: a Fetch per batch would make the
	// ordered consumer recreate itself each time.
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	var n uint64
	for {
		m, err := it.Next()
		if err != nil {
			return 0, err
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		if md.Sequence.Stream > upTo {
			return n, nil
		}
		n++
		if md.Sequence.Stream == upTo || md.NumPending == 0 {
			return n, nil
		}
	}
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
