package main

import (
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/access"
)

// TestHistoryVerifyErasure: an auditor replays a path from the stream, at
// a point in time too, verifies its chain, and keeps verifying it after the
// worker is erased; admins see the auditor's reads.
func TestHistoryVerifyErasure(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	auditor := client{t, m.HTTPURL(), token(t, m, access.RoleAuditor)}
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}
	tax := taxCode(t, 3)
	_, b, _ := op.do("POST", "/v1/paths", takeInCharge(3, tax, "b", "cig_deroga"))
	p := "/v1/paths/" + b["path_id"].(string)
	for _, s := range []string{
		`{"service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`,
		`{"service":3,"delivered_at":"2010-03-02T09:00:00+01:00","minutes":50,"pact":{"signed_at":"2010-03-02T09:40:00+01:00","did_on":"2010-03-01"}}`,
	} {
		if st, body, _ := op.do("POST", p+"/sessions", s); st != 201 {
			t.Fatalf("session: %d %v", st, body)
		}
	}

	st, h, _ := auditor.do("GET", p+"/history", "")
	if st != 200 {
		t.Fatalf("history: %d %v", st, h)
	}
	events := h["events"].([]any)
	types := []string{}
	prev := ""
	for _, e := range events {
		ev := e.(map[string]any)
		types = append(types, ev["type"].(string))
		if ev["prev_hash"] != prev || ev["hash"] == "" || ev["actor"] != "dev-operator" || ev["seq"].(float64) < 1 {
			t.Errorf("event %v: chain or metadata wrong (prev %q)", ev, prev)
		}
		prev = ev["hash"].(string)
	}
	if got := strings.Join(types, ","); got != "TakenInCharge,SessionDelivered,SessionDelivered,PactSigned" {
		t.Errorf("history types = %s", got)
	}
	worker := events[0].(map[string]any)["data"].(map[string]any)["worker"].(map[string]any)
	if worker["tax_code"] != tax {
		t.Errorf("auditor should see the worker in clear: %v", worker)
	}

	// Time travel: as of before the second session, one service and no pact.
	st, h, _ = auditor.do("GET", p+"/history?as_of=2000-01-01T00:00:00Z", "")
	if _, hasState := h["state"]; st != 200 || len(h["events"].([]any)) != 0 || hasState {
		t.Errorf("as_of before everything: %d %v, want no event and no state", st, h)
	}
	asOf := events[1].(map[string]any)["time"].(string)
	st, h, _ = auditor.do("GET", p+"/history?as_of="+asOf, "")
	state, _ := h["state"].(map[string]any)
	if st != 200 || len(h["events"].([]any)) != 2 || state["pact_signed_at"] != nil || len(state["services"].(map[string]any)) != 1 {
		t.Errorf("as_of %s: %d %v", asOf, st, h)
	}
	if st, _, _ := auditor.do("GET", p+"/history?as_of=yesterday", ""); st != 422 {
		t.Errorf("bad as_of: %d", st)
	}

	st, v, _ := auditor.do("GET", p+"/verify", "")
	if st != 200 || v["ok"] != true || v["events"] != 4.0 || v["head_hash"] != prev {
		t.Errorf("verify: %d %v", st, v)
	}
	if st, _, _ := (client{t, m.HTTPURL(), token(t, m, access.RoleAnalyst)}).do("GET", p+"/history", ""); st != 403 {
		t.Errorf("analyst history: %d", st)
	}

	// Erasure: the chain still verifies, the history shows [erased].
	if st, body, _ := admin.do("POST", "/v1/workers/"+tax+"/erasure", ""); st != 200 {
		t.Fatalf("erasure: %d %v", st, body)
	}
	_, h, _ = auditor.do("GET", p+"/history", "")
	events = h["events"].([]any)
	worker = events[0].(map[string]any)["data"].(map[string]any)["worker"].(map[string]any)
	if worker["tax_code"] != "[erased]" || worker["family_name"] != "[erased]" {
		t.Errorf("after erasure: %v", worker)
	}
	if last := events[len(events)-1].(map[string]any); last["type"] != "PersonalDataErased" {
		t.Errorf("last event = %v", last["type"])
	}
	if _, v, _ = auditor.do("GET", p+"/verify", ""); v["ok"] != true || v["events"] != 5.0 {
		t.Errorf("verify after erasure: %v", v)
	}

	// The auditor's reads are on record, for admins only.
	st, reads, _ := admin.do("GET", "/v1/audit/reads?principal=dev-auditor", "")
	if st != 200 {
		t.Fatalf("reads: %d %v", st, reads)
	}
	list := reads["reads"].([]any)
	if len(list) < 6 {
		t.Errorf("recorded reads = %d, want at least 6: %v", len(list), list)
	}
	for _, r := range list {
		if r.(map[string]any)["path_id"] != strings.TrimPrefix(p, "/v1/paths/") {
			t.Errorf("read of another path recorded: %v", r)
		}
	}
	if st, _, _ := auditor.do("GET", "/v1/audit/reads", ""); st != 403 {
		t.Errorf("auditor reading the read log: %d", st)
	}
}
