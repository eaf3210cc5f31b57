package ui

import (
	"slices"
	"strconv"
	"strings"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
)

// complianceRowsShown caps the flagged sessions listed on the page; the
// CSV has them all.
const complianceRowsShown = 500

type complianceBody struct {
	Filter    filterForm
	Kind      string
	Kinds     []string
	Figures   []figure
	Rows      *table
	RowsCSV   string
	Total     int
	Aggregate bool
}

// compliance lists the sessions the region checks by hand, totalled by
// kind and by office. Principals without access to personal data see the
// totals only: a row is one worker's session.
func (h *Handler) compliance(q *req) (*result, error) {
	p := q.p
	if err := wire.Granted(p, access.ActReport); err != nil {
		return nil, err
	}
	var f query.ComplianceFilter
	var err error
	kind := q.get("kind")
	if kind != "" {
		if f.Kinds, err = query.ParseGroupBy(kind, query.ExceptionKinds); err != nil {
			return nil, fault.Invalidf("kind", "kind accepts %s", strings.Join(query.ExceptionKinds, ","))
		}
	}
	if f.Period, err = query.ParsePeriod(q.get("from"), q.get("to")); err != nil {
		return nil, err
	}
	if f.Offices, err = wire.Scope(p, access.ActReport, q.get("office")); err != nil {
		return nil, err
	}
	rows, err := h.read.Compliance(q.ctx(), f)
	if err != nil {
		return nil, err
	}
	l := q.l
	body := &complianceBody{
		Filter: filterForm{From: f.Period.From, To: f.Period.To, Office: q.get("office"), Offices: officeChoices(p)},
		Kind:   kind, Kinds: query.ExceptionKinds, Total: len(rows), Aggregate: !p.SeesPersonalData(),
	}
	kinds := query.ExceptionKinds
	if len(f.Kinds) > 0 {
		kinds = f.Kinds
	}
	// Analysts' cells of fewer than five workers are blanked, as in the
	// API's compliance totals.
	suppress := p.SuppressSmallCells()
	count := func(keep func(*query.ComplianceRow) bool) *int { return query.ComplianceCount(rows, suppress, keep) }
	var offices []string
	for _, r := range rows {
		if !slices.Contains(offices, r.Office) {
			offices = append(offices, r.Office)
		}
	}
	slices.Sort(offices)
	csv := func(id string) string { return csvHref(q.r, prefix+"compliance.csv", id) }
	var tables []*table

	kindT := &table{ID: "compliance-kind", Caption: l.T("chart.compliance.kind"), Cols: []column{
		{ID: "kind", Label: l.T("col.kind")},
		{ID: "sessions", Label: l.T("col.exceptions"), Numeric: true},
	}}
	kindC := chart{ID: "compliance-kind", Title: l.T("chart.compliance.kind"), lang: l}
	for _, k := range kinds {
		n := count(func(r *query.ComplianceRow) bool { return r.Kind == k })
		kindT.Rows = append(kindT.Rows, row{Key: k, Cells: []cell{enumCell(k, l.Enum("exception", k)), optCountCell(l, n)}})
		kindC.Bars = append(kindC.Bars, barOf(l, l.Enum("exception", k), n))
	}
	tables = append(tables, kindT)
	body.Figures = append(body.Figures, figure{L: l, ID: "compliance-kind", Title: l.T("chart.compliance.kind"), Charts: []chart{kindC}, Table: kindT, CSV: csv(kindT.ID)})

	if body.Aggregate {
		// Analysts get the totals by kind alone, as from the API: cells by
		// office beside them would let a blanked count be worked out by
		// subtraction.
		return &result{template: "compliance", title: l.T("compliance.title"), body: body, tables: tables}, nil
	}

	officeT := &table{ID: "compliance-office", Caption: l.T("chart.compliance.office"), Cols: []column{{ID: "office", Label: l.T("col.office")}}}
	for _, k := range kinds {
		officeT.Cols = append(officeT.Cols, column{ID: k, Label: l.Enum("exception", k), Numeric: true})
	}
	officeT.Cols = append(officeT.Cols, column{ID: "total", Label: l.T("col.total"), Numeric: true})
	officeC := chart{ID: "compliance-office", Title: l.T("chart.compliance.office"), lang: l}
	for _, o := range offices {
		cells := []cell{enumCell(o, l.Office(o))}
		for _, k := range kinds {
			cells = append(cells, optCountCell(l, count(func(r *query.ComplianceRow) bool { return r.Office == o && r.Kind == k })))
		}
		total := count(func(r *query.ComplianceRow) bool { return r.Office == o && slices.Contains(kinds, r.Kind) })
		officeT.Rows = append(officeT.Rows, row{Key: o, Cells: append(cells, optCountCell(l, total))})
		officeC.Bars = append(officeC.Bars, barOf(l, l.Office(o), total))
	}
	tables = append(tables, officeT)
	body.Figures = append(body.Figures, figure{L: l, ID: "compliance-office", Title: l.T("chart.compliance.office"), Charts: []chart{officeC}, Table: officeT, CSV: csv(officeT.ID)})

	if !body.Aggregate {
		// Each path listed is read, as the API records it for auditors.
		seen := map[string]bool{}
		for i, r := range rows {
			if (q.csv || i < complianceRowsShown) && !seen[r.PathID] {
				seen[r.PathID] = true
				h.recordRead(q, "compliance", r.PathID)
			}
		}
		t := &table{ID: "compliance-rows", Caption: l.T("compliance.rows"), Cols: []column{
			{ID: "path_id", Label: l.T("col.path")},
			{ID: "office", Label: l.T("col.office")},
			{ID: "service", Label: l.T("col.service")},
			{ID: "delivered_at", Label: l.T("col.delivered_at")},
			{ID: "kind", Label: l.T("col.kind")},
			{ID: "group_size", Label: l.T("col.group_size"), Numeric: true},
			{ID: "justification", Label: l.T("col.justification")},
		}}
		for i, r := range rows {
			if !q.csv && i == complianceRowsShown {
				break
			}
			at := r.DeliveredAt
			gs := cell{}
			if r.GroupSize != nil {
				gs = countCell(l, *r.GroupSize)
			}
			just := cell{}
			if r.Justification != nil {
				just = textCell(*r.Justification)
			}
			t.Rows = append(t.Rows, row{Key: r.PathID + "/" + strconv.Itoa(i), Cells: []cell{
				{Value: r.PathID, Text: r.PathID[:8], Href: pathHref(r.PathID)},
				enumCell(r.Office, l.Office(r.Office)),
				enumCell(strconv.Itoa(r.Service), l.Service(r.Service)),
				timeCell(l, &at),
				enumCell(r.Kind, l.Enum("exception", r.Kind)),
				gs, just,
			}})
		}
		body.Rows, body.RowsCSV = t, csv(t.ID)
		tables = append(tables, t)
	}
	return &result{template: "compliance", title: l.T("compliance.title"), body: body, tables: tables}, nil
}
