package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/percorso/percorso/adapters/wire"
)

// The two command edges, HTTP and NATS, share one dispatcher; these tests
// hold them to it from the outside: a worker's path built over one
// transport must be, event for event, the path built over the other, and a
// bad request must be refused alike.

// commandSender sends one command over one transport. pathID and tax are where HTTP
// carries them in the URL and NATS in the body; "" when the command has
// neither.
type commandSender func(t *testing.T, key, name, pathID, tax, body string, hdr ...string) (int, map[string]any)

// httpRoute is a command's HTTP route.
func httpRoute(name, pathID, tax string) string {
	switch name {
	case "take_in_charge":
		return "/v1/paths"
	case "deliver_group_session":
		return "/v1/group-sessions"
	case "erase_worker":
		return "/v1/workers/" + tax + "/erasure"
	}
	return "/v1/paths/" + pathID + "/" + commandSpecs[name].route
}

func (e *rolesEnv) sendHTTP(t *testing.T, key, name, pathID, tax, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	st, out, _ := e.http(t, key).do("POST", httpRoute(name, pathID, tax), body, hdr...)
	return st, out
}

// sendNATS puts the path id or tax code first in the body, as text, so that
// a malformed body stays exactly as malformed as over HTTP.
func (e *rolesEnv) sendNATS(t *testing.T, key, name, pathID, tax, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	field, value := "path_id", pathID
	if name == "erase_worker" {
		field, value = "tax_code", tax
		if body == "" {
			body = "{}"
		}
	}
	if value != "" {
		rest, ok := strings.CutPrefix(body, "{")
		if !ok {
			t.Fatalf("nats %s: body %q is not an object", name, body)
		}
		sep := ","
		if strings.HasPrefix(strings.TrimSpace(rest), "}") {
			sep = ""
		}
		body = fmt.Sprintf(`{%q:%q%s%s`, field, value, sep, rest)
	}
	return e.nats(t, key).call(name, body, hdr...)
}

// transportWorker is a take_in_charge body for the transport tests: every
// field but the tax code is the same for both workers.
func transportWorker(tax string) string {
	return fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":"Amina","family_name":"Haddad","birth_date":"1968-11-30",
		"disability":true,"mediator_language":"ar"},"category":"c","support":{"kind":"cig_deroga","agreement_code":"ER-2009-114",
		"from":"2010-01-04","to":"2010-12-31"},"office":"BO01","taken_at":"2010-02-01T09:00:00+01:00"}`, tax)
}

// story is the same worker's path told over one transport: a main path
// and a companion sharing its group session, whose worker is then erased.
type story struct {
	path, companion  string
	taxPath, taxComp string
	replies          []map[string]any
}

func tell(t *testing.T, e *rolesEnv, via commandSender, taxPath, taxComp string) story {
	t.Helper()
	s := story{taxPath: taxPath, taxComp: taxComp}
	must := func(key, name, pathID, tax, body string) map[string]any {
		t.Helper()
		st, out := via(t, key, name, pathID, tax, body)
		if st != okStatus(name) {
			t.Fatalf("%s: %d %v", name, st, out)
		}
		s.replies = append(s.replies, out)
		return out
	}
	s.path = must(keyOperator, "take_in_charge", "", "", transportWorker(taxPath))["path_id"].(string)
	s.companion = must(keyOperator, "take_in_charge", "", "", transportWorker(taxComp))["path_id"].(string)
	for _, step := range []struct{ name, pathID, body string }{
		{"deliver_session", s.path, `{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25,"mediator_present":true,
			"pact":{"signed_at":"2010-02-01T09:50:00+01:00","did_on":"2010-02-01"}}`},
		{"sign_pact", s.companion, `{"signed_at":"2010-02-01T11:00:00+01:00","did_on":"2010-01-29"}`},
		{"deliver_group_session", "", fmt.Sprintf(`{"service":4,"delivered_at":"2010-02-05T09:00:00+01:00","minutes":230,
			"participants":[%q,%q],"justification":"only two workers of the plant left"}`, s.path, s.companion)},
		{"deliver_session", s.path, `{"service":5,"delivered_at":"2010-02-08T09:30:00+01:00","minutes":85,"justification":"second interview"}`},
		{"activate_traineeship", s.path, `{"host_tax_code":"00743110157","starts_on":"2010-03-01","ends_on":"2010-06-30",
			"delivered_at":"2010-02-20T10:00:00+01:00","minutes":700}`},
		{"verify_path", s.path, `{"verified_at":"2010-06-30T10:00:00+02:00","outcome":"partially_achieved","minutes":55,"note":"hours reduced"}`},
		{"record_no_show", s.path, `{"appointment_at":"2010-07-01T09:00:00+02:00","justified":false}`},
		{"record_no_show", s.path, `{"appointment_at":"2010-07-08T09:00:00+02:00","justified":true,"reason":"illness"}`},
		{"report_refusal", s.path, `{"kind":"convocation","at":"2010-07-15T09:00:00+02:00","note":"by phone"}`},
		{"close_path", s.path, `{"closed_at":"2010-07-20T09:00:00+02:00","reason":"decadenza"}`},
	} {
		must(keyOperator, step.name, step.pathID, "", step.body)
	}
	must(keyAdmin, "erase_worker", "", taxComp, "")
	return s
}

// ignoredFields differ between two tellings of the same story by nature:
// ids the server makes, the paths and workers they belong to, sealed
// values, versions and sequences, hashes, and the times of recording.
var ignoredFields = map[string]bool{
	"id": true, "path_id": true, "session_id": true, "group_id": true, "traineeship_id": true,
	"worker_ref": true, "worker_sealed": true, "host_sealed": true,
	"seq": true, "version": true, "versions": true, "hash": true, "prev_hash": true,
	"time": true, "recorded_at": true, "erased_at": true,
}

// diffJSON lists where two decoded JSON values differ, outside
// ignoredFields and the tax code, which is what tells the workers apart.
func diffJSON(at string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			if ignoredFields[k] || (k == "tax_code" && strings.HasSuffix(at, ".worker")) {
				continue
			}
			va, ina := am[k]
			vb, inb := bm[k]
			if ina != inb {
				out = append(out, fmt.Sprintf("%s.%s: present on one side only (%v / %v)", at, k, va, vb))
				continue
			}
			out = append(out, diffJSON(at+"."+k, va, vb)...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, diffJSON(fmt.Sprintf("%s[%d]", at, i), al[i], bl[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(a, b) {
		return []string{fmt.Sprintf("%s: %v / %v", at, a, b)}
	}
	return nil
}

// streamHistory reads a path's events from the stream, as an auditor.
func streamHistory(t *testing.T, e *rolesEnv, id string) []map[string]any {
	t.Helper()
	st, h, _ := e.http(t, keyAuditor).do("GET", "/v1/paths/"+id+"/history", "")
	if st != http.StatusOK {
		t.Fatalf("history of %s: %d %v", id, st, h)
	}
	var out []map[string]any
	for _, ev := range h["events"].([]any) {
		out = append(out, ev.(map[string]any))
	}
	return out
}

func eventTypes(evs []map[string]any) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprint(ev["type"]))
	}
	return out
}

// TestTransports: one percorso, the same commands and the same bad
// requests over HTTP and over NATS.
func TestTransports(t *testing.T) {
	e := startWithPrincipals(t)
	t.Run("same_events", func(t *testing.T) { testSameEvents(t, e) })
	t.Run("metrics_count_both", func(t *testing.T) { testMetricsCountBoth(t, e) })
	t.Run("too_large_over_nats", func(t *testing.T) { testTooLargeOverNATS(t, e) })
	t.Run("same_errors", func(t *testing.T) { testSameErrors(t, e) })
}

// testTooLargeOverNATS: the embedded NATS lets a body past API.md's 1 MiB
// through, so percorso answers 413 as over HTTP, rather than the client
// failing before sending.
func testTooLargeOverNATS(t *testing.T, e *rolesEnv) {
	msg := nats.NewMsg("percorso.cmd.deliver_session")
	msg.Header.Set("Authorization", "Bearer "+e.tokens["operator"])
	msg.Data = bytes.Repeat([]byte(" "), wire.MaxBody+1)
	reply, err := e.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("a body of %d bytes over NATS: %v", len(msg.Data), err)
	}
	if got := reply.Header.Get("Nats-Service-Error-Code"); got != "413" {
		t.Errorf("a body of %d bytes over NATS: status %q, want 413: %s", len(msg.Data), got, reply.Data)
	}
}

// testMetricsCountBoth: the story was told once over each transport, and
// /metrics counts the commands of both, not the HTTP ones alone.
func testMetricsCountBoth(t *testing.T, e *rolesEnv) {
	resp, err := http.Get(e.m.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range []struct {
		command string
		atLeast int
	}{{"take_in_charge", 4}, {"activate_traineeship", 2}, {"erase_worker", 2}} {
		prefix := fmt.Sprintf("percorso_commands_total{command=%q,outcome=\"ok\"} ", c.command)
		n := -1
		for line := range strings.Lines(string(raw)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		if n < c.atLeast {
			t.Errorf("%s counted %d times, want at least %d (HTTP and NATS):\n%s", c.command, n, c.atLeast, raw)
		}
	}
}

func testSameEvents(t *testing.T, e *rolesEnv) {
	overHTTP := tell(t, e, e.sendHTTP, freshTaxCode(t, e.next.Add(1)), freshTaxCode(t, e.next.Add(1)))
	overNATS := tell(t, e, e.sendNATS, freshTaxCode(t, e.next.Add(1)), freshTaxCode(t, e.next.Add(1)))

	// The replies carry the same fields; their values are ids and versions.
	for i := range overHTTP.replies {
		if diff := diffJSON(fmt.Sprintf("reply %d", i), overHTTP.replies[i], overNATS.replies[i]); len(diff) > 0 {
			t.Errorf("replies differ: %s", strings.Join(diff, "; "))
		}
	}

	for _, pair := range []struct {
		name       string
		http, nats string
		taxes      [2]string // "" where the worker is erased
		want       []string
	}{
		{"path", overHTTP.path, overNATS.path, [2]string{overHTTP.taxPath, overNATS.taxPath}, []string{
			"TakenInCharge", "SessionDelivered", "PactSigned", "SessionDelivered", "SessionDelivered",
			"TraineeshipActivated", "SessionDelivered", "SessionDelivered", "PathVerified",
			"NoShowRecorded", "NoShowRecorded", "RefusalReported", "PathClosed"}},
		{"companion", overHTTP.companion, overNATS.companion, [2]string{}, []string{
			"TakenInCharge", "PactSigned", "SessionDelivered", "PersonalDataErased"}},
	} {
		a, b := streamHistory(t, e, pair.http), streamHistory(t, e, pair.nats)
		if ta, tb := eventTypes(a), eventTypes(b); !slices.Equal(ta, tb) || !slices.Equal(ta, pair.want) {
			t.Errorf("%s events: http %v, nats %v, want %v", pair.name, ta, tb, pair.want)
			continue
		}
		for i, tax := range []string{pair.taxes[0], pair.taxes[1]} {
			worker, _ := []map[string]any{a[0], b[0]}[i]["data"].(map[string]any)["worker"].(map[string]any)
			want := tax
			if tax == "" {
				want = "[erased]"
			}
			if worker["tax_code"] != want {
				t.Errorf("%s over %s: worker tax code %v, want the one sent", pair.name, []string{"http", "nats"}[i], worker["tax_code"])
			}
		}
		for i := range a {
			if diff := diffJSON(fmt.Sprintf("%s event %d (%s)", pair.name, i, a[i]["type"]), a[i], b[i]); len(diff) > 0 {
				t.Errorf("%s", strings.Join(diff, "\n"))
			}
		}
	}
}

// testSameErrors sends each bad request over both transports, each on a
// path of its own made over the same transport, and wants the status and
// code of API.md from both.
func testSameErrors(t *testing.T, e *rolesEnv) {
	type fixture struct {
		path, tax string
		version   int
	}
	setup := func(via commandSender) fixture {
		tax := freshTaxCode(t, e.next.Add(1))
		st, out := via(t, keyOperator, "take_in_charge", "", "", transportWorker(tax))
		if st != http.StatusCreated {
			t.Fatalf("take_in_charge: %d %v", st, out)
		}
		f := fixture{path: out["path_id"].(string), tax: tax}
		st, out = via(t, keyOperator, "deliver_session", f.path, "", `{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25}`)
		if st != http.StatusCreated {
			t.Fatalf("deliver_session: %d %v", st, out)
		}
		f.version = int(out["version"].(float64))
		return f
	}
	const session = `{"service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`
	cases := []struct {
		name    string
		key     string
		command string
		unknown bool   // on a path that does not exist rather than the fixture's
		prime   string // sent first, with the same headers, and accepted
		body    func(f fixture) string
		hdr     func(f fixture) []string
		status  int
		code    string
	}{
		{name: "malformed JSON", command: "deliver_session",
			body: func(fixture) string { return `{"service":1,` }, status: 400, code: "malformed_json"},
		{name: "array for a time", command: "record_no_show",
			body: func(fixture) string { return `{"appointment_at":["2010-03-01"]}` }, status: 400, code: "invalid_field"},
		{name: "unknown field", command: "deliver_session",
			body: func(fixture) string {
				return `{"service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20,"colour":"red"}`
			}, status: 400, code: "unknown_field"},
		{name: "unknown nested field", command: "take_in_charge",
			body: func(f fixture) string {
				return strings.Replace(transportWorker(freshTaxCode(t, e.next.Add(1))), `"disability"`, `"nickname":"Mina","disability"`, 1)
			}, status: 400, code: "unknown_field"},
		{name: "name in another case", command: "deliver_session",
			body:   func(fixture) string { return `{"Service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}` },
			status: 400, code: "unknown_field"},
		{name: "nested name in another case", command: "take_in_charge",
			body: func(f fixture) string {
				return strings.Replace(transportWorker(freshTaxCode(t, e.next.Add(1))), `"tax_code"`, `"Tax_Code"`, 1)
			}, status: 400, code: "unknown_field"},
		{name: "field given twice", command: "deliver_session",
			body: func(fixture) string {
				return `{"service":1,"service":2,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`
			}, status: 400, code: "malformed_json"},
		{name: "required boolean left out", command: "take_in_charge",
			body: func(f fixture) string {
				return strings.Replace(transportWorker(freshTaxCode(t, e.next.Add(1))), `"disability":true,`, ``, 1)
			}, status: 400, code: "invalid_field"},
		{name: "wrong type", command: "deliver_session",
			body: func(fixture) string {
				return `{"service":"one","delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`
			},
			status: 400, code: "invalid_field"},
		{name: "bad time", command: "close_path",
			body: func(fixture) string { return `{"closed_at":"yesterday","reason":"withdrawn"}` }, status: 422, code: "invalid_date"},
		{name: "second access", command: "deliver_session",
			body:   func(fixture) string { return `{"service":2,"delivered_at":"2010-02-03T09:00:00+01:00","minutes":25}` },
			status: 422, code: "repeat_limit_reached"},
		{name: "mobility lists outside mobilità", command: "deliver_session",
			body:   func(fixture) string { return `{"service":11,"delivered_at":"2010-02-03T09:00:00+01:00","minutes":25}` },
			status: 422, code: "service_not_allowed"},
		{name: "support mismatch", command: "take_in_charge",
			body: func(fixture) string {
				return strings.Replace(transportWorker(freshTaxCode(t, e.next.Add(1))), `"category":"c"`, `"category":"d"`, 1)
			}, status: 422, code: "support_mismatch"},
		{name: "bad host tax code", command: "activate_traineeship",
			body: func(fixture) string {
				return `{"host_tax_code":"00743110158","starts_on":"2010-03-01","delivered_at":"2010-02-20T10:00:00+01:00","minutes":700}`
			}, status: 422, code: "invalid_tax_code"},
		{name: "unknown path", command: "deliver_session", unknown: true,
			body: func(fixture) string { return session }, status: 404, code: "path_not_found"},
		{name: "second open path", command: "take_in_charge",
			body: func(f fixture) string { return transportWorker(f.tax) }, status: 409, code: "worker_has_open_path"},
		{name: "stale If-Match", command: "deliver_session",
			body:   func(fixture) string { return session },
			hdr:    func(f fixture) []string { return []string{"If-Match", fmt.Sprintf(`"%d"`, f.version-1)} },
			status: 412, code: "version_mismatch"},
		{name: "If-Match not a version", command: "deliver_session",
			body: func(fixture) string { return session },
			hdr:  func(fixture) []string { return []string{"If-Match", `"v2"`} }, status: 400, code: "invalid_field"},
		{name: "Idempotency-Key with another body", command: "deliver_session", prime: session,
			body:   func(fixture) string { return `{"service":3,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":50}` },
			hdr:    func(f fixture) []string { return []string{"Idempotency-Key", "same-key-" + f.path} },
			status: 422, code: "idempotency_key_reused"},
		{name: "erasing an unknown worker", key: keyAdmin, command: "erase_worker",
			body: func(fixture) string { return "" }, status: 404, code: "worker_not_found"},
		{name: "no token", key: keyNone, command: "deliver_session",
			body: func(fixture) string { return session }, status: 401, code: "unauthenticated"},
		{name: "not allowed", key: "supervisor", command: "deliver_session",
			body: func(fixture) string { return session }, status: 403, code: "forbidden"},
	}
	transports := []struct {
		name string
		via  commandSender
		f    fixture
	}{{"http", e.sendHTTP, setup(e.sendHTTP)}, {"nats", e.sendNATS, setup(e.sendNATS)}}

	for _, c := range cases {
		key := c.key
		if key == "" {
			key = keyOperator
		}
		var got [2]map[string]any
		for i, tr := range transports {
			pathID, tax := tr.f.path, ""
			switch {
			case c.unknown:
				pathID = "00000000-0000-4000-8000-000000000000"
			case c.command == "take_in_charge":
				pathID = ""
			case c.command == "erase_worker":
				pathID, tax = "", freshTaxCode(t, e.next.Add(1))
			}
			var hdr []string
			if c.hdr != nil {
				hdr = c.hdr(tr.f)
			}
			if c.prime != "" {
				if st, out := tr.via(t, key, c.command, pathID, tax, c.prime, hdr...); st != okStatus(c.command) {
					t.Fatalf("%s over %s: the first request: %d %v", c.name, tr.name, st, out)
				}
			}
			st, out := tr.via(t, key, c.command, pathID, tax, c.body(tr.f), hdr...)
			if st != c.status || errCode(out) != c.code {
				t.Errorf("%s over %s: got %d %q (%v), want %d %q", c.name, tr.name, st, errCode(out), out, c.status, c.code)
			}
			got[i] = out
		}
		// Beyond status and code, the whole body: the same field and the
		// same message, but for the ids and versions of each side's path.
		if a, b := normalizedError(got[0]), normalizedError(got[1]); a != b {
			t.Errorf("%s: error bodies differ:\n http %s\n nats %s", c.name, a, b)
		}
	}

	// The refused requests changed nothing on either fixture path: its
	// take-in-charge, its access session and the one accepted session.
	for _, tr := range transports {
		if n := e.eventCount(t, tr.f.path); n != 3 {
			t.Errorf("the %s fixture path has %d events after the refused requests, want 3", tr.name, n)
		}
	}
}

var (
	uuidText   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	numberText = regexp.MustCompile(`[0-9]+`)
)

// normalizedError is an error body as JSON with its ids and numbers blanked.
func normalizedError(body map[string]any) string {
	b, _ := json.Marshal(body)
	return numberText.ReplaceAllString(uuidText.ReplaceAllString(string(b), "<id>"), "<n>")
}
