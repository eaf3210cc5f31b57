package query

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/percorso/percorso/domain/fault"
)

// Reports is the reporting side of the read models: listings for operators
// and the aggregates the region and the European Social Fund account on.
// Office lists follow access.Principal.OfficeScope: nil means every office,
// an empty non-nil list means none.
type Reports interface {
	ListPaths(ctx context.Context, f PathFilter) (*PathPage, error)
	Activity(ctx context.Context, f GroupedFilter) ([]ActivityRow, error)
	Intake(ctx context.Context, f GroupedFilter) ([]IntakeRow, error)
	Closures(ctx context.Context, f GroupedFilter) ([]ClosureRow, error)
	INPSReports(ctx context.Context, f GroupedFilter) ([]INPSRow, error)
	Compliance(ctx context.Context, f ComplianceFilter) ([]ComplianceRow, error)
	Deadlines(ctx context.Context, f DeadlineFilter) (*Deadlines, error)
}

// MinCellWorkers is the smallest number of workers a report cell may show
// to a principal who must not be able to single anyone out.
const MinCellWorkers = 5

// Grouping keys of the aggregate reports. Each report accepts a subset.
const (
	KeyOffice      = "office"
	KeyProvince    = "province"
	KeyCategory    = "category"
	KeyService     = "service"
	KeyMonth       = "month"
	KeyReason      = "reason"
	KeySupportKind = "support_kind"
)

// The grouping keys each report accepts.
var (
	ActivityKeys = []string{KeyOffice, KeyProvince, KeyCategory, KeyService, KeyMonth}
	IntakeKeys   = []string{KeyOffice, KeyProvince, KeyCategory, KeySupportKind, KeyMonth}
	ClosureKeys  = []string{KeyOffice, KeyProvince, KeyCategory, KeyReason, KeyMonth}
	INPSKeys     = []string{KeyOffice, KeyProvince, KeyCategory, KeyReason, KeyMonth}
)

// ParseGroupBy reads a comma-separated group_by against the keys a report
// accepts. The keys come back in the order asked, which is the column order
// of the rows; an empty value means one total row. The result is the only
// thing that ever reaches SQL text, so anything outside allowed is refused.
func ParseGroupBy(s string, allowed []string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var keys []string
	for k := range strings.SplitSeq(s, ",") {
		if !contains(allowed, k) {
			return nil, fault.Invalidf("group_by", "group_by accepts %s; %q is not one of them", strings.Join(allowed, ","), k)
		}
		if contains(keys, k) {
			return nil, fault.Invalidf("group_by", "group_by names %q twice", k)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Period is an inclusive range of civil dates (YYYY-MM-DD) as seen in the
// offices, in Europe/Rome; an empty bound is open.
type Period struct {
	From string
	To   string
}

const dateLayout = "2006-01-02"

// ParseDate checks a YYYY-MM-DD date parameter; field names it in the error.
func ParseDate(field, s string) (string, error) {
	if _, err := time.Parse(dateLayout, s); err != nil {
		return "", fault.Rulef(fault.CodeInvalidDate, "%s must be a date, YYYY-MM-DD", field).OnField(field)
	}
	return s, nil
}

// ParsePeriod checks from and to (either may be empty) and their order.
func ParsePeriod(from, to string) (Period, error) {
	var p Period
	var err error
	if from != "" {
		if p.From, err = ParseDate("from", from); err != nil {
			return Period{}, err
		}
	}
	if to != "" {
		if p.To, err = ParseDate("to", to); err != nil {
			return Period{}, err
		}
	}
	// YYYY-MM-DD compares as text in date order.
	if p.From != "" && p.To != "" && p.From > p.To {
		return Period{}, fault.Rulef(fault.CodeInvalidDate, "from is after to").OnField("to")
	}
	return p, nil
}

// GroupedFilter selects the rows of an aggregate report.
type GroupedFilter struct {
	Period  Period
	Offices []string
	GroupBy []string
}

// Group holds the grouping fields of an aggregate row; only the fields the
// report was grouped by are set.
type Group struct {
	Office      *string `json:"office,omitempty"`
	Province    *string `json:"province,omitempty"`
	Category    *string `json:"category,omitempty"`
	SupportKind *string `json:"support_kind,omitempty"`
	Service     *int    `json:"service,omitempty"`
	Reason      *string `json:"reason,omitempty"`
	Month       *string `json:"month,omitempty"`
}

// Value is the text of a grouping field, for CSV; "" if not set.
func (g *Group) Value(key string) string {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	switch key {
	case KeyOffice:
		return str(g.Office)
	case KeyProvince:
		return str(g.Province)
	case KeyCategory:
		return str(g.Category)
	case KeySupportKind:
		return str(g.SupportKind)
	case KeyReason:
		return str(g.Reason)
	case KeyMonth:
		return str(g.Month)
	case KeyService:
		if g.Service == nil {
			return ""
		}
		return strconv.Itoa(*g.Service)
	}
	return ""
}

// Dest returns where a scanner should store the grouping field key,
// allocating it; nil for a key the Group does not have.
func (g *Group) Dest(key string) any {
	switch key {
	case KeyOffice:
		g.Office = new(string)
		return g.Office
	case KeyProvince:
		g.Province = new(string)
		return g.Province
	case KeyCategory:
		g.Category = new(string)
		return g.Category
	case KeySupportKind:
		g.SupportKind = new(string)
		return g.SupportKind
	case KeyReason:
		g.Reason = new(string)
		return g.Reason
	case KeyMonth:
		g.Month = new(string)
		return g.Month
	case KeyService:
		g.Service = new(int)
		return g.Service
	}
	return nil
}

// small reports whether a worker count must be blanked.
func small(workers *int) bool { return workers != nil && *workers < MinCellWorkers }

// ActivityRow is one cell of the activity report: delivered sessions only.
type ActivityRow struct {
	Group
	// Workers counts distinct workers with a delivered session in the cell;
	// nil when blanked.
	Workers         *int `json:"workers"`
	Sessions        int  `json:"sessions"`
	CreditedMinutes int  `json:"credited_minutes"`
	ActualMinutes   int  `json:"actual_minutes"`
}

// SuppressSmallCell blanks the worker count of a cell under MinCellWorkers.
// Sessions and minutes are volumes of work, not of people, and stay.
func (r *ActivityRow) SuppressSmallCell() {
	if small(r.Workers) {
		r.Workers = nil
	}
}

// IntakeRow is one cell of the take-in-charge report.
type IntakeRow struct {
	Group
	Workers *int `json:"workers"`
	Paths   *int `json:"paths"`
}

// SuppressSmallCell blanks a cell under MinCellWorkers: a path is a person
// here, so its count goes too.
func (r *IntakeRow) SuppressSmallCell() {
	if small(r.Workers) {
		r.Workers, r.Paths = nil, nil
	}
}

// ClosureRow is one cell of the closures report.
type ClosureRow struct {
	Group
	Workers *int `json:"workers"`
	Paths   *int `json:"paths"`
}

// SuppressSmallCell blanks a cell under MinCellWorkers, count included.
func (r *ClosureRow) SuppressSmallCell() {
	if small(r.Workers) {
		r.Workers, r.Paths = nil, nil
	}
}

// INPS report reasons: an unjustified refusal of each kind, and the second
// or a later unjustified no-show.
const (
	INPSRefusalConvocation = "refusal_convocation"
	INPSRefusalPath        = "refusal_path"
	INPSRefusalJobOffer    = "refusal_job_offer"
	INPSNoShowSecond       = "no_show_second"
	INPSNoShowRepeated     = "no_show_repeated"
)

// INPSRow is one cell of the report of segnalazioni to INPS.
type INPSRow struct {
	Group
	Workers *int `json:"workers"`
	Reports *int `json:"reports"`
}

// SuppressSmallCell blanks a cell under MinCellWorkers, count included:
// each report is about one person's conduct.
func (r *INPSRow) SuppressSmallCell() {
	if small(r.Workers) {
		r.Workers, r.Reports = nil, nil
	}
}

// Compliance exception kinds.
const (
	ExceptionGroupSize      = "group_size_out_of_range"
	ExceptionRepeatLimit    = "repeat_limit_reached"
	ExceptionOutsideSupport = "outside_support_period"
)

// ExceptionKinds lists the compliance exception kinds.
var ExceptionKinds = []string{ExceptionGroupSize, ExceptionRepeatLimit, ExceptionOutsideSupport}

// ComplianceFilter selects compliance exceptions; no Kinds means all.
type ComplianceFilter struct {
	Period  Period
	Offices []string
	Kinds   []string
}

// ComplianceRow is one delivered session that the region checks by hand: a
// group outside 6–15, the session that reached a repeat limit, a session
// outside the support period.
type ComplianceRow struct {
	PathID string `json:"path_id"`
	// WorkerRef is the worker's pseudonym, for counting workers, never shown.
	WorkerRef   string    `json:"-"`
	Office      string    `json:"office"`
	Service     int       `json:"service"`
	DeliveredAt time.Time `json:"delivered_at"`
	Kind        string    `json:"kind"`
	GroupSize   *int      `json:"group_size,omitempty"`
	// Justification is free text an operator wrote: it may name people, so
	// edges drop it for principals without access to personal data.
	Justification *string `json:"justification,omitempty"`
}

// ComplianceCount is how many of rows keep selects, or nil when suppress is
// set (analysts) and they concern fewer than MinCellWorkers workers: a
// count of exceptions can single a worker out as a count of people can.
func ComplianceCount(rows []ComplianceRow, suppress bool, keep func(*ComplianceRow) bool) *int {
	n := 0
	workers := map[string]bool{}
	for i := range rows {
		if keep(&rows[i]) {
			n++
			workers[rows[i].WorkerRef] = true
		}
	}
	if suppress && len(workers) < MinCellWorkers {
		return nil
	}
	return &n
}

// PersonName is the part of a worker's personal data a listing needs to
// call them; nil fields are erased.
type PersonName struct {
	TaxCode    *string `json:"tax_code"`
	GivenName  *string `json:"given_name"`
	FamilyName *string `json:"family_name"`
	Erased     bool    `json:"erased"`
}

// PathFilter selects a page of paths, in path_id order.
type PathFilter struct {
	Offices  []string
	Status   string
	Category string
	TaxCode  string // normalized
	After    string // path_id the page starts after; "" from the start
	Limit    int
}

// PathSummary is a path as a listing shows it.
type PathSummary struct {
	PathID               string     `json:"path_id"`
	Worker               PersonName `json:"worker"`
	Category             string     `json:"category"`
	SupportKind          string     `json:"support_kind"`
	Office               string     `json:"office"`
	Province             string     `json:"province"`
	Status               string     `json:"status"`
	TakenAt              time.Time  `json:"taken_at"`
	ClosedAt             *time.Time `json:"closed_at,omitempty"`
	CloseReason          *string    `json:"close_reason,omitempty"`
	PactSignedAt         *time.Time `json:"pact_signed_at"`
	CreditedMinutesTotal int        `json:"credited_minutes_total"`
	UnjustifiedNoShows   int        `json:"unjustified_no_shows"`
	Version              uint64     `json:"version"`
}

// PathPage is one page of a listing; NextAfter is the last path_id of the
// page when more may follow.
type PathPage struct {
	Paths     []PathSummary
	NextAfter string
}

// Listing page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

const cursorPrefix = "p1:"

// EncodeCursor makes the opaque cursor that resumes a listing after pathID.
// Opaque so that the key the listing pages on can change without breaking
// clients that store cursors.
func EncodeCursor(pathID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + pathID))
}

// DecodeCursor returns the path_id of a cursor made by EncodeCursor.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	id, ok := strings.CutPrefix(string(b), cursorPrefix)
	if err != nil || !ok || !isUUID(id) {
		return "", fault.Invalidf("after", "after must be a cursor returned as next by a previous page")
	}
	return id, nil
}

// isUUID accepts the canonical lowercase form path ids have.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// Deadline lists are capped per list; Count still says how many are due.
const (
	DefaultDeadlineLimit = 500
	MaxDeadlineLimit     = 5000
	// SupportEndingDays is how far ahead "support ending soon" looks.
	SupportEndingDays = 30
)

// DeadlineFilter selects the scadenziario of offices as of a date.
type DeadlineFilter struct {
	Offices []string
	AsOf    string // YYYY-MM-DD
	Limit   int
}

// DeadlineItem is one open path due for an action.
type DeadlineItem struct {
	PathID   string     `json:"path_id"`
	Office   string     `json:"office"`
	Worker   PersonName `json:"worker"`
	Category string     `json:"category"`
	TakenAt  time.Time  `json:"taken_at"`
	// Since is when the item fell due: the take-in-charge, the missed
	// appointment, the first 05/08 or the patto.
	Since              *time.Time `json:"since,omitempty"`
	SupportTo          *string    `json:"support_to,omitempty"`
	UnjustifiedNoShows int        `json:"unjustified_no_shows"`
}

// DeadlineList is one list of the scadenziario, oldest first.
type DeadlineList struct {
	Count int            `json:"count"`
	Items []DeadlineItem `json:"items"`
}

// Deadlines is the scadenziario: open paths needing an action.
type Deadlines struct {
	AsOf string `json:"as_of"`
	// WithoutPact: taken in charge, no patto di servizio yet.
	WithoutPact DeadlineList `json:"without_pact"`
	// FirstNoShow: one unjustified no-show; convoke again.
	FirstNoShow DeadlineList `json:"first_no_show"`
	// SecondNoShow: two or more; to be reported to INPS.
	SecondNoShow DeadlineList `json:"second_no_show"`
	// JustifiedAbsence: the last convocation was missed with a
	// justification and nothing was delivered since; re-contact.
	JustifiedAbsence DeadlineList `json:"justified_absence"`
	// VerificationDue: a 05 or 08 delivered or a patto signed, and no
	// verification interview yet.
	VerificationDue DeadlineList `json:"verification_due"`
	// SupportEnding: income support ends within SupportEndingDays.
	SupportEnding DeadlineList `json:"support_ending"`
}
