package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
)

// Store is the JetStream event store.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	codec  *eventstore.Codec
	cache  *pathCache

	snaps     jetstream.KeyValue
	snapEvery int
}

var _ command.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithCacheSize bounds the cache of recent paths (0 disables it).
func WithCacheSize(n int) Option { return func(s *Store) { s.cache = newPathCache(n) } }

// New returns a store on an already provisioned stream (see Provision).
func New(js jetstream.JetStream, stream jetstream.Stream, codec *eventstore.Codec, opts ...Option) *Store {
	s := &Store{js: js, stream: stream, codec: codec, cache: newPathCache(10000)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Codec returns the codec the store decodes with.
func (s *Store) Codec() *eventstore.Codec { return s.codec }

// IsConflict reports whether a publish error is an expectation failure:
// 10071 (wrong last sequence) or, on replicated streams, 10164 (a competing
// write still in flight).
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// Load returns a path's history: the last message on its subject, then the
// chain of back-pointers, stopping early where the cached copy begins.
func (s *Store) Load(ctx context.Context, pathID string, fresh bool) (*command.History, error) {
	cached := s.cache.get(pathID)
	if cached != nil && !fresh {
		return s.withPersonal(ctx, cached)
	}
	if cached == nil {
		snap, err := s.loadSnapshot(ctx, pathID)
		if err != nil {
			return nil, err
		}
		if snap != nil {
			cached = &cachedPath{hist: &command.History{PathID: pathID, Version: snap.Version, Base: snap.State,
				BaseCommands: snap.Commands}, lastHash: snap.LastHash, baseWorker: snap.Worker}
		}
	}
	var stop uint64
	if cached != nil {
		stop = cached.hist.Version
	}
	envs, err := s.chain(ctx, pathID, stop)
	if err != nil {
		return nil, err
	}
	hist := &command.History{PathID: pathID}
	var lastHash, baseWorker string
	if cached != nil && (len(envs) == 0 || (envs[0].PrevSeq == stop && envs[0].PrevHash == cached.lastHash)) {
		hist.Events = cached.hist.Events[:len(cached.hist.Events):len(cached.hist.Events)]
		hist.Version = cached.hist.Version
		hist.Base, hist.BaseCommands, baseWorker = cached.hist.Base, cached.hist.BaseCommands, cached.baseWorker
		lastHash = cached.lastHash
	} else if cached != nil {
		// The cache did not join up (it cannot, short of a bug): reload whole.
		if envs, err = s.chain(ctx, pathID, 0); err != nil {
			return nil, err
		}
	}
	for _, e := range envs {
		ev, err := s.codec.Decode(ctx, e.Type, e.SchemaVersion, e.Data, eventstore.DecodeOptions{SkipPersonal: true})
		if err != nil {
			return nil, fmt.Errorf("natsjs: path %s seq %d: %w", pathID, e.Seq, err)
		}
		hist.Events = append(hist.Events, command.Recorded{Seq: e.Seq, CommandID: e.CommandID, Event: ev})
		hist.Version, lastHash = e.Seq, e.Hash
	}
	cp := &cachedPath{hist: hist, lastHash: lastHash, baseWorker: baseWorker}
	if hist.Version != 0 {
		s.cache.put(pathID, cp)
	}
	return s.withPersonal(ctx, cp)
}

// withPersonal returns a history with the worker's personal data opened,
// leaving the (cached) history it starts from sealed. The cache never holds
// personal data in clear: an erasure (the worker's key destroyed) must show
// on the very next load, not when the path leaves the cache.
func (s *Store) withPersonal(ctx context.Context, cp *cachedPath) (*command.History, error) {
	hist := cp.hist
	out := hist
	if hist.Base != nil && cp.baseWorker != "" {
		person, err := s.codec.OpenPerson(ctx, hist.Base.WorkerRef, cp.baseWorker)
		if err != nil {
			return nil, fmt.Errorf("natsjs: path %s snapshot: %w", hist.PathID, err)
		}
		base := hist.Base.Clone()
		base.Worker = person
		out = &command.History{PathID: hist.PathID, Version: hist.Version, Events: hist.Events, Base: base, BaseCommands: hist.BaseCommands}
	}
	for i, r := range hist.Events {
		t := r.Event
		if !eventstore.HoldsPersonal(t) {
			continue
		}
		if out == hist || &out.Events[0] == &hist.Events[0] {
			out = &command.History{PathID: hist.PathID, Version: hist.Version, Events: slices.Clip(slices.Clone(hist.Events)),
				Base: out.Base, BaseCommands: hist.BaseCommands}
		}
		// The cached event is already upcast: its JSON is current-version data.
		data, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		ev, err := s.codec.Decode(ctx, t.EventType(), eventstore.SchemaVersion, data, eventstore.DecodeOptions{})
		if err != nil {
			return nil, fmt.Errorf("natsjs: path %s seq %d: %w", hist.PathID, r.Seq, err)
		}
		out.Events[i].Event = ev
	}
	return out, nil
}

// CountPath is how many messages the path's subject holds, as the server
// counts them, whatever their back-pointers say (audit.PathCounter).
func (s *Store) CountPath(ctx context.Context, pathID string) (uint64, error) {
	subject := eventstore.EventSubject(pathID)
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("natsjs: counting path %s: %w", pathID, err)
	}
	return info.State.Subjects[subject], nil
}

// ReadPath returns a path's stored events in order, undecoded, for history
// and verification. It bypasses the cache.
func (s *Store) ReadPath(ctx context.Context, pathID string) ([]*eventstore.Envelope, error) {
	return s.chain(ctx, pathID, 0)
}

// chain walks back from the path's last event to the first one after stop.
func (s *Store) chain(ctx context.Context, pathID string, stop uint64) ([]*eventstore.Envelope, error) {
	subject := eventstore.EventSubject(pathID)
	m, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: loading path %s: %w", pathID, err)
	}
	var rev []*eventstore.Envelope
	for m.Sequence > stop {
		e, err := envelopeOf(m)
		if err != nil {
			return nil, err
		}
		if m.Subject != subject {
			return nil, fmt.Errorf("natsjs: path %s: back-pointer leads to seq %d on another subject", pathID, m.Sequence)
		}
		rev = append(rev, e)
		if e.PrevSeq == 0 || e.PrevSeq <= stop {
			break
		}
		if e.PrevSeq >= m.Sequence {
			return nil, fmt.Errorf("natsjs: path %s: back-pointer at %d does not point back", pathID, m.Sequence)
		}
		if m, err = s.predecessor(ctx, e.PrevSeq); err != nil {
			return nil, fmt.Errorf("natsjs: path %s: following back-pointer to %d: %w", pathID, e.PrevSeq, err)
		}
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev, nil
}

// predecessor reads the event a back-pointer names. On a replicated stream
// a direct get may be answered by a follower that has not applied that
// event yet, although another replica just served its successor. The
// stream denies deletes, so a missing predecessor is retried briefly (about
// half a second in all) before it is reported.
func (s *Store) predecessor(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	wait := 2 * time.Millisecond
	for attempt := 0; ; attempt++ {
		m, err := s.stream.GetMsg(ctx, seq)
		if !errors.Is(err, jetstream.ErrMsgNotFound) || attempt == 8 {
			return m, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func envelopeOf(m *jetstream.RawStreamMsg) (*eventstore.Envelope, error) {
	// A direct get reports the sequence in a header; a publisher that put its
	// own Nats-Sequence header in a message could make it lie. Refuse those.
	if len(m.Header.Values(jetstream.SequenceHeader)) > 1 {
		return nil, fmt.Errorf("natsjs: message on %s carries a forged %s header", m.Subject, jetstream.SequenceHeader)
	}
	return eventstore.FromHeaders(m.Sequence, m.Subject, m.Header.Get, m.Data)
}

// indexData is a worker-index entry. Paths accumulates, so one read of the
// last entry tells everything.
type indexData struct {
	PathID string   `json:"path_id,omitempty"`
	Status string   `json:"status"`
	Paths  []string `json:"paths"`
}

// Worker reads the per-worker index from its last entry.
func (s *Store) Worker(ctx context.Context, workerRef string) (command.WorkerIndex, error) {
	wi, _, err := s.worker(ctx, workerRef)
	return wi, err
}

func (s *Store) worker(ctx context.Context, workerRef string) (command.WorkerIndex, indexData, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, eventstore.WorkerSubject(workerRef))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return command.WorkerIndex{}, indexData{}, nil
	}
	if err != nil {
		return command.WorkerIndex{}, indexData{}, fmt.Errorf("natsjs: worker index: %w", err)
	}
	var d indexData
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return command.WorkerIndex{}, indexData{}, fmt.Errorf("natsjs: worker index entry %d: %w", m.Sequence, err)
	}
	wi := command.WorkerIndex{Seq: m.Sequence, Paths: d.Paths, Erased: d.Status == command.IndexErased}
	if d.Status == command.IndexOpen {
		wi.OpenPath = d.PathID
	}
	return wi, d, nil
}

// Append writes every event of every write, and the index entry, as one
// atomic batch (or a single publish when there is one message). Each path's
// first message carries the expected last sequence of its subject.
func (s *Store) Append(ctx context.Context, meta command.Meta, writes []command.Write, index *command.IndexEntry) (map[string]uint64, error) {
	var msgs []*nats.Msg
	type staged struct {
		pathID string
		msg    int
		rec    command.Recorded
		hash   string
	}
	var out []staged
	n := 0
	for _, w := range writes {
		prevHash, err := s.headHash(ctx, w.PathID, w.Expected)
		if err != nil {
			return nil, err
		}
		for j, ev := range w.Events {
			data, err := s.codec.Encode(ctx, ev)
			if err != nil {
				return nil, err
			}
			env := &eventstore.Envelope{
				ID: command.EventID(meta.CommandID, n), Type: ev.EventType(), SchemaVersion: eventstore.SchemaVersion,
				PathID: w.PathID, Time: ev.Header().RecordedAt, Actor: meta.Actor, CommandID: meta.CommandID,
				CorrelationID: meta.CorrelationID, PrevHash: prevHash, Data: data,
			}
			if j == 0 {
				env.PrevSeq = w.Expected
			} else {
				env.PrevInBatch = true
			}
			env.Hash = env.ComputeHash()
			msg := nats.NewMsg(eventstore.EventSubject(w.PathID))
			for k, v := range env.Headers() {
				msg.Header.Set(k, v)
			}
			if j == 0 {
				msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.Expected, 10))
			}
			msg.Data = data
			// The cache keeps personal data sealed, as a load decodes it,
			// never the caller's clear copy (see withPersonal).
			cached := ev
			if eventstore.HoldsPersonal(ev) {
				if cached, err = s.codec.Decode(ctx, env.Type, env.SchemaVersion, data, eventstore.DecodeOptions{SkipPersonal: true}); err != nil {
					return nil, err
				}
			}
			out = append(out, staged{pathID: w.PathID, msg: len(msgs), rec: command.Recorded{CommandID: meta.CommandID, Event: cached}, hash: env.Hash})
			msgs = append(msgs, msg)
			prevHash = env.Hash
			n++
		}
	}
	if index != nil {
		msg, err := s.indexMsg(ctx, meta, index)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		return map[string]uint64{}, nil
	}
	last, err := s.publish(ctx, msgs)
	if err != nil {
		for _, w := range writes {
			s.cache.drop(w.PathID)
		}
		return nil, err
	}
	first := last - uint64(len(msgs)) + 1
	versions := map[string]uint64{}
	added := map[string][]command.Recorded{}
	heads := map[string]string{}
	for _, st := range out {
		st.rec.Seq = first + uint64(st.msg)
		versions[st.pathID] = st.rec.Seq
		added[st.pathID] = append(added[st.pathID], st.rec)
		heads[st.pathID] = st.hash
	}
	for _, w := range writes {
		s.cache.extend(w.PathID, w.Expected, added[w.PathID], heads[w.PathID])
		s.maybeSnapshot(ctx, w.PathID)
	}
	return versions, nil
}

// headHash is the hash of the path's event at sequence expected (the chain's
// current head), from the cache or the stream; a different head is a conflict.
func (s *Store) headHash(ctx context.Context, pathID string, expected uint64) (string, error) {
	if expected == 0 {
		return "", nil
	}
	if c := s.cache.get(pathID); c != nil && c.hist.Version == expected {
		return c.lastHash, nil
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, eventstore.EventSubject(pathID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", command.ErrConflict
	}
	if err != nil {
		return "", fmt.Errorf("natsjs: reading head of path %s: %w", pathID, err)
	}
	if m.Sequence != expected {
		return "", command.ErrConflict
	}
	return m.Header.Get(eventstore.HdrHash), nil
}

func (s *Store) indexMsg(ctx context.Context, meta command.Meta, e *command.IndexEntry) (*nats.Msg, error) {
	wi, prev, err := s.worker(ctx, e.WorkerRef)
	if err != nil {
		return nil, err
	}
	if wi.Seq != e.Expected {
		return nil, command.ErrConflict
	}
	d := indexData{PathID: e.PathID, Status: e.Status, Paths: prev.Paths}
	if e.Status == command.IndexOpen {
		d.Paths = append(d.Paths[:len(d.Paths):len(d.Paths)], e.PathID)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(eventstore.WorkerSubject(e.WorkerRef))
	for k, v := range eventstore.IndexHeaders(command.NameUUID(meta.CommandID, "index"), e.WorkerRef, e.Status, meta.CommandID, time.Now()) {
		msg.Header.Set(k, v)
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(e.Expected, 10))
	msg.Data = data
	return msg, nil
}

// errDuplicate: the server already holds this message id, so the command
// landed before (a retry after an ambiguous failure). The caller reloads and
// finds it by its command id.
var errDuplicate = errors.New("natsjs: duplicate message: the command already landed")

func (s *Store) publish(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		switch {
		case IsConflict(err):
			return 0, command.ErrConflict
		case err != nil:
			return 0, fmt.Errorf("natsjs: publish: %w", err)
		case ack.Duplicate:
			return 0, errDuplicate
		}
		return ack.Sequence, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs)
	switch {
	case IsConflict(err):
		return 0, command.ErrConflict
	case err != nil:
		return 0, fmt.Errorf("natsjs: atomic batch of %d: %w", len(msgs), err)
	case ack.BatchSize != uint64(len(msgs)):
		return 0, fmt.Errorf("natsjs: atomic batch stored %d of %d messages", ack.BatchSize, len(msgs))
	}
	return ack.Sequence, nil
}
