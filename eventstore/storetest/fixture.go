package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// fixture is one subtest's view of a harness, with the helpers every test
// shares. Helpers fail the test on unexpected errors.
type fixture struct {
	t   *testing.T
	h   Harness
	ctx context.Context
}

func newFixture(t *testing.T, h Harness) *fixture {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, h: h, ctx: ctx}
}

// on returns the fixture for a subtest: helpers must fail the test whose
// goroutine they run on.
func (f *fixture) on(t *testing.T) *fixture {
	c := *f
	c.t = t
	return &c
}

func newMeta() command.Meta {
	return command.Meta{CommandID: command.NewUUID(), Actor: operator, CorrelationID: command.NewUUID()}
}

func write(pathID string, expected uint64, evs ...workerpath.Event) command.Write {
	return command.Write{PathID: pathID, Expected: expected, Events: evs}
}

// append runs one command and returns the new versions.
func (f *fixture) append(s Store, m command.Meta, writes []command.Write, idx *command.IndexEntry) map[string]uint64 {
	f.t.Helper()
	v, err := s.Append(f.ctx, m, writes, idx)
	if err != nil {
		f.t.Fatalf("Append: %v", err)
	}
	for _, w := range writes {
		if len(w.Events) > 0 && v[w.PathID] <= w.Expected {
			f.t.Fatalf("Append: path %s went from %d to %d", w.PathID, w.Expected, v[w.PathID])
		}
	}
	return v
}

// conflict runs a command that must fail with ErrConflict.
func (f *fixture) conflict(s Store, m command.Meta, writes []command.Write, idx *command.IndexEntry) {
	f.t.Helper()
	v, err := s.Append(f.ctx, m, writes, idx)
	if !errors.Is(err, command.ErrConflict) {
		f.t.Fatalf("Append with a stale expectation: got versions %v, error %v; want ErrConflict", v, err)
	}
}

// worker is a worker of the test's own.
type worker struct {
	who workerpath.Person
	ref string
}

func (f *fixture) newWorker() worker {
	who := Person()
	return worker{who: who, ref: f.h.Sealer.Pseudonym(who.TaxCode)}
}

// open takes a new worker in charge on a new path, index entry included,
// and returns the path, the worker and the path's version.
func (f *fixture) open(s Store) (string, worker, uint64) {
	f.t.Helper()
	w := f.newWorker()
	pathID := command.NewUUID()
	v := f.append(s, newMeta(), []command.Write{write(pathID, 0, TakenInCharge(pathID, w.ref, w.who, base))},
		&command.IndexEntry{WorkerRef: w.ref, Expected: 0, PathID: pathID, Status: command.IndexOpen})
	return pathID, w, v[pathID]
}

// deliver appends n sessions, one command each, and returns the version.
func (f *fixture) deliver(s Store, pathID string, from uint64, n int) uint64 {
	f.t.Helper()
	for i := range n {
		ev := SessionDelivered(pathID, base.Add(time.Duration(i+1)*time.Hour))
		from = f.append(s, newMeta(), []command.Write{write(pathID, from, ev)}, nil)[pathID]
	}
	return from
}

// load reads a path fresh until it reaches version want: a read that
// bypasses the cache may lag on a replicated stream, never run ahead.
func (f *fixture) load(s Store, pathID string, want uint64) *command.History {
	f.t.Helper()
	var h *command.History
	eventually(f.t, func() (bool, string) {
		var err error
		if h, err = s.Load(f.ctx, pathID, true); err != nil {
			f.t.Fatalf("Load %s: %v", pathID, err)
		}
		if h.Version > want {
			f.t.Fatalf("Load %s: version %d, want %d", pathID, h.Version, want)
		}
		return h.Version == want, fmt.Sprintf("Load %s: version %d, want %d", pathID, h.Version, want)
	})
	checkHistory(f.t, h)
	return h
}

// readPath reads a path's chain once it holds at least want events.
func (f *fixture) readPath(s Store, pathID string, want int) []*eventstore.Envelope {
	f.t.Helper()
	var envs []*eventstore.Envelope
	eventually(f.t, func() (bool, string) {
		var err error
		if envs, err = s.ReadPath(f.ctx, pathID); err != nil {
			f.t.Fatalf("ReadPath %s: %v", pathID, err)
		}
		return len(envs) >= want, fmt.Sprintf("ReadPath %s: %d events, want %d", pathID, len(envs), want)
	})
	return envs
}

// stored returns every message on a path's subject once there are at least
// want.
func (f *fixture) stored(pathID string, want int) []*eventstore.Envelope {
	f.t.Helper()
	var envs []*eventstore.Envelope
	eventually(f.t, func() (bool, string) {
		var err error
		if envs, err = f.h.Stored(f.ctx, pathID); err != nil {
			f.t.Fatalf("Stored %s: %v", pathID, err)
		}
		return len(envs) >= want, fmt.Sprintf("Stored %s: %d messages, want %d", pathID, len(envs), want)
	})
	return envs
}

// workerIndex reads a worker's index once its last entry is at seq.
func (f *fixture) workerIndex(s Store, ref string, seq uint64) command.WorkerIndex {
	f.t.Helper()
	var wi command.WorkerIndex
	eventually(f.t, func() (bool, string) {
		var err error
		if wi, err = s.Worker(f.ctx, ref); err != nil {
			f.t.Fatalf("Worker: %v", err)
		}
		return wi.Seq >= seq, fmt.Sprintf("Worker: index at %d, want %d", wi.Seq, seq)
	})
	return wi
}

// verify checks a path's chain and its length.
func (f *fixture) verify(s Store, pathID string, events int) []*eventstore.Envelope {
	f.t.Helper()
	envs := f.readPath(s, pathID, events)
	r := eventstore.Verify(pathID, envs)
	if !r.OK || r.Events != events {
		f.t.Fatalf("Verify %s: ok=%v events=%d (want %d) problems=%+v", pathID, r.OK, r.Events, events, r.Problems)
	}
	if r.HeadHash != envs[len(envs)-1].Hash {
		f.t.Fatalf("Verify %s: head hash %s, last event's %s", pathID, r.HeadHash, envs[len(envs)-1].Hash)
	}
	return envs
}

// checkHistory checks what every history must satisfy: sequences strictly
// increasing, Version the sequence of the last event.
func checkHistory(t *testing.T, h *command.History) {
	t.Helper()
	var prev uint64
	for i, r := range h.Events {
		if r.Seq <= prev {
			t.Fatalf("path %s: event %d at seq %d after seq %d", h.PathID, i, r.Seq, prev)
		}
		prev = r.Seq
	}
	if h.Version != prev {
		t.Fatalf("path %s: version %d, last event at seq %d", h.PathID, h.Version, prev)
	}
}

// sameEvent compares an event as loaded with the one appended. A loaded
// TakenInCharge also carries the sealed form, which the appended one never
// had. Mismatches are reported without the personal data.
func sameEvent(t *testing.T, i int, want, got workerpath.Event) {
	t.Helper()
	if g, ok := got.(*workerpath.TakenInCharge); ok {
		if g.WorkerSealed == "" {
			t.Errorf("event %d: TakenInCharge loaded without its sealed worker data", i)
		}
		cp := *g
		cp.WorkerSealed = ""
		got = &cp
		if w, ok := want.(*workerpath.TakenInCharge); ok && !reflect.DeepEqual(w.Worker, g.Worker) {
			t.Errorf("event %d: the worker's personal data differ after the round trip (erased=%v)", i, g.Worker.Erased)
		}
	}
	if g, ok := got.(*workerpath.TraineeshipActivated); ok {
		if g.HostSealed == "" {
			t.Errorf("event %d: TraineeshipActivated loaded without its sealed host code", i)
		}
		if w, ok := want.(*workerpath.TraineeshipActivated); ok && w.HostTaxCode != g.HostTaxCode {
			t.Errorf("event %d: the host's tax code differs after the round trip (erased=%v)", i, g.HostErased)
		}
		cp := *g
		cp.HostSealed = ""
		got = &cp
	}
	if !reflect.DeepEqual(want, got) {
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		t.Errorf("event %d (%s): round trip changed it\n got %T %s\nwant %T %s", i, want.EventType(), got, gj, want, wj)
	}
}

// ids returns the event ids of envelopes.
func ids(envs []*eventstore.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

// count returns how many envelopes carry id.
func count(envs []*eventstore.Envelope, id string) int {
	n := 0
	for _, e := range envs {
		if e.ID == id {
			n++
		}
	}
	return n
}
