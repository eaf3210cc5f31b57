package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/adapters/ui"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/audit"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/projections/pg"
)

// The pages under /ui must show the API's figures, to the same principals,
// with the same office scope and suppression. These tests seed a whole
// percorso through the API, then read every page, over plain HTTP
// (TestUIMatchesTheAPI) and in headless Chromium (TestUIInBrowser), and
// compare it with the API's JSON for the same report.

// uiBase returns the address serving /ui/: the percorso under test when
// serve mounts the pages, else a server beside it built the same way from
// the same NATS and PostgreSQL, so the tests run either way.
func uiBase(t *testing.T, m *Main) string {
	t.Helper()
	resp, err := http.Get(m.HTTPURL() + "/ui/signin")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return m.HTTPURL()
		}
	}
	t.Log("percorso serve does not mount /ui/: serving it beside the API from the same read models and stream")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := m.js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	store := natsjs.New(m.js, stream, m.codec)
	dir, err := access.LoadPrincipals(filepath.Join(m.Config.DataDir, "principals.json"), func(c string) bool { _, ok := office.Lookup(c); return ok })
	if err != nil {
		t.Fatal(err)
	}
	reader := pg.NewReader(m.pool)
	pages := ui.New(reader, dir, m.Log, ui.WithAudit(audit.New(store, m.codec), pg.NewReadLog(m.pool)))
	api := httpapi.New(nil, reader, dir, nil, m.Log).WithUI(pages)
	srv := httpapi.HTTPServer("127.0.0.1:0", api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// uiSeed is what seedUI made: path ids by name, and the paths per office.
type uiSeed struct {
	paths map[string]string
	// rich is the BO01 path with the most kinds of event.
	rich string
	// elsewhere is a path of MO01, outside the BO01 principals' scope.
	elsewhere string
}

// seedUI takes 13 workers in charge in three offices of two provinces and
// gives them enough history to fill every page: group sessions, a group
// outside 6–15, a repeat limit, a session outside the support period,
// no-shows of every kind, a traineeship, a verification, closures, and a
// support ending within 30 days of today.
func seedUI(t *testing.T, m *Main) uiSeed {
	t.Helper()
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}
	versions := map[string]float64{}
	post := func(path, body string) map[string]any {
		t.Helper()
		status, b, _ := admin.do("POST", path, body)
		if status != http.StatusCreated {
			t.Fatalf("POST %s %s: %d %v", path, body, status, b)
		}
		if id, ok := b["path_id"].(string); ok {
			versions[id] = b["version"].(float64)
		}
		if vs, ok := b["versions"].(map[string]any); ok {
			for id, v := range vs {
				versions[id] = v.(float64)
			}
		}
		return b
	}
	soon := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	workers := []struct {
		name, office, category, support, to, takenAt string
		disability, pact                             bool
	}{
		{"bo-c0", "BO01", "c", "cig_deroga", "2010-12-31", "2010-02-01T09:00:00+01:00", true, true},
		{"bo-c1", "BO01", "c", "cig_deroga", "2010-12-31", "2010-02-02T09:00:00+01:00", false, true},
		{"bo-c2", "BO01", "c", "cig_deroga", "2010-12-31", "2010-02-03T09:00:00+01:00", false, true},
		{"bo-c3", "BO01", "c", "cig_deroga", "2010-12-31", "2010-02-04T09:00:00+01:00", false, true},
		{"bo-c4", "BO01", "c", "cig_deroga", "2010-12-31", "2010-02-05T09:00:00+01:00", false, true},
		{"bo-d5", "BO01", "d", "mobilita_deroga", "2010-12-31", "2010-03-01T09:00:00+01:00", false, true},
		{"bo-a6", "BO01", "a", "cig_deroga", soon, "2010-03-02T09:00:00+01:00", false, false},
		{"bo-a7", "BO01", "a", "cig_deroga", "2010-12-31", "2010-03-03T09:00:00+01:00", false, false},
		{"mo-b8", "MO01", "b", "cig_deroga", "2010-12-31", "2010-03-10T09:00:00+01:00", false, true},
		{"mo-b9", "MO01", "b", "cig_deroga", "2010-12-31", "2010-03-10T10:00:00+01:00", true, true},
		{"mo-b10", "MO01", "b", "cig_deroga", "2010-12-31", "2010-03-10T11:00:00+01:00", false, true},
		{"bo2-e11", "BO02", "e", "cocopro", "2010-12-31", "2010-04-06T09:00:00+02:00", false, true},
		{"bo2-e12", "BO02", "e", "cocopro", "2010-12-31", "2010-04-06T10:00:00+02:00", false, true},
	}
	s := uiSeed{paths: map[string]string{}}
	for i, w := range workers {
		b := post("/v1/paths", fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":"Nome%d","family_name":"Cognome%d","disability":%t},
			"category":%q,"support":{"kind":%q,"from":"2010-01-04","to":%q},"office":%q,"taken_at":%q}`,
			taxCode(t, 100+i), i, i, w.disability, w.category, w.support, w.to, w.office, w.takenAt))
		id := b["path_id"].(string)
		s.paths[w.name] = id
		if w.pact {
			at, _ := time.Parse(time.RFC3339, w.takenAt)
			at = at.Add(30 * time.Minute)
			post("/v1/paths/"+id+"/sessions", fmt.Sprintf(`{"service":2,"delivered_at":%q,"minutes":25,"pact":{"signed_at":%q,"did_on":%q}}`,
				at.Format(time.RFC3339), at.Add(20*time.Minute).Format(time.RFC3339), at.Format("2006-01-02")))
		}
	}
	p := func(name string) string { return "/v1/paths/" + s.paths[name] }
	session := func(name string, service int, at string, minutes int) {
		post(p(name)+"/sessions", fmt.Sprintf(`{"service":%d,"delivered_at":%q,"minutes":%d}`, service, at, minutes))
	}
	group := func(service int, at, justification string, names ...string) {
		ids := make([]string, len(names))
		for i, n := range names {
			ids[i] = strconv.Quote(s.paths[n])
		}
		j := ""
		if justification != "" {
			j = fmt.Sprintf(`,"justification":%q`, justification)
		}
		post("/v1/group-sessions", fmt.Sprintf(`{"service":%d,"delivered_at":%q,"minutes":%d,"participants":[%s]%s}`,
			service, at, 250, strings.Join(ids, ","), j))
	}
	group(6, "2010-03-15T09:00:00+01:00", "", "bo-c0", "bo-c1", "bo-c2", "bo-c3", "bo-c4", "bo-d5")
	group(4, "2010-03-20T09:00:00+01:00", "sciopero dei trasporti: gruppo ridotto", "bo-a6", "bo-a7", "bo-c0", "bo-c1")
	session("bo-d5", 11, "2010-03-05T10:00:00+01:00", 30)
	for _, d := range []string{"2010-04-01", "2010-04-08", "2010-04-15"} {
		session("bo-c0", 5, d+"T09:00:00+02:00", 85)
	}
	post(p("bo-c0")+"/no-shows", `{"appointment_at":"2010-04-22T09:00:00+02:00","justified":false}`)
	session("bo-c0", 3, "2010-04-29T09:00:00+02:00", 50)
	post(p("bo-c0")+"/verification", `{"verified_at":"2010-05-03T10:00:00+02:00","outcome":"achieved","minutes":55,"note":"rientro previsto a giugno"}`)
	post(p("bo-c1")+"/no-shows", `{"appointment_at":"2010-04-12T09:00:00+02:00","justified":false}`)
	post(p("bo-c2")+"/no-shows", `{"appointment_at":"2010-04-20T09:00:00+02:00","justified":true,"reason":"malattia"}`)
	post(p("bo-c3")+"/no-shows", `{"appointment_at":"2010-04-13T09:00:00+02:00","justified":false}`)
	post(p("bo-c3")+"/no-shows", `{"appointment_at":"2010-04-27T09:00:00+02:00","justified":false}`)
	post(p("bo-c4")+"/close", `{"closed_at":"2010-06-30T12:00:00+02:00","reason":"reemployed"}`)
	post(p("bo-d5")+"/traineeships", `{"host_tax_code":"00743110157","starts_on":"2010-04-06","ends_on":"2010-07-31","delivered_at":"2010-04-01T10:00:00+02:00","minutes":700}`)
	for _, n := range []string{"mo-b8", "mo-b9", "mo-b10"} {
		session(n, 3, "2010-04-14T09:00:00+02:00", 55)
		session(n, 1, "2010-05-04T09:00:00+02:00", 20)
	}
	session("bo2-e11", 1, "2011-01-15T09:00:00+01:00", 25)
	post(p("bo2-e12")+"/close", `{"closed_at":"2010-09-01T12:00:00+02:00","reason":"withdrawn"}`)
	s.rich, s.elsewhere = s.paths["bo-c0"], s.paths["mo-b8"]

	// The pages read the read models: wait until each path's last event
	// is in them.
	for id, v := range versions {
		if st, b, _ := admin.do("GET", fmt.Sprintf("/v1/paths/%s?min_version=%d", id, int(v)), ""); st != http.StatusOK {
			t.Fatalf("read model of %s at %d: %d %v", id, int(v), st, b)
		}
	}
	return s
}

// uiHTTP is a browser without a browser: a cookie jar, for the tests that
// only need status codes and CSV.
type uiHTTP struct {
	t    *testing.T
	base string
	c    *http.Client
}

var uiCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func uiSignIn(t *testing.T, base, token string) *uiHTTP {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &uiHTTP{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	status, body, _ := u.get("/ui/signin")
	m := uiCSRF.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("sign-in form: %d", status)
	}
	resp, err := u.c.PostForm(base+"/ui/signin", url.Values{"csrf": {m[1]}, "token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Redirects are followed: a signed-in browser lands on the overview,
	// or on an error page for a role without reports.
	if resp.Request.URL.Path != "/ui/region" {
		t.Fatalf("signed in, landed on %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	return u
}

func (u *uiHTTP) get(path string) (int, string, http.Header) {
	u.t.Helper()
	resp, err := u.c.Get(u.base + path)
	if err != nil {
		u.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// csvRows reads a CSV export as rows of column -> value.
func (u *uiHTTP) csvRows(path string) []map[string]string {
	u.t.Helper()
	status, body, hdr := u.get(path)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		u.t.Fatalf("GET %s: %d %s: %.300s", path, status, hdr.Get("Content-Type"), body)
	}
	return csvToRows(u.t, body)
}

func csvToRows(t *testing.T, body string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("bad CSV (%v): %.300s", err, body)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// apiRows GETs a report and returns its rows as column -> value, numbers
// in plain decimal and null as "", the way the pages' data-value and CSV
// hold them.
func apiRows(t *testing.T, c client, path, key string) []map[string]string {
	t.Helper()
	status, body, _ := c.do("GET", path, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, status, body)
	}
	var out []map[string]string
	for _, r := range body[key].([]any) {
		out = append(out, flatten(r.(map[string]any)))
	}
	return out
}

func flatten(r map[string]any) map[string]string {
	m := map[string]string{}
	for k, v := range r {
		switch v := v.(type) {
		case nil:
			m[k] = ""
		case float64:
			m[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case string:
			m[k] = v
		case bool:
			m[k] = strconv.FormatBool(v)
		}
	}
	return m
}

// reportCheck is one table of a page and the API reports it must equal.
type reportCheck struct {
	page, table string
	keys        []string
	sources     []reportSource
}

type reportSource struct {
	path   string
	rename map[string]string
}

var regionChecks = []reportCheck{
	{"/ui/region", "intake-month", []string{"month"}, []reportSource{{"/v1/reports/intake?group_by=month", nil}}},
	{"/ui/region", "activity-month", []string{"month"}, []reportSource{{"/v1/reports/activity?group_by=month", nil}}},
	{"/ui/region", "province", []string{"province"}, []reportSource{
		{"/v1/reports/intake?group_by=province", map[string]string{"workers": "intake_workers", "paths": "intake_paths"}},
		{"/v1/reports/activity?group_by=province", nil}}},
	{"/ui/region", "office", []string{"office"}, []reportSource{
		{"/v1/reports/intake?group_by=office", map[string]string{"workers": "intake_workers", "paths": "intake_paths"}},
		{"/v1/reports/activity?group_by=office", nil}}},
	{"/ui/region", "service-mix", []string{"category", "service"}, []reportSource{{"/v1/reports/activity?group_by=category,service", nil}}},
	{"/ui/region", "closures-reason", []string{"reason"}, []reportSource{{"/v1/reports/closures?group_by=reason", nil}}},
}

func rowKey(r map[string]string, keys []string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = r[k]
	}
	return strings.Join(parts, "|")
}

// expected merges the sources of a check into rows by key.
func (rc reportCheck) expected(t *testing.T, c client) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, src := range rc.sources {
		for _, r := range apiRows(t, c, src.path, "rows") {
			k := rowKey(r, rc.keys)
			if out[k] == nil {
				out[k] = map[string]string{}
			}
			for col, v := range r {
				if n, ok := src.rename[col]; ok {
					col = n
				}
				out[k][col] = v
			}
		}
	}
	return out
}

// compareRows checks page rows against the API's: every API row is on the
// page with the same values, and a page row the API lacks (a quiet month,
// an office without activity) is all zeros. It returns the number of
// values compared, so a vacuous comparison can be caught.
func compareRows(t *testing.T, what string, keys []string, want map[string]map[string]string, got []map[string]string) int {
	t.Helper()
	n := 0
	seen := map[string]bool{}
	for _, g := range got {
		k := rowKey(g, keys)
		seen[k] = true
		w, ok := want[k]
		for col, v := range g {
			if slices.Contains(keys, col) {
				continue
			}
			if !ok {
				if v != "0" {
					t.Errorf("%s row %s: %s = %q, and the API has no such row", what, k, col, v)
				}
				continue
			}
			if wv, has := w[col]; has {
				n++
				if v != wv {
					t.Errorf("%s row %s: %s = %q, API %q", what, k, col, v, wv)
				}
			}
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("%s: API row %s is not on the page", what, k)
		}
	}
	return n
}

// TestUIMatchesTheAPI signs in as each role over plain HTTP and checks that
// the pages answer as the API does for the same principal, and that the
// CSV exports hold the API's figures.
func TestUIMatchesTheAPI(t *testing.T) {
	m := startMain(t)
	base := uiBase(t, m)
	seed := seedUI(t, m)
	roles := []access.Role{access.RoleOperator, access.RoleSupervisor, access.RoleAuditor, access.RoleAnalyst, access.RoleAdmin}
	sessions := map[access.Role]*uiHTTP{}
	for _, r := range roles {
		sessions[r] = uiSignIn(t, base, token(t, m, r))
	}

	t.Run("roles and scope as the API", func(t *testing.T) {
		cases := []struct {
			role    access.Role
			page    string
			api     string
			status  int
			missing string // text the page must not contain
		}{
			{access.RoleSupervisor, "/ui/region", "/v1/reports/activity", 200, "MO01"},
			{access.RoleSupervisor, "/ui/region?office=MO01", "/v1/reports/activity?office=MO01", 403, ""},
			{access.RoleSupervisor, "/ui/office", "/v1/reports/deadlines?office=BO01", 200, "MO01 Modena"},
			{access.RoleSupervisor, "/ui/office?office=MO01", "/v1/paths?office=MO01", 403, ""},
			{access.RoleSupervisor, "/ui/paths/" + seed.elsewhere, "/v1/paths/" + seed.elsewhere, 403, ""},
			{access.RoleSupervisor, "/ui/paths/" + seed.rich, "/v1/paths/" + seed.rich + "/history", 200, ""},
			{access.RoleSupervisor, "/ui/compliance?office=BO02", "/v1/reports/compliance?office=BO02", 403, ""},
			{access.RoleOperator, "/ui/compliance", "/v1/reports/compliance", 200, ""},
			{access.RoleAnalyst, "/ui/region", "/v1/reports/activity", 200, ""},
			{access.RoleAnalyst, "/ui/office?office=BO01", "/v1/paths?office=BO01", 403, ""},
			{access.RoleAnalyst, "/ui/paths/" + seed.rich, "/v1/paths/" + seed.rich, 403, ""},
			{access.RoleAnalyst, "/ui/compliance", "/v1/reports/compliance", 200, `data-table="compliance-rows"`},
			{access.RoleAnalyst, "/ui/region?office=ZZ99", "/v1/reports/activity?office=ZZ99", 422, ""},
			{access.RoleAnalyst, "/ui/region?from=2010-13-01", "/v1/reports/activity?from=2010-13-01", 422, ""},
			{access.RoleAuditor, "/ui/office?office=MO01", "/v1/paths?office=MO01", 200, "data-list="},
			{access.RoleAuditor, "/ui/paths/" + seed.elsewhere, "/v1/paths/" + seed.elsewhere + "/verify", 200, ""},
			{access.RoleAdmin, "/ui/office?office=BO02", "/v1/reports/deadlines?office=BO02", 200, ""},
			{access.RoleAdmin, "/ui/paths/00000000-0000-4000-8000-000000000000", "/v1/paths/00000000-0000-4000-8000-000000000000", 404, ""},
		}
		for _, tc := range cases {
			api := client{t, m.HTTPURL(), token(t, m, tc.role)}
			apiStatus, _, _ := api.do("GET", tc.api, "")
			status, body, _ := sessions[tc.role].get(tc.page)
			if status != tc.status || apiStatus != tc.status {
				t.Errorf("%s %s: page %d, API %s %d, want both %d", tc.role, tc.page, status, tc.api, apiStatus, tc.status)
			}
			if tc.missing != "" && strings.Contains(body, tc.missing) {
				t.Errorf("%s %s: the page shows %q", tc.role, tc.page, tc.missing)
			}
		}
	})

	t.Run("auditors' reads are recorded", func(t *testing.T) {
		admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}
		_, body, _ := admin.do("GET", "/v1/audit/reads?principal=dev-auditor", "")
		got := map[string]bool{}
		for _, r := range body["reads"].([]any) {
			rd := r.(map[string]any)
			got[rd["action"].(string)+" "+rd["path_id"].(string)] = true
		}
		for _, want := range []string{"path " + seed.elsewhere, "history " + seed.elsewhere, "verify " + seed.elsewhere, "list_paths " + seed.elsewhere} {
			if !got[want] {
				t.Errorf("no recorded read %q in %v", want, got)
			}
		}
	})

	t.Run("CSV exports hold the API's figures", func(t *testing.T) {
		for _, role := range []access.Role{access.RoleSupervisor, access.RoleAnalyst} {
			api := client{t, m.HTTPURL(), token(t, m, role)}
			compared := 0
			for _, rc := range regionChecks {
				want := rc.expected(t, api)
				got := sessions[role].csvRows(rc.page + ".csv?table=" + rc.table)
				compared += compareRows(t, string(role)+" "+rc.table+".csv", rc.keys, want, got)
			}
			if compared < 40 {
				t.Errorf("%s: only %d values compared", role, compared)
			}
		}
		// The analyst's cells under five workers are blank, as on the API.
		analyst := sessions[access.RoleAnalyst].csvRows("/ui/region.csv?table=office")
		blank := 0
		for _, r := range analyst {
			if r["intake_workers"] == "" {
				blank++
			}
		}
		if blank == 0 {
			t.Errorf("no suppressed cell in the analyst's office table: %v", analyst)
		}
		// Compliance rows: the same sessions as the API's CSV.
		sup := client{t, m.HTTPURL(), token(t, m, access.RoleSupervisor)}
		req, _ := http.NewRequest("GET", m.HTTPURL()+"/v1/reports/compliance", nil)
		req.Header.Set("Authorization", "Bearer "+sup.token)
		req.Header.Set("Accept", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		apiCSV := csvToRows(t, string(raw))
		pageCSV := sessions[access.RoleSupervisor].csvRows("/ui/compliance.csv?table=compliance-rows")
		// At least the group of four and the third 05 of BO01.
		if len(apiCSV) < 5 || len(pageCSV) != len(apiCSV) {
			t.Fatalf("compliance rows: page %d, API %d", len(pageCSV), len(apiCSV))
		}
		for i := range apiCSV {
			for _, col := range []string{"path_id", "office", "service", "kind", "group_size", "justification"} {
				if pageCSV[i][col] != apiCSV[i][col] {
					t.Errorf("compliance row %d %s: page %q, API %q", i, col, pageCSV[i][col], apiCSV[i][col])
				}
			}
		}
	})
}

// fmtInt and fmtHours format as the pages do (Italian: 1.234 and 1,5;
// English: 1,234 and 1.5), written out here independently of the ui
// package so that a formatting bug there shows.
func fmtInt(s, group string) string {
	n, err := strconv.Atoi(s)
	if err != nil {
		return "?" + s
	}
	d := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range d {
		if i > 0 && (len(d)-i)%3 == 0 {
			b.WriteString(group)
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtHours(minutes, group, point string) string {
	n, err := strconv.Atoi(minutes)
	if err != nil {
		return "?" + minutes
	}
	tenths := int(math.Round(float64(n) / 6))
	return fmtInt(strconv.Itoa(tenths/10), group) + point + strconv.Itoa(tenths%10)
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PERCORSO_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// chromium returns Debian's Chromium. When it is missing the test installs
// it, as root (CI runs as root), with apt-get; anyone else is told how and
// the browser test is skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("headless Chromium is not installed and installing it needs root: apt-get install -y chromium")
	}
	start := time.Now()
	apt := func(args ...string) error {
		cmd := exec.Command("apt-get", append([]string{"-q", "-o", "DPkg::Lock::Timeout=300"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The package lists may be missing or stale on a fresh machine: update
	// only when the install fails without them, since updating is slow.
	if err := apt("install", "-y", "chromium"); err != nil {
		if err := apt("update"); err != nil {
			t.Fatal(err)
		}
		if err := apt("install", "-y", "chromium"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("installed Chromium from Debian's packages in %v", time.Since(start).Round(time.Second))
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium installed but not on PATH")
	}
	return p
}

// domPage is what extractJS reads off a page.
type domPage struct {
	Title   string              `json:"title"`
	H1      string              `json:"h1"`
	Lang    string              `json:"lang"`
	Status  int                 `json:"status"`
	Nav     []string            `json:"nav"`
	Tables  map[string][]domRow `json:"tables"`
	KPIs    map[string]domCell  `json:"kpis"`
	Facts   map[string]domCell  `json:"facts"`
	Lists   map[string]int      `json:"lists"`
	Figures []domFigure         `json:"figures"`
	Verify  *struct {
		OK     string `json:"ok"`
		Events int    `json:"events"`
		Head   string `json:"head"`
	} `json:"verify"`
}

type domRow struct {
	Key   string             `json:"key"`
	Cells map[string]domCell `json:"cells"`
}

type domCell struct {
	Value      string `json:"value"`
	Text       string `json:"text"`
	Suppressed bool   `json:"suppressed"`
}

type domFigure struct {
	ID       string `json:"id"`
	Charts   int    `json:"charts"`
	Labelled bool   `json:"labelled"`
	Table    bool   `json:"table"`
}

// extractJS reads the figures as a person sees them (textContent) and as
// the page states them for machines (data-value), with the structure that
// accessibility needs (role, title and desc on each chart, a table behind).
const extractJS = `(() => {
  const cell = c => ({value: c.dataset.value ?? "", text: c.textContent.trim(), suppressed: c.dataset.suppressed === "true"});
  const tables = {};
  for (const t of document.querySelectorAll("table[data-table]")) {
    tables[t.dataset.table] = [...t.tBodies[0].rows].map(tr => {
      const cells = {};
      for (const c of tr.querySelectorAll("[data-col]")) cells[c.dataset.col] = cell(c);
      return {key: tr.dataset.key, cells};
    });
  }
  const dl = sel => {
    const out = {};
    for (const e of document.querySelectorAll("[" + sel + "]")) out[e.getAttribute(sel)] = {value: e.dataset.value ?? "", text: e.querySelector("dd").textContent.trim()};
    return out;
  };
  const lists = {};
  for (const l of document.querySelectorAll("[data-list]")) lists[l.dataset.list] = Number(l.dataset.count);
  const figures = [...document.querySelectorAll("figure[data-figure]")].map(f => {
    const svgs = [...f.querySelectorAll("svg")];
    return {id: f.dataset.figure, charts: svgs.length, table: !!f.querySelector("table[data-table]"),
      labelled: svgs.every(s => s.getAttribute("role") === "img" && s.querySelector("title") && s.querySelector("desc"))};
  });
  const v = document.querySelector("[data-verify-ok]");
  const err = document.querySelector("[data-status]");
  return {title: document.title, h1: (document.querySelector("h1") || {textContent: ""}).textContent.trim(),
    lang: document.documentElement.lang, status: err ? Number(err.dataset.status) : 200,
    nav: [...document.querySelectorAll("header nav a")].map(a => a.getAttribute("href")),
    tables, kpis: dl("data-kpi"), facts: dl("data-fact"), lists, figures,
    verify: v ? {ok: v.dataset.verifyOk, events: Number(v.dataset.events), head: v.dataset.head} : null};
})()`

type uiBrowser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	group string // digit grouping of the page language
	point string // decimal point of the page language
}

// open loads a page, checks the HTTP status the browser got is the one the
// page states, and reads it.
func (b *uiBrowser) open(path string) domPage {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	pg, err := chromedp.Run(b.ctx, chromedp.Evaluate[domPage](extractJS))
	if err != nil {
		b.t.Fatalf("read %s: %v", path, err)
	}
	if int(resp.Status) != pg.Status {
		b.t.Errorf("%s: HTTP %d, page says %d", path, resp.Status, pg.Status)
	}
	return pg
}

func (b *uiBrowser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

func (b *uiBrowser) signIn(token string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx,
		chromedp.Navigate(b.base+"/ui/signin"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
	); err != nil {
		b.t.Fatalf("sign-in form: %v", err)
	}
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS("form.signin button[type=submit]"))); err != nil {
		b.t.Fatalf("signing in: %v", err)
	}
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/ui/region") {
		b.t.Fatalf("signed in, landed on %s", loc)
	}
}

func (b *uiBrowser) signOut() {
	b.t.Helper()
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(`form[action="/ui/signout"] button`))); err != nil {
		b.t.Fatalf("signing out: %v", err)
	}
	if loc, _ := chromedp.Run(b.ctx, chromedp.Location()); !strings.HasSuffix(loc, "/ui/signin") {
		b.t.Fatalf("signed out, landed on %s", loc)
	}
}

// checkText checks the visible text of a figure against its value.
func (b *uiBrowser) checkText(what, col string, c domCell) {
	b.t.Helper()
	var want string
	switch {
	case c.Suppressed:
		if c.Value != "" {
			b.t.Errorf("%s %s: suppressed but its value is %q", what, col, c.Value)
		}
		want = "<5"
	case strings.HasSuffix(col, "minutes") || strings.HasSuffix(col, "minutes_total"):
		want = fmtHours(c.Value, b.group, b.point)
	default:
		want = fmtInt(c.Value, b.group)
	}
	if c.Text != want {
		b.t.Errorf("%s %s: shows %q, want %q (value %q)", what, col, c.Text, want, c.Value)
	}
}

// table reads a page table as rows of column -> value, checking each
// measure's text on the way.
func (b *uiBrowser) table(pg domPage, id string, keys []string) []map[string]string {
	b.t.Helper()
	rows, ok := pg.Tables[id]
	if !ok {
		b.t.Errorf("%s: no table %s", pg.Title, id)
	}
	var out []map[string]string
	for _, r := range rows {
		m := map[string]string{}
		for col, c := range r.Cells {
			m[col] = c.Value
			if !slices.Contains(keys, col) {
				b.checkText(id+" "+r.Key, col, c)
			}
		}
		out = append(out, m)
	}
	return out
}

// checkRegion compares every table and headline figure of the overview
// with the API, for the principal api speaks as.
func (b *uiBrowser) checkRegion(pg domPage, api client) {
	b.t.Helper()
	compared := 0
	for _, rc := range regionChecks {
		compared += compareRows(b.t, "page "+rc.table, rc.keys, rc.expected(b.t, api), b.table(pg, rc.table, rc.keys))
	}
	if compared < 40 {
		b.t.Errorf("only %d values compared", compared)
	}
	intake := apiRows(b.t, api, "/v1/reports/intake", "rows")
	activity := apiRows(b.t, api, "/v1/reports/activity", "rows")
	if len(intake) != 1 || len(activity) != 1 {
		b.t.Fatalf("totals: %v %v", intake, activity)
	}
	want := map[string]string{"intake_workers": intake[0]["workers"], "intake_paths": intake[0]["paths"],
		"workers": activity[0]["workers"], "sessions": activity[0]["sessions"], "credited_minutes": activity[0]["credited_minutes"]}
	for id, v := range want {
		k, ok := pg.KPIs[id]
		if !ok || k.Value != v {
			b.t.Errorf("headline %s = %q, API %q", id, k.Value, v)
		}
		if id == "credited_minutes" && k.Text != fmtHours(v, b.group, b.point) || id != "credited_minutes" && k.Text != fmtInt(v, b.group) {
			b.t.Errorf("headline %s shows %q for %q", id, k.Text, v)
		}
	}
	charts := 0
	for _, f := range pg.Figures {
		charts += f.Charts
		if !f.Labelled || !f.Table {
			b.t.Errorf("figure %s: labelled %v, table %v", f.ID, f.Labelled, f.Table)
		}
	}
	if charts < 9 {
		b.t.Errorf("%d charts on the overview", charts)
	}
}

// TestUIInBrowser opens every page in headless Chromium as a supervisor of
// BO01 and as a region-wide analyst, checks the figures shown equal the
// API's, and saves a screenshot of each page ($PERCORSO_ARTIFACTS, else a
// temporary directory).
func TestUIInBrowser(t *testing.T) {
	exe := chromium(t)
	m := startMain(t)
	base := uiBase(t, m)
	seed := seedUI(t, m)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900),
		// An Italian office's browser: the pages must pick Italian from
		// Accept-Language, and English only when asked.
		chromedp.Flag("accept-lang", "it-IT,it;q=0.9,en;q=0.5"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	b := &uiBrowser{t: t, ctx: ctx, base: base, shots: artifactsDir(t), group: ".", point: ","}
	sup := client{t, m.HTTPURL(), token(t, m, access.RoleSupervisor)}

	b.signIn(sup.token)
	if c, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || strings.Contains(c, "percorso_ui_session") {
		t.Errorf("the session cookie is readable from scripts: %q %v", c, err)
	}

	t.Run("overview", func(t *testing.T) {
		b.t = t
		pg := b.open("/ui/region")
		if pg.H1 != "Panoramica" || pg.Lang != "it" {
			t.Errorf("h1 %q, lang %q", pg.H1, pg.Lang)
		}
		b.checkRegion(pg, sup)
		b.screenshot("region-supervisor")

		en := b.open("/ui/region?lang=en")
		if en.H1 != "Overview" || en.Lang != "en" {
			t.Errorf("English: h1 %q, lang %q", en.H1, en.Lang)
		}
		b.group, b.point = ",", "."
		b.checkRegion(en, sup)
		b.screenshot("region-en")
		b.open("/ui/region?lang=it")
		b.group, b.point = ".", ","
	})

	t.Run("office", func(t *testing.T) {
		b.t = t
		pg := b.open("/ui/office")
		_, d, _ := sup.do("GET", "/v1/reports/deadlines?office=BO01", "")
		wantCounts := map[string]int{"without_pact": 2, "first_no_show": 1, "second_no_show": 1, "justified_absence": 1, "support_ending": 1}
		for list, minCount := range wantCounts {
			api := d[list].(map[string]any)
			count := int(api["count"].(float64))
			if count < minCount {
				t.Errorf("API %s: %d, the seed made at least %d", list, count, minCount)
			}
			if pg.Lists[list] != count {
				t.Errorf("list %s: page %d, API %d", list, pg.Lists[list], count)
			}
			var want, got []string
			for _, it := range api["items"].([]any) {
				want = append(want, it.(map[string]any)["path_id"].(string))
			}
			for _, r := range pg.Tables["deadline-"+list] {
				got = append(got, r.Key)
			}
			if !slices.Equal(got, want) {
				t.Errorf("list %s: page %v, API %v", list, got, want)
			}
		}
		_, list, _ := sup.do("GET", "/v1/paths?office=BO01&limit=50", "")
		want := map[string]map[string]string{}
		for _, p := range list["paths"].([]any) {
			r := flatten(p.(map[string]any))
			want[r["path_id"]] = map[string]string{"path_id": r["path_id"], "credited_minutes_total": r["credited_minutes_total"], "unjustified_no_shows": r["unjustified_no_shows"]}
		}
		got := b.table(pg, "caseload", []string{"path_id", "worker", "tax_code", "category", "support_kind", "status", "taken_at", "pact_signed_at"})
		if len(want) != 8 {
			t.Errorf("API lists %d paths of BO01, the seed made 8", len(want))
		}
		compareRows(t, "caseload", []string{"path_id"}, want, got)
		b.screenshot("office-supervisor")
	})

	t.Run("compliance", func(t *testing.T) {
		b.t = t
		pg := b.open("/ui/compliance")
		_, c, _ := sup.do("GET", "/v1/reports/compliance", "")
		want := map[string]map[string]string{}
		for k, v := range c["totals"].(map[string]any) {
			want[k] = map[string]string{"kind": k, "sessions": strconv.Itoa(int(v.(float64)))}
		}
		compareRows(t, "compliance-kind", []string{"kind"}, want, b.table(pg, "compliance-kind", []string{"kind"}))
		if n := len(c["rows"].([]any)); len(pg.Tables["compliance-rows"]) != n || n == 0 {
			t.Errorf("flagged sessions: page %d, API %d", len(pg.Tables["compliance-rows"]), n)
		}
		b.screenshot("compliance-supervisor")
	})

	t.Run("path", func(t *testing.T) {
		b.t = t
		pg := b.open("/ui/paths/" + seed.rich)
		_, view, _ := sup.do("GET", "/v1/paths/"+seed.rich, "")
		if v := strconv.Itoa(int(view["credited_minutes_total"].(float64))); pg.Facts["credited_minutes_total"].Value != v {
			t.Errorf("credited total: page %q, API %s", pg.Facts["credited_minutes_total"].Value, v)
		}
		want := map[string]map[string]string{}
		for code, tally := range view["services"].(map[string]any) {
			r := flatten(tally.(map[string]any))
			want[code] = map[string]string{"service": code, "delivered": r["delivered"], "credited_minutes": r["credited_minutes"]}
		}
		compareRows(t, "path services", []string{"service"}, want, b.table(pg, "path-services", []string{"service"}))
		_, h, _ := sup.do("GET", "/v1/paths/"+seed.rich+"/history", "")
		events := h["events"].([]any)
		timeline := pg.Tables["timeline"]
		if len(timeline) != len(events) || len(events) < 10 {
			t.Fatalf("timeline: %d rows, API %d events", len(timeline), len(events))
		}
		for i, e := range events {
			ev := e.(map[string]any)
			if timeline[i].Key != strconv.Itoa(int(ev["seq"].(float64))) || timeline[i].Cells["type"].Value != ev["type"] || timeline[i].Cells["hash"].Value != ev["hash"] {
				t.Errorf("timeline row %d: %v, API %v %v", i, timeline[i], ev["seq"], ev["type"])
			}
		}
		_, v, _ := sup.do("GET", "/v1/paths/"+seed.rich+"/verify", "")
		if pg.Verify == nil || pg.Verify.OK != "true" || v["ok"] != true || pg.Verify.Head != v["head_hash"] || float64(pg.Verify.Events) != v["events"] {
			t.Errorf("verification: page %+v, API %v", pg.Verify, v)
		}
		b.screenshot("path-supervisor")
	})

	t.Run("analyst", func(t *testing.T) {
		b.t = t
		b.signOut()
		if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/ui/signin") {
			t.Errorf("signed out at %s", loc)
		}
		ana := client{t, m.HTTPURL(), token(t, m, access.RoleAnalyst)}
		b.signIn(ana.token)
		pg := b.open("/ui/region")
		b.checkRegion(pg, ana)
		suppressed := 0
		for _, rows := range pg.Tables {
			for _, r := range rows {
				for _, c := range r.Cells {
					if c.Suppressed {
						suppressed++
					}
				}
			}
		}
		if suppressed == 0 {
			t.Error("no suppressed cell on the analyst's overview")
		}
		if slices.Contains(pg.Nav, "/ui/office") {
			t.Errorf("analyst menu: %v", pg.Nav)
		}
		b.screenshot("region-analyst")
		if pg := b.open("/ui/office?office=BO01"); pg.Status != http.StatusForbidden {
			t.Errorf("analyst office page: %d", pg.Status)
		}
		if pg := b.open("/ui/compliance"); pg.Tables["compliance-rows"] != nil || pg.Tables["compliance-office"] != nil || pg.Tables["compliance-kind"] == nil {
			t.Errorf("analyst compliance tables: %v", slices.Collect(maps.Keys(pg.Tables)))
		}
	})
	t.Logf("browser checks took %v", time.Since(start).Round(time.Millisecond))
}
