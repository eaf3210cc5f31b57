package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/privacy"
)

func testCodec(t *testing.T) (*eventstore.Codec, *privacy.Sealer) {
	t.Helper()
	sealer, err := privacy.NewSealer(bytes.Repeat([]byte{7}, 32), privacy.NewMemoryKeyStore())
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.NewCodec(sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) }), sealer
}

// An event stored at an older schema version is upcast on read, step by
// step, before it is decoded; without its upcaster it is an error, never a
// silently wrong event.
func TestUpcasting(t *testing.T) {
	codec, _ := testCodec(t)
	// Version 0 called the field "minutes" where version 1 says actual_minutes.
	old := []byte(`{"path_id":"p","office":"BO01","operator":"op","recorded_at":"2011-01-01T00:00:00Z","session_id":"s","service":3,
		"delivered_at":"2011-01-01T09:00:00Z","standard_minutes":60,"credited_minutes":60,"minutes":45,"mediator_present":false,"catalogue_version":"ER-2009-A3"}`)
	if _, err := codec.Decode(context.Background(), workerpath.TypeSessionDelivered, 0, old, eventstore.DecodeOptions{}); err == nil {
		t.Fatal("an old version without an upcaster was decoded")
	}
	codec.RegisterUpcaster(workerpath.TypeSessionDelivered, 0, func(data []byte) ([]byte, error) {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		m["actual_minutes"] = m["minutes"]
		delete(m, "minutes")
		return json.Marshal(m)
	})
	ev, err := codec.Decode(context.Background(), workerpath.TypeSessionDelivered, 0, old, eventstore.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := ev.(*workerpath.SessionDelivered); s.ActualMinutes != 45 || s.Service != 3 {
		t.Errorf("upcast event = %+v", s)
	}
	if _, err := codec.Decode(context.Background(), workerpath.TypeSessionDelivered, eventstore.SchemaVersion+1, old, eventstore.DecodeOptions{}); err == nil {
		t.Error("a version newer than this build was decoded")
	}
}

// Personal data is sealed on the way out, opened on the way in, skipped when
// asked, and marked erased once the worker's key is destroyed.
func TestCodecSealsPersonalData(t *testing.T) {
	codec, sealer := testCodec(t)
	ctx := context.Background()
	who := workerpath.Person{TaxCode: "RSSMRA80A01H501U", GivenName: "Mario", FamilyName: "Rossi", Disability: true}
	ref := sealer.Pseudonym(who.TaxCode)
	data, err := codec.Encode(ctx, &workerpath.TakenInCharge{Meta: workerpath.Meta{PathID: "p"}, WorkerRef: ref, Worker: who, Category: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{who.TaxCode, who.GivenName, who.FamilyName, "disability"} {
		if strings.Contains(string(data), clear) {
			t.Errorf("encoded data shows %q in clear: %s", clear, data)
		}
	}
	decode := func(opt eventstore.DecodeOptions) workerpath.Person {
		ev, err := codec.Decode(ctx, workerpath.TypeTakenInCharge, eventstore.SchemaVersion, data, opt)
		if err != nil {
			t.Fatal(err)
		}
		return ev.(*workerpath.TakenInCharge).Worker
	}
	if got := decode(eventstore.DecodeOptions{}); got != who {
		t.Errorf("opened %+v, want %+v", got, who)
	}
	if got := decode(eventstore.DecodeOptions{SkipPersonal: true}); got != (workerpath.Person{}) {
		t.Errorf("skipped personal data still decoded: %+v", got)
	}
	if err := sealer.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if got := decode(eventstore.DecodeOptions{}); !got.Erased || got.TaxCode != "" {
		t.Errorf("after erasure: %+v", got)
	}
}
