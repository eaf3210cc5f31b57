package command_test

// In-test implementations of the command layer's own ports. They keep the
// semantics the handler relies on — all-or-nothing appends under per-path
// and per-worker expectations, a global sequence, the command id on every
// event — and add the knobs a test needs to stage races and failures.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
)

var (
	_ command.Store       = (*fakeStore)(nil)
	_ command.Idempotency = (*fakeIdem)(nil)
	_ command.Vault       = (*fakeVault)(nil)
)

var errDown = errors.New("store unreachable")

type fakeStore struct {
	mu      sync.Mutex
	seq     uint64
	paths   map[string][]command.Recorded
	workers map[string]*command.WorkerIndex
	eventID map[string]bool // ids of stored events, as Nats-Msg-Id would be

	// staleReads makes a non-fresh Load return the copy cached when the path
	// was last loaded fresh or appended to by the handler, the way a caching
	// store would; writes by interfere do not refresh it.
	staleReads bool
	cache      map[string]*command.History

	// interfere runs at the start of the n-th Append call (1-based), outside
	// the lock: a concurrent writer getting there first.
	interfere func(call int)
	// conflicts makes the next Append calls fail with ErrConflict unwritten;
	// alwaysConflict makes every call fail so.
	conflicts      int
	alwaysConflict bool
	// lostReplies makes the next successful appends report an error: the
	// events landed but the caller cannot know.
	lostReplies int
	// loadErr fails every Load.
	loadErr error
	// lagAfterLostReply makes the loads after a lost reply, that many,
	// answer as the paths were before the append, as a replica a moment
	// behind would.
	lagAfterLostReply int
	laggingLoads      int
	before            map[string][]command.Recorded

	appendCalls int            // every Append call
	appended    int            // successful appends
	loads       []loadCall     // every Load
	metas       []command.Meta // meta of every successful append
}

type loadCall struct {
	path  string
	fresh bool
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		paths:   map[string][]command.Recorded{},
		workers: map[string]*command.WorkerIndex{},
		eventID: map[string]bool{},
		cache:   map[string]*command.History{},
	}
}

func (s *fakeStore) historyLocked(pathID string) *command.History {
	h := &command.History{PathID: pathID, Events: append([]command.Recorded(nil), s.paths[pathID]...)}
	if n := len(h.Events); n > 0 {
		h.Version = h.Events[n-1].Seq
	}
	return h
}

func (s *fakeStore) Load(_ context.Context, pathID string, fresh bool) (*command.History, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads = append(s.loads, loadCall{pathID, fresh})
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	if prev, ok := s.before[pathID]; ok && s.laggingLoads > 0 {
		s.laggingLoads--
		h := &command.History{PathID: pathID, Events: append([]command.Recorded(nil), prev...)}
		if n := len(h.Events); n > 0 {
			h.Version = h.Events[n-1].Seq
		}
		return h, nil
	}
	if s.staleReads && !fresh {
		if h, ok := s.cache[pathID]; ok {
			c := *h
			c.Events = append([]command.Recorded(nil), h.Events...)
			return &c, nil
		}
	}
	h := s.historyLocked(pathID)
	s.cache[pathID] = h
	return s.historyLocked(pathID), nil
}

func (s *fakeStore) Append(_ context.Context, meta command.Meta, writes []command.Write, index *command.IndexEntry) (map[string]uint64, error) {
	s.mu.Lock()
	s.appendCalls++
	call := s.appendCalls
	hook := s.interfere
	s.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alwaysConflict {
		return nil, command.ErrConflict
	}
	if s.conflicts > 0 {
		s.conflicts--
		return nil, command.ErrConflict
	}
	before := map[string][]command.Recorded{}
	for _, w := range writes {
		before[w.PathID] = append([]command.Recorded(nil), s.paths[w.PathID]...)
	}
	versions, err := s.writeLocked(meta, writes, index)
	if err != nil {
		return nil, err
	}
	s.appended++
	s.metas = append(s.metas, meta)
	for _, w := range writes {
		s.cache[w.PathID] = s.historyLocked(w.PathID)
	}
	if s.lostReplies > 0 {
		s.lostReplies--
		s.before, s.laggingLoads = before, s.lagAfterLostReply
		return nil, errors.New("timeout waiting for the publish acknowledgement")
	}
	return versions, nil
}

// writeLocked checks every expectation first, then writes: all or nothing.
func (s *fakeStore) writeLocked(meta command.Meta, writes []command.Write, index *command.IndexEntry) (map[string]uint64, error) {
	for _, w := range writes {
		if s.historyLocked(w.PathID).Version != w.Expected {
			return nil, command.ErrConflict
		}
	}
	if index != nil && s.worker(index.WorkerRef).Seq != index.Expected {
		return nil, command.ErrConflict
	}
	versions := map[string]uint64{}
	i := 0
	for _, w := range writes {
		for _, e := range w.Events {
			id := command.EventID(meta.CommandID, i)
			if s.eventID[id] {
				return nil, errors.New("fake store: duplicate event id " + id)
			}
			s.eventID[id] = true
			i++
			s.seq++
			s.paths[w.PathID] = append(s.paths[w.PathID], command.Recorded{Seq: s.seq, CommandID: meta.CommandID, Event: e})
			versions[w.PathID] = s.seq
		}
	}
	if index != nil {
		wi := s.worker(index.WorkerRef)
		s.seq++
		wi.Seq = s.seq
		switch index.Status {
		case command.IndexOpen:
			wi.OpenPath = index.PathID
			wi.Paths = append(wi.Paths, index.PathID)
		case command.IndexClosed:
			if wi.OpenPath == index.PathID {
				wi.OpenPath = ""
			}
		case command.IndexErased:
			wi.Erased, wi.OpenPath = true, ""
		}
	}
	return versions, nil
}

func (s *fakeStore) worker(ref string) *command.WorkerIndex {
	wi, ok := s.workers[ref]
	if !ok {
		wi = &command.WorkerIndex{}
		s.workers[ref] = wi
	}
	return wi
}

func (s *fakeStore) Worker(_ context.Context, ref string) (command.WorkerIndex, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wi, ok := s.workers[ref]
	if !ok {
		return command.WorkerIndex{}, nil
	}
	c := *wi
	c.Paths = append([]string(nil), wi.Paths...)
	return c, nil
}

// write appends as another writer would (another command id), bypassing the
// knobs; it panics on a broken expectation since tests stage it on purpose.
func (s *fakeStore) write(pathID string, events ...workerpath.Event) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.historyLocked(pathID)
	v, err := s.writeLocked(command.Meta{CommandID: command.NewUUID(), Actor: "other"},
		[]command.Write{{PathID: pathID, Expected: h.Version, Events: events}}, nil)
	if err != nil {
		panic(err)
	}
	return v[pathID]
}

// events returns the events stored on a path.
func (s *fakeStore) events(pathID string) []command.Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]command.Recorded(nil), s.paths[pathID]...)
}

// version is the stream sequence of the path's last event.
func (s *fakeStore) version(pathID string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.historyLocked(pathID).Version
}

func (s *fakeStore) lastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

func (s *fakeStore) freshFlags(pathID string) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bool
	for _, l := range s.loads {
		if l.path == pathID {
			out = append(out, l.fresh)
		}
	}
	return out
}

type fakeIdem struct {
	mu   sync.Mutex
	recs map[string]command.Record
	puts int
	// putFailures makes the next puts fail, unwritten.
	putFailures int
}

func newFakeIdem() *fakeIdem { return &fakeIdem{recs: map[string]command.Record{}} }

func (f *fakeIdem) Get(_ context.Context, id string) (*command.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	if !ok {
		return nil, nil
	}
	return &r, nil
}

func (f *fakeIdem) Put(_ context.Context, id string, r command.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if f.putFailures > 0 {
		f.putFailures--
		return errDown
	}
	f.recs[id] = r
	return nil
}

func (f *fakeIdem) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.recs, id)
}

type fakeVault struct {
	mu      sync.Mutex
	erased  []string
	failing int // the next Erase calls fail
}

// Pseudonym is a plain hash here; the real vault keys it.
func (v *fakeVault) Pseudonym(taxCode string) string {
	h := sha256.Sum256([]byte(taxCode))
	return "wr_" + hex.EncodeToString(h[:12])
}

func (v *fakeVault) Erase(_ context.Context, ref string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failing > 0 {
		v.failing--
		return errors.New("key store unreachable")
	}
	v.erased = append(v.erased, ref)
	return nil
}

func (v *fakeVault) erasedRefs() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.erased...)
}
