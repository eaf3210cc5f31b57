package natsapi_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natstest"
)

// TestCommandsOverNATS walks one worker in mobilità through every command,
// from the take-in-charge to the erasure, by NATS request/reply only.
func TestCommandsOverNATS(t *testing.T) {
	e := newEnv(t)
	tax := taxCodeN(t, 0)
	main := e.request(t, wire.CmdTakeInCharge, takeInCharge(tax), e.auth(operator)).result(t)
	if main.PathID == "" || main.Version == 0 {
		t.Fatalf("take_in_charge: %+v", main)
	}
	if m := e.lastEvent(t, main.PathID); m.Header.Get(eventstore.HdrType) != "TakenInCharge" || m.Sequence != main.Version {
		t.Fatalf("stream has %s at %d, want TakenInCharge at %d", m.Header.Get(eventstore.HdrType), m.Sequence, main.Version)
	}
	participants := []string{main.PathID}
	for n := 1; n <= 5; n++ {
		id, _ := e.openPath(t, n)
		participants = append(participants, id)
	}

	version := main.Version
	steps := []struct {
		name      string
		body      map[string]any
		headers   hdr
		as        string
		lastEvent string // type of the path's last event afterwards
	}{
		{name: wire.CmdDeliverSession, lastEvent: "PactSigned",
			body: map[string]any{"service": 2, "delivered_at": "2010-02-01T10:00:00+01:00", "minutes": 30,
				"pact": map[string]any{"signed_at": "2010-02-01T10:30:00+01:00", "did_on": "2010-02-01"}}},
		{name: wire.CmdDeliverSession, lastEvent: "SessionDelivered", headers: hdr{"If-Match": `"{version}"`},
			body: map[string]any{"service": 11, "delivered_at": "2010-02-02T09:00:00+01:00", "minutes": 20}},
		{name: wire.CmdDeliverSession, lastEvent: "SessionDelivered", headers: hdr{"If-Match": "{version}", "X-Correlation-Id": "corr-5"},
			body: map[string]any{"service": 5, "delivered_at": "2010-02-10T09:00:00+01:00", "minutes": 90, "mediator_present": true}},
		{name: wire.CmdActivateTraineeship, lastEvent: "SessionDelivered",
			body: map[string]any{"host_tax_code": "00743110157", "starts_on": "2010-03-01", "ends_on": "2010-08-31",
				"delivered_at": "2010-02-20T09:00:00+01:00", "minutes": 120}},
		{name: wire.CmdVerifyPath, lastEvent: "PathVerified",
			body: map[string]any{"verified_at": "2010-06-01T10:00:00+02:00", "outcome": "achieved", "minutes": 45, "note": "hired by the host"}},
		{name: wire.CmdRecordNoShow, lastEvent: "NoShowRecorded",
			body: map[string]any{"appointment_at": "2010-06-15T09:00:00+02:00", "justified": false}},
		{name: wire.CmdReportRefusal, lastEvent: "RefusalReported",
			body: map[string]any{"kind": "convocation", "at": "2010-06-20T09:00:00+02:00"}},
		{name: wire.CmdClosePath, lastEvent: "PathClosed",
			body: map[string]any{"closed_at": "2010-07-01T09:00:00+02:00", "reason": "reemployed"}},
	}
	for i, s := range steps {
		if s.name == wire.CmdRecordNoShow {
			// The group session lands between verification and no-show,
			// on this path and five others.
			group := e.request(t, wire.CmdDeliverGroupSession, map[string]any{"service": 4,
				"delivered_at": "2010-06-10T09:00:00+02:00", "minutes": 240, "participants": participants}, e.auth(operator)).result(t)
			if group.GroupID == "" || len(group.Versions) != 6 {
				t.Fatalf("group session: %+v", group)
			}
			for _, id := range participants {
				if group.Versions[id] == 0 || e.lastEvent(t, id).Sequence != group.Versions[id] {
					t.Fatalf("group session: version of %s is %d, stream says %d", id, group.Versions[id], e.lastEvent(t, id).Sequence)
				}
			}
			if group.Versions[main.PathID] <= version {
				t.Fatalf("group session did not move the path past %d: %+v", version, group)
			}
			version = group.Versions[main.PathID]
		}
		s.body["path_id"] = main.PathID
		h := e.auth(operator)
		for k, v := range s.headers {
			h[k] = strings.ReplaceAll(v, "{version}", strconv.FormatUint(version, 10))
		}
		res := e.request(t, s.name, s.body, h).result(t)
		if res.PathID != main.PathID || res.Version <= version {
			t.Fatalf("step %d %s: result %+v after version %d", i, s.name, res, version)
		}
		version = res.Version
		m := e.lastEvent(t, main.PathID)
		if m.Sequence != version || m.Header.Get(eventstore.HdrType) != s.lastEvent {
			t.Fatalf("step %d %s: stream has %s at %d, want %s at %d", i, s.name, m.Header.Get(eventstore.HdrType), m.Sequence, s.lastEvent, version)
		}
		if m.Header.Get(eventstore.HdrActor) != "dev-operator" {
			t.Errorf("step %d %s: actor %q", i, s.name, m.Header.Get(eventstore.HdrActor))
		}
		if c := s.headers["X-Correlation-Id"]; c != "" && m.Header.Get(eventstore.HdrCorrelationID) != c {
			t.Errorf("step %d %s: correlation id %q, want %q", i, s.name, m.Header.Get(eventstore.HdrCorrelationID), c)
		}
	}

	// The patto of another worker, signed on its own.
	pact := e.request(t, wire.CmdSignPact, map[string]any{"path_id": participants[1],
		"signed_at": "2010-02-03T09:00:00+01:00", "did_on": "2010-02-01"}, e.auth(operator)).result(t)
	if pact.PathID != participants[1] || e.lastEvent(t, participants[1]).Header.Get(eventstore.HdrType) != "PactSigned" {
		t.Fatalf("sign_pact: %+v", pact)
	}

	erased := e.request(t, wire.CmdEraseWorker, map[string]any{"tax_code": tax}, e.auth(admin)).result(t)
	if !slices.Equal(slices.Collect(maps.Keys(erased.Versions)), []string{main.PathID}) {
		t.Fatalf("erase_worker: %+v", erased)
	}
	if m := e.lastEvent(t, main.PathID); m.Header.Get(eventstore.HdrType) != "PersonalDataErased" {
		t.Fatalf("after erasure the path ends with %s", m.Header.Get(eventstore.HdrType))
	}
	// The erased path is frozen, and the tax code is nowhere in the logs.
	after := e.request(t, wire.CmdDeliverSession, map[string]any{"path_id": main.PathID, "service": 1,
		"delivered_at": "2010-07-02T09:00:00+02:00", "minutes": 10}, e.auth(operator))
	if after.status != 422 || after.errorBody(t).Error.Code != "worker_erased" {
		t.Fatalf("session on an erased path: %s", after)
	}
	if strings.Contains(e.logs.String(), tax) {
		t.Fatal("the logs contain a tax code")
	}
}

// TestErrors pins the status, code and body of the refusals API.md lists,
// as a NATS client receives them.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	tax := taxCodeN(t, 0)
	path, _ := e.openPath(t, 0)
	first := e.request(t, wire.CmdDeliverSession, map[string]any{"path_id": path, "service": 2,
		"delivered_at": "2010-02-01T10:00:00+01:00", "minutes": 30}, e.auth(operator)).result(t)

	session := func(extra map[string]any) map[string]any {
		b := map[string]any{"path_id": path, "service": 1, "delivered_at": "2010-02-05T10:00:00+01:00", "minutes": 15}
		for k, v := range extra {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	with := func(h hdr, k, v string) hdr { h[k] = v; return h }
	tests := []struct {
		name    string
		command string
		body    any
		headers hdr
		status  int
		code    string
		field   string
	}{
		{"malformed JSON", wire.CmdDeliverSession, `{"service": 1,`, e.auth(operator), 400, "malformed_json", ""},
		{"not an object", wire.CmdDeliverSession, `[1, 2]`, e.auth(operator), 400, "malformed_json", ""},
		{"empty body", wire.CmdClosePath, ``, e.auth(operator), 400, "malformed_json", ""},
		{"trailing data", wire.CmdDeliverSession, `{"path_id": "` + path + `"} {}`, e.auth(operator), 400, "malformed_json", ""},
		{"unknown field", wire.CmdDeliverSession, session(map[string]any{"servce": 1}), e.auth(operator), 400, "unknown_field", "servce"},
		{"unknown nested field", wire.CmdTakeInCharge, `{"worker": {"tax_code": "x", "nickname": "y"}}`, e.auth(operator), 400, "unknown_field", "worker.nickname"},
		{"wrong type", wire.CmdDeliverSession, session(map[string]any{"minutes": "fifteen"}), e.auth(operator), 400, "invalid_field", "minutes"},
		{"path_id missing", wire.CmdDeliverSession, session(map[string]any{"path_id": nil}), e.auth(operator), 400, "invalid_field", "path_id"},
		{"control character in an Idempotency-Key", wire.CmdDeliverSession, session(nil),
			hdr{"Authorization": "Bearer " + e.tokens[operator], "Idempotency-Key": "k\x00\xff"}, 400, "invalid_field", "Idempotency-Key"},
		{"headers over 64 KiB", wire.CmdDeliverSession, session(nil),
			hdr{"Authorization": "Bearer " + e.tokens[operator], "X-Padding": strings.Repeat("x", 65<<10)}, 413, "request_too_large", ""},
		{"no token", wire.CmdDeliverSession, session(nil), hdr{}, 401, "unauthenticated", ""},
		{"unknown token", wire.CmdDeliverSession, session(nil), hdr{"Authorization": "Bearer pct_unknown"}, 401, "unauthenticated", ""},
		{"not a bearer token", wire.CmdDeliverSession, session(nil), hdr{"Authorization": e.tokens[operator]}, 401, "unauthenticated", ""},
		{"operator of another office", wire.CmdDeliverSession, session(nil), e.auth(operatorMO), 403, "forbidden", ""},
		{"opening a path in another office", wire.CmdTakeInCharge, takeInCharge(taxCodeN(t, 1)), e.auth(operatorMO), 403, "forbidden", ""},
		{"supervisors do not record", wire.CmdDeliverSession, session(nil), e.auth(supervisor), 403, "forbidden", ""},
		{"operators do not erase", wire.CmdEraseWorker, map[string]any{"tax_code": tax}, e.auth(operator), 403, "forbidden", ""},
		{"second service 2", wire.CmdDeliverSession, session(map[string]any{"service": 2}), e.auth(operator), 422, "repeat_limit_reached", "service"},
		{"verification without 05, 08 or patto", wire.CmdVerifyPath,
			map[string]any{"path_id": path, "verified_at": "2010-02-06T10:00:00+01:00", "outcome": "achieved", "minutes": 30}, e.auth(operator), 422, "verification_not_due", ""},
		{"invalid tax code", wire.CmdTakeInCharge, takeInCharge("RSSMRA80A01H501A"), e.auth(operator), 422, "invalid_tax_code", "worker.tax_code"},
		{"worker with an open path", wire.CmdTakeInCharge, takeInCharge(tax), e.auth(operator), 409, "worker_has_open_path", "worker.tax_code"},
		{"unknown path", wire.CmdDeliverSession, session(map[string]any{"path_id": "7d1c3e9a-5b2f-4c6d-8e0f-a1b2c3d4e5f6"}), e.auth(operator), 404, "path_not_found", ""},
		{"path id not a uuid", wire.CmdClosePath, map[string]any{"path_id": "../etc", "closed_at": "2010-07-01T09:00:00+02:00", "reason": "withdrawn"}, e.auth(operator), 404, "path_not_found", ""},
		{"erasing an unknown worker", wire.CmdEraseWorker, map[string]any{"tax_code": taxCodeN(t, 2)}, e.auth(admin), 404, "worker_not_found", ""},
		{"If-Match behind", wire.CmdDeliverSession, session(nil), with(e.auth(operator), "If-Match", `"`+strconv.FormatUint(first.Version-1, 10)+`"`), 412, "version_mismatch", ""},
		{"If-Match ahead, unquoted", wire.CmdDeliverSession, session(nil), with(e.auth(operator), "If-Match", strconv.FormatUint(first.Version+10, 10)), 412, "version_mismatch", ""},
		{"If-Match not a number", wire.CmdDeliverSession, session(nil), with(e.auth(operator), "If-Match", `"v1"`), 400, "invalid_field", "If-Match"},
		{"Idempotency-Key too long", wire.CmdDeliverSession, session(nil), with(e.auth(operator), "Idempotency-Key", strings.Repeat("k", 201)), 400, "invalid_field", "Idempotency-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.request(t, tc.command, tc.body, tc.headers)
			if r.status != tc.status || r.code != tc.code {
				t.Fatalf("got %s, want %d %s", r, tc.status, tc.code)
			}
			if b := r.errorBody(t); b.Error.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", b.Error.Field, tc.field, r.data)
			}
		})
	}
	// None of the refusals appended anything.
	if m := e.lastEvent(t, path); m.Sequence != first.Version {
		t.Fatalf("path moved from %d to %d", first.Version, m.Sequence)
	}
	// And the service answers ordinary requests after all of them.
	if r := e.request(t, wire.CmdDeliverSession, session(nil), e.auth(operator)); r.status != 0 {
		t.Fatalf("valid session after the refusals: %s", r)
	}
}

// TestHeaderSpelling accepts header names spelled as an HTTP/2 client would.
func TestHeaderSpelling(t *testing.T) {
	e := newEnv(t)
	path, version := e.openPath(t, 0)
	body := map[string]any{"path_id": path, "service": 1, "delivered_at": "2010-02-05T10:00:00+01:00", "minutes": 15}
	h := hdr{"authorization": "Bearer " + e.tokens[operator], "if-match": strconv.FormatUint(version+1, 10)}
	if r := e.request(t, wire.CmdDeliverSession, body, h); r.status != 412 || r.code != "version_mismatch" {
		t.Fatalf("lowercase headers: %s", r)
	}
	h["if-match"] = strconv.FormatUint(version, 10)
	if res := e.request(t, wire.CmdDeliverSession, body, h).result(t); res.Version <= version {
		t.Fatalf("lowercase headers: %+v", res)
	}
}

// TestIdempotency replays a keyed command: same key and body, the first
// answer and no new event; another body, 422.
func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	path, _ := e.openPath(t, 0)
	h := e.auth(operator)
	h["Idempotency-Key"] = "session-2010-02-05"
	body := `{"path_id": "` + path + `", "service": 3, "delivered_at": "2010-02-05T10:00:00+01:00", "minutes": 50}`
	first := e.request(t, wire.CmdDeliverSession, body, h)
	res := first.result(t)

	// Same request, other whitespace and key order: the same bytes back.
	again := e.request(t, wire.CmdDeliverSession,
		`{"minutes":50,"service":3,"delivered_at":"2010-02-05T10:00:00+01:00","path_id":"`+path+`"}`, h)
	if again.status != 0 || string(again.data) != string(first.data) {
		t.Fatalf("replay: got %s, want %s", again, first)
	}
	if m := e.lastEvent(t, path); m.Sequence != res.Version {
		t.Fatalf("the replay appended: stream at %d, first answer %d", m.Sequence, res.Version)
	}

	other := e.request(t, wire.CmdDeliverSession, strings.Replace(body, `"minutes": 50`, `"minutes": 55`, 1), h)
	if other.status != 422 || other.code != "idempotency_key_reused" {
		t.Fatalf("other body, same key: %s", other)
	}
	other.errorBody(t)

	// Keys belong to a principal: the admin's same key is a new command.
	h["Authorization"] = "Bearer " + e.tokens[admin]
	byAdmin := e.request(t, wire.CmdDeliverSession, body, h).result(t)
	if byAdmin.Version <= res.Version {
		t.Fatalf("admin's command with the operator's key: %+v after %+v", byAdmin, res)
	}
}

// TestTooLarge: bodies over 1 MiB get 413 when the NATS server lets them
// through; a server with the default max_payload (also 1 MiB) refuses
// them itself, and the client's request fails before anything is sent.
func TestTooLarge(t *testing.T) {
	t.Run("server max_payload raised", func(t *testing.T) {
		e := newEnvMaxPayload(t, 4<<20)
		big := make([]byte, wire.MaxBody+1)
		for i := range big {
			big[i] = ' '
		}
		copy(big, `{"service": 1}`)
		r := e.request(t, wire.CmdDeliverSession, big, e.auth(operator))
		if r.status != 413 || r.code != "request_too_large" {
			t.Fatalf("body of %d bytes: %s", len(big), r)
		}
		r.errorBody(t)
		// At the limit exactly, the body is read: trailing blanks are fine,
		// and the missing path id is what is wrong.
		r = e.request(t, wire.CmdDeliverSession, big[:wire.MaxBody], e.auth(operator))
		if r.status != 400 || r.code != "invalid_field" || r.errorBody(t).Error.Field != "path_id" {
			t.Fatalf("body of %d bytes: %s", wire.MaxBody, r)
		}
		// Authentication comes first, as over HTTP.
		if r := e.request(t, wire.CmdDeliverSession, big, hdr{}); r.status != 401 {
			t.Fatalf("unauthenticated big body: %s", r)
		}
	})
	t.Run("default server", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.try(wire.CmdDeliverSession, make([]byte, wire.MaxBody+1), e.auth(operator))
		if !errors.Is(err, nats.ErrMaxPayload) {
			t.Fatalf("got %v, want %v", err, nats.ErrMaxPayload)
		}
	})
}

// TestDiscovery asks micro's own control subjects, as `nats micro info
// percorso` does.
func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	m, err := e.client.Request("$SRV.INFO."+natsapi.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Type != micro.InfoResponseType || info.Name != "percorso" || info.Version != natsapi.Version || info.Description == "" {
		t.Fatalf("info: %+v", info)
	}
	if len(info.Endpoints) != 10 {
		t.Fatalf("%d endpoints, want 10: %+v", len(info.Endpoints), info.Endpoints)
	}
	got := map[string]micro.EndpointInfo{}
	for _, ep := range info.Endpoints {
		got[ep.Name] = ep
	}
	for _, name := range wire.CommandNames {
		ep, ok := got[name]
		if !ok {
			t.Errorf("no endpoint %s", name)
			continue
		}
		if ep.Subject != "percorso.cmd."+name || ep.QueueGroup != natsapi.QueueGroup {
			t.Errorf("endpoint %s: subject %q, queue group %q", name, ep.Subject, ep.QueueGroup)
		}
	}

	// PING finds it too, and STATS counts requests and refusals per endpoint.
	if _, err := e.client.Request("$SRV.PING.percorso", nil, 5*time.Second); err != nil {
		t.Fatalf("ping: %v", err)
	}
	e.request(t, wire.CmdClosePath, `{`, e.auth(operator))
	e.waitStats(t, wire.CmdClosePath, natsapi.Instances, func(eps []micro.EndpointStats) bool {
		var requests, errs int
		last := ""
		for _, ep := range eps {
			requests += ep.NumRequests
			errs += ep.NumErrors
			last += ep.LastError
		}
		return requests == 1 && errs == 1 && strings.Contains(last, "malformed_json")
	})
}

// waitStats asks every one of instances for the stats of an endpoint until
// ok accepts them: micro counts a request only after its reply is sent.
func (e *env) waitStats(t *testing.T, endpoint string, instances int, ok func([]micro.EndpointStats) bool) {
	t.Helper()
	var eps []micro.EndpointStats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		eps = eps[:0]
		inbox := nats.NewInbox()
		sub, err := e.client.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.client.PublishRequest("$SRV.STATS."+natsapi.ServiceName, inbox, nil); err != nil {
			t.Fatal(err)
		}
		for range instances {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("stats of %d instances: %v", instances, err)
			}
			var stats micro.Stats
			if err := json.Unmarshal(m.Data, &stats); err != nil {
				t.Fatal(err)
			}
			for _, ep := range stats.Endpoints {
				if ep.Name == endpoint {
					eps = append(eps, *ep)
				}
			}
		}
		sub.Unsubscribe()
		if len(eps) == instances && ok(eps) {
			return
		}
	}
	t.Fatalf("%s stats: %+v", endpoint, eps)
}

// TestQueueGroup runs two instances, as two percorso processes would: each
// request is served by exactly one of them.
func TestQueueGroup(t *testing.T) {
	e := newEnv(t)
	conn, _ := natstest.Connect(t, e.url)
	second, err := natsapi.New(conn, e.handler, e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	path, version := e.openPath(t, 0)
	const sessions = 12
	for i := range sessions {
		body := map[string]any{"path_id": path, "service": 1, "delivered_at": "2010-02-05T10:00:00+01:00", "minutes": 10 + i}
		res := e.request(t, wire.CmdDeliverSession, body, e.auth(operator)).result(t)
		if res.Version <= version {
			t.Fatalf("request %d: version %d after %d", i, res.Version, version)
		}
		version = res.Version
	}
	// Every instance of both answers STATS; their counts add up to the
	// requests sent.
	e.waitStats(t, wire.CmdDeliverSession, 2*natsapi.Instances, func(eps []micro.EndpointStats) bool {
		n := 0
		for _, ep := range eps {
			n += ep.NumRequests
		}
		return n == sessions
	})
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestAuthLimiter: a caller that keeps presenting the same wrong token is
// throttled after 30 failures a minute; other callers are not.
func TestAuthLimiter(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"path_id": "7d1c3e9a-5b2f-4c6d-8e0f-a1b2c3d4e5f6", "reason": "withdrawn", "closed_at": "2010-07-01T09:00:00+02:00"}
	stale := hdr{"Authorization": "Bearer pct_revoked"}
	for i := range 30 {
		if r := e.request(t, wire.CmdClosePath, body, stale); r.status != 401 {
			t.Fatalf("failure %d: %s", i+1, r)
		}
	}
	r := e.request(t, wire.CmdClosePath, body, stale)
	if r.status != 429 || r.code != "too_many_requests" {
		t.Fatalf("31st failure: %s", r)
	}
	r.errorBody(t)
	if r := e.request(t, wire.CmdClosePath, body, hdr{"Authorization": "Bearer pct_other"}); r.status != 401 {
		t.Fatalf("another wrong token: %s", r)
	}
	if r := e.request(t, wire.CmdClosePath, body, e.auth(operator)); r.status != 404 || r.code != "path_not_found" {
		t.Fatalf("a valid token: %s", r)
	}
}

// TestPanicBecomes500: a fault of ours is a logged 500 with code internal,
// the log holds no personal data, and the service keeps serving.
func TestPanicBecomes500(t *testing.T) {
	e := newEnv(t)
	// A handler without a store or a vault panics on the first command
	// that gets past validation.
	broken := command.New(nil, nil, nil)
	dir, tokens := principals(t)
	logs := &syncBuffer{}
	svc, err := natsapi.New(e.client, broken, dir, slogTo(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	// The healthy service shares the subjects' queue group; stop it so
	// that the broken one gets every request.
	if err := e.svc.Stop(); err != nil {
		t.Fatal(err)
	}
	tax := taxCodeN(t, 7)
	h := hdr{"Authorization": "Bearer " + tokens[operator]}
	for range 2 {
		r := e.request(t, wire.CmdTakeInCharge, takeInCharge(tax), h)
		if r.status != 500 || r.code != "internal" {
			t.Fatalf("got %s, want 500 internal", r)
		}
		if b := r.errorBody(t); b.Error.Message != "internal error" {
			t.Fatalf("500 body: %s", r.data)
		}
	}
	// Refusals that come before the handler still work.
	if r := e.request(t, wire.CmdTakeInCharge, `{`, h); r.status != 400 {
		t.Fatalf("after the panics: %s", r)
	}
	out := logs.String()
	if !strings.Contains(out, "panic serving nats command") || !strings.Contains(out, `"command":"take_in_charge"`) {
		t.Fatalf("panic not logged: %s", out)
	}
	for _, secret := range []string{tax, "Mario", "Rossi", "1980-01-01", tokens[operator]} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log contains %q", secret)
		}
	}
}

// TestNoReply: a command published without a reply subject is not run.
func TestNoReply(t *testing.T) {
	e := newEnv(t)
	body := takeInCharge(taxCodeN(t, 0))
	body["path_id"] = "0b5c7a52-3f0e-4a7e-9d3c-6c1f3e2a9b10"
	data, _ := json.Marshal(body)
	msg := nats.NewMsg(natsapi.SubjectPrefix + wire.CmdTakeInCharge)
	msg.Data = data
	msg.Header.Set("Authorization", "Bearer "+e.tokens[operator])
	if err := e.client.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	// Requests on one subject from one connection are served in order: by
	// the time this is answered, the published one was handled.
	res := e.request(t, wire.CmdTakeInCharge, body, e.auth(operator)).result(t)
	if res.PathID != body["path_id"] {
		t.Fatalf("result %+v", res)
	}
	if m := e.lastEvent(t, res.PathID); m.Sequence != res.Version {
		t.Fatalf("path at %d, answer %d", m.Sequence, res.Version)
	}
	if !strings.Contains(e.logs.String(), "without a reply subject") {
		t.Fatalf("not logged: %s", e.logs.String())
	}
}

// TestStop: after Stop the instance takes no requests.
func TestStop(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	_, err := e.try(wire.CmdTakeInCharge, takeInCharge(taxCodeN(t, 0)), e.auth(operator))
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request after stop: %v", err)
	}
}
