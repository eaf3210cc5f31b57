package memstore

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/percorso/percorso/domain/command"
)

// Idempotency remembers command records in memory, first answer wins, as
// the JetStream bucket does.
type Idempotency struct {
	mu   sync.Mutex
	recs map[string]command.Record
}

var _ command.Idempotency = (*Idempotency)(nil)

// NewIdempotency returns an empty record store.
func NewIdempotency() *Idempotency {
	return &Idempotency{recs: map[string]command.Record{}}
}

// Get returns a copy of the record of a command, or nil.
func (i *Idempotency) Get(ctx context.Context, commandID string) (*command.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	r, ok := i.recs[commandID]
	if !ok {
		return nil, nil
	}
	r = cloneRecord(r)
	return &r, nil
}

// Put records a command once; a record already there is kept (it is the
// first answer, which every retry must get).
func (i *Idempotency) Put(ctx context.Context, commandID string, r command.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.recs[commandID]; !ok {
		i.recs[commandID] = cloneRecord(r)
	}
	return nil
}

// cloneRecord keeps callers from changing a stored answer through its map
// or slice.
func cloneRecord(r command.Record) command.Record {
	r.Result.Versions = maps.Clone(r.Result.Versions)
	r.Result.Offices = slices.Clone(r.Result.Offices)
	return r
}
