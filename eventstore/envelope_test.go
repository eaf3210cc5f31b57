package eventstore_test

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/eventstore"
)

func sample() eventstore.Envelope {
	e := eventstore.Envelope{
		Seq:           42,
		ID:            "0b6c3f0e-9a51-5d0e-8f8a-1f3c2b7d9e11",
		Type:          "SessionDelivered",
		SchemaVersion: 1,
		PathID:        "5f2b8c1a-3d4e-4f60-9a7b-8c9d0e1f2a3b",
		Time:          time.Date(2025, time.March, 10, 9, 30, 0, 123456789, time.UTC),
		Actor:         "op.bianchi",
		CommandID:     "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
		CorrelationID: "c0ffee00-1111-4222-8333-444455556666",
		PrevSeq:       17,
		PrevHash:      strings.Repeat("ab", 32),
		Data:          []byte(`{"path_id":"5f2b8c1a-3d4e-4f60-9a7b-8c9d0e1f2a3b","service":3,"actual_minutes":70}`),
	}
	e.Hash = e.ComputeHash()
	return e
}

func TestComputeHashIsStable(t *testing.T) {
	e := sample()
	h := e.ComputeHash()
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("hash %q is not lowercase hex SHA-256", h)
	}
	for i := range 3 {
		if got := e.ComputeHash(); got != h {
			t.Fatalf("hashing again (%d) gave %s, first %s", i, got, h)
		}
	}
	cp := e
	cp.Data = append([]byte(nil), e.Data...)
	if cp.ComputeHash() != h {
		t.Fatal("a copy hashes differently")
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	cp.Time = e.Time.In(rome)
	if cp.ComputeHash() != h {
		t.Fatal("the same instant in another time zone hashes differently")
	}
	// A round trip through the stored headers keeps the hash.
	hdr := e.Headers()
	back, err := eventstore.FromHeaders(e.Seq, eventstore.EventSubject(e.PathID), func(k string) string { return hdr[k] }, e.Data)
	if err != nil {
		t.Fatal(err)
	}
	if back.ComputeHash() != h || back.Hash != h {
		t.Fatal("the envelope rebuilt from its headers hashes differently")
	}
}

func TestComputeHashCoversEveryMeaningfulField(t *testing.T) {
	changes := map[string]func(*eventstore.Envelope){
		"ID":            func(e *eventstore.Envelope) { e.ID = "0b6c3f0e-9a51-5d0e-8f8a-1f3c2b7d9e12" },
		"Type":          func(e *eventstore.Envelope) { e.Type = "PactSigned" },
		"SchemaVersion": func(e *eventstore.Envelope) { e.SchemaVersion = 2 },
		"PathID":        func(e *eventstore.Envelope) { e.PathID = "5f2b8c1a-3d4e-4f60-9a7b-8c9d0e1f2a3c" },
		"Time":          func(e *eventstore.Envelope) { e.Time = e.Time.Add(time.Nanosecond) },
		"Actor":         func(e *eventstore.Envelope) { e.Actor = "op.rossi" },
		"CommandID":     func(e *eventstore.Envelope) { e.CommandID = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d7" },
		"CorrelationID": func(e *eventstore.Envelope) { e.CorrelationID = "" },
		"PrevHash":      func(e *eventstore.Envelope) { e.PrevHash = strings.Repeat("ab", 31) + "ac" },
		"Data":          func(e *eventstore.Envelope) { e.Data = []byte(strings.Replace(string(e.Data), "70", "71", 1)) },
	}
	// Not hashed, on purpose: the sequence is unknown before the append
	// (Verify checks order through the back-pointers), and Hash is the
	// result itself.
	unhashed := map[string]func(*eventstore.Envelope){
		"Seq":         func(e *eventstore.Envelope) { e.Seq++ },
		"PrevSeq":     func(e *eventstore.Envelope) { e.PrevSeq++ },
		"PrevInBatch": func(e *eventstore.Envelope) { e.PrevInBatch = !e.PrevInBatch },
		"Hash":        func(e *eventstore.Envelope) { e.Hash = "" },
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[eventstore.Envelope]()) {
		if changes[f.Name] == nil && unhashed[f.Name] == nil {
			t.Errorf("Envelope.%s is new: decide whether ComputeHash covers it", f.Name)
		}
	}
	base := sample()
	h := base.ComputeHash()
	for name, change := range changes {
		e := sample()
		change(&e)
		if e.ComputeHash() == h {
			t.Errorf("changing %s leaves the hash unchanged", name)
		}
	}
	for name, change := range unhashed {
		e := sample()
		change(&e)
		if e.ComputeHash() != h {
			t.Errorf("changing %s changed the hash", name)
		}
	}
}

// TestComputeHashFieldBoundaries: fields are length-prefixed, so moving
// characters from one field to the next makes another event.
func TestComputeHashFieldBoundaries(t *testing.T) {
	a, b := sample(), sample()
	a.Actor, a.CommandID = "op.bianchi", "x"
	b.Actor, b.CommandID = "op.bianch", "ix"
	if a.ComputeHash() == b.ComputeHash() {
		t.Fatal("moving a character across a field boundary keeps the hash")
	}
	a, b = sample(), sample()
	a.CorrelationID, a.PrevHash = "", "1:x"
	b.CorrelationID, b.PrevHash = "1:x", ""
	if a.ComputeHash() == b.ComputeHash() {
		t.Fatal("swapping a value between adjacent fields keeps the hash")
	}
}

func TestFromHeaders(t *testing.T) {
	good := sample()
	inBatch := sample()
	inBatch.PrevInBatch, inBatch.PrevSeq = true, inBatch.Seq-1
	first := sample()
	first.PrevSeq, first.PrevHash = 0, ""
	for _, want := range []eventstore.Envelope{good, inBatch, first} {
		hdr := want.Headers()
		got, err := eventstore.FromHeaders(want.Seq, eventstore.EventSubject(want.PathID), func(k string) string { return hdr[k] }, want.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("round trip through headers:\n got %+v\nwant %+v", *got, want)
		}
	}

	bad := []struct {
		name    string
		seq     uint64
		subject string
		edit    func(map[string]string)
	}{
		{"not an event subject", good.Seq, eventstore.WorkerSubject("w"), nil},
		{"no id", good.Seq, "", func(h map[string]string) { delete(h, eventstore.HdrID) }},
		{"no type", good.Seq, "", func(h map[string]string) { delete(h, eventstore.HdrType) }},
		{"subject attribute of another path", good.Seq, "", func(h map[string]string) { h[eventstore.HdrSubject] = "other" }},
		{"bad time", good.Seq, "", func(h map[string]string) { h[eventstore.HdrTime] = "10/03/2025" }},
		{"bad schema version", good.Seq, "", func(h map[string]string) { h[eventstore.HdrSchemaVersion] = "v1" }},
		{"back-pointer forward", good.Seq, "", func(h map[string]string) { h[eventstore.HdrPrevSeq] = strconv.FormatUint(good.Seq, 10) }},
		{"back-pointer not a number", good.Seq, "", func(h map[string]string) { h[eventstore.HdrPrevSeq] = "-1" }},
		{"in-batch at the stream's start", 1, "", func(h map[string]string) {
			delete(h, eventstore.HdrPrevSeq)
			h[eventstore.HdrPrevInBatch] = "1"
		}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			hdr := good.Headers()
			if c.edit != nil {
				c.edit(hdr)
			}
			subject := c.subject
			if subject == "" {
				subject = eventstore.EventSubject(good.PathID)
			}
			if _, err := eventstore.FromHeaders(c.seq, subject, func(k string) string { return hdr[k] }, good.Data); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
