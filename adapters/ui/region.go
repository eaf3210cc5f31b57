package ui

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
)

// figure is one chart (or a few sharing their data) with the table behind
// it and the link to that table as CSV.
type figure struct {
	L      lang
	ID     string
	Title  string
	Charts []chart
	Table  *table
	CSV    string
}

type section struct {
	Title   string
	Figures []figure
}

type kpi struct {
	ID, Label string
	Cell      cell
}

// filterForm is the period and office filter of the report pages.
type filterForm struct {
	From, To, Office string
	Offices          []office.Office
}

type regionBody struct {
	Filter     filterForm
	KPIs       []kpi
	Sections   []section
	Suppressed bool
}

// suppress blanks small cells for principals who may not single anyone
// out, exactly as the API does before answering.
func suppress[R any, P interface {
	*R
	SuppressSmallCell()
}](on bool, rows []R) {
	if !on {
		return
	}
	for i := range rows {
		P(&rows[i]).SuppressSmallCell()
	}
}

// region is the overview: intake and activity by month, province and
// office, the service mix per worker type, and closures, for every office
// the principal may report on.
func (h *Handler) region(q *req) (*result, error) {
	if err := wire.Granted(q.p, access.ActReport); err != nil {
		return nil, err
	}
	period, err := query.ParsePeriod(q.get("from"), q.get("to"))
	if err != nil {
		return nil, err
	}
	offices, err := wire.Scope(q.p, access.ActReport, q.get("office"))
	if err != nil {
		return nil, err
	}
	f := func(keys ...string) query.GroupedFilter {
		return query.GroupedFilter{Period: period, Offices: offices, GroupBy: keys}
	}
	ctx, small := q.ctx(), q.p.SuppressSmallCells()
	intake := func(keys ...string) ([]query.IntakeRow, error) {
		rows, err := h.read.Intake(ctx, f(keys...))
		suppress(small, rows)
		return rows, err
	}
	activity := func(keys ...string) ([]query.ActivityRow, error) {
		rows, err := h.read.Activity(ctx, f(keys...))
		suppress(small, rows)
		return rows, err
	}
	var (
		inTotal, inMonth, inProv, inOffice     []query.IntakeRow
		actTotal, actMonth, actProv, actOffice []query.ActivityRow
		mix                                    []query.ActivityRow
		closures                               []query.ClosureRow
	)
	steps := []func() error{
		func() (err error) { inTotal, err = intake(); return },
		func() (err error) { inMonth, err = intake(query.KeyMonth); return },
		func() (err error) { inProv, err = intake(query.KeyProvince); return },
		func() (err error) { inOffice, err = intake(query.KeyOffice); return },
		func() (err error) { actTotal, err = activity(); return },
		func() (err error) { actMonth, err = activity(query.KeyMonth); return },
		func() (err error) { actProv, err = activity(query.KeyProvince); return },
		func() (err error) { actOffice, err = activity(query.KeyOffice); return },
		func() (err error) { mix, err = activity(query.KeyCategory, query.KeyService); return },
		func() (err error) {
			closures, err = h.read.Closures(ctx, f(query.KeyReason))
			suppress(small, closures)
			return
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	l := q.l
	body := &regionBody{
		Filter:     filterForm{From: period.From, To: period.To, Office: q.get("office"), Offices: officeChoices(q.p)},
		Suppressed: small,
	}
	body.KPIs = regionKPIs(l, inTotal, actTotal)

	csv := func(id string) string { return csvHref(q.r, prefix+"region.csv", id) }
	var tables []*table
	fig := func(id, title string, t *table, charts ...chart) figure {
		tables = append(tables, t)
		return figure{ID: id, Title: title, Charts: charts, Table: t, CSV: csv(t.ID), L: l}
	}

	// By month.
	inMonthT, inMonthC := intakeByMonth(l, inMonth)
	actMonthT, sessC, hoursC := activityByMonth(l, actMonth)
	body.Sections = append(body.Sections, section{Title: l.T("region.bymonth"), Figures: []figure{
		fig("intake-month", l.T("chart.intake.month"), inMonthT, inMonthC),
		fig("activity-month", l.T("fig.activity.month"), actMonthT, sessC, hoursC),
	}})

	// By province and by office.
	var provinces []string
	for _, p := range office.Provinces() {
		if offices == nil || slices.ContainsFunc(offices, func(c string) bool { o, _ := office.Lookup(c); return o.Province == p.Code }) {
			provinces = append(provinces, p.Code)
		}
	}
	provT, provHours, provIntake := places(l, "province", "col.province", provinces, l.Province,
		func(r *query.IntakeRow) *string { return r.Province }, inProv,
		func(r *query.ActivityRow) *string { return r.Province }, actProv, false)
	provHours.ID, provHours.Title = "hours-province", l.T("chart.hours.province")
	provIntake.ID, provIntake.Title = "intake-province", l.T("chart.intake.province")
	body.Sections = append(body.Sections, section{Title: l.T("region.byprovince"), Figures: []figure{
		fig("province", l.T("fig.province"), provT, provHours, provIntake),
	}})

	officeCodes := offices
	if officeCodes == nil {
		for _, r := range inOffice {
			officeCodes = append(officeCodes, *r.Office)
		}
		for _, r := range actOffice {
			if !slices.Contains(officeCodes, *r.Office) {
				officeCodes = append(officeCodes, *r.Office)
			}
		}
	}
	offT, offHours, offIntake := places(l, "office", "col.office", officeCodes, l.Office,
		func(r *query.IntakeRow) *string { return r.Office }, inOffice,
		func(r *query.ActivityRow) *string { return r.Office }, actOffice, true)
	offHours.ID, offHours.Title = "hours-office", l.T("chart.hours.office")
	offIntake.ID, offIntake.Title = "intake-office", l.T("chart.intake.office")
	body.Sections = append(body.Sections, section{Title: l.T("region.byoffice"), Figures: []figure{
		fig("office", l.T("fig.office"), offT, offHours, offIntake),
	}})

	mixT, mixC := serviceMix(l, mix)
	body.Sections = append(body.Sections, section{Title: l.T("region.mix"), Figures: []figure{
		fig("service-mix", l.T("region.mix"), mixT, mixC...),
	}})

	closT, closC := closuresByReason(l, closures)
	body.Sections = append(body.Sections, section{Title: l.T("region.closures"), Figures: []figure{
		fig("closures-reason", l.T("chart.closures"), closT, closC),
	}})
	return &result{template: "region", title: l.T("region.title"), body: body, tables: tables}, nil
}

func regionKPIs(l lang, in []query.IntakeRow, act []query.ActivityRow) []kpi {
	zero := 0
	inW, inP := &zero, &zero
	if len(in) == 1 {
		inW, inP = in[0].Workers, in[0].Paths
	}
	var a query.ActivityRow
	a.Workers = &zero
	if len(act) == 1 {
		a = act[0]
	}
	return []kpi{
		{"intake_workers", l.T("region.kpi.intake"), optCountCell(l, inW)},
		{"intake_paths", l.T("region.kpi.paths"), optCountCell(l, inP)},
		{"workers", l.T("region.kpi.served"), optCountCell(l, a.Workers)},
		{"sessions", l.T("region.kpi.sessions"), countCell(l, a.Sessions)},
		{"credited_minutes", l.T("region.kpi.hours"), minutesCell(l, a.CreditedMinutes)},
	}
}

// months lists every month from the first to the last of keys, so a quiet
// month shows as a zero on the time axis instead of vanishing from it.
func months(keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	first, last := slices.Min(keys), slices.Max(keys)
	t, err1 := time.Parse("2006-01", first)
	end, err2 := time.Parse("2006-01", last)
	if err1 != nil || err2 != nil {
		return keys
	}
	var out []string
	for ; !t.After(end) && len(out) < 240; t = t.AddDate(0, 1, 0) {
		out = append(out, t.Format("2006-01"))
	}
	return out
}

func barOf(l lang, label string, n *int) bar {
	if n == nil {
		return bar{Label: label, Display: l.T("suppressed"), Missing: true}
	}
	return bar{Label: label, Value: float64(*n), Display: l.Int(*n)}
}

func hoursBar(l lang, label string, minutes int) bar {
	return bar{Label: label, Value: float64(minutes), Display: l.Hours(minutes) + " h"}
}

func intakeByMonth(l lang, rows []query.IntakeRow) (*table, chart) {
	t := &table{ID: "intake-month", Caption: l.T("chart.intake.month"), Cols: []column{
		{ID: "month", Label: l.T("col.month")},
		{ID: "workers", Label: l.T("col.workers"), Numeric: true},
		{ID: "paths", Label: l.T("col.paths"), Numeric: true},
	}}
	by := map[string]query.IntakeRow{}
	var keys []string
	for _, r := range rows {
		by[*r.Month] = r
		keys = append(keys, *r.Month)
	}
	c := chart{ID: "intake-month", Title: l.T("chart.intake.month"), Columns: true, lang: l}
	zero := 0
	for i, m := range months(keys) {
		r, ok := by[m]
		if !ok {
			r.Workers, r.Paths = &zero, &zero
		}
		t.Rows = append(t.Rows, row{Key: m, Cells: []cell{enumCell(m, l.Month(m)), optCountCell(l, r.Workers), optCountCell(l, r.Paths)}})
		b := barOf(l, l.Month(m), r.Workers)
		b.Tick = l.monthTick(m, i == 0)
		c.Bars = append(c.Bars, b)
	}
	return t, c
}

func activityColumns(l lang, first ...column) []column {
	return append(first,
		column{ID: "workers", Label: l.T("col.served"), Numeric: true},
		column{ID: "sessions", Label: l.T("col.sessions"), Numeric: true},
		column{ID: "credited_minutes", Label: l.T("col.credited"), Numeric: true},
		column{ID: "actual_minutes", Label: l.T("col.actual"), Numeric: true})
}

func activityCells(l lang, r query.ActivityRow) []cell {
	return []cell{optCountCell(l, r.Workers), countCell(l, r.Sessions), minutesCell(l, r.CreditedMinutes), minutesCell(l, r.ActualMinutes)}
}

func activityByMonth(l lang, rows []query.ActivityRow) (*table, chart, chart) {
	t := &table{ID: "activity-month", Caption: l.T("chart.sessions.month"),
		Cols: activityColumns(l, column{ID: "month", Label: l.T("col.month")})}
	by := map[string]query.ActivityRow{}
	var keys []string
	for _, r := range rows {
		by[*r.Month] = r
		keys = append(keys, *r.Month)
	}
	sess := chart{ID: "sessions-month", Title: l.T("chart.sessions.month"), Columns: true, lang: l}
	hours := chart{ID: "hours-month", Title: l.T("chart.hours.month"), Columns: true, lang: l}
	zero := 0
	for i, m := range months(keys) {
		r, ok := by[m]
		if !ok {
			r.Workers = &zero
		}
		t.Rows = append(t.Rows, row{Key: m, Cells: append([]cell{enumCell(m, l.Month(m))}, activityCells(l, r)...)})
		tick := l.monthTick(m, i == 0)
		sess.Bars = append(sess.Bars, bar{Label: l.Month(m), Value: float64(r.Sessions), Display: l.Int(r.Sessions), Tick: tick})
		hb := hoursBar(l, l.Month(m), r.CreditedMinutes)
		hb.Tick = tick
		hours.Bars = append(hours.Bars, hb)
	}
	return t, sess, hours
}

// places builds the combined intake and activity table of provinces or
// offices, with a chart of credited hours and one of workers taken in
// charge. Offices are sorted by credited hours, the figure compared most.
func places(l lang, key, label string, codes []string, name func(string) string,
	inKey func(*query.IntakeRow) *string, in []query.IntakeRow,
	actKey func(*query.ActivityRow) *string, act []query.ActivityRow, byValue bool) (*table, chart, chart) {
	t := &table{ID: key, Caption: l.T(label), Cols: append([]column{
		{ID: key, Label: l.T(label)},
		{ID: "intake_workers", Label: l.T("col.intake_workers"), Numeric: true},
		{ID: "intake_paths", Label: l.T("col.intake_paths"), Numeric: true},
	}, activityColumns(l)...)}
	zero := 0
	inBy := map[string]query.IntakeRow{}
	for i := range in {
		inBy[*inKey(&in[i])] = in[i]
	}
	actBy := map[string]query.ActivityRow{}
	for i := range act {
		actBy[*actKey(&act[i])] = act[i]
	}
	codes = slices.Clone(codes)
	if byValue {
		slices.SortStableFunc(codes, func(a, b string) int {
			return cmp.Or(cmp.Compare(actBy[b].CreditedMinutes, actBy[a].CreditedMinutes), cmp.Compare(a, b))
		})
	}
	hours := chart{lang: l}
	intake := chart{lang: l}
	for _, c := range codes {
		ir, ok := inBy[c]
		if !ok {
			ir.Workers, ir.Paths = &zero, &zero
		}
		ar, ok := actBy[c]
		if !ok {
			ar.Workers = &zero
		}
		cells := append([]cell{enumCell(c, name(c)), optCountCell(l, ir.Workers), optCountCell(l, ir.Paths)}, activityCells(l, ar)...)
		t.Rows = append(t.Rows, row{Key: c, Cells: cells})
		hours.Bars = append(hours.Bars, hoursBar(l, name(c), ar.CreditedMinutes))
		intake.Bars = append(intake.Bars, barOf(l, name(c), ir.Workers))
	}
	return t, hours, intake
}

// serviceMix is one small chart per worker type, sessions by service, all
// on the twelve services so the charts compare at a glance.
func serviceMix(l lang, rows []query.ActivityRow) (*table, []chart) {
	t := &table{ID: "service-mix", Caption: l.T("region.mix"), Cols: activityColumns(l,
		column{ID: "category", Label: l.T("col.category")}, column{ID: "service", Label: l.T("col.service")})}
	slices.SortFunc(rows, func(a, b query.ActivityRow) int {
		return cmp.Or(cmp.Compare(*a.Category, *b.Category), cmp.Compare(*a.Service, *b.Service))
	})
	sessions := map[string]map[int]int{}
	var cats []string
	for _, r := range rows {
		cat, svc := *r.Category, *r.Service
		if sessions[cat] == nil {
			sessions[cat] = map[int]int{}
			cats = append(cats, cat)
		}
		sessions[cat][svc] += r.Sessions
		key := fmt.Sprintf("%s-%02d", cat, svc)
		t.Rows = append(t.Rows, row{Key: key, Cells: append([]cell{enumCell(cat, l.Enum("category", cat)),
			enumCell(fmt.Sprint(svc), l.Service(svc))}, activityCells(l, r)...)})
	}
	var charts []chart
	for _, cat := range cats {
		c := chart{ID: "mix-" + cat, Title: fmt.Sprintf(l.T("chart.mix"), l.Enum("category", cat)), lang: l}
		for _, s := range workerpath.Services() {
			n := sessions[cat][s.Code]
			c.Bars = append(c.Bars, bar{Label: l.Service(s.Code), Value: float64(n), Display: l.Int(n)})
		}
		charts = append(charts, c)
	}
	return t, charts
}

func closuresByReason(l lang, rows []query.ClosureRow) (*table, chart) {
	t := &table{ID: "closures-reason", Caption: l.T("chart.closures"), Cols: []column{
		{ID: "reason", Label: l.T("col.reason")},
		{ID: "workers", Label: l.T("col.workers"), Numeric: true},
		{ID: "paths", Label: l.T("col.paths"), Numeric: true},
	}}
	c := chart{ID: "closures-reason", Title: l.T("chart.closures"), lang: l}
	for _, r := range rows {
		reason := *r.Reason
		t.Rows = append(t.Rows, row{Key: reason, Cells: []cell{enumCell(reason, l.Enum("reason", reason)), optCountCell(l, r.Workers), optCountCell(l, r.Paths)}})
		c.Bars = append(c.Bars, barOf(l, l.Enum("reason", reason), r.Paths))
	}
	return t, c
}
