package natsjs_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/storetest"
)

// TestSnapshots: a long path is loaded from its snapshot plus the events
// after it, with the same state a full replay gives; retries are still
// recognised; a snapshot that does not link to the stream is ignored; and
// erasure reaches the personal data a snapshot keeps (sealed).
func TestSnapshots(t *testing.T) {
	ctx := timeout(t, 60*time.Second)
	s := natstest.Server(t, "")
	js, st := provisioned(t, s.ClientURL(), 1)
	kv, err := natsjs.SnapshotStore(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	codec, sealer := storetest.NewCodec(t)
	withSnaps := natsjs.New(js, st, codec, natsjs.WithSnapshots(kv, 10))
	plain := natsjs.New(js, st, codec, natsjs.WithCacheSize(0))

	who := storetest.Person()
	ref := sealer.Pseudonym(who.TaxCode)
	p := command.NewUUID()
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	v, err := withSnaps.Append(ctx, command.Meta{CommandID: command.NewUUID(), Actor: "op"},
		[]command.Write{{PathID: p, Events: []workerpath.Event{storetest.TakenInCharge(p, ref, who, at)}}},
		&command.IndexEntry{WorkerRef: ref, PathID: p, Status: command.IndexOpen})
	if err != nil {
		t.Fatal(err)
	}
	version := v[p]
	var lastCmd string
	for i := range 34 {
		lastCmd = command.NewUUID()
		v, err := withSnaps.Append(ctx, command.Meta{CommandID: lastCmd, Actor: "op"},
			[]command.Write{{PathID: p, Expected: version, Events: []workerpath.Event{storetest.SessionDelivered(p, at.Add(time.Duration(i+1)*time.Hour))}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		version = v[p]
	}
	if _, err := kv.Get(ctx, p); err != nil {
		t.Fatalf("no snapshot written for a 35-event path: %v", err)
	}
	state := func(h *command.History) string {
		b, _ := json.Marshal(h.State())
		return string(b)
	}
	full, err := plain.Load(ctx, p, true)
	if err != nil || len(full.Events) != 35 || full.Base != nil {
		t.Fatalf("full load: %d events, base %v, %v", len(full.Events), full.Base != nil, err)
	}
	cold := natsjs.New(js, st, codec, natsjs.WithSnapshots(kv, 10))
	h, err := cold.Load(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if h.Base == nil || len(h.Events) >= 10 || h.Version != version {
		t.Fatalf("cold load: base %v, %d events, version %d (want a snapshot, < 10 events, version %d)", h.Base != nil, len(h.Events), h.Version, version)
	}
	if state(h) != state(full) {
		t.Errorf("state from snapshot differs from a full replay:\n%s\n%s", state(h), state(full))
	}
	if h.State().Worker.TaxCode != who.TaxCode {
		t.Errorf("personal data not opened from the snapshot: %+v", h.State().Worker)
	}
	raw, _ := kv.Get(ctx, p)
	if bytes.Contains(raw.Value(), []byte(who.TaxCode)) || bytes.Contains(raw.Value(), []byte(who.FamilyName)) {
		t.Error("the snapshot holds personal data in clear")
	}
	// A retry of a command folded into the snapshot is still recognised.
	if seq, ok := h.BaseCommands[lastCmd]; !ok && !landedIn(h, lastCmd) {
		t.Errorf("the last command is not recognisable after the snapshot (%d)", seq)
	}

	// A snapshot that does not link to the stream is not trusted.
	forged := map[string]any{}
	json.Unmarshal(raw.Value(), &forged)
	forged["last_hash"] = "0000"
	forged["version"] = float64(version - 3)
	b, _ := json.Marshal(forged)
	if _, err := kv.Put(ctx, p, b); err != nil {
		t.Fatal(err)
	}
	h, err = natsjs.New(js, st, codec, natsjs.WithSnapshots(kv, 10)).Load(ctx, p, false)
	if err != nil || state(h) != state(full) {
		t.Errorf("a forged snapshot changed the loaded state: %v", err)
	}

	// Erasure reaches the snapshot's sealed copy.
	if err := sealer.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	kv.Put(ctx, p, raw.Value())
	h, err = natsjs.New(js, st, codec, natsjs.WithSnapshots(kv, 10)).Load(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if w := h.State().Worker; !w.Erased || w.TaxCode != "" {
		t.Errorf("after erasure the snapshot still opens: %+v", w)
	}
}

func landedIn(h *command.History, id string) bool {
	for _, r := range h.Events {
		if r.CommandID == id {
			return true
		}
	}
	return false
}
