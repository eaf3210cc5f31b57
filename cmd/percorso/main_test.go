package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/projections/pgtest"
)

// startMain runs a whole percorso in-process: embedded NATS on a free
// port, a throwaway PostgreSQL database, dev principals.
func startMain(t *testing.T) *Main {
	t.Helper()
	m := NewMain(Config{HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "-1", PGURL: pgtest.New(t), Replicas: 1}, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("starting percorso: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func token(t *testing.T, m *Main, role access.Role) string {
	t.Helper()
	for _, tk := range m.Tokens {
		if tk.Role == role {
			return tk.Token
		}
	}
	t.Fatalf("no dev token for %s", role)
	return ""
}

// taxCode makes the i-th valid codice fiscale for test workers.
func taxCode(t *testing.T, i int) string {
	t.Helper()
	first := fmt.Sprintf("RSSMRA%02dA%02dH501", 50+i%40, 1+i%28)
	c, err := taxcode.CheckChar(first)
	if err != nil {
		t.Fatal(err)
	}
	return first + string(c)
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path, body string, hdr ...string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: response is not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out, resp.Header
}

func takeInCharge(i int, tax, category, support string) string {
	return fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":"Nome%d","family_name":"Cognome%d","birth_date":"1975-05-0%d","disability":%t},
		"category":%q,"support":{"kind":%q,"from":"2010-01-04","to":"2010-12-31"},"office":"BO01","taken_at":"2010-02-01T09:00:00+01:00"}`,
		tax, i, i, 1+i%9, i%3 == 0, category, support)
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// TestEndToEnd drives every command of API.md over HTTP, through NATS
// JetStream into PostgreSQL, and reads the result back over HTTP.
func TestEndToEnd(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}

	// Seven workers: one in mobilità (type d), six for a group.
	paths := make([]string, 7)
	for i := range paths {
		cat, sup := "c", "cig_deroga"
		if i == 0 {
			cat, sup = "d", "mobilita_deroga"
		}
		status, body, hdr := op.do("POST", "/v1/paths", takeInCharge(i, taxCode(t, i), cat, sup))
		if status != http.StatusCreated {
			t.Fatalf("take_in_charge %d: %d %v", i, status, body)
		}
		paths[i] = body["path_id"].(string)
		if hdr.Get("Location") != "/v1/paths/"+paths[i] {
			t.Errorf("Location = %q", hdr.Get("Location"))
		}
	}
	p := "/v1/paths/" + paths[0]
	steps := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"access with pact", p + "/sessions", `{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25,"pact":{"signed_at":"2010-02-01T09:50:00+01:00","did_on":"2010-02-01"}}`, 201, ""},
		{"second access refused", p + "/sessions", `{"service":2,"delivered_at":"2010-02-02T09:30:00+01:00","minutes":25}`, 422, "repeat_limit_reached"},
		{"mobility lists", p + "/sessions", `{"service":11,"delivered_at":"2010-02-02T10:00:00+01:00","minutes":30}`, 201, ""},
		{"counselling", p + "/sessions", `{"service":5,"delivered_at":"2010-02-08T09:30:00+01:00","minutes":80,"mediator_present":true}`, 201, ""},
		{"pact again refused", p + "/pact", `{"signed_at":"2010-02-09T09:00:00+01:00","did_on":"2010-02-01"}`, 422, "pact_already_signed"},
		{"traineeship", p + "/traineeships", `{"host_tax_code":"00743110157","starts_on":"2010-03-01","ends_on":"2010-06-30","delivered_at":"2010-02-20T10:00:00+01:00","minutes":700}`, 201, ""},
		{"bad host tax code", p + "/traineeships", `{"host_tax_code":"00743110158","starts_on":"2010-03-01","delivered_at":"2010-02-20T10:00:00+01:00","minutes":700}`, 422, "invalid_tax_code"},
		{"no-show", p + "/no-shows", `{"appointment_at":"2010-03-01T09:00:00+01:00","justified":false}`, 201, ""},
		{"justified absence", p + "/no-shows", `{"appointment_at":"2010-03-08T09:00:00+01:00","justified":true,"reason":"illness"}`, 201, ""},
		{"refusal", p + "/refusals", `{"kind":"job_offer","at":"2010-03-10T09:00:00+01:00"}`, 201, ""},
		{"verification", p + "/verification", `{"verified_at":"2010-06-30T10:00:00+02:00","outcome":"partially_achieved","minutes":55}`, 201, ""},
		{"session before take-in-charge", p + "/sessions", `{"service":1,"delivered_at":"2010-01-01T09:00:00+01:00","minutes":20}`, 422, "invalid_date"},
		{"unknown field", p + "/sessions", `{"service":1,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":20,"colour":"red"}`, 400, "unknown_field"},
		{"wrong type", p + "/sessions", `{"service":"one","delivered_at":"2010-03-01T09:00:00+01:00","minutes":20}`, 400, "invalid_field"},
		{"malformed", p + "/sessions", `{"service":1,`, 400, "malformed_json"},
		{"unknown path", "/v1/paths/00000000-0000-4000-8000-000000000000/sessions", `{"service":1,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":20}`, 404, "path_not_found"},
		{"group too small", "/v1/group-sessions", fmt.Sprintf(`{"service":4,"delivered_at":"2010-03-02T09:00:00+01:00","minutes":200,"participants":[%q,%q]}`, paths[1], paths[2]), 422, "group_size_out_of_range"},
		{"group", "/v1/group-sessions", fmt.Sprintf(`{"service":6,"delivered_at":"2010-03-02T09:00:00+01:00","minutes":280,"participants":[%q,%q,%q,%q,%q,%q]}`, paths[1], paths[2], paths[3], paths[4], paths[5], paths[6]), 201, ""},
		{"close", p + "/close", `{"closed_at":"2010-07-01T09:00:00+02:00","reason":"reemployed"}`, 201, ""},
		{"nothing after closure", p + "/sessions", `{"service":1,"delivered_at":"2010-07-02T09:00:00+02:00","minutes":20}`, 422, "path_closed"},
	}
	var version float64
	for _, s := range steps {
		status, body, _ := op.do("POST", s.path, s.body)
		if status != s.status || errCode(body) != s.code {
			t.Errorf("%s: got %d %q (%v), want %d %q", s.name, status, errCode(body), body, s.status, s.code)
		}
		if v, ok := body["version"].(float64); ok && s.path != "/v1/group-sessions" && strings.HasPrefix(s.path, p) {
			version = v
		}
	}

	// Read-your-writes: the read model reflects everything above.
	status, view, hdr := op.do("GET", fmt.Sprintf("%s?min_version=%d", p, int(version)), "")
	if status != 200 {
		t.Fatalf("GET path: %d %v", status, view)
	}
	if hdr.Get("ETag") != fmt.Sprintf(`"%d"`, int(version)) {
		t.Errorf("ETag = %q, want version %d", hdr.Get("ETag"), int(version))
	}
	// Worker 0 has a disability (i%3==0): credited = standard x 1.2.
	want := map[string][2]float64{"2": {1, 36}, "11": {1, 36}, "5": {1, 108}, "7": {1, 864}, "12": {1, 72}}
	services := view["services"].(map[string]any)
	if len(services) != len(want) {
		t.Errorf("services = %v", services)
	}
	total := 0.0
	for k, w := range want {
		got, _ := services[k].(map[string]any)
		if got["delivered"] != w[0] || got["credited_minutes"] != w[1] {
			t.Errorf("service %s = %v, want delivered %v credited %v", k, got, w[0], w[1])
		}
		total += w[1]
	}
	if view["credited_minutes_total"] != total || view["status"] != "closed" || view["refusals"] != 1.0 ||
		view["unjustified_no_shows"] != 1.0 || view["justified_absences"] != 1.0 {
		t.Errorf("path view = %v", view)
	}

	// Every group member got the workshop, credited per their disability.
	for i := 1; i < 7; i++ {
		status, v, _ := op.do("GET", "/v1/paths/"+paths[i]+"?min_version=1", "")
		if status != 200 {
			t.Fatalf("GET %d: %d", i, status)
		}
		deadline := time.Now().Add(5 * time.Second)
		for v["services"].(map[string]any)["6"] == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			_, v, _ = op.do("GET", "/v1/paths/"+paths[i], "")
		}
		credited := 300.0
		if i%3 == 0 {
			credited = 360
		}
		got, _ := v["services"].(map[string]any)["6"].(map[string]any)
		if got["credited_minutes"] != credited {
			t.Errorf("group member %d: service 6 = %v, want credited %v", i, got, credited)
		}
	}

	// Erasure (admin only): personal data gone from the read model.
	if status, body, _ := op.do("POST", "/v1/workers/"+taxCode(t, 0)+"/erasure", ""); status != 403 {
		t.Errorf("operator erasure: %d %v", status, body)
	}
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}
	status, body, _ := admin.do("POST", "/v1/workers/"+taxCode(t, 0)+"/erasure", "")
	if status != 200 {
		t.Fatalf("erasure: %d %v", status, body)
	}
	erasedAt := body["versions"].(map[string]any)[paths[0]].(float64)
	_, view, _ = admin.do("GET", fmt.Sprintf("%s?min_version=%d", p, int(erasedAt)), "")
	w := view["worker"].(map[string]any)
	if w["erased"] != true || w["tax_code"] != nil || w["given_name"] != nil {
		t.Errorf("after erasure worker = %v", w)
	}
	if view["credited_minutes_total"] != total {
		t.Errorf("erasure changed the statistics: %v", view["credited_minutes_total"])
	}
}

func TestIdempotencyAndIfMatch(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	body := takeInCharge(1, taxCode(t, 1), "a", "cig_deroga")
	s1, b1, _ := op.do("POST", "/v1/paths", body, "Idempotency-Key", "tic-1")
	s2, b2, _ := op.do("POST", "/v1/paths", body, "Idempotency-Key", "tic-1")
	if s1 != 201 || s2 != 201 || b1["path_id"] != b2["path_id"] || b1["version"] != b2["version"] {
		t.Fatalf("replay: %d %v / %d %v", s1, b1, s2, b2)
	}
	if s, b, _ := op.do("POST", "/v1/paths", takeInCharge(2, taxCode(t, 2), "a", "cig_deroga"), "Idempotency-Key", "tic-1"); s != 422 || errCode(b) != "idempotency_key_reused" {
		t.Errorf("reused key: %d %v", s, b)
	}
	p := "/v1/paths/" + b1["path_id"].(string)
	v := fmt.Sprintf(`"%d"`, int(b1["version"].(float64)))
	sess := `{"service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`
	if s, b, _ := op.do("POST", p+"/sessions", sess, "If-Match", v); s != 201 {
		t.Fatalf("If-Match current: %d %v", s, b)
	}
	if s, b, _ := op.do("POST", p+"/sessions", sess, "If-Match", v); s != 412 || errCode(b) != "version_mismatch" {
		t.Errorf("If-Match stale: %d %v", s, b)
	}
	// Another office's operator may not touch it, nor an unknown token.
	if s, _, _ := (client{t, m.HTTPURL(), "pct_wrong"}).do("POST", p+"/sessions", sess); s != 401 {
		t.Errorf("unknown token: %d", s)
	}
	if s, _, _ := (client{t, m.HTTPURL(), ""}).do("GET", p, ""); s != 401 {
		t.Errorf("no token: %d", s)
	}
	if s, _, _ := (client{t, m.HTTPURL(), token(t, m, access.RoleAnalyst)}).do("GET", p, ""); s != 403 {
		t.Errorf("analyst read of a path: %d", s)
	}
}

func TestShutdownIsPrompt(t *testing.T) {
	m := startMain(t)
	// Ready once the projector's consumer is up, a moment after start.
	status := 0
	for deadline := time.Now().Add(15 * time.Second); status != 200 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		status, _, _ = (client{t, m.HTTPURL(), ""}).do("GET", "/readyz", "")
	}
	if status != 200 {
		t.Fatalf("readyz = %d", status)
	}
	start := time.Now()
	m.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v, API.md allows 10 s", d)
	}
	if _, err := http.Get(m.HTTPURL() + "/healthz"); err == nil {
		t.Errorf("API still answering after Close")
	}
}
