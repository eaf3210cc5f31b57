package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
)

// SnapshotBucket holds, for long paths, the state as of a sequence, so a
// load reads only the events after it. Snapshots are a cache: losing the
// bucket costs speed, never data; each one is trusted only if the stream's
// next event links to the hash it records.
const SnapshotBucket = "PERCORSO_SNAPSHOTS"

// keptCommands bounds how many recent command ids a snapshot remembers for
// recognising retries (older ones are remembered by the idempotency bucket).
const keptCommands = 64

type snapshot struct {
	Version  uint64            `json:"version"`
	LastHash string            `json:"last_hash"`
	State    *workerpath.Path  `json:"state"`
	Worker   string            `json:"worker_sealed"`
	Commands map[string]uint64 `json:"commands"`
}

// WithSnapshots keeps a snapshot of a path every `every` events in kv.
func WithSnapshots(kv jetstream.KeyValue, every int) Option {
	return func(s *Store) { s.snaps, s.snapEvery = kv, every }
}

// SnapshotStore opens (creating if needed) the snapshot bucket.
func SnapshotStore(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SnapshotBucket, Description: "percorso: snapshots of long paths (a cache of the stream)",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: snapshot bucket: %w", err)
	}
	return kv, nil
}

// loadSnapshot returns the path's snapshot, or nil.
func (s *Store) loadSnapshot(ctx context.Context, pathID string) (*snapshot, error) {
	if s.snaps == nil {
		return nil, nil
	}
	e, err := s.snaps.Get(ctx, pathID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var snap snapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil || snap.State == nil {
		return nil, nil // unreadable: load the whole chain instead
	}
	return &snap, nil
}

// maybeSnapshot writes a snapshot of a cached path that has grown past the
// threshold, then trims the cache to it. A failure only means no snapshot.
func (s *Store) maybeSnapshot(ctx context.Context, pathID string) {
	if s.snaps == nil {
		return
	}
	cp := s.cache.get(pathID)
	if cp == nil || len(cp.hist.Events) < s.snapEvery {
		return
	}
	state := cp.hist.State()
	sealed := cp.baseWorker
	cmds := make(map[string]uint64, len(cp.hist.BaseCommands)+len(cp.hist.Events))
	for id, seq := range cp.hist.BaseCommands {
		cmds[id] = seq
	}
	for _, r := range cp.hist.Events {
		cmds[r.CommandID] = r.Seq
		if t, ok := r.Event.(*workerpath.TakenInCharge); ok {
			sealed = t.WorkerSealed
		}
	}
	for len(cmds) > keptCommands {
		var oldest string
		for id, seq := range cmds {
			if oldest == "" || seq < cmds[oldest] {
				oldest = id
			}
		}
		delete(cmds, oldest)
	}
	state.Worker = workerpath.Person{}
	snap := snapshot{Version: cp.hist.Version, LastHash: cp.lastHash, State: state, Worker: sealed, Commands: cmds}
	b, err := json.Marshal(snap)
	if err != nil {
		return
	}
	if _, err := s.snaps.Put(ctx, pathID, b); err != nil {
		return
	}
	s.cache.put(pathID, &cachedPath{
		hist:     &command.History{PathID: pathID, Version: snap.Version, Base: state, BaseCommands: cmds},
		lastHash: snap.LastHash, baseWorker: sealed,
	})
}
