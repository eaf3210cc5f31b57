package ui

import (
	"fmt"
	"net/url"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
)

// Page sizes of the office page; the CSV export takes every matching path
// up to csvMaxRows.
const (
	caseloadPage     = 50
	deadlineListSize = 100
	csvMaxRows       = 20000
)

type caseloadFilter struct {
	Office, Status, Category, TaxCode, AsOf string
	Offices                                 []office.Office
	Statuses, Categories                    []string
}

type deadlineSection struct {
	ID    string
	Title string
	Count int
	Shown int
	Table *table
	CSV   string
}

type officeBody struct {
	Filter       caseloadFilter
	Chosen       bool
	Name         string
	Caseload     *table
	CaseloadCSV  string
	Next, First  string
	Deadlines    bool
	AsOf         string
	Counts       figure
	Lists        []deadlineSection
	ShownOfTotal func(int, int) string
}

// office is one office's working view: its paths, filtered, and its
// scadenziario. Region-wide principals pick the office first.
func (h *Handler) office(q *req) (*result, error) {
	p := q.p
	if !p.SeesPersonalData() {
		return nil, fault.New(fault.Forbidden, fault.CodeForbidden, "analysts read aggregate reports only")
	}
	if err := wire.Granted(p, access.ActReadPath); err != nil {
		return nil, err
	}
	l := q.l
	f := caseloadFilter{Office: q.get("office"), Status: q.get("status"), Category: q.get("category"), TaxCode: q.get("tax_code"),
		AsOf: q.get("as_of"), Offices: officeChoices(p),
		Statuses: []string{workerpath.StatusOpen, workerpath.StatusClosed}, Categories: []string{"a", "b", "c", "d", "e"}}
	if f.Office == "" {
		f.Office = firstOffice(p)
	}
	body := &officeBody{Filter: f}
	res := &result{template: "office", title: l.T("office.title"), body: body}
	if f.Office == "" {
		return res, nil
	}
	offices, err := wire.Scope(p, access.ActReadPath, f.Office)
	if err != nil {
		return nil, err
	}
	body.Chosen, body.Name = true, l.Office(f.Office)
	res.title = l.T("office.title") + " " + body.Name

	pf := query.PathFilter{Offices: offices, Status: f.Status, Category: f.Category, Limit: caseloadPage}
	if pf.Status != "" && pf.Status != workerpath.StatusOpen && pf.Status != workerpath.StatusClosed {
		return nil, fault.Invalidf("status", "status must be open or closed")
	}
	if pf.Category != "" && (len(pf.Category) != 1 || pf.Category < "a" || pf.Category > "e") {
		return nil, fault.Invalidf("category", "category must be one of a, b, c, d, e")
	}
	if f.TaxCode != "" {
		pf.TaxCode = taxcode.Normalize(f.TaxCode)
		if err := taxcode.CheckPerson(pf.TaxCode); err != nil {
			return nil, fault.Rulef(fault.CodeInvalidTaxCode, "the tax code is not valid: %v", err).OnField("tax_code")
		}
	}
	if c := q.get("after"); c != "" {
		if pf.After, err = query.DecodeCursor(c); err != nil {
			return nil, err
		}
	}
	var paths []query.PathSummary
	if q.csv {
		pf.Limit, pf.After = query.MaxPageSize, ""
		for len(paths) < csvMaxRows {
			page, err := h.read.ListPaths(q.ctx(), pf)
			if err != nil {
				return nil, err
			}
			paths = append(paths, page.Paths...)
			if page.NextAfter == "" {
				break
			}
			pf.After = page.NextAfter
		}
	} else {
		page, err := h.read.ListPaths(q.ctx(), pf)
		if err != nil {
			return nil, err
		}
		paths = page.Paths
		if page.NextAfter != "" {
			v := q.r.URL.Query()
			v.Set("after", query.EncodeCursor(page.NextAfter))
			body.Next = prefix + "office?" + v.Encode()
		}
		if pf.After != "" {
			v := q.r.URL.Query()
			v.Del("after")
			body.First = prefix + "office?" + v.Encode()
		}
	}
	// A listing shows names and tax codes: for an auditor it is a read of
	// each path listed, as on the API.
	for _, ps := range paths {
		h.recordRead(q, "list_paths", ps.PathID)
	}
	body.Caseload = caseloadTable(l, paths)
	body.CaseloadCSV = csvHref(q.r, prefix+"office.csv", "caseload")
	res.tables = append(res.tables, body.Caseload)

	if wire.Authorize(p, access.ActDeadlines, f.Office) == nil {
		df := query.DeadlineFilter{Offices: []string{f.Office}, AsOf: workerpath.DateOf(h.now()).String(), Limit: deadlineListSize}
		if f.AsOf != "" {
			if df.AsOf, err = query.ParseDate("as_of", f.AsOf); err != nil {
				return nil, err
			}
		}
		if q.csv {
			df.Limit = query.MaxDeadlineLimit
		}
		d, err := h.read.Deadlines(q.ctx(), df)
		if err != nil {
			return nil, err
		}
		body.Deadlines, body.AsOf = true, l.Date(d.AsOf)
		h.deadlineSections(q, body, d)
		res.tables = append(res.tables, body.Counts.Table)
		for _, s := range body.Lists {
			res.tables = append(res.tables, s.Table)
		}
	}
	body.ShownOfTotal = func(shown, total int) string { return fmt.Sprintf(l.T("office.shown"), l.Int(shown), l.Int(total)) }
	return res, nil
}

func personCells(l lang, w query.PersonName) []cell {
	if w.Erased {
		e := "[" + l.T("path.erased") + "]"
		return []cell{{Text: e}, {Text: e}}
	}
	name := ""
	if w.FamilyName != nil && w.GivenName != nil {
		name = *w.FamilyName + " " + *w.GivenName
	}
	tc := ""
	if w.TaxCode != nil {
		tc = *w.TaxCode
	}
	return []cell{textCell(name), textCell(tc)}
}

func pathHref(id string) string { return prefix + "paths/" + url.PathEscape(id) }

func caseloadTable(l lang, paths []query.PathSummary) *table {
	t := &table{ID: "caseload", Caption: l.T("office.caseload"), Cols: []column{
		{ID: "path_id", Label: l.T("col.path")},
		{ID: "worker", Label: l.T("col.worker")},
		{ID: "tax_code", Label: l.T("col.taxcode")},
		{ID: "category", Label: l.T("col.category")},
		{ID: "support_kind", Label: l.T("col.support")},
		{ID: "status", Label: l.T("col.status")},
		{ID: "taken_at", Label: l.T("col.taken_at")},
		{ID: "pact_signed_at", Label: l.T("col.pact")},
		{ID: "credited_minutes_total", Label: l.T("col.credited"), Numeric: true},
		{ID: "unjustified_no_shows", Label: l.T("col.noshows"), Numeric: true},
	}}
	for _, ps := range paths {
		link := cell{Value: ps.PathID, Text: ps.PathID[:8], Href: pathHref(ps.PathID)}
		cells := append([]cell{link}, personCells(l, ps.Worker)...)
		taken := ps.TakenAt
		cells = append(cells,
			enumCell(ps.Category, ps.Category),
			enumCell(ps.SupportKind, l.Enum("support", ps.SupportKind)),
			enumCell(ps.Status, l.Enum("status", ps.Status)),
			timeCell(l, &taken),
			timeCell(l, ps.PactSignedAt),
			minutesCell(l, ps.CreditedMinutesTotal),
			countCell(l, ps.UnjustifiedNoShows))
		t.Rows = append(t.Rows, row{Key: ps.PathID, Cells: cells})
	}
	return t
}

var deadlineKinds = []string{"without_pact", "first_no_show", "second_no_show", "justified_absence", "verification_due", "support_ending"}

func deadlineList(d *query.Deadlines, kind string) query.DeadlineList {
	switch kind {
	case "without_pact":
		return d.WithoutPact
	case "first_no_show":
		return d.FirstNoShow
	case "second_no_show":
		return d.SecondNoShow
	case "justified_absence":
		return d.JustifiedAbsence
	case "verification_due":
		return d.VerificationDue
	}
	return d.SupportEnding
}

func (h *Handler) deadlineSections(q *req, body *officeBody, d *query.Deadlines) {
	l := q.l
	counts := &table{ID: "deadline-counts", Caption: l.T("chart.deadlines"), Cols: []column{
		{ID: "list", Label: l.T("col.list")},
		{ID: "count", Label: l.T("col.count"), Numeric: true},
	}}
	c := chart{ID: "deadline-counts", Title: l.T("chart.deadlines"), lang: l}
	for _, kind := range deadlineKinds {
		list := deadlineList(d, kind)
		counts.Rows = append(counts.Rows, row{Key: kind, Cells: []cell{enumCell(kind, l.Enum("deadline", kind)), countCell(l, list.Count)}})
		c.Bars = append(c.Bars, bar{Label: l.Enum("deadline", kind), Value: float64(list.Count), Display: l.Int(list.Count)})

		t := &table{ID: "deadline-" + kind, Caption: l.Enum("deadline", kind), Cols: []column{
			{ID: "path_id", Label: l.T("col.path")},
			{ID: "worker", Label: l.T("col.worker")},
			{ID: "tax_code", Label: l.T("col.taxcode")},
			{ID: "category", Label: l.T("col.category")},
			{ID: "taken_at", Label: l.T("col.taken_at")},
			{ID: "since", Label: l.T("col.since")},
			{ID: "support_to", Label: l.T("col.support_to")},
			{ID: "unjustified_no_shows", Label: l.T("col.noshows"), Numeric: true},
		}}
		for _, it := range list.Items {
			taken := it.TakenAt
			cells := append([]cell{{Value: it.PathID, Text: it.PathID[:8], Href: pathHref(it.PathID)}}, personCells(l, it.Worker)...)
			cells = append(cells, enumCell(it.Category, it.Category), timeCell(l, &taken), timeCell(l, it.Since),
				dateCell(l, it.SupportTo), countCell(l, it.UnjustifiedNoShows))
			t.Rows = append(t.Rows, row{Key: it.PathID, Cells: cells})
		}
		body.Lists = append(body.Lists, deadlineSection{ID: kind, Title: l.Enum("deadline", kind), Count: list.Count,
			Shown: len(list.Items), Table: t, CSV: csvHref(q.r, prefix+"office.csv", t.ID)})
	}
	body.Counts = figure{L: l, ID: "deadline-counts", Title: l.T("chart.deadlines"), Charts: []chart{c}, Table: counts,
		CSV: csvHref(q.r, prefix+"office.csv", counts.ID)}
}
