package storetest

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/audit"
)

// Run runs the conformance suite. newStore is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) Harness) {
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{"UnknownPathAndWorker", testUnknown},
		{"RoundTripEveryEventType", testRoundTrip},
		{"GlobalSequence", testGlobalSequence},
		{"ConflictOnStaleExpectation", testConflict},
		{"ConcurrentWritersOneWins", testConcurrentWriters},
		{"AtomicBatchRollback", testAtomicRollback},
		{"MultiEventWrite", testMultiEvent},
		{"GroupSessionAcrossPaths", testGroupSession},
		{"WorkerIndex", testWorkerIndex},
		{"IdempotentRetry", testIdempotentRetry},
		{"LongChainVerifies", testLongChain},
		{"StaleCache", testStaleCache},
		{"Erasure", testErasure},
		{"TamperDetected", testTamper},
		{"SkippingForgeryDetected", testSkippingForgery},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(newFixture(t, newStore(t)))
		})
	}
}

func testUnknown(f *fixture) {
	pathID := command.NewUUID()
	h, err := f.h.Store.Load(f.ctx, pathID, false)
	if err != nil {
		f.t.Fatal(err)
	}
	if h.Version != 0 || len(h.Events) != 0 || h.PathID != pathID {
		f.t.Fatalf("unknown path: %+v, want version 0 and no events", h)
	}
	envs, err := f.h.Store.ReadPath(f.ctx, pathID)
	if err != nil || len(envs) != 0 {
		f.t.Fatalf("ReadPath of an unknown path: %d events, %v", len(envs), err)
	}
	wi, err := f.h.Store.Worker(f.ctx, f.newWorker().ref)
	if err != nil {
		f.t.Fatal(err)
	}
	if wi.Seq != 0 || wi.OpenPath != "" || len(wi.Paths) != 0 || wi.Erased {
		f.t.Fatalf("unknown worker: %+v, want the zero index", wi)
	}
}

func testRoundTrip(f *fixture) {
	w := f.newWorker()
	pathID := command.NewUUID()
	evs := AllTypes(pathID, w.ref, w.who)
	var types []string
	for _, ev := range evs {
		if !slices.Contains(types, ev.EventType()) {
			types = append(types, ev.EventType())
		}
	}
	for _, typ := range workerpath.EventTypes {
		if !slices.Contains(types, typ) {
			f.t.Fatalf("the round trip does not cover %s", typ)
		}
	}

	var version uint64
	var metas []command.Meta
	for i, ev := range evs {
		m := newMeta()
		var idx *command.IndexEntry
		if i == 0 {
			idx = &command.IndexEntry{WorkerRef: w.ref, PathID: pathID, Status: command.IndexOpen}
		}
		version = f.append(f.h.Store, m, []command.Write{write(pathID, version, ev)}, idx)[pathID]
		metas = append(metas, m)
	}

	check := func(name string, h *command.History) {
		f.t.Helper()
		checkHistory(f.t, h)
		if h.PathID != pathID || h.Version != version || len(h.Events) != len(evs) {
			f.t.Fatalf("%s: path %s version %d with %d events, want %s version %d with %d", name,
				h.PathID, h.Version, len(h.Events), pathID, version, len(evs))
		}
		for i, r := range h.Events {
			if r.CommandID != metas[i].CommandID {
				f.t.Errorf("%s: event %d has command id %s, want %s", name, i, r.CommandID, metas[i].CommandID)
			}
			sameEvent(f.t, i, evs[i], r.Event)
		}
	}
	warm, err := f.h.Store.Load(f.ctx, pathID, false)
	if err != nil {
		f.t.Fatal(err)
	}
	check("cached load", warm)
	check("fresh load", f.load(f.h.Store, pathID, version))
	cold := f.h.Reopen(f.t)
	check("load by another store", f.load(cold, pathID, version))
	again, err := cold.Load(f.ctx, pathID, false)
	if err != nil {
		f.t.Fatal(err)
	}
	check("cached load by another store", again)

	envs := f.verify(f.h.Store, pathID, len(evs))
	for i, e := range envs {
		ev := evs[i]
		want := eventstore.Envelope{
			Seq: warm.Events[i].Seq, ID: command.EventID(metas[i].CommandID, 0), Type: ev.EventType(),
			SchemaVersion: eventstore.SchemaVersion, PathID: pathID, Actor: metas[i].Actor,
			CommandID: metas[i].CommandID, CorrelationID: metas[i].CorrelationID,
		}
		got := *e
		if !got.Time.Equal(ev.Header().RecordedAt) {
			f.t.Errorf("event %d: recorded at %v, want %v", i, got.Time, ev.Header().RecordedAt)
		}
		got.Time, got.PrevSeq, got.PrevInBatch, got.PrevHash, got.Hash, got.Data = time.Time{}, 0, false, "", "", nil
		if !reflect.DeepEqual(got, want) {
			f.t.Errorf("event %d envelope:\n got %+v\nwant %+v", i, got, want)
		}
		for _, clear := range []string{w.who.TaxCode, w.who.GivenName, w.who.FamilyName, HostTaxCode} {
			if bytes.Contains(e.Data, []byte(clear)) {
				f.t.Errorf("event %d (%s): personal data stored in clear", i, e.Type)
			}
		}
	}
}

func testGlobalSequence(f *fixture) {
	a, w, va := f.open(f.h.Store)
	wi := f.workerIndex(f.h.Store, w.ref, va+1)
	if wi.Seq != va+1 {
		f.t.Fatalf("the index entry appended with the event at %d is at %d, want %d", va, wi.Seq, va+1)
	}
	b := command.NewUUID()
	vb := f.append(f.h.Store, newMeta(), []command.Write{write(b, 0, SessionDelivered(b, base))}, nil)[b]
	if vb < va+2 {
		f.t.Fatalf("path B's first event at %d, path A's at %d and its index entry after it: the sequence is not global", vb, va)
	}
	va2 := f.deliver(f.h.Store, a, va, 1)
	if va2 <= vb {
		f.t.Fatalf("path A's second event at %d, before path B's at %d", va2, vb)
	}
	h := f.load(f.h.Store, a, va2)
	if got := []uint64{h.Events[0].Seq, h.Events[1].Seq}; !slices.Equal(got, []uint64{va, va2}) {
		f.t.Fatalf("path A's events at %v, want [%d %d]", got, va, va2)
	}
	envs := f.verify(f.h.Store, a, 2)
	if envs[1].PrevSeq != va {
		f.t.Fatalf("back-pointer of the second event is %d, want %d", envs[1].PrevSeq, va)
	}
}

func testConflict(f *fixture) {
	p, w, v1 := f.open(f.h.Store)
	v2 := f.deliver(f.h.Store, p, v1, 1)
	fresh := command.NewUUID()
	cases := []struct {
		name   string
		writes []command.Write
	}{
		{"new path, but it exists", []command.Write{write(p, 0, TakenInCharge(p, w.ref, w.who, base))}},
		{"existing path, stale version", []command.Write{write(p, v1, SessionDelivered(p, base))}},
		{"existing path, stale version, two events", []command.Write{write(p, v1, SessionDelivered(p, base), SessionDelivered(p, base))}},
		{"existing path, version ahead", []command.Write{write(p, v2+1000, SessionDelivered(p, base))}},
		{"unknown path, expected to exist", []command.Write{write(fresh, v2, SessionDelivered(fresh, base))}},
	}
	stores := map[string]Store{"writer's store": f.h.Store, "another store": f.h.Reopen(f.t)}
	for name, s := range stores {
		for _, c := range cases {
			f.t.Run(name+"/"+c.name, func(t *testing.T) {
				f.on(t).conflict(s, newMeta(), c.writes, nil)
			})
		}
	}
	if envs := f.stored(p, 2); len(envs) != 2 {
		f.t.Fatalf("path holds %d events after refused appends, want 2", len(envs))
	}
	f.load(f.h.Store, p, v2)
	if h, err := f.h.Store.Load(f.ctx, fresh, true); err != nil || h.Version != 0 {
		f.t.Fatalf("a refused first append created the path: %+v, %v", h, err)
	}
	// The store is not wedged by refusals.
	f.deliver(f.h.Store, p, v2, 1)
	f.verify(f.h.Store, p, 3)
}

func testConcurrentWriters(f *fixture) {
	const writers = 16
	p, _, v1 := f.open(f.h.Store)
	v := f.deliver(f.h.Store, p, v1, 1)
	stores := []Store{f.h.Store, f.h.Reopen(f.t)}
	f.load(stores[1], p, v)

	metas := make([]command.Meta, writers)
	errs := make([]error, writers)
	versions := make([]uint64, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		metas[i] = newMeta()
		wg.Go(func() {
			<-start
			got, err := stores[i%2].Append(f.ctx, metas[i], []command.Write{write(p, v, SessionDelivered(p, base))}, nil)
			errs[i], versions[i] = err, got[p]
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			f.t.Fatalf("writers %d and %d both appended at version %d", winner, i, v)
		case err == nil:
			winner = i
		case !errors.Is(err, command.ErrConflict):
			f.t.Fatalf("writer %d: %v, want success or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		f.t.Fatalf("no writer appended: all %d got ErrConflict", writers)
	}
	envs := f.stored(p, 3)
	if len(envs) != 3 {
		f.t.Fatalf("path holds %d events, want 3 (one winner)", len(envs))
	}
	for i, m := range metas {
		want := 0
		if i == winner {
			want = 1
		}
		if n := count(envs, command.EventID(m.CommandID, 0)); n != want {
			f.t.Errorf("writer %d's event stored %d times, want %d", i, n, want)
		}
	}
	h := f.load(f.h.Store, p, versions[winner])
	if h.Events[2].CommandID != metas[winner].CommandID {
		f.t.Fatalf("last event is command %s, want the winner's %s", h.Events[2].CommandID, metas[winner].CommandID)
	}
	f.verify(f.h.Store, p, 3)
}

func testAtomicRollback(f *fixture) {
	a, wa, va := f.open(f.h.Store)
	b, _, vb1 := f.open(f.h.Store)
	vb := f.deliver(f.h.Store, b, vb1, 1)
	wia := f.workerIndex(f.h.Store, wa.ref, va+1)
	fresh := command.NewUUID()
	nw := f.newWorker()

	cases := []struct {
		name   string
		writes []command.Write
		index  *command.IndexEntry
	}{
		{"second path stale", []command.Write{write(a, va, SessionDelivered(a, base)), write(b, vb1, SessionDelivered(b, base))}, nil},
		{"first path stale", []command.Write{write(b, vb1, SessionDelivered(b, base)), write(a, va, SessionDelivered(a, base))}, nil},
		{"new path, stale second path", []command.Write{write(fresh, 0, TakenInCharge(fresh, nw.ref, nw.who, base)), write(b, 0, SessionDelivered(b, base))}, nil},
		{"path fine, index stale", []command.Write{write(a, va, SessionDelivered(a, base))},
			&command.IndexEntry{WorkerRef: wa.ref, Expected: wia.Seq - 1, PathID: a, Status: command.IndexClosed}},
		{"new path, index expected empty but is not", []command.Write{write(fresh, 0, TakenInCharge(fresh, wa.ref, wa.who, base))},
			&command.IndexEntry{WorkerRef: wa.ref, Expected: 0, PathID: fresh, Status: command.IndexOpen}},
	}
	for _, c := range cases {
		f.t.Run(c.name, func(t *testing.T) {
			f.on(t).conflict(f.h.Store, newMeta(), c.writes, c.index)
		})
	}

	// A stale cache lets the store's own checks pass: the whole batch must
	// then be refused at the stream, A's event included.
	f.load(f.h.Store, b, vb)
	other := f.h.Reopen(f.t)
	f.load(other, b, vb)
	vb2 := f.deliver(other, b, vb, 1)
	f.t.Run("stale cache, refused by the stream", func(t *testing.T) {
		f.on(t).conflict(f.h.Store, newMeta(), []command.Write{
			write(a, va, SessionDelivered(a, base), SessionDelivered(a, base)),
			write(b, vb, SessionDelivered(b, base)),
		}, nil)
	})

	if n := len(f.stored(a, 1)); n != 1 {
		f.t.Fatalf("path A holds %d events after refused batches, want 1", n)
	}
	if n := len(f.stored(b, 3)); n != 3 {
		f.t.Fatalf("path B holds %d events after refused batches, want 3", n)
	}
	if h, err := f.h.Store.Load(f.ctx, fresh, true); err != nil || h.Version != 0 {
		f.t.Fatalf("a refused batch created a path: %+v, %v", h, err)
	}
	if wi := f.workerIndex(f.h.Store, wa.ref, wia.Seq); wi.Seq != wia.Seq || !slices.Equal(wi.Paths, []string{a}) {
		f.t.Fatalf("a refused batch moved the index: %+v, was %+v", wi, wia)
	}
	// The same batch with current expectations goes through whole.
	f.load(f.h.Store, b, vb2)
	got := f.append(f.h.Store, newMeta(), []command.Write{write(a, va, SessionDelivered(a, base)), write(b, vb2, SessionDelivered(b, base))}, nil)
	if got[a]+1 != got[b] {
		f.t.Fatalf("one batch stored at %d and %d: not contiguous", got[a], got[b])
	}
	f.verify(f.h.Store, a, 2)
	f.verify(f.h.Store, b, 4)
}

func testMultiEvent(f *fixture) {
	w := f.newWorker()
	p := command.NewUUID()
	open := newMeta()
	v := f.append(f.h.Store, open, []command.Write{write(p, 0, TakenInCharge(p, w.ref, w.who, base), SessionDelivered(p, base))},
		&command.IndexEntry{WorkerRef: w.ref, PathID: p, Status: command.IndexOpen})[p]
	m := newMeta()
	evs := []workerpath.Event{SessionDelivered(p, base.Add(time.Hour)), &workerpath.PactSigned{
		Meta: meta(p, base.Add(time.Hour)), SignedAt: base.Add(time.Hour), DIDOn: workerpath.MustDate("2025-03-10")}}
	v2 := f.append(f.h.Store, m, []command.Write{write(p, v, evs...)}, nil)[p]

	h := f.load(f.h.Store, p, v2)
	if len(h.Events) != 4 {
		f.t.Fatalf("%d events, want 4", len(h.Events))
	}
	for i, r := range h.Events[2:] {
		sameEvent(f.t, i+2, evs[i], r.Event)
	}
	envs := f.verify(f.h.Store, p, 4)
	wantIDs := []string{command.EventID(open.CommandID, 0), command.EventID(open.CommandID, 1),
		command.EventID(m.CommandID, 0), command.EventID(m.CommandID, 1)}
	if got := ids(envs); !slices.Equal(got, wantIDs) {
		f.t.Fatalf("event ids %v, want %v", got, wantIDs)
	}
	seqs := []uint64{envs[0].Seq, envs[1].Seq, envs[2].Seq, envs[3].Seq}
	if seqs[1] != seqs[0]+1 || seqs[3] != seqs[2]+1 || seqs[1] != v || seqs[3] != v2 {
		f.t.Fatalf("sequences %v: a command's events must be contiguous, ending at %d and %d", seqs, v, v2)
	}
	if prev := []uint64{envs[0].PrevSeq, envs[1].PrevSeq, envs[2].PrevSeq, envs[3].PrevSeq}; !slices.Equal(prev, []uint64{0, seqs[0], seqs[1], seqs[2]}) {
		f.t.Fatalf("back-pointers %v, want [0 %d %d %d]", prev, seqs[0], seqs[1], seqs[2])
	}
}

func testGroupSession(f *fixture) {
	const size = 10
	paths := make([]string, size)
	versions := make([]uint64, size)
	for i := range paths {
		paths[i], _, versions[i] = f.open(f.h.Store)
	}
	group := command.NewUUID()
	m := newMeta()
	writes := make([]command.Write, size)
	for i, p := range paths {
		writes[i] = write(p, versions[i], GroupSession(p, group, size, base.Add(48*time.Hour)))
	}

	// One stale path refuses the whole group.
	stale := slices.Clone(writes)
	stale[size-1].Expected--
	f.conflict(f.h.Store, newMeta(), stale, nil)
	for _, p := range paths {
		if n := len(f.stored(p, 1)); n != 1 {
			f.t.Fatalf("path %s holds %d events after a refused group, want 1", p, n)
		}
	}

	got := f.append(f.h.Store, m, writes, nil)
	if len(got) != size {
		f.t.Fatalf("%d versions returned, want %d", len(got), size)
	}
	for i, p := range paths {
		if i > 0 && got[p] != got[paths[i-1]]+1 {
			f.t.Fatalf("path %d at %d after path %d at %d: one batch is contiguous", i, got[p], i-1, got[paths[i-1]])
		}
		h := f.load(f.h.Store, p, got[p])
		if len(h.Events) != 2 || h.Events[1].CommandID != m.CommandID {
			f.t.Fatalf("path %d: %d events, want the group session appended", i, len(h.Events))
		}
		sameEvent(f.t, 1, writes[i].Events[0], h.Events[1].Event)
		envs := f.verify(f.h.Store, p, 2)
		if envs[1].ID != command.EventID(m.CommandID, i) {
			f.t.Fatalf("path %d: event id %s, want the command's event %d", i, envs[1].ID, i)
		}
	}
}

func testWorkerIndex(f *fixture) {
	s := f.h.Store
	w := f.newWorker()
	check := func(name string, wi command.WorkerIndex, seq uint64, open string, paths []string, erased bool) {
		f.t.Helper()
		if wi.Seq != seq || wi.OpenPath != open || !slices.Equal(wi.Paths, paths) || wi.Erased != erased {
			f.t.Fatalf("%s: index %+v, want seq %d, open %q, paths %v, erased %v", name, wi, seq, open, paths, erased)
		}
	}
	index := func(expected uint64, pathID, status string) *command.IndexEntry {
		return &command.IndexEntry{WorkerRef: w.ref, Expected: expected, PathID: pathID, Status: status}
	}

	p1 := command.NewUUID()
	v1 := f.append(s, newMeta(), []command.Write{write(p1, 0, TakenInCharge(p1, w.ref, w.who, base))}, index(0, p1, command.IndexOpen))[p1]
	wi := f.workerIndex(s, w.ref, v1+1)
	check("opened", wi, v1+1, p1, []string{p1}, false)

	closed := &workerpath.PathClosed{Meta: meta(p1, base.Add(time.Hour)), ClosedAt: base.Add(time.Hour), Reason: workerpath.CloseSupportEnded}
	v1 = f.append(s, newMeta(), []command.Write{write(p1, v1, closed)}, index(wi.Seq, p1, command.IndexClosed))[p1]
	staleSeq := wi.Seq
	wi = f.workerIndex(s, w.ref, v1+1)
	check("closed", wi, v1+1, "", []string{p1}, false)

	p3 := command.NewUUID()
	f.conflict(s, newMeta(), []command.Write{write(p3, 0, TakenInCharge(p3, w.ref, w.who, base))}, index(staleSeq, p3, command.IndexOpen))
	if h, err := s.Load(f.ctx, p3, true); err != nil || h.Version != 0 {
		f.t.Fatalf("a stale index expectation still created the path: %+v, %v", h, err)
	}
	check("after a stale entry", f.workerIndex(s, w.ref, wi.Seq), wi.Seq, "", []string{p1}, false)

	p2 := command.NewUUID()
	v2 := f.append(s, newMeta(), []command.Write{write(p2, 0, TakenInCharge(p2, w.ref, w.who, base))}, index(wi.Seq, p2, command.IndexOpen))[p2]
	wi = f.workerIndex(s, w.ref, v2+1)
	check("reopened", wi, v2+1, p2, []string{p1, p2}, false)

	erased := func(p string) workerpath.Event {
		return &workerpath.PersonalDataErased{Meta: meta(p, base.Add(time.Hour)), WorkerRef: w.ref, ErasedAt: base.Add(time.Hour)}
	}
	got := f.append(s, newMeta(), []command.Write{write(p1, v1, erased(p1)), write(p2, v2, erased(p2))}, index(wi.Seq, "", command.IndexErased))
	wi = f.workerIndex(s, w.ref, got[p2]+1)
	check("erased", wi, got[p2]+1, "", []string{p1, p2}, true)
	check("erased, read by another store", f.workerIndex(f.h.Reopen(f.t), w.ref, wi.Seq), wi.Seq, "", []string{p1, p2}, true)
}

func testIdempotentRetry(f *fixture) {
	p, _, v := f.open(f.h.Store)
	m := newMeta()
	ev := SessionDelivered(p, base)
	v1 := f.append(f.h.Store, m, []command.Write{write(p, v, ev)}, nil)[p]
	other := f.h.Reopen(f.t)
	f.load(other, p, v1)

	// A retry must never store a second copy. Refusing is fine (the command
	// layer then finds its event by command id); answering is fine only
	// with the first append's version.
	retry := func(name string, s Store, m command.Meta, writes []command.Write, idx *command.IndexEntry, want map[string]uint64) {
		f.t.Helper()
		got, err := s.Append(f.ctx, m, writes, idx)
		if err == nil {
			for k, v := range want {
				if got[k] != v {
					f.t.Fatalf("%s: retry answered version %d for %s, the command landed at %d", name, got[k], k, v)
				}
			}
		}
	}
	retry("same expectation", f.h.Store, m, []command.Write{write(p, v, ev)}, nil, map[string]uint64{p: v1})
	retry("current expectation", f.h.Store, m, []command.Write{write(p, v1, ev)}, nil, map[string]uint64{p: v1})
	retry("current expectation, another store", other, m, []command.Write{write(p, v1, ev)}, nil, map[string]uint64{p: v1})

	// A multi-event command with an index entry.
	q := command.NewUUID()
	nw := f.newWorker()
	open := newMeta()
	writes := []command.Write{write(q, 0, TakenInCharge(q, nw.ref, nw.who, base), SessionDelivered(q, base))}
	idx := &command.IndexEntry{WorkerRef: nw.ref, PathID: q, Status: command.IndexOpen}
	vq := f.append(f.h.Store, open, writes, idx)[q]
	retry("batch, same expectations", f.h.Store, open, writes, idx, map[string]uint64{q: vq})
	retryIdx := *idx
	retryIdx.Expected = vq + 1
	retry("batch, current expectations", f.h.Store, open, []command.Write{write(q, vq, writes[0].Events...)}, &retryIdx, map[string]uint64{q: vq})

	// Nothing more was stored, whatever the answers.
	f.deliver(f.h.Store, p, f.load(f.h.Store, p, v1).Version, 1)
	if envs := f.stored(p, 3); len(envs) != 3 || count(envs, command.EventID(m.CommandID, 0)) != 1 {
		f.t.Fatalf("path holds %d events, the retried one %d times; want 3 and once", len(envs), count(envs, command.EventID(m.CommandID, 0)))
	}
	f.verify(f.h.Store, p, 3)
	f.deliver(f.h.Store, q, f.load(f.h.Store, q, vq).Version, 1)
	envs := f.stored(q, 3)
	if len(envs) != 3 || count(envs, command.EventID(open.CommandID, 0)) != 1 || count(envs, command.EventID(open.CommandID, 1)) != 1 {
		f.t.Fatalf("path holds %d events %v; want 3, the retried command's two once each", len(envs), ids(envs))
	}
	f.verify(f.h.Store, q, 3)
	if wi := f.workerIndex(f.h.Store, nw.ref, vq+1); wi.Seq != vq+1 || !slices.Equal(wi.Paths, []string{q}) {
		f.t.Fatalf("index %+v after retries, want the first entry at %d only", wi, vq+1)
	}
}

func testLongChain(f *fixture) {
	const events = 50
	p, _, v := f.open(f.h.Store)
	n := 1
	for n < events {
		evs := []workerpath.Event{SessionDelivered(p, base.Add(time.Duration(n)*time.Hour))}
		if n%3 == 0 && n+2 <= events {
			evs = append(evs, SessionDelivered(p, base.Add(time.Duration(n)*time.Hour+time.Minute)))
		}
		v = f.append(f.h.Store, newMeta(), []command.Write{write(p, v, evs...)}, nil)[p]
		n += len(evs)
	}
	envs := f.verify(f.h.Store, p, events)
	if len(envs) != events {
		f.t.Fatalf("%d events, want %d", len(envs), events)
	}
	h := f.load(f.h.Store, p, v)
	cold := f.load(f.h.Reopen(f.t), p, v)
	for i := range envs {
		if h.Events[i].Seq != envs[i].Seq || cold.Events[i].Seq != envs[i].Seq {
			f.t.Fatalf("event %d at %d (cached) and %d (cold), chain says %d", i, h.Events[i].Seq, cold.Events[i].Seq, envs[i].Seq)
		}
	}
}

func testStaleCache(f *fixture) {
	p, _, v := f.open(f.h.Store)
	a := f.h.Store
	if h, err := a.Load(f.ctx, p, false); err != nil || h.Version != v {
		f.t.Fatalf("Load: version %v, %v; want %d", h, err, v)
	}
	b := f.h.Reopen(f.t)
	f.load(b, p, v)
	v2 := f.deliver(b, p, v, 1)

	h, err := a.Load(f.ctx, p, false)
	if err != nil {
		f.t.Fatal(err)
	}
	checkHistory(f.t, h)
	if h.Version != v && h.Version != v2 {
		f.t.Fatalf("cached load at version %d, want %d (stale) or %d", h.Version, v, v2)
	}
	f.conflict(a, newMeta(), []command.Write{write(p, v, SessionDelivered(p, base))}, nil)
	h = f.load(a, p, v2)
	if len(h.Events) != 2 {
		f.t.Fatalf("fresh load has %d events, want 2", len(h.Events))
	}
	if h, err := a.Load(f.ctx, p, false); err != nil || h.Version != v2 {
		f.t.Fatalf("cached load after a fresh one: %+v, %v; want version %d", h, err, v2)
	}
	v3 := f.deliver(a, p, v2, 1)
	f.load(b, p, v3)
	f.verify(a, p, 3)
}

func testErasure(f *fixture) {
	p, w, v := f.open(f.h.Store)
	v = f.deliver(f.h.Store, p, v, 1)
	other := f.h.Reopen(f.t)
	for _, s := range []Store{f.h.Store, other} {
		h := f.load(s, p, v)
		if got := h.Events[0].Event.(*workerpath.TakenInCharge).Worker; got != w.who {
			f.t.Fatalf("before erasure: the worker's data do not round-trip (erased=%v)", got.Erased)
		}
	}
	before := f.verify(f.h.Store, p, 2)

	if err := f.h.Sealer.Erase(f.ctx, w.ref); err != nil {
		f.t.Fatal(err)
	}
	for i, s := range []Store{f.h.Store, other} {
		for _, fresh := range []bool{false, true} {
			h, err := s.Load(f.ctx, p, fresh)
			if err != nil {
				f.t.Fatalf("store %d, fresh %v: Load after erasure: %v", i, fresh, err)
			}
			if h.Version != v || len(h.Events) != 2 {
				f.t.Fatalf("store %d, fresh %v: version %d with %d events after erasure, want %d with 2", i, fresh, h.Version, len(h.Events), v)
			}
			got := h.Events[0].Event.(*workerpath.TakenInCharge)
			if got.Worker != (workerpath.Person{Erased: true}) {
				f.t.Fatalf("store %d, fresh %v: the worker's data are still readable after erasure (erased=%v)", i, fresh, got.Worker.Erased)
			}
			if got.WorkerRef != w.ref || got.Office != office {
				f.t.Fatalf("store %d, fresh %v: erasure lost the event's other fields", i, fresh)
			}
		}
	}
	after := f.verify(f.h.Store, p, 2)
	for i := range after {
		if after[i].Hash != before[i].Hash || !bytes.Equal(after[i].Data, before[i].Data) {
			f.t.Fatalf("event %d changed on the stream with the erasure", i)
		}
	}

	// Nothing new is sealed, hence stored, for an erased person.
	q := command.NewUUID()
	if _, err := f.h.Store.Append(f.ctx, newMeta(), []command.Write{write(q, 0, TakenInCharge(q, w.ref, w.who, base))}, nil); err == nil {
		f.t.Fatal("a new path was taken in charge for an erased worker")
	}
	if h, err := f.h.Store.Load(f.ctx, q, true); err != nil || h.Version != 0 {
		f.t.Fatalf("the refused path exists: %+v, %v", h, err)
	}
}

// forgeable is a path of three verified events to forge messages on; the
// test is skipped when the harness cannot forge.
func forgeable(f *fixture) (string, []*eventstore.Envelope) {
	if f.h.Forge == nil {
		f.t.Skip("the harness cannot forge messages")
	}
	p, _, v := f.open(f.h.Store)
	f.deliver(f.h.Store, p, v, 2)
	return p, f.verify(f.h.Store, p, 3)
}

func testTamper(f *fixture) {
	p, envs := forgeable(f)
	head := envs[2]

	// An altered copy of the last session: its data no longer match its hash.
	altered := *head
	altered.ID, altered.PrevSeq, altered.PrevInBatch, altered.PrevHash = command.NewUUID(), head.Seq, false, head.Hash
	altered.Hash = altered.ComputeHash()
	altered.Data = bytes.Replace(head.Data, []byte(`"actual_minutes":70`), []byte(`"actual_minutes":700`), 1)
	if bytes.Equal(altered.Data, head.Data) {
		f.t.Fatal("the forged event's data were not altered")
	}
	s1, err := f.h.Forge(f.ctx, &altered)
	if err != nil {
		f.t.Fatal(err)
	}
	// A well-formed event that links to the wrong predecessor.
	relinked := *head
	relinked.ID, relinked.PrevSeq, relinked.PrevInBatch, relinked.PrevHash = command.NewUUID(), s1, false, envs[0].Hash
	relinked.Hash = relinked.ComputeHash()
	s2, err := f.h.Forge(f.ctx, &relinked)
	if err != nil {
		f.t.Fatal(err)
	}

	got := f.readPath(f.h.Store, p, 5)
	r := eventstore.Verify(p, got)
	if r.OK || len(r.Problems) != 2 {
		f.t.Fatalf("Verify: ok=%v, problems %+v; want the two forged events reported", r.OK, r.Problems)
	}
	if r.Problems[0].Seq != s1 || !strings.Contains(r.Problems[0].Reason, "hash mismatch") {
		f.t.Errorf("first problem %+v, want a hash mismatch at %d", r.Problems[0], s1)
	}
	if r.Problems[1].Seq != s2 || !strings.Contains(r.Problems[1].Reason, "previous-hash link") {
		f.t.Errorf("second problem %+v, want a broken link at %d", r.Problems[1], s2)
	}
}

// testSkippingForgery: a well-formed message published past the API whose
// back-pointer and previous hash name the path's first event steps over
// every event in between. The chain walked from it is whole and verifies;
// the path's audit verification still fails, because the subject holds
// more messages than the chain links.
func testSkippingForgery(f *fixture) {
	p, envs := forgeable(f)
	ok, err := audit.New(f.h.Store, nil).Verify(f.ctx, p)
	if err != nil || !ok.OK {
		f.t.Fatalf("the untouched path: %+v, %v", ok, err)
	}

	forged := *envs[2]
	forged.ID, forged.PrevSeq, forged.PrevInBatch, forged.PrevHash = command.NewUUID(), envs[0].Seq, false, envs[0].Hash
	forged.Hash = forged.ComputeHash()
	seq, err := f.h.Forge(f.ctx, &forged)
	if err != nil {
		f.t.Fatal(err)
	}
	chain := f.readPath(f.h.Store, p, 2)
	if r := eventstore.Verify(p, chain); !r.OK {
		f.t.Fatalf("the shortened chain does not verify by itself (%+v): the test forges the wrong thing", r.Problems)
	}
	got, err := audit.New(f.h.Store, nil).Verify(f.ctx, p)
	if err != nil {
		f.t.Fatal(err)
	}
	if got.OK || len(got.Problems) != 1 || got.Problems[0].Seq != seq || !strings.Contains(got.Problems[0].Reason, "stepped over") {
		f.t.Errorf("verification of a path whose events a forged back-pointer skips: %+v", got)
	}
}
