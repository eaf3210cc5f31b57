package workerpath_test

// The JSON of every event type is a published contract: analytics reads it
// straight off the stream. The golden files pin it, so a renamed tag or a
// changed omitempty shows up as a failing diff instead of a silent break.
// Regenerate on purpose with: go test ./domain/workerpath -run Golden -update

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wp "github.com/percorso/percorso/domain/workerpath"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const (
	goldenPath   = "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f"
	goldenWorker = "9b1e4c2f7a6d8e0b3c5a7f9e1d2c4b6a"
	// The sealed worker is opaque to this package; the store seals it.
	goldenSealed     = "v1.cGxhY2Vob2xkZXItY2lwaGVydGV4dC1vZi10aGUtd29ya2Vy"
	goldenHostSealed = "v1.cGxhY2Vob2xkZXItY2lwaGVydGV4dC1vZi10aGUtaG9zdA"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func meta(recorded string) wp.Meta {
	return wp.Meta{PathID: goldenPath, Office: "BO01", Operator: "mrossi", RecordedAt: at(recorded)}
}

// goldenEvents is one realistic value of every event type.
func goldenEvents() map[string]wp.Event {
	return map[string]wp.Event{
		wp.TypeTakenInCharge: &wp.TakenInCharge{
			Meta:      meta("2011-01-10T09:05:12Z"),
			WorkerRef: goldenWorker,
			Worker: wp.Person{TaxCode: "RSSMRA80A01H501U", GivenName: "Mario", FamilyName: "Rossi",
				BirthDate: wp.MustDate("1980-01-01"), Disability: true, MediatorLanguage: "ar"},
			WorkerSealed:     goldenSealed,
			Category:         "c",
			Support:          wp.Support{Kind: wp.SupportCIG, AgreementCode: "ER-2010-0457", From: wp.MustDate("2010-12-01"), To: wp.MustDate("2011-11-30")},
			TakenAt:          at("2011-01-10T09:00:00Z"),
			CatalogueVersion: wp.CatalogueVersion,
		},
		wp.TypeSessionDelivered: &wp.SessionDelivered{
			Meta:              meta("2011-03-10T12:31:00Z"),
			SessionID:         "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
			Service:           wp.SvcGroup,
			DeliveredAt:       at("2011-03-10T09:00:00Z"),
			StandardMinutes:   240,
			CreditedMinutes:   288,
			ActualMinutes:     210,
			MediatorPresent:   true,
			GroupID:           "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
			GroupSize:         5,
			Justification:     "due partecipanti assenti per sciopero dei trasporti",
			OutsideGroupRange: true,
			OutsideSupport:    false,
			CatalogueVersion:  wp.CatalogueVersion,
		},
		wp.TypePactSigned: &wp.PactSigned{
			Meta:      meta("2011-01-10T09:40:00Z"),
			SignedAt:  at("2011-01-10T09:35:00Z"),
			DIDOn:     wp.MustDate("2011-01-10"),
			SessionID: "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
		},
		wp.TypeTraineeshipActivated: &wp.TraineeshipActivated{
			Meta:          meta("2011-04-01T08:15:00Z"),
			WorkerRef:     goldenWorker,
			TraineeshipID: "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
			HostTaxCode:   "00743110157",
			HostSealed:    goldenHostSealed,
			StartsOn:      wp.MustDate("2011-04-04"),
			EndsOn:        wp.MustDate("2011-10-03"),
			ActivatedAt:   at("2011-04-01T08:00:00Z"),
		},
		wp.TypePathVerified: &wp.PathVerified{
			Meta:       meta("2011-06-20T10:05:00Z"),
			VerifiedAt: at("2011-06-20T09:00:00Z"),
			Outcome:    wp.OutcomePartiallyAchieved,
			Note:       "tirocinio concluso, in attesa di proposta di assunzione",
			SessionID:  "3d4e5f6a-7b8c-4d9e-8f0a-1b2c3d4e5f6a",
		},
		wp.TypeNoShowRecorded: &wp.NoShowRecorded{
			Meta:          meta("2011-02-16T08:30:00Z"),
			AppointmentAt: at("2011-02-15T09:00:00Z"),
			Justified:     false,
			Kind:          wp.NoShowSecond,
			Unjustified:   2,
			ReportToINPS:  true,
		},
		wp.TypeRefusalReported: &wp.RefusalReported{
			Meta: meta("2011-05-03T11:00:00Z"),
			Kind: wp.RefusalJobOffer,
			At:   at("2011-05-02T15:30:00Z"),
			Note: "offerta di lavoro congrua rifiutata senza motivo",
		},
		wp.TypePathClosed: &wp.PathClosed{
			Meta:     meta("2011-06-30T08:00:00Z"),
			ClosedAt: at("2011-06-29T16:00:00Z"),
			Reason:   wp.CloseReemployed,
		},
		wp.TypePersonalDataErased: &wp.PersonalDataErased{
			Meta:      meta("2014-09-01T07:00:00Z"),
			WorkerRef: goldenWorker,
			ErasedAt:  at("2014-09-01T07:00:00Z"),
		},
	}
}

func TestGoldenEvents(t *testing.T) {
	events := goldenEvents()
	if len(events) != len(wp.EventTypes) {
		t.Errorf("%d golden values for %d event types", len(events), len(wp.EventTypes))
	}
	for _, typ := range wp.EventTypes {
		t.Run(typ, func(t *testing.T) {
			e, ok := events[typ]
			if !ok {
				t.Fatalf("no golden value for %s", typ)
			}
			if e.EventType() != typ {
				t.Fatalf("value for %s has type %s", typ, e.EventType())
			}
			got, err := json.MarshalIndent(e, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join("testdata", "golden", typ+".json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s JSON changed; fields may only be added (then run -update):\ngot:\n%s\nwant:\n%s", typ, got, want)
			}

			// The golden JSON decodes into the type NewEvent gives and
			// encodes back to itself: readers and writers agree.
			back, ok := wp.NewEvent(typ)
			if !ok {
				t.Fatalf("NewEvent does not know %s", typ)
			}
			dec := json.NewDecoder(bytes.NewReader(want))
			dec.DisallowUnknownFields()
			if err := dec.Decode(back); err != nil {
				t.Fatalf("golden %s does not decode: %v", typ, err)
			}
			again, err := json.MarshalIndent(back, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(again, '\n'), want) {
				t.Errorf("%s does not survive a round trip:\n%s", typ, again)
			}

			// Every event is traceable: path, office, operator, recording time.
			var m map[string]any
			if err := json.Unmarshal(want, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"path_id", "office", "operator", "recorded_at"} {
				if _, ok := m[k]; !ok {
					t.Errorf("%s has no %s", typ, k)
				}
			}
		})
	}
}

// TestTakenInChargeKeepsThePersonSealed: the worker's identity and special
// data leave the process only inside worker_sealed.
func TestTakenInChargeKeepsThePersonSealed(t *testing.T) {
	e := goldenEvents()[wp.TypeTakenInCharge].(*wp.TakenInCharge)
	for name, b := range map[string][]byte{"marshalled": mustJSON(t, e), "golden": mustRead(t, filepath.Join("testdata", "golden", "TakenInCharge.json"))} {
		s := string(b)
		if !strings.Contains(s, `"worker_sealed": "`+goldenSealed+`"`) && !strings.Contains(s, `"worker_sealed":"`+goldenSealed+`"`) {
			t.Errorf("%s: worker_sealed missing:\n%s", name, s)
		}
		for _, secret := range []string{
			e.Worker.TaxCode, e.Worker.GivenName, e.Worker.FamilyName, "1980-01-01",
			`"tax_code"`, `"given_name"`, `"family_name"`, `"birth_date"`, `"disability"`, `"mediator_language"`, `"worker"`,
		} {
			if strings.Contains(s, secret) {
				t.Errorf("%s TakenInCharge JSON contains %s", name, secret)
			}
		}
	}
	// Decoding never fills the in-memory worker: only the store unseals it.
	var back wp.TakenInCharge
	if err := json.Unmarshal(mustJSON(t, e), &back); err != nil {
		t.Fatal(err)
	}
	if back.Worker != (wp.Person{}) {
		t.Errorf("decoded worker = %+v, want empty", back.Worker)
	}
}

// TestPersonJSON pins the sealed payload's own shape.
func TestPersonJSON(t *testing.T) {
	p := wp.Person{TaxCode: "RSSMRA80A01H501U", GivenName: "Mario", FamilyName: "Rossi", Disability: true, Erased: true}
	got := string(mustJSON(t, p))
	want := `{"tax_code":"RSSMRA80A01H501U","given_name":"Mario","family_name":"Rossi","disability":true}`
	if got != want {
		t.Errorf("Person JSON = %s, want %s", got, want)
	}
	p.BirthDate, p.MediatorLanguage = wp.MustDate("1980-01-01"), "ar"
	got = string(mustJSON(t, p))
	want = `{"tax_code":"RSSMRA80A01H501U","given_name":"Mario","family_name":"Rossi","birth_date":"1980-01-01","disability":true,"mediator_language":"ar"}`
	if got != want {
		t.Errorf("Person JSON = %s, want %s", got, want)
	}
}

func TestNewEvent(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range wp.EventTypes {
		if seen[typ] {
			t.Errorf("%s listed twice", typ)
		}
		seen[typ] = true
		e, ok := wp.NewEvent(typ)
		if !ok || e.EventType() != typ {
			t.Errorf("NewEvent(%q) = %v, %v", typ, e, ok)
		}
	}
	for _, typ := range []string{"", "takenincharge", "SessionCancelled"} {
		if _, ok := wp.NewEvent(typ); ok {
			t.Errorf("NewEvent(%q) succeeded", typ)
		}
	}
}

// TestApplyNeverPanics: Apply folds any event onto any state, even a history
// that does not begin with the take-in-charge.
func TestApplyNeverPanics(t *testing.T) {
	for _, typ := range wp.EventTypes {
		e, _ := wp.NewEvent(typ)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Apply(%s) on an empty path panicked: %v", typ, r)
				}
			}()
			p := &wp.Path{}
			p.Apply(e)
			if p.Events != 1 {
				t.Errorf("Apply(%s): Events = %d", typ, p.Events)
			}
		}()
	}
	// A whole history folds in order, and Rebuild agrees with Apply.
	var history []wp.Event
	for _, typ := range wp.EventTypes {
		history = append(history, goldenEvents()[typ])
	}
	p := wp.Rebuild(history)
	if p.Status != wp.StatusClosed || !p.Erased || p.Delivered[wp.SvcGroup] != 1 || p.CreditedTotal() != 288 ||
		!p.Traineeships["2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"] || p.Pact == nil || p.Verified == nil ||
		p.Unjustified != 2 || p.Refusals != 1 || p.Events != len(history) || p.Worker.TaxCode != "" {
		t.Errorf("Rebuild = %+v", p)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
