package natsjs_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/storetest"
)

// ceExtension is the CloudEvents rule for attribute names.
var ceExtension = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// TestWireFormat checks the stored messages as analytics consumers get
// them: CloudEvents binary mode, and no personal data in clear anywhere in
// the stream's bytes.
func TestWireFormat(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Server(t, dir)
	js, st := provisioned(t, srv.ClientURL(), 1)
	codec, sealer := storetest.NewCodec(t)
	s := natsjs.New(js, st, codec)
	ctx := timeout(t, 30*time.Second)

	who := storetest.Person()
	ref := sealer.Pseudonym(who.TaxCode)
	pathID := command.NewUUID()
	evs := storetest.AllTypes(pathID, ref, who)
	m := command.Meta{CommandID: command.NewUUID(), Actor: "op.bianchi", CorrelationID: command.NewUUID()}
	v, err := s.Append(ctx, m, []command.Write{{PathID: pathID, Events: evs}},
		&command.IndexEntry{WorkerRef: ref, PathID: pathID, Status: command.IndexOpen})
	if err != nil {
		t.Fatal(err)
	}
	last := v[pathID]
	first := last - uint64(len(evs)) + 1

	var raw bytes.Buffer
	for seq := uint64(1); seq <= last+1; seq++ { // the index entry follows the events
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		raw.WriteString(msg.Subject)
		for k, vs := range msg.Header {
			raw.WriteString(k + ":" + strings.Join(vs, ",") + "\n")
		}
		raw.Write(msg.Data)
		if seq < first || seq > last {
			continue
		}
		i := int(seq - first)
		ev := evs[i]
		get := func(name string) string {
			vs, ok := msg.Header[name] // exact case: nats.go lookups are case-sensitive
			if !ok || len(vs) != 1 {
				t.Errorf("seq %d: header %q is %v, want exactly one value", seq, name, vs)
				return ""
			}
			return vs[0]
		}
		want := map[string]string{
			"ce-specversion": "1.0",
			"ce-id":          command.EventID(m.CommandID, i),
			"ce-type":        ev.EventType(),
			"ce-source":      eventstore.Source,
			"ce-subject":     pathID,
			"content-type":   "application/json",
			"Nats-Msg-Id":    command.EventID(m.CommandID, i),
			"ce-commandid":   m.CommandID,
			"ce-actor":       m.Actor,
		}
		for name, value := range want {
			if got := get(name); got != value {
				t.Errorf("seq %d: %s is %q, want %q", seq, name, got, value)
			}
		}
		at, err := time.Parse(time.RFC3339, get("ce-time"))
		if err != nil || !at.Equal(ev.Header().RecordedAt) {
			t.Errorf("seq %d: ce-time %q (%v), want RFC 3339 of %v", seq, get("ce-time"), err, ev.Header().RecordedAt)
		}
		for name := range msg.Header {
			ext, ok := strings.CutPrefix(name, "ce-")
			if ok && !ceExtension.MatchString(ext) {
				t.Errorf("seq %d: %q is not a valid CloudEvents attribute name", seq, name)
			}
			if !ok && strings.HasPrefix(strings.ToLower(name), "ce-") {
				t.Errorf("seq %d: %q is a CloudEvents header not in lowercase", seq, name)
			}
		}
		if !json.Valid(msg.Data) {
			t.Errorf("seq %d: data is not JSON", seq)
		}
	}

	secrets := map[string]string{
		"tax code":    who.TaxCode,
		"given name":  who.GivenName,
		"family name": who.FamilyName,
		"birth date":  who.BirthDate.String(),
	}
	for what, secret := range secrets {
		if bytes.Contains(raw.Bytes(), []byte(secret)) {
			t.Errorf("the stream holds the worker's %s in clear", what)
		}
	}
	// The sealed form opens again.
	h, err := s.Load(ctx, pathID, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Events[0].Event.(*workerpath.TakenInCharge).Worker; got != who {
		t.Fatal("the worker's data do not open again")
	}

	// Nor does any file the server wrote: stopping it flushes its blocks,
	// and the path id (not personal) shows the events did reach the disk.
	srv.Shutdown()
	srv.WaitForShutdown()
	found := false
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(b, []byte(pathID))
		for what, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the worker's %s in clear", filepath.Base(path), what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no store file holds the path: the scan saw nothing")
	}
}
