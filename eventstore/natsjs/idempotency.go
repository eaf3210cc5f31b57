package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
)

// IdempotencyBucket keeps every keyed command's request digest and result.
// Records never expire: the stream's own deduplication window lasts minutes,
// operator apps retry after hours.
const IdempotencyBucket = "PERCORSO_COMMANDS"

// Idempotency is the command-record store on a JetStream KV bucket.
type Idempotency struct{ kv jetstream.KeyValue }

var _ command.Idempotency = (*Idempotency)(nil)

// NewIdempotency opens (creating if needed) the bucket.
func NewIdempotency(ctx context.Context, js jetstream.JetStream, replicas int) (*Idempotency, error) {
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "percorso: keyed commands and their results",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: idempotency bucket: %w", err)
	}
	return &Idempotency{kv: kv}, nil
}

// Get returns the record of a command, or nil.
func (i *Idempotency) Get(ctx context.Context, commandID string) (*command.Record, error) {
	e, err := i.kv.Get(ctx, commandID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r storedRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("natsjs: command record %s: %w", commandID, err)
	}
	r.Record.Result.Offices = r.Offices
	return &r.Record, nil
}

// storedRecord is a record as the bucket keeps it. Result.Offices stays out
// of Result's JSON (it is not part of the response), yet a replay needs it:
// the edges authorize a replayed answer by the offices it touched.
type storedRecord struct {
	command.Record
	Offices []string `json:"offices,omitempty"`
}

// Put records a command once; a record already there is kept (it is the
// first answer, which every retry must get).
func (i *Idempotency) Put(ctx context.Context, commandID string, r command.Record) error {
	b, err := json.Marshal(storedRecord{Record: r, Offices: r.Result.Offices})
	if err != nil {
		return err
	}
	_, err = i.kv.Create(ctx, commandID, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}
