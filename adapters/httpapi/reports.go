package httpapi

import (
	"context"
	"encoding/csv"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
)

// reportRoutes registers the report and listing endpoints.
func (s *Server) reportRoutes() {
	s.mux.HandleFunc("GET /v1/paths", s.authed(s.listPaths))
	s.mux.HandleFunc("GET /v1/reports/activity", s.authed(s.activity))
	s.mux.HandleFunc("GET /v1/reports/intake", s.authed(s.intake))
	s.mux.HandleFunc("GET /v1/reports/closures", s.authed(s.closures))
	s.mux.HandleFunc("GET /v1/reports/inps", s.authed(s.inps))
	s.mux.HandleFunc("GET /v1/reports/compliance", s.authed(s.compliance))
	s.mux.HandleFunc("GET /v1/reports/deadlines", s.authed(s.deadlines))
}

// readerWithReports lets WithReports attach the reports port to the
// Server's reader, so the Server needs no field of its own for it.
type readerWithReports struct {
	query.Reader
	query.Reports
}

// WithReports sets the port the report and listing routes read from. A
// reader that implements query.Reports itself (pg.Reader does) needs no
// call. Call it before serving.
func (s *Server) WithReports(r query.Reports) *Server {
	s.reader = readerWithReports{Reader: s.reader, Reports: r}
	return s
}

func (s *Server) reports() (query.Reports, error) {
	if r, ok := s.reader.(query.Reports); ok {
		return r, nil
	}
	return nil, fault.New(fault.Unavailable, fault.CodeUnavailable, "reports are not available on this server")
}

// params reads a query string strictly, as bodies are read: an unknown
// parameter is a typo the client should hear about, not silently a
// different report; a repeated one is ambiguous.
func params(r *http.Request, allowed ...string) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fault.New(fault.Invalid, fault.CodeInvalidField, "the query string is malformed")
	}
	for k, vs := range v {
		if !slices.Contains(allowed, k) {
			e := fault.New(fault.Invalid, fault.CodeUnknownField, "unknown query parameter %q; this route accepts %s", k, strings.Join(allowed, ", "))
			return nil, e.OnField(k)
		}
		if len(vs) > 1 {
			return nil, fault.Invalidf(k, "%s is given more than once", k)
		}
	}
	return v, nil
}

func intParam(v url.Values, name string, def, lo, hi int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fault.Invalidf(name, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

func (s *Server) listPaths(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if err := wire.Granted(p, access.ActReadPath); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := params(r, "office", "status", "category", "tax_code", "limit", "after")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := query.PathFilter{Status: v.Get("status"), Category: v.Get("category")}
	if f.Status != "" && f.Status != workerpath.StatusOpen && f.Status != workerpath.StatusClosed {
		s.fail(w, r, fault.Invalidf("status", "status must be open or closed"))
		return
	}
	if f.Category != "" && (len(f.Category) != 1 || f.Category < "a" || f.Category > "e") {
		s.fail(w, r, fault.Invalidf("category", "category must be one of a, b, c, d, e"))
		return
	}
	if tc := v.Get("tax_code"); tc != "" {
		f.TaxCode = taxcode.Normalize(tc)
		if err := taxcode.CheckPerson(f.TaxCode); err != nil {
			// The reason only: the code itself is personal data.
			s.fail(w, r, fault.Rulef(fault.CodeInvalidTaxCode, "the tax code is not valid: %v", err).OnField("tax_code"))
			return
		}
	}
	if f.Limit, err = intParam(v, "limit", query.DefaultPageSize, 1, query.MaxPageSize); err != nil {
		s.fail(w, r, err)
		return
	}
	if c := v.Get("after"); c != "" {
		if f.After, err = query.DecodeCursor(c); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if f.Offices, err = wire.Scope(p, access.ActReadPath, v.Get("office")); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.reports()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := rep.ListPaths(r.Context(), f)
	if err != nil {
		s.fail(w, r, unavailable(err))
		return
	}
	// A listing shows names and tax codes: for an auditor it is a read of
	// each path listed.
	for _, ps := range page.Paths {
		s.recordRead(r, p, "list_paths", ps.PathID)
	}
	var next *string
	if page.NextAfter != "" {
		c := query.EncodeCursor(page.NextAfter)
		next = &c
	}
	writeJSON(w, http.StatusOK, map[string]any{"paths": page.Paths, "next": next})
}

func unavailable(err error) error {
	if _, ok := err.(*fault.Error); ok {
		return err
	}
	return &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "read models unavailable", Err: err}
}

// groupedRequest reads the parameters every aggregate report shares.
func groupedRequest(r *http.Request, p access.Principal, keys []string) (query.GroupedFilter, error) {
	var f query.GroupedFilter
	if err := wire.Granted(p, access.ActReport); err != nil {
		return f, err
	}
	v, err := params(r, "from", "to", "office", "group_by")
	if err != nil {
		return f, err
	}
	if f.GroupBy, err = query.ParseGroupBy(v.Get("group_by"), keys); err != nil {
		return f, err
	}
	if f.Period, err = query.ParsePeriod(v.Get("from"), v.Get("to")); err != nil {
		return f, err
	}
	f.Offices, err = wire.Scope(p, access.ActReport, v.Get("office"))
	return f, err
}

// table is a report as rows of columns, for CSV.
type table struct {
	header []string
	rows   [][]string
}

func intCell(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

func groupedTable[R any](keys []string, measures []string, rows []R, cells func(*R) (*query.Group, []string)) table {
	t := table{header: append(slices.Clone(keys), measures...)}
	for i := range rows {
		g, m := cells(&rows[i])
		rec := make([]string, 0, len(t.header))
		for _, k := range keys {
			rec = append(rec, g.Value(k))
		}
		t.rows = append(t.rows, append(rec, m...))
	}
	return t
}

// serveGrouped runs an aggregate report and answers in JSON or CSV.
func serveGrouped[R any, P interface {
	*R
	SuppressSmallCell()
}](s *Server, w http.ResponseWriter, r *http.Request, p access.Principal, keys []string,
	fetch func(query.Reports, context.Context, query.GroupedFilter) ([]R, error), measures []string, cells func(*R) (*query.Group, []string)) {
	f, err := groupedRequest(r, p, keys)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.reports()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rows, err := fetch(rep, r.Context(), f)
	if err != nil {
		s.fail(w, r, unavailable(err))
		return
	}
	if p.SuppressSmallCells() {
		for i := range rows {
			P(&rows[i]).SuppressSmallCell()
		}
	}
	w.Header().Set("Vary", "Accept")
	if wantsCSV(r) {
		writeCSV(w, groupedTable(f.GroupBy, measures, rows, cells))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows})
}

func (s *Server) activity(w http.ResponseWriter, r *http.Request, p access.Principal) {
	serveGrouped(s, w, r, p, query.ActivityKeys, query.Reports.Activity,
		[]string{"workers", "sessions", "credited_minutes", "actual_minutes"},
		func(row *query.ActivityRow) (*query.Group, []string) {
			return &row.Group, []string{intCell(row.Workers), strconv.Itoa(row.Sessions), strconv.Itoa(row.CreditedMinutes), strconv.Itoa(row.ActualMinutes)}
		})
}

func (s *Server) intake(w http.ResponseWriter, r *http.Request, p access.Principal) {
	serveGrouped(s, w, r, p, query.IntakeKeys, query.Reports.Intake, []string{"workers", "paths"},
		func(row *query.IntakeRow) (*query.Group, []string) {
			return &row.Group, []string{intCell(row.Workers), intCell(row.Paths)}
		})
}

func (s *Server) closures(w http.ResponseWriter, r *http.Request, p access.Principal) {
	serveGrouped(s, w, r, p, query.ClosureKeys, query.Reports.Closures, []string{"workers", "paths"},
		func(row *query.ClosureRow) (*query.Group, []string) {
			return &row.Group, []string{intCell(row.Workers), intCell(row.Paths)}
		})
}

func (s *Server) inps(w http.ResponseWriter, r *http.Request, p access.Principal) {
	serveGrouped(s, w, r, p, query.INPSKeys, query.Reports.INPSReports, []string{"workers", "reports"},
		func(row *query.INPSRow) (*query.Group, []string) {
			return &row.Group, []string{intCell(row.Workers), intCell(row.Reports)}
		})
}

func (s *Server) compliance(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if err := wire.Granted(p, access.ActReport); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := params(r, "from", "to", "office", "kind")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var f query.ComplianceFilter
	if k := v.Get("kind"); k != "" {
		if f.Kinds, err = query.ParseGroupBy(k, query.ExceptionKinds); err != nil {
			s.fail(w, r, fault.Invalidf("kind", "kind accepts %s", strings.Join(query.ExceptionKinds, ",")))
			return
		}
	}
	if f.Period, err = query.ParsePeriod(v.Get("from"), v.Get("to")); err != nil {
		s.fail(w, r, err)
		return
	}
	if f.Offices, err = wire.Scope(p, access.ActReport, v.Get("office")); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.reports()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rows, err := rep.Compliance(r.Context(), f)
	if err != nil {
		s.fail(w, r, unavailable(err))
		return
	}
	// Analysts' totals of fewer than five workers are blanked, as their
	// other reports' cells are.
	totals := map[string]*int{}
	for _, k := range query.ExceptionKinds {
		if len(f.Kinds) == 0 || slices.Contains(f.Kinds, k) {
			totals[k] = query.ComplianceCount(rows, p.SuppressSmallCells(), func(r *query.ComplianceRow) bool { return r.Kind == k })
		}
	}
	// The rows name paths and carry operators' free text: for an auditor
	// the report is a read of each path it lists, as a listing is.
	seen := map[string]bool{}
	for _, c := range rows {
		if p.SeesPersonalData() && !seen[c.PathID] {
			seen[c.PathID] = true
			s.recordRead(r, p, "compliance", c.PathID)
		}
	}
	w.Header().Set("Vary", "Accept")
	if !p.SeesPersonalData() {
		// Analysts get aggregates only (API.md): the totals by kind, no
		// row of any path.
		if wantsCSV(r) {
			t := table{header: []string{"kind", "sessions"}}
			for _, k := range query.ExceptionKinds {
				if n, ok := totals[k]; ok {
					t.rows = append(t.rows, []string{k, intCell(n)})
				}
			}
			writeCSV(w, t)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"rows": []query.ComplianceRow{}, "totals": totals})
		return
	}
	if wantsCSV(r) {
		t := table{header: []string{"path_id", "office", "service", "delivered_at", "kind", "group_size", "justification"}}
		for _, c := range rows {
			j := ""
			if c.Justification != nil {
				j = *c.Justification
			}
			t.rows = append(t.rows, []string{c.PathID, c.Office, strconv.Itoa(c.Service), c.DeliveredAt.Format(time.RFC3339Nano),
				c.Kind, intCell(c.GroupSize), safeCell(j)})
		}
		writeCSV(w, t)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "totals": totals})
}

func (s *Server) deadlines(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if err := wire.Granted(p, access.ActDeadlines); err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := params(r, "office", "as_of", "limit")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := query.DeadlineFilter{AsOf: workerpath.DateOf(time.Now()).String()}
	if a := v.Get("as_of"); a != "" {
		if f.AsOf, err = query.ParseDate("as_of", a); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if f.Limit, err = intParam(v, "limit", query.DefaultDeadlineLimit, 1, query.MaxDeadlineLimit); err != nil {
		s.fail(w, r, err)
		return
	}
	code := v.Get("office")
	// An office's operators work its own lists; one list across several
	// offices would mix up who must call whom.
	if code == "" && p.OfficeScope() != nil {
		s.fail(w, r, fault.Invalidf("office", "office is required: the deadline lists are per office"))
		return
	}
	if f.Offices, err = wire.Scope(p, access.ActDeadlines, code); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.reports()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := rep.Deadlines(r.Context(), f)
	if err != nil {
		s.fail(w, r, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Office *string `json:"office"`
		*query.Deadlines
	}{nullable(code), d})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// safeCell keeps free text from being read as a formula by the
// spreadsheets these CSV files are opened in (OWASP "CSV injection").
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// wantsCSV reports whether the Accept header prefers text/csv to JSON.
// Anything unparsable, or no preference, gets JSON, the default.
func wantsCSV(r *http.Request) bool {
	var csvQ, jsonQ float64 = -1, -1
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, ps, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if qs, ok := ps["q"]; ok {
			if q, err = strconv.ParseFloat(qs, 64); err != nil {
				continue
			}
		}
		switch mt {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	return csvQ > 0 && csvQ >= jsonQ
}

// writeCSV writes a table as RFC 4180 CSV with a header row.
func writeCSV(w http.ResponseWriter, t table) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	cw.Write(t.header)
	cw.WriteAll(t.rows)
}
