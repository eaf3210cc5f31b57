package pg

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
)

// The reports are SQL aggregates over the read models. Only two kinds of
// text ever go into a statement: the fixed fragments below (grouping
// expressions picked from a whitelist by key, repeat limits taken from the
// catalogue) and $n placeholders; every value a caller gives is a
// parameter.

// rome is the offices' time zone: report dates and months are civil dates
// there, whatever the server's TimeZone setting.
const rome = `'Europe/Rome'`

func monthOf(col string) string {
	return `to_char(` + col + ` AT TIME ZONE ` + rome + `, 'YYYY-MM')`
}

// args collects statement parameters and hands out their placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// periodConds are the conditions putting col inside p, as civil dates in
// Europe/Rome; written as a half-open range on the timestamp so that an
// index on col serves it.
func periodConds(a *args, col string, p query.Period) []string {
	var conds []string
	if p.From != "" {
		conds = append(conds, col+` >= (`+a.add(p.From)+`::date::timestamp AT TIME ZONE `+rome+`)`)
	}
	if p.To != "" {
		conds = append(conds, col+` < ((`+a.add(p.To)+`::date + 1)::timestamp AT TIME ZONE `+rome+`)`)
	}
	return conds
}

// officeConds restricts col to offices; nil means every office.
func officeConds(a *args, col string, offices []string) []string {
	if offices == nil {
		return nil
	}
	return []string{col + ` = ANY(` + a.add(offices) + `::text[])`}
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// grouped describes an aggregate report: where its rows come from, which
// timestamp the period applies to, and the SQL of each grouping key.
type grouped struct {
	from     string
	conds    []string
	at       string
	office   string
	keys     map[string]string
	measures string
}

func (g grouped) statement(f query.GroupedFilter) (string, args, error) {
	var a args
	sel := make([]string, 0, len(f.GroupBy)+1)
	for _, k := range f.GroupBy {
		expr, ok := g.keys[k]
		if !ok {
			return "", nil, fmt.Errorf("pg: report cannot be grouped by %q", k)
		}
		sel = append(sel, expr)
	}
	n := len(sel)
	conds := append([]string(nil), g.conds...)
	conds = append(conds, periodConds(&a, g.at, f.Period)...)
	conds = append(conds, officeConds(&a, g.office, f.Offices)...)
	sql := `SELECT ` + strings.Join(append(sel, g.measures), ", ") + ` FROM ` + g.from + where(conds)
	if n > 0 {
		ord := make([]string, n)
		for i := range ord {
			ord[i] = strconv.Itoa(i + 1)
		}
		sql += ` GROUP BY ` + strings.Join(ord, ", ") + ` ORDER BY ` + strings.Join(ord, ", ")
	}
	return sql, a, nil
}

// run executes the report and scans each row: the grouping fields into the
// row's Group, then the measures.
func run[R any](ctx context.Context, r *Reader, g grouped, f query.GroupedFilter, scan func(row *R) (*query.Group, []any)) ([]R, error) {
	sql, a, err := g.statement(f)
	if err != nil {
		return nil, err
	}
	rows, err := r.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []R{}
	for rows.Next() {
		var row R
		grp, measures := scan(&row)
		dest := make([]any, 0, len(f.GroupBy)+len(measures))
		for _, k := range f.GroupBy {
			dest = append(dest, grp.Dest(k))
		}
		if err := rows.Scan(append(dest, measures...)...); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

var activityReport = grouped{
	from: `sessions s`, at: `s.delivered_at`, office: `s.office`,
	keys: map[string]string{
		query.KeyOffice:   `s.office`,
		query.KeyProvince: `s.province`,
		query.KeyCategory: `s.category`,
		query.KeyService:  `s.service::integer`,
		query.KeyMonth:    monthOf(`s.delivered_at`),
	},
	measures: `count(DISTINCT s.worker_ref), count(*), COALESCE(sum(s.credited_minutes), 0), COALESCE(sum(s.actual_minutes), 0)`,
}

// Activity counts delivered sessions, their workers and minutes; the
// sessions table holds delivered sessions only.
func (r *Reader) Activity(ctx context.Context, f query.GroupedFilter) ([]query.ActivityRow, error) {
	return run(ctx, r, activityReport, f, func(row *query.ActivityRow) (*query.Group, []any) {
		row.Workers = new(int)
		return &row.Group, []any{row.Workers, &row.Sessions, &row.CreditedMinutes, &row.ActualMinutes}
	})
}

var intakeReport = grouped{
	from: `paths p`, at: `p.taken_at`, office: `p.office`,
	keys: map[string]string{
		query.KeyOffice:      `p.office`,
		query.KeyProvince:    `p.province`,
		query.KeyCategory:    `p.category`,
		query.KeySupportKind: `p.support_kind`,
		query.KeyMonth:       monthOf(`p.taken_at`),
	},
	measures: `count(DISTINCT p.worker_ref), count(*)`,
}

// Intake counts paths taken in charge, and their workers, by take-in-charge date.
func (r *Reader) Intake(ctx context.Context, f query.GroupedFilter) ([]query.IntakeRow, error) {
	return run(ctx, r, intakeReport, f, func(row *query.IntakeRow) (*query.Group, []any) {
		row.Workers, row.Paths = new(int), new(int)
		return &row.Group, []any{row.Workers, row.Paths}
	})
}

var closureReport = grouped{
	from: `paths p`, conds: []string{`p.status = 'closed'`}, at: `p.closed_at`, office: `p.office`,
	keys: map[string]string{
		query.KeyOffice:   `p.office`,
		query.KeyProvince: `p.province`,
		query.KeyCategory: `p.category`,
		query.KeyReason:   `p.close_reason`,
		query.KeyMonth:    monthOf(`p.closed_at`),
	},
	measures: `count(DISTINCT p.worker_ref), count(*)`,
}

// Closures counts closed paths by closing date.
func (r *Reader) Closures(ctx context.Context, f query.GroupedFilter) ([]query.ClosureRow, error) {
	return run(ctx, r, closureReport, f, func(row *query.ClosureRow) (*query.Group, []any) {
		row.Workers, row.Paths = new(int), new(int)
		return &row.Group, []any{row.Workers, row.Paths}
	})
}

// inpsReport counts segnalazioni: every unjustified refusal, and every
// no-show from the second unjustified one on, dated when the refusal or the
// missed appointment happened.
var inpsReport = grouped{
	from: `(SELECT r.path_id, r.at, 'refusal_' || r.kind AS reason FROM refusals r
		UNION ALL
		SELECT n.path_id, n.appointment_at, 'no_show_' || n.kind FROM no_shows n WHERE n.report_to_inps) x
		JOIN paths p ON p.path_id = x.path_id`,
	at: `x.at`, office: `p.office`,
	keys: map[string]string{
		query.KeyOffice:   `p.office`,
		query.KeyProvince: `p.province`,
		query.KeyCategory: `p.category`,
		query.KeyReason:   `x.reason`,
		query.KeyMonth:    monthOf(`x.at`),
	},
	measures: `count(DISTINCT p.worker_ref), count(*)`,
}

// INPSReports counts the reports owed to INPS.
func (r *Reader) INPSReports(ctx context.Context, f query.GroupedFilter) ([]query.INPSRow, error) {
	return run(ctx, r, inpsReport, f, func(row *query.INPSRow) (*query.Group, []any) {
		row.Workers, row.Reports = new(int), new(int)
		return &row.Group, []any{row.Workers, row.Reports}
	})
}

// repeatLimit is the SQL of the catalogue's repeat limits: the services that
// have one, and the CASE giving it. Built from the catalogue so the report
// follows it if a limit ever changes.
var repeatLimit = func() (in, limit string) {
	var codes, whens []string
	for _, s := range workerpath.Services() {
		if s.MaxDeliveries > 0 {
			codes = append(codes, strconv.Itoa(s.Code))
			whens = append(whens, fmt.Sprintf("WHEN %d THEN %d", s.Code, s.MaxDeliveries))
		}
	}
	return strings.Join(codes, ", "), "CASE s.service " + strings.Join(whens, " ") + " END"
}

// Compliance lists the sessions the region checks by hand. For a repeat
// limit it is the session that reached the limit, counted in stream order
// over all the path's delivered sessions; the period then applies to that
// session's date.
func (r *Reader) Compliance(ctx context.Context, f query.ComplianceFilter) ([]query.ComplianceRow, error) {
	want := func(kind string) bool { return len(f.Kinds) == 0 || contains(f.Kinds, kind) }
	var a args
	period := periodConds(&a, `s.delivered_at`, f.Period)
	offices := officeConds(&a, `s.office`, f.Offices)
	const cols = `s.path_id::text, s.worker_ref, s.office, s.service::integer, s.delivered_at, `
	var branches []string
	if want(query.ExceptionGroupSize) {
		branches = append(branches, `SELECT `+cols+`'`+query.ExceptionGroupSize+`', s.group_size, s.justification, s.seq
			FROM sessions s`+where(append(append([]string{`s.outside_group_range`}, period...), offices...)))
	}
	if want(query.ExceptionOutsideSupport) {
		branches = append(branches, `SELECT `+cols+`'`+query.ExceptionOutsideSupport+`', NULL::integer, NULL::text, s.seq
			FROM sessions s`+where(append(append([]string{`s.outside_support`}, period...), offices...)))
	}
	if want(query.ExceptionRepeatLimit) {
		in, limit := repeatLimit()
		branches = append(branches, `SELECT `+cols+`'`+query.ExceptionRepeatLimit+`', NULL::integer, NULL::text, s.seq
			FROM (SELECT s.*, row_number() OVER (PARTITION BY s.path_id, s.service ORDER BY s.seq) AS n
				FROM sessions s`+where(append([]string{`s.service IN (` + in + `)`}, offices...))+`) s`+
			where(append([]string{`s.n = ` + limit}, period...)))
	}
	if len(branches) == 0 {
		return []query.ComplianceRow{}, nil
	}
	sql := strings.Join(branches, "\nUNION ALL\n") + `
		ORDER BY 5, 1, 6, 9`
	rows, err := r.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []query.ComplianceRow{}
	for rows.Next() {
		var c query.ComplianceRow
		var seq int64
		if err := rows.Scan(&c.PathID, &c.WorkerRef, &c.Office, &c.Service, &c.DeliveredAt, &c.Kind, &c.GroupSize, &c.Justification, &seq); err != nil {
			return nil, err
		}
		c.DeliveredAt = c.DeliveredAt.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ListPaths returns a page of paths in path_id order. Paging is by key,
// not offset, so a page costs the same however deep it is and paths taken
// in charge meanwhile never shift a page.
func (r *Reader) ListPaths(ctx context.Context, f query.PathFilter) (*query.PathPage, error) {
	limit := f.Limit
	if limit <= 0 || limit > query.MaxPageSize {
		limit = query.DefaultPageSize
	}
	var a args
	conds := officeConds(&a, `office`, f.Offices)
	if f.Status != "" {
		conds = append(conds, `status = `+a.add(f.Status))
	}
	if f.Category != "" {
		conds = append(conds, `category = `+a.add(f.Category))
	}
	if f.TaxCode != "" {
		conds = append(conds, `tax_code = `+a.add(f.TaxCode))
	}
	if f.After != "" {
		conds = append(conds, `path_id > `+a.add(f.After)+`::uuid`)
	}
	sql := `SELECT path_id::text, tax_code, given_name, family_name, erased, category, support_kind, office, province, status,
		taken_at, closed_at, close_reason, pact_signed_at, credited_minutes_total, unjustified_no_shows, version
		FROM paths` + where(conds) + ` ORDER BY path_id LIMIT ` + a.add(limit+1)
	rows, err := r.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &query.PathPage{Paths: []query.PathSummary{}}
	for rows.Next() {
		var v query.PathSummary
		var version int64
		w := &v.Worker
		if err := rows.Scan(&v.PathID, &w.TaxCode, &w.GivenName, &w.FamilyName, &w.Erased, &v.Category, &v.SupportKind,
			&v.Office, &v.Province, &v.Status, &v.TakenAt, &v.ClosedAt, &v.CloseReason, &v.PactSignedAt,
			&v.CreditedMinutesTotal, &v.UnjustifiedNoShows, &version); err != nil {
			return nil, err
		}
		v.Version = uint64(version)
		v.TakenAt = v.TakenAt.UTC()
		v.ClosedAt = utc(v.ClosedAt)
		v.PactSignedAt = utc(v.PactSignedAt)
		page.Paths = append(page.Paths, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Paths) > limit {
		page.Paths = page.Paths[:limit]
		page.NextAfter = page.Paths[limit-1].PathID
	}
	return page, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// deadlineList is one list of the scadenziario: its extra FROM, the
// condition on the open path, the SQL of since, and its order. In cond,
// @as_of stands for the as-of date parameter; $1 is the list's limit.
type deadlineList struct {
	dest  func(*query.Deadlines) *query.DeadlineList
	join  string
	cond  string
	since string
	order string
}

var deadlineLists = []deadlineList{
	{
		dest:  func(d *query.Deadlines) *query.DeadlineList { return &d.WithoutPact },
		cond:  `p.pact_signed_at IS NULL`,
		since: `p.taken_at`,
	},
	{
		// A first no-show stays on the list until the worker turns up:
		// nothing delivered since the missed appointment.
		dest: func(d *query.Deadlines) *query.DeadlineList { return &d.FirstNoShow },
		join: `CROSS JOIN LATERAL (SELECT max(n.appointment_at) AS at FROM no_shows n
			WHERE n.path_id = p.path_id AND NOT n.justified) ns`,
		cond: `p.unjustified_no_shows = 1 AND NOT EXISTS (SELECT 1 FROM sessions s
			WHERE s.path_id = p.path_id AND s.delivered_at >= ns.at)`,
		since: `ns.at`,
	},
	{
		dest: func(d *query.Deadlines) *query.DeadlineList { return &d.SecondNoShow },
		join: `CROSS JOIN LATERAL (SELECT max(n.appointment_at) AS at FROM no_shows n
			WHERE n.path_id = p.path_id AND NOT n.justified) ns`,
		cond:  `p.unjustified_no_shows >= 2`,
		since: `ns.at`,
	},
	{
		// To re-contact: the last convocation was missed with a
		// justification, and neither a session nor a later convocation
		// followed.
		dest: func(d *query.Deadlines) *query.DeadlineList { return &d.JustifiedAbsence },
		join: `CROSS JOIN LATERAL (SELECT n.appointment_at AS at, n.justified FROM no_shows n
			WHERE n.path_id = p.path_id ORDER BY n.seq DESC LIMIT 1) ns`,
		cond: `ns.justified AND NOT EXISTS (SELECT 1 FROM sessions s
			WHERE s.path_id = p.path_id AND s.delivered_at >= ns.at)`,
		since: `ns.at`,
	},
	{
		// The verification interview (12) closes a counselling series (05),
		// a personalised plan (08) or the patto; either kind of record of it
		// (PathVerified, or a 12 delivered on its own) takes the path off.
		dest: func(d *query.Deadlines) *query.DeadlineList { return &d.VerificationDue },
		join: `CROSS JOIN LATERAL (SELECT min(s.delivered_at) AS at FROM sessions s
			WHERE s.path_id = p.path_id AND s.service IN (5, 8)) c`,
		cond:  `p.verified_at IS NULL AND p.services -> '12' IS NULL AND (c.at IS NOT NULL OR p.pact_signed_at IS NOT NULL)`,
		since: `LEAST(c.at, p.pact_signed_at)`,
	},
	{
		dest:  func(d *query.Deadlines) *query.DeadlineList { return &d.SupportEnding },
		cond:  `p.support_to BETWEEN @as_of::date AND @as_of::date + ` + strconv.Itoa(query.SupportEndingDays),
		since: `NULL::timestamptz`,
		order: `p.support_to, p.path_id`,
	},
}

// Deadlines returns the scadenziario of the open paths of f.Offices as of
// f.AsOf. The lists are read in one snapshot, so a path is never on two
// lists that contradict each other.
func (r *Reader) Deadlines(ctx context.Context, f query.DeadlineFilter) (*query.Deadlines, error) {
	limit := f.Limit
	if limit <= 0 || limit > query.MaxDeadlineLimit {
		limit = query.DefaultDeadlineLimit
	}
	out := &query.Deadlines{AsOf: f.AsOf}
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for _, l := range deadlineLists {
			a := args{limit}
			cond := l.cond
			if strings.Contains(cond, "@as_of") {
				cond = strings.ReplaceAll(cond, "@as_of", a.add(f.AsOf))
			}
			conds := append([]string{`p.status = 'open'`, cond}, officeConds(&a, `p.office`, f.Offices)...)
			order := l.order
			if order == "" {
				order = `since, p.path_id`
			}
			sql := `SELECT p.path_id::text, p.office, p.tax_code, p.given_name, p.family_name, p.erased, p.category, p.taken_at,
				` + l.since + ` AS since, to_char(p.support_to, 'YYYY-MM-DD'), p.unjustified_no_shows, count(*) OVER ()
				FROM paths p ` + l.join + where(conds) + ` ORDER BY ` + order + ` LIMIT $1`
			rows, err := tx.Query(ctx, sql, a...)
			if err != nil {
				return err
			}
			list := l.dest(out)
			list.Items = []query.DeadlineItem{}
			for rows.Next() {
				var it query.DeadlineItem
				w := &it.Worker
				if err := rows.Scan(&it.PathID, &it.Office, &w.TaxCode, &w.GivenName, &w.FamilyName, &w.Erased, &it.Category,
					&it.TakenAt, &it.Since, &it.SupportTo, &it.UnjustifiedNoShows, &list.Count); err != nil {
					rows.Close()
					return err
				}
				it.TakenAt = it.TakenAt.UTC()
				it.Since = utc(it.Since)
				list.Items = append(list.Items, it)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ query.Reports = (*Reader)(nil)
