package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// repStream builds the events of a small, hand-made region: six workers in
// Bologna (enough to show to analysts), one in Imola and two in Modena (too
// few), a group outside 6–15, no-shows, a refusal and a closure.
type repStream struct {
	items []pg.Item
	n     int
}

func (s *repStream) id() string {
	s.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", s.n)
}

func (s *repStream) add(e workerpath.Event) {
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	h := e.Header()
	seq := uint64(len(s.items) + 1)
	s.items = append(s.items, pg.Item{Env: &eventstore.Envelope{
		Seq: seq, ID: s.id(), Type: e.EventType(), SchemaVersion: eventstore.SchemaVersion, PathID: h.PathID,
		Time: h.RecordedAt, Actor: h.Operator, CommandID: s.id(), CorrelationID: s.id(),
		Hash: fmt.Sprint("h", seq), Data: data,
	}, Event: e})
}

func repAt(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func repM(path, code string, t time.Time) workerpath.Meta {
	return workerpath.Meta{PathID: path, Office: code, Operator: "op", RecordedAt: t}
}

// repTaxCodeFor makes a valid codice fiscale that differs per worker number.
func repTaxCodeFor(n int) string {
	first := fmt.Sprintf("RSSMRA80A%02dH501", n+1)
	c, err := taxcode.CheckChar(first)
	if err != nil {
		panic(err)
	}
	return first + string(c)
}

type repRegion struct {
	paths map[string][]string // office -> path ids
	tax   map[string]string   // path id -> tax code
	first string              // the BO01 path with a first no-show
}

func (s *repStream) repRegion() repRegion {
	r := repRegion{paths: map[string][]string{}, tax: map[string]string{}}
	taken := repAt("2010-03-01T09:00:00Z")
	worker := 0
	open := func(code, category string) string {
		id := s.id()
		worker++
		kind := workerpath.SupportCIG
		if category == "d" {
			kind = workerpath.SupportMobilita
		}
		tc := repTaxCodeFor(worker)
		s.add(&workerpath.TakenInCharge{Meta: repM(id, code, taken), WorkerRef: fmt.Sprint("ref-", worker),
			Worker:   workerpath.Person{TaxCode: tc, GivenName: "Maria", FamilyName: fmt.Sprint("Rossi", worker)},
			Category: category, TakenAt: taken, CatalogueVersion: workerpath.CatalogueVersion,
			Support: workerpath.Support{Kind: kind, From: workerpath.MustDate("2010-03-01"), To: workerpath.MustDate("2010-12-31")}})
		r.paths[code] = append(r.paths[code], id)
		r.tax[id] = tc
		return id
	}
	deliver := func(id, code string, service int, when time.Time) *workerpath.SessionDelivered {
		svc, _ := workerpath.LookupService(service)
		e := &workerpath.SessionDelivered{Meta: repM(id, code, when), SessionID: s.id(), Service: service, DeliveredAt: when,
			StandardMinutes: svc.StandardMinutes, CreditedMinutes: svc.StandardMinutes, ActualMinutes: svc.StandardMinutes - 10,
			CatalogueVersion: workerpath.CatalogueVersion}
		return e
	}
	for i := range 6 {
		open("BO01", string(rune('a'+i%3)))
	}
	open("BO02", "a")
	open("MO01", "d")
	open("MO01", "d")
	for _, code := range []string{"BO01", "BO02", "MO01"} {
		for i, id := range r.paths[code] {
			when := repAt("2010-03-10T10:00:00Z")
			if i == 0 {
				when = repAt("2010-03-31T22:30:00Z") // 1 April in Rome
			}
			s.add(deliver(id, code, 3, when))
		}
	}
	bo := r.paths["BO01"]
	group := s.id()
	for _, id := range bo[:4] {
		e := deliver(id, "BO01", 4, repAt("2010-04-20T08:00:00Z"))
		e.GroupID, e.GroupSize, e.OutsideGroupRange, e.Justification = group, 4, true, "=HYPERLINK(\"x\")"
		s.add(e)
	}
	r.first = bo[1]
	s.add(&workerpath.NoShowRecorded{Meta: repM(bo[1], "BO01", repAt("2010-05-01T09:00:00Z")), AppointmentAt: repAt("2010-05-01T08:00:00Z"),
		Kind: workerpath.NoShowFirst, Unjustified: 1})
	for i, kind := range []string{workerpath.NoShowFirst, workerpath.NoShowSecond} {
		t := repAt("2010-05-01T09:00:00Z").AddDate(0, 0, 7*i)
		s.add(&workerpath.NoShowRecorded{Meta: repM(bo[2], "BO01", t), AppointmentAt: t, Kind: kind, Unjustified: i + 1, ReportToINPS: i == 1})
	}
	s.add(&workerpath.RefusalReported{Meta: repM(bo[3], "BO01", repAt("2010-05-03T09:00:00Z")), Kind: workerpath.RefusalJobOffer, At: repAt("2010-05-03T09:00:00Z")})
	mo := r.paths["MO01"][0]
	s.add(&workerpath.PathClosed{Meta: repM(mo, "MO01", repAt("2010-06-01T09:00:00Z")), ClosedAt: repAt("2010-06-01T09:00:00Z"), Reason: workerpath.CloseDecadenza})
	return r
}

var repTokens = map[string]string{
	"operator":   "tok-operator-bo01",
	"supervisor": "tok-supervisor-bo",
	"auditor":    "tok-auditor",
	"analyst":    "tok-analyst",
	"admin":      "tok-admin",
}

func repDirectory(t *testing.T) *access.Directory {
	t.Helper()
	entry := func(name, role string, offices ...string) map[string]any {
		e := map[string]any{"name": name, "role": role, "token_sha256": access.HashToken(repTokens[role])}
		if len(offices) > 0 {
			e["offices"] = offices
		}
		return e
	}
	data, _ := json.Marshal(map[string]any{"principals": []any{
		entry("op.bo", "operator", "BO01"), entry("sup.bo", "supervisor", "BO01", "BO02"),
		entry("aud", "auditor"), entry("ana", "analyst"), entry("adm", "admin"),
	}})
	dir, err := access.ParsePrincipals(data, func(c string) bool { _, ok := office.Lookup(c); return ok })
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

type repEnv struct {
	srv    *httptest.Server
	region repRegion
	reader *pg.Reader
	dir    *access.Directory
}

func repSetup(t *testing.T) *repEnv {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := &repStream{}
	reg := s.repRegion()
	if err := pg.NewProjector(pool).Apply(ctx, s.items); err != nil {
		t.Fatal(err)
	}
	reader := pg.NewReader(pool)
	dir := repDirectory(t)
	api := httpapi.New(nil, reader, dir, nil, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &repEnv{srv: srv, region: reg, reader: reader, dir: dir}
}

type repResponse struct {
	status int
	header http.Header
	body   []byte
}

func repGet(t *testing.T, base, role, path string, accept ...string) repResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+repTokens[role])
	}
	if len(accept) > 0 {
		req.Header.Set("Accept", accept[0])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return repResponse{status: res.StatusCode, header: res.Header, body: body}
}

func (r repResponse) errorCode() string {
	var e struct {
		Error struct{ Code, Field string }
	}
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r repResponse) decode(t *testing.T, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
}

// TestQueryErrors: every route checks its caller first, then each
// parameter, with the status and code API.md gives.
func TestQueryErrors(t *testing.T) {
	e := repSetup(t)
	cases := []struct {
		role, path string
		status     int
		code       string
	}{
		{"", "/v1/paths", 401, "unauthenticated"},
		{"", "/v1/reports/activity", 401, "unauthenticated"},
		{"", "/v1/reports/deadlines?office=BO01", 401, "unauthenticated"},
		{"analyst", "/v1/paths", 403, "forbidden"},
		{"analyst", "/v1/paths?office=XX99", 403, "forbidden"},
		{"analyst", "/v1/reports/deadlines?office=BO01", 403, "forbidden"},
		{"auditor", "/v1/reports/deadlines?office=BO01", 403, "forbidden"},
		{"operator", "/v1/paths?office=MO01", 403, "forbidden"},
		{"operator", "/v1/reports/activity?office=MO01", 403, "forbidden"},
		{"operator", "/v1/reports/compliance?office=BO02", 403, "forbidden"},
		{"supervisor", "/v1/reports/deadlines?office=MO01", 403, "forbidden"},
		{"operator", "/v1/reports/deadlines", 400, "invalid_field"},
		{"operator", "/v1/paths?office=XX99", 422, "unknown_office"},
		{"admin", "/v1/reports/activity?office=bo01", 422, "unknown_office"},
		{"admin", "/v1/paths?limit=0", 400, "invalid_field"},
		{"admin", "/v1/paths?limit=501", 400, "invalid_field"},
		{"admin", "/v1/paths?limit=ten", 400, "invalid_field"},
		{"admin", "/v1/paths?after=bm90LWEtY3Vyc29y", 400, "invalid_field"},
		{"admin", "/v1/paths?after=%27%3B--", 400, "invalid_field"},
		{"admin", "/v1/paths?status=pending", 400, "invalid_field"},
		{"admin", "/v1/paths?category=f", 400, "invalid_field"},
		{"admin", "/v1/paths?tax_code=RSSMRA80A01H501X", 422, "invalid_tax_code"},
		{"admin", "/v1/paths?ofice=BO01", 400, "unknown_field"},
		{"admin", "/v1/paths?office=BO01&office=BO02", 400, "invalid_field"},
		{"admin", "/v1/reports/activity?group_by=office,worker", 400, "invalid_field"},
		{"admin", "/v1/reports/activity?group_by=office,office", 400, "invalid_field"},
		{"admin", "/v1/reports/activity?group_by=reason", 400, "invalid_field"},
		{"admin", "/v1/reports/activity?group_by=office;DROP%20TABLE%20sessions", 400, "invalid_field"},
		{"admin", "/v1/reports/closures?group_by=service", 400, "invalid_field"},
		{"admin", "/v1/reports/activity?from=2010-13-01", 422, "invalid_date"},
		{"admin", "/v1/reports/activity?to=20100101", 422, "invalid_date"},
		{"admin", "/v1/reports/activity?from=2010-05-01&to=2010-04-30", 422, "invalid_date"},
		{"admin", "/v1/reports/intake?from=yesterday", 422, "invalid_date"},
		{"admin", "/v1/reports/compliance?kind=late", 400, "invalid_field"},
		{"admin", "/v1/reports/compliance?to=2010-02-30", 422, "invalid_date"},
		{"admin", "/v1/reports/deadlines?as_of=2010-1-1", 422, "invalid_date"},
		{"admin", "/v1/reports/deadlines?limit=5001", 400, "invalid_field"},
		{"admin", "/v1/reports/inps?format=csv", 400, "unknown_field"},
	}
	for _, c := range cases {
		r := repGet(t, e.srv.URL, c.role, c.path)
		if r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.role, c.path, r.status, r.body, c.status, c.code)
		}
	}
}

type repPathsPage struct {
	Paths []query.PathSummary `json:"paths"`
	Next  *string             `json:"next"`
}

func TestListPaths(t *testing.T) {
	e := repSetup(t)
	reg := e.region
	all := slices.Concat(reg.paths["BO01"], reg.paths["BO02"], reg.paths["MO01"])
	cases := []struct {
		role, query string
		want        []string
	}{
		{"operator", "", reg.paths["BO01"]},
		{"operator", "?office=BO01&status=open", reg.paths["BO01"]},
		{"supervisor", "", slices.Concat(reg.paths["BO01"], reg.paths["BO02"])},
		{"supervisor", "?office=BO02", reg.paths["BO02"]},
		{"auditor", "", all},
		{"admin", "", all},
		{"admin", "?office=MO01&status=closed", reg.paths["MO01"][:1]},
		{"admin", "?category=d", reg.paths["MO01"]},
		{"admin", "?tax_code=" + url.QueryEscape(" "+strings.ToLower(reg.tax[reg.first])+" "), []string{reg.first}},
		{"operator", "?tax_code=" + reg.tax[reg.paths["MO01"][1]], nil},
	}
	for _, c := range cases {
		var page repPathsPage
		repGet(t, e.srv.URL, c.role, "/v1/paths"+c.query).decode(t, &page)
		var got []string
		for _, p := range page.Paths {
			got = append(got, p.PathID)
		}
		want := slices.Sorted(slices.Values(c.want))
		if !slices.Equal(got, want) || page.Next != nil {
			t.Errorf("%s %s: %v (next %v), want %v", c.role, c.query, got, page.Next, want)
		}
	}

	// Pages of two, chained by the opaque cursor, give every path once.
	var got []string
	next := ""
	for pages := 0; ; pages++ {
		q := "?limit=2"
		if next != "" {
			q += "&after=" + url.QueryEscape(next)
		}
		var page repPathsPage
		repGet(t, e.srv.URL, "admin", "/v1/paths"+q).decode(t, &page)
		if len(page.Paths) > 2 || pages > len(all) {
			t.Fatalf("page %d has %d paths", pages, len(page.Paths))
		}
		for _, p := range page.Paths {
			got = append(got, p.PathID)
		}
		if page.Next == nil {
			break
		}
		if strings.Contains(*page.Next, "-") && strings.Contains(*page.Next, page.Paths[1].PathID) {
			t.Error("the cursor is the bare path id, not opaque")
		}
		next = *page.Next
	}
	if want := slices.Sorted(slices.Values(all)); !slices.Equal(got, want) {
		t.Errorf("paging gave %v, want %v", got, want)
	}

	// Operators see the worker they serve.
	var page repPathsPage
	repGet(t, e.srv.URL, "operator", "/v1/paths?tax_code="+reg.tax[reg.first]).decode(t, &page)
	if len(page.Paths) != 1 || page.Paths[0].Worker.FamilyName == nil || *page.Paths[0].Worker.TaxCode != reg.tax[reg.first] {
		t.Errorf("summary without the worker: %+v", page.Paths)
	}
}

// repActivityRow decodes a row keeping "workers": null apart from 0.
type repActivityRow struct {
	Office          string          `json:"office"`
	Service         int             `json:"service"`
	Month           string          `json:"month"`
	Workers         json.RawMessage `json:"workers"`
	Sessions        int             `json:"sessions"`
	CreditedMinutes int             `json:"credited_minutes"`
	ActualMinutes   int             `json:"actual_minutes"`
}

func repActivity(t *testing.T, base, role, q string) map[string]repActivityRow {
	t.Helper()
	var body struct{ Rows []repActivityRow }
	repGet(t, base, role, "/v1/reports/activity"+q).decode(t, &body)
	out := map[string]repActivityRow{}
	for _, r := range body.Rows {
		out[fmt.Sprint(r.Office, "/", r.Service, "/", r.Month)] = r
	}
	return out
}

func TestActivityReport(t *testing.T) {
	e := repSetup(t)
	base := e.srv.URL

	// Admins see every cell in full; analysts see the same cells with
	// worker counts under five blanked; operators only their office.
	cases := []struct {
		role    string
		q       string
		workers map[string]string
	}{
		{"admin", "?group_by=office", map[string]string{"BO01/0/": "6", "BO02/0/": "1", "MO01/0/": "2"}},
		{"auditor", "?group_by=office", map[string]string{"BO01/0/": "6", "BO02/0/": "1", "MO01/0/": "2"}},
		{"analyst", "?group_by=office", map[string]string{"BO01/0/": "6", "BO02/0/": "null", "MO01/0/": "null"}},
		{"analyst", "?group_by=office,service", map[string]string{"BO01/3/": "6", "BO01/4/": "null", "BO02/3/": "null", "MO01/3/": "null"}},
		{"operator", "?group_by=office", map[string]string{"BO01/0/": "6"}},
		{"operator", "?group_by=office&office=BO01", map[string]string{"BO01/0/": "6"}},
		{"supervisor", "?group_by=office", map[string]string{"BO01/0/": "6", "BO02/0/": "1"}},
		{"admin", "", map[string]string{"/0/": "9"}},
		{"admin", "?from=2011-01-01", map[string]string{"/0/": "0"}},
		{"admin", "?group_by=office,month&from=2010-04-01&to=2010-04-01", map[string]string{"BO01/0/2010-04": "1", "BO02/0/2010-04": "1", "MO01/0/2010-04": "1"}},
		{"admin", "?group_by=office,month&to=2010-03-31", map[string]string{"BO01/0/2010-03": "5", "MO01/0/2010-03": "1"}},
	}
	for _, c := range cases {
		got := repActivity(t, base, c.role, c.q)
		workers := map[string]string{}
		for k, r := range got {
			workers[k] = string(r.Workers)
		}
		if fmt.Sprint(workers) != fmt.Sprint(c.workers) {
			t.Errorf("%s %s: workers %v, want %v", c.role, c.q, workers, c.workers)
		}
	}

	full := repActivity(t, base, "admin", "?group_by=office,service")
	if r := full["BO01/4/"]; r.Sessions != 4 || r.CreditedMinutes != 4*240 || r.ActualMinutes != 4*230 {
		t.Errorf("BO01 group sessions: %+v", r)
	}
	if r := repActivity(t, base, "analyst", "?group_by=office,service")["BO01/4/"]; r.Sessions != 4 || r.CreditedMinutes != 960 {
		t.Errorf("analysts lose the volumes of a blanked cell: %+v", r)
	}
}

func repReadCSV(t *testing.T, r repResponse) [][]string {
	t.Helper()
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("status %d, content type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if !bytes.Contains(r.body, []byte("\r\n")) {
		t.Error("CSV lines do not end in CRLF (RFC 4180)")
	}
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, r.body)
	}
	return recs
}

func TestReportsAsCSV(t *testing.T) {
	e := repSetup(t)
	base := e.srv.URL
	cases := []struct {
		role, path, accept string
		want               [][]string
	}{
		{"analyst", "/v1/reports/activity?group_by=service,office", "text/csv", [][]string{
			{"service", "office", "workers", "sessions", "credited_minutes", "actual_minutes"},
			{"3", "BO01", "6", "6", "360", "300"},
			{"3", "BO02", "", "1", "60", "50"},
			{"3", "MO01", "", "2", "120", "100"},
			{"4", "BO01", "", "4", "960", "920"},
		}},
		{"admin", "/v1/reports/activity", "application/json;q=0.5, text/csv", [][]string{
			{"workers", "sessions", "credited_minutes", "actual_minutes"},
			{"9", "13", "1500", "1370"},
		}},
		{"admin", "/v1/reports/closures?group_by=office,reason", "text/csv", [][]string{
			{"office", "reason", "workers", "paths"},
			{"MO01", "decadenza", "1", "1"},
		}},
		{"analyst", "/v1/reports/closures?group_by=reason", "text/csv", [][]string{
			{"reason", "workers", "paths"},
			{"decadenza", "", ""},
		}},
		{"supervisor", "/v1/reports/inps?group_by=office,reason", "text/csv", [][]string{
			{"office", "reason", "workers", "reports"},
			{"BO01", "no_show_second", "1", "1"},
			{"BO01", "refusal_job_offer", "1", "1"},
		}},
		{"admin", "/v1/reports/intake?group_by=province,category&office=MO01", "text/csv", [][]string{
			{"province", "category", "workers", "paths"},
			{"MO", "d", "2", "2"},
		}},
	}
	for _, c := range cases {
		r := repGet(t, base, c.role, c.path, c.accept)
		if got := repReadCSV(t, r); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s %s:\n got %v\nwant %v", c.role, c.path, got, c.want)
		}
		if !strings.Contains(r.header.Get("Vary"), "Accept") {
			t.Errorf("%s: no Vary: Accept", c.path)
		}
	}

	// The same report without text/csv, or preferring JSON, is JSON.
	for _, accept := range []string{"", "application/json", "text/csv;q=0.1, application/json", "text/csv;q=0"} {
		r := repGet(t, base, "admin", "/v1/reports/activity", accept)
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("Accept %q: %s", accept, r.header.Get("Content-Type"))
		}
	}
}

type repComplianceBody struct {
	Rows   []query.ComplianceRow `json:"rows"`
	Totals map[string]int        `json:"totals"`
}

func TestComplianceReport(t *testing.T) {
	e := repSetup(t)
	base := e.srv.URL
	bo := e.region.paths["BO01"]

	var full repComplianceBody
	repGet(t, base, "admin", "/v1/reports/compliance").decode(t, &full)
	if full.Totals[query.ExceptionGroupSize] != 4 || full.Totals[query.ExceptionOutsideSupport] != 0 {
		t.Errorf("totals %v", full.Totals)
	}
	for _, r := range full.Rows {
		if r.Kind == query.ExceptionGroupSize && (r.Justification == nil || *r.GroupSize != 4 || !slices.Contains(bo[:4], r.PathID)) {
			t.Errorf("group row %+v", r)
		}
	}

	// Analysts get the totals alone: aggregates, no path's row; and a
	// total concerning fewer than five workers (here the four of one
	// group) is blanked, as their other reports' small cells are.
	var an struct {
		Rows   []query.ComplianceRow `json:"rows"`
		Totals map[string]*int       `json:"totals"`
	}
	repGet(t, base, "analyst", "/v1/reports/compliance?kind=group_size_out_of_range").decode(t, &an)
	if n, ok := an.Totals[query.ExceptionGroupSize]; len(an.Rows) != 0 || len(an.Totals) != 1 || !ok || n != nil {
		t.Fatalf("analyst: %+v", an)
	}

	// An operator of another office sees none of Bologna's exceptions.
	var sup repComplianceBody
	repGet(t, base, "supervisor", "/v1/reports/compliance?office=BO02").decode(t, &sup)
	if len(sup.Rows) != 0 {
		t.Errorf("BO02: %+v", sup.Rows)
	}

	// In CSV, free text cannot become a spreadsheet formula.
	recs := repReadCSV(t, repGet(t, base, "admin", "/v1/reports/compliance?kind=group_size_out_of_range", "text/csv"))
	if len(recs) != 5 || recs[0][6] != "justification" || recs[1][6] != `'=HYPERLINK("x")` {
		t.Errorf("compliance CSV: %v", recs)
	}
}

type repDeadlinesBody struct {
	Office *string `json:"office"`
	query.Deadlines
}

func TestDeadlines(t *testing.T) {
	e := repSetup(t)
	base := e.srv.URL
	reg := e.region
	bo := reg.paths["BO01"]

	var d repDeadlinesBody
	repGet(t, base, "operator", "/v1/reports/deadlines?office=BO01&as_of=2010-12-10").decode(t, &d)
	ids := func(l query.DeadlineList) []string {
		var out []string
		for _, it := range l.Items {
			out = append(out, it.PathID)
		}
		return out
	}
	if d.Office == nil || *d.Office != "BO01" || d.AsOf != "2010-12-10" {
		t.Errorf("header: office %v, as_of %s", d.Office, d.AsOf)
	}
	checks := []struct {
		name string
		list query.DeadlineList
		want []string
	}{
		{"without_pact", d.WithoutPact, slices.Sorted(slices.Values(bo))},
		{"first_no_show", d.FirstNoShow, []string{reg.first}},
		{"second_no_show", d.SecondNoShow, []string{bo[2]}},
		{"justified_absence", d.JustifiedAbsence, nil},
		{"verification_due", d.VerificationDue, nil},
		{"support_ending", d.SupportEnding, slices.Sorted(slices.Values(bo))},
	}
	for _, c := range checks {
		if got := ids(c.list); !slices.Equal(got, c.want) || c.list.Count != len(c.want) {
			t.Errorf("%s: %v (count %d), want %v", c.name, got, c.list.Count, c.want)
		}
	}
	it := d.FirstNoShow.Items[0]
	if it.Worker.TaxCode == nil || *it.Worker.TaxCode != reg.tax[reg.first] || it.Since == nil || !it.Since.Equal(repAt("2010-05-01T08:00:00Z")) {
		t.Errorf("first no-show item: %+v", it)
	}

	// Support ending is relative to as_of; an admin may ask region-wide.
	repGet(t, base, "admin", "/v1/reports/deadlines?as_of=2010-11-01&limit=1").decode(t, &d)
	if d.SupportEnding.Count != 0 || d.WithoutPact.Count != 9-1 || len(d.WithoutPact.Items) != 1 || d.Office != nil {
		t.Errorf("repRegion-wide: without_pact %d (%d items), support_ending %d", d.WithoutPact.Count, len(d.WithoutPact.Items), d.SupportEnding.Count)
	}
}

// repHiddenReports is a query.Reader without the reports.
type repHiddenReports struct{ query.Reader }

func TestWithReports(t *testing.T) {
	e := repSetup(t)
	api := httpapi.New(nil, repHiddenReports{e.reader}, e.dir, nil, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(api)
	defer srv.Close()
	if r := repGet(t, srv.URL, "admin", "/v1/reports/activity"); r.status != http.StatusServiceUnavailable {
		t.Errorf("without reports: %d %s", r.status, r.body)
	}
	api.WithReports(e.reader)
	if r := repGet(t, srv.URL, "admin", "/v1/reports/activity"); r.status != http.StatusOK {
		t.Errorf("with reports: %d %s", r.status, r.body)
	}
	if r := repGet(t, srv.URL, "admin", "/v1/paths/"+e.region.first); r.status != http.StatusOK {
		t.Errorf("the path route lost its reader: %d %s", r.status, r.body)
	}
}
