package memstore_test

import (
	"context"
	"testing"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/memstore"
	"github.com/percorso/percorso/eventstore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		codec, sealer := storetest.NewCodec(t)
		s := memstore.New(codec)
		return storetest.Harness{
			Store:  s,
			Sealer: sealer,
			Reopen: func(*testing.T) storetest.Store {
				return memstore.New(codec, memstore.WithStream(s.Stream()))
			},
			Stored: func(_ context.Context, pathID string) ([]*eventstore.Envelope, error) {
				var out []*eventstore.Envelope
				for _, m := range s.Stream().Messages(eventstore.EventSubject(pathID)) {
					e, err := eventstore.FromHeaders(m.Seq, m.Subject, m.Get, m.Data)
					if err != nil {
						return nil, err
					}
					out = append(out, e)
				}
				return out, nil
			},
			Forge: func(_ context.Context, env *eventstore.Envelope) (uint64, error) {
				return s.Stream().Publish(eventstore.EventSubject(env.PathID), env.Headers(), env.Data), nil
			},
		}
	})
}

func TestConformanceWithoutCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		codec, sealer := storetest.NewCodec(t)
		s := memstore.New(codec, memstore.WithCacheSize(0))
		return storetest.Harness{
			Store:  s,
			Sealer: sealer,
			Reopen: func(*testing.T) storetest.Store {
				return memstore.New(codec, memstore.WithStream(s.Stream()), memstore.WithCacheSize(0))
			},
			Stored: func(_ context.Context, pathID string) ([]*eventstore.Envelope, error) {
				var out []*eventstore.Envelope
				for _, m := range s.Stream().Messages(eventstore.EventSubject(pathID)) {
					e, err := eventstore.FromHeaders(m.Seq, m.Subject, m.Get, m.Data)
					if err != nil {
						return nil, err
					}
					out = append(out, e)
				}
				return out, nil
			},
		}
	})
}

func TestIdempotency(t *testing.T) {
	storetest.RunIdempotency(t, func(*testing.T) command.Idempotency { return memstore.NewIdempotency() })
}
