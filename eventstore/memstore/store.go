// Package memstore is an in-memory command.Store that behaves like the
// JetStream store (natsjs) in every way the command layer can observe: one
// global sequence across paths and worker indexes, per-path optimistic
// concurrency, all-or-nothing appends, deduplication by event id, the same
// CloudEvents headers and hash chain, events sealed and opened through an
// eventstore.Codec, and a cache that may be stale when another Store shares
// the stream. Unit tests of the use cases run against it in microseconds;
// the storetest conformance suite keeps it honest against natsjs.
package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
)

// msgIDHeader is JetStream's deduplication header.
const msgIDHeader = eventstore.HdrMsgID

// ErrDuplicate is what Append returns when the stream already holds one of
// the call's message ids: the command landed before. Like natsjs, the store
// refuses rather than answering for the earlier append; the command layer
// reloads and finds its events by command id.
var ErrDuplicate = errors.New("memstore: duplicate message id: the command already landed")

// Store is the in-memory event store.
type Store struct {
	stream *Stream
	codec  *eventstore.Codec

	mu       sync.Mutex
	cacheMax int
	cache    map[string][]*eventstore.Envelope
}

var _ command.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithStream puts the store on an existing stream, to stand for a second
// process next to another Store.
func WithStream(st *Stream) Option { return func(s *Store) { s.stream = st } }

// WithCacheSize bounds the cache of recent paths (0 disables it). The cache
// is there so that tests meet the stale reads the JetStream store's cache
// produces: Load with fresh=false may return an old version.
func WithCacheSize(n int) Option { return func(s *Store) { s.cacheMax = n } }

// New returns a store on a new, empty stream unless WithStream says otherwise.
func New(codec *eventstore.Codec, opts ...Option) *Store {
	s := &Store{codec: codec, cacheMax: 10000, cache: map[string][]*eventstore.Envelope{}}
	for _, o := range opts {
		o(s)
	}
	if s.stream == nil {
		s.stream = NewStream()
	}
	return s
}

// Stream returns the stream the store writes to.
func (s *Store) Stream() *Stream { return s.stream }

// Codec returns the codec the store encodes and decodes with.
func (s *Store) Codec() *eventstore.Codec { return s.codec }

// Load returns a path's history. The cache holds stored envelopes, not
// decoded events, so personal data is opened on every load and an erasure
// shows at once.
func (s *Store) Load(ctx context.Context, pathID string, fresh bool) (*command.History, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	envs, ok := s.cached(pathID)
	if !ok || fresh {
		var err error
		if envs, err = s.chain(pathID); err != nil {
			return nil, err
		}
		if len(envs) > 0 {
			s.remember(pathID, envs)
		}
	}
	hist := &command.History{PathID: pathID}
	for _, e := range envs {
		ev, err := s.codec.Decode(ctx, e.Type, e.SchemaVersion, e.Data, eventstore.DecodeOptions{})
		if err != nil {
			return nil, fmt.Errorf("memstore: path %s seq %d: %w", pathID, e.Seq, err)
		}
		hist.Events = append(hist.Events, command.Recorded{Seq: e.Seq, CommandID: e.CommandID, Event: ev})
		hist.Version = e.Seq
	}
	return hist, nil
}

// ReadPath returns a path's stored events in order, undecoded, for history
// and verification. It bypasses the cache.
func (s *Store) ReadPath(ctx context.Context, pathID string) ([]*eventstore.Envelope, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.chain(pathID)
}

// CountPath is how many messages the path's subject holds, whatever their
// back-pointers say (audit.PathCounter).
func (s *Store) CountPath(ctx context.Context, pathID string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return uint64(len(s.stream.Messages(eventstore.EventSubject(pathID)))), nil
}

// chain walks the back-pointers from the path's last event to its first,
// as natsjs does, so a forged back-pointer misleads both stores alike.
func (s *Store) chain(pathID string) ([]*eventstore.Envelope, error) {
	subject := eventstore.EventSubject(pathID)
	st := s.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	m, ok := st.lastMsg(subject)
	if !ok {
		return nil, nil
	}
	var rev []*eventstore.Envelope
	for {
		if m.Subject != subject {
			return nil, fmt.Errorf("memstore: path %s: back-pointer leads to seq %d on another subject", pathID, m.Seq)
		}
		e, err := eventstore.FromHeaders(m.Seq, m.Subject, m.Get, m.Data)
		if err != nil {
			return nil, err
		}
		rev = append(rev, e)
		if e.PrevSeq == 0 {
			break
		}
		if m, ok = st.get(e.PrevSeq); !ok {
			return nil, fmt.Errorf("memstore: path %s: back-pointer to missing seq %d", pathID, e.PrevSeq)
		}
	}
	slices.Reverse(rev)
	return rev, nil
}

// indexData is a worker-index entry, in the same shape natsjs stores.
type indexData struct {
	PathID string   `json:"path_id,omitempty"`
	Status string   `json:"status"`
	Paths  []string `json:"paths"`
}

// Worker reads the per-worker index from its last entry.
func (s *Store) Worker(ctx context.Context, workerRef string) (command.WorkerIndex, error) {
	if err := ctx.Err(); err != nil {
		return command.WorkerIndex{}, err
	}
	s.stream.mu.Lock()
	defer s.stream.mu.Unlock()
	wi, _, err := s.worker(workerRef)
	return wi, err
}

// worker reads the index; stream.mu is held.
func (s *Store) worker(workerRef string) (command.WorkerIndex, indexData, error) {
	m, ok := s.stream.lastMsg(eventstore.WorkerSubject(workerRef))
	if !ok {
		return command.WorkerIndex{}, indexData{}, nil
	}
	var d indexData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return command.WorkerIndex{}, indexData{}, fmt.Errorf("memstore: worker index entry %d: %w", m.Seq, err)
	}
	wi := command.WorkerIndex{Seq: m.Seq, Paths: slices.Clone(d.Paths), Erased: d.Status == command.IndexErased}
	if d.Status == command.IndexOpen {
		wi.OpenPath = d.PathID
	}
	return wi, d, nil
}

type pending struct {
	subject string
	header  map[string]string
	data    []byte
	env     *eventstore.Envelope // nil for the index entry
}

// Append writes every event of every write, and the index entry, or
// nothing. Expectations are checked before deduplication, as a single
// JetStream server does.
func (s *Store) Append(ctx context.Context, meta command.Meta, writes []command.Write, index *command.IndexEntry) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Seal before taking the stream lock: sealing may reach a key store.
	data := make([][][]byte, len(writes))
	for i, w := range writes {
		for _, ev := range w.Events {
			b, err := s.codec.Encode(ctx, ev)
			if err != nil {
				return nil, err
			}
			data[i] = append(data[i], b)
		}
	}

	st := s.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	heads := make([]string, len(writes))
	for i, w := range writes {
		last, _ := st.lastMsg(eventstore.EventSubject(w.PathID))
		if last.Seq != w.Expected {
			s.forgetAll(writes)
			return nil, command.ErrConflict
		}
		heads[i] = last.Get(eventstore.HdrHash)
	}

	var msgs []pending
	n := 0
	for i, w := range writes {
		prevHash := heads[i]
		for j, ev := range w.Events {
			env := &eventstore.Envelope{
				ID: command.EventID(meta.CommandID, n), Type: ev.EventType(), SchemaVersion: eventstore.SchemaVersion,
				PathID: w.PathID, Time: ev.Header().RecordedAt, Actor: meta.Actor, CommandID: meta.CommandID,
				CorrelationID: meta.CorrelationID, PrevHash: prevHash, Data: data[i][j],
			}
			if j == 0 {
				env.PrevSeq = w.Expected
			} else {
				env.PrevInBatch = true
			}
			env.Hash = env.ComputeHash()
			msgs = append(msgs, pending{subject: eventstore.EventSubject(w.PathID), header: env.Headers(), data: env.Data, env: env})
			prevHash = env.Hash
			n++
		}
	}
	if index != nil {
		wi, prev, err := s.worker(index.WorkerRef)
		if err != nil {
			return nil, err
		}
		if wi.Seq != index.Expected {
			s.forgetAll(writes)
			return nil, command.ErrConflict
		}
		d := indexData{PathID: index.PathID, Status: index.Status, Paths: prev.Paths}
		if index.Status == command.IndexOpen {
			d.Paths = append(slices.Clip(d.Paths), index.PathID)
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, pending{subject: eventstore.WorkerSubject(index.WorkerRef), data: b,
			header: eventstore.IndexHeaders(command.NameUUID(meta.CommandID, "index"), index.WorkerRef, index.Status, meta.CommandID, time.Now())})
	}
	if len(msgs) == 0 {
		return map[string]uint64{}, nil
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := m.header[msgIDHeader]
		if _, dup := st.ids[id]; dup || seen[id] {
			s.forgetAll(writes)
			return nil, ErrDuplicate
		}
		seen[id] = true
	}

	versions := map[string]uint64{}
	added := map[string][]*eventstore.Envelope{}
	for _, m := range msgs {
		seq := st.store(m.subject, m.header, m.data)
		if m.env != nil {
			m.env.Seq = seq
			if m.env.PrevInBatch {
				m.env.PrevSeq = seq - 1
			}
			versions[m.env.PathID] = seq
			added[m.env.PathID] = append(added[m.env.PathID], m.env)
		}
	}
	for _, w := range writes {
		s.extend(w.PathID, w.Expected, added[w.PathID])
	}
	return versions, nil
}

func (s *Store) cached(pathID string) ([]*eventstore.Envelope, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	envs, ok := s.cache[pathID]
	return envs, ok
}

func (s *Store) remember(pathID string, envs []*eventstore.Envelope) {
	if s.cacheMax <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cache[pathID]; ok && len(old) > 0 && old[len(old)-1].Seq > envs[len(envs)-1].Seq {
		return // a newer copy is already here
	}
	if _, ok := s.cache[pathID]; !ok {
		for id := range s.cache {
			if len(s.cache) < s.cacheMax {
				break
			}
			delete(s.cache, id) // any entry: a miss only costs a read
		}
	}
	s.cache[pathID] = slices.Clip(envs)
}

// extend adds freshly appended events to the cached copy of a path that was
// at from; a cached copy at another version is dropped.
func (s *Store) extend(pathID string, from uint64, envs []*eventstore.Envelope) {
	if len(envs) == 0 {
		return
	}
	if from == 0 {
		s.remember(pathID, envs)
		return
	}
	old, ok := s.cached(pathID)
	if !ok || len(old) == 0 || old[len(old)-1].Seq != from {
		s.forget(pathID)
		return
	}
	s.remember(pathID, append(slices.Clip(old), envs...))
}

func (s *Store) forget(pathID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, pathID)
}

func (s *Store) forgetAll(writes []command.Write) {
	for _, w := range writes {
		s.forget(w.PathID)
	}
}
