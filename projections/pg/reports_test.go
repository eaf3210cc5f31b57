package pg_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// The reports are checked against a generated regional workload: every
// figure is recomputed here, in Go, from the same events the projector
// applied, so the SQL and this file must agree on what each report means.

var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	return l
}()

const asOf = "2012-01-15"

// ---- workload -------------------------------------------------------

type genPath struct {
	id, office, category, workerRef string
	person                          workerpath.Person
	support                         workerpath.Support
	takenAt, end                    time.Time
	counts                          map[int]int
	pact                            bool
}

type timed struct {
	at    time.Time
	order int
	ev    workerpath.Event
}

type gen struct {
	r      *rand.Rand
	events []timed
	paths  []*genPath
}

func (g *gen) uuid() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], g.r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], g.r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (g *gen) taxCode() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	const months = "ABCDEHLMPRST"
	b := make([]byte, 0, 16)
	for range 6 {
		b = append(b, letters[g.r.IntN(len(letters))])
	}
	b = fmt.Appendf(b, "%02d%c%02d%c%03d", g.r.IntN(100), months[g.r.IntN(len(months))], 1+g.r.IntN(28),
		letters[g.r.IntN(len(letters))], g.r.IntN(1000))
	c, err := taxcode.CheckChar(string(b))
	if err != nil {
		panic(err)
	}
	return string(append(b, c))
}

func (g *gen) emit(at time.Time, e workerpath.Event) {
	g.events = append(g.events, timed{at: at, order: len(g.events), ev: e})
}

func meta(p *genPath, at time.Time) workerpath.Meta {
	return workerpath.Meta{PathID: p.id, Office: p.office, Operator: "op." + strings.ToLower(p.office), RecordedAt: at}
}

func (g *gen) session(p *genPath, at time.Time, service int) *workerpath.SessionDelivered {
	svc, _ := workerpath.LookupService(service)
	d := workerpath.DateOf(at)
	outside := d.Before(p.support.From) || (!p.support.To.IsZero() && d.After(p.support.To))
	s := &workerpath.SessionDelivered{
		Meta: meta(p, at), SessionID: g.uuid(), Service: service, DeliveredAt: at,
		StandardMinutes: svc.StandardMinutes, CreditedMinutes: workerpath.CreditedMinutes(svc, p.person.Disability),
		ActualMinutes: svc.StandardMinutes + g.r.IntN(41) - 20, OutsideSupport: outside,
		MediatorPresent:  p.person.MediatorLanguage != "" && g.r.IntN(2) == 0,
		CatalogueVersion: workerpath.CatalogueVersion,
	}
	p.counts[service]++
	return s
}

var (
	start = time.Date(2009, 6, 1, 0, 0, 0, 0, time.UTC)
	never = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// randomTime is a whole second anywhere in the day, late evenings included:
// 23:30 UTC is already tomorrow in Rome, which the reports must know.
func (g *gen) randomTime(from time.Time, days int) time.Time {
	return from.Add(time.Duration(g.r.IntN(days*86400)) * time.Second)
}

func (g *gen) path(code string, reuse *genPath) {
	r := g.r
	p := &genPath{id: g.uuid(), office: code, counts: map[int]int{}, end: never}
	p.takenAt = g.randomTime(start, 880)
	if reuse != nil {
		p.person, p.workerRef = reuse.person, reuse.workerRef
		p.takenAt = reuse.end.Add(time.Duration(1+r.IntN(60*24)) * time.Minute)
	} else {
		p.workerRef = "ref-" + g.uuid()
		p.person = workerpath.Person{TaxCode: g.taxCode(), GivenName: "Nome" + strconv.Itoa(len(g.paths)),
			FamilyName: "Cognome" + strconv.Itoa(len(g.paths)), Disability: r.IntN(8) == 0}
		if r.IntN(6) == 0 {
			p.person.MediatorLanguage = "ar"
		}
	}
	p.category = string(rune('a' + r.IntN(5)))
	kind := map[string]string{"a": workerpath.SupportCIG, "b": workerpath.SupportCIG, "c": workerpath.SupportCIG,
		"d": workerpath.SupportMobilita, "e": workerpath.SupportCoCoPro}[p.category]
	from := workerpath.DateOf(p.takenAt)
	if r.IntN(10) == 0 {
		from = from.AddDays(20) // support starting late: early sessions fall outside it
	}
	p.support = workerpath.Support{Kind: kind, From: from}
	switch n := r.IntN(20); {
	case n < 3:
		to := workerpath.MustDate(asOf).AddDays(r.IntN(46) - 5)
		if !to.Before(from) {
			p.support.To = to
		}
	case n < 15:
		p.support.To = from.AddDays(60 + r.IntN(500))
	}
	g.paths = append(g.paths, p)

	t := p.takenAt
	g.emit(t, &workerpath.TakenInCharge{Meta: meta(p, t), WorkerRef: p.workerRef, Worker: p.person, Category: p.category,
		Support: p.support, TakenAt: t, CatalogueVersion: workerpath.CatalogueVersion})
	step := func() { t = t.Add(time.Duration(60+r.IntN(20*86400)) * time.Second) }
	pact := func(sessionID string) {
		t = t.Add(time.Second)
		g.emit(t, &workerpath.PactSigned{Meta: meta(p, t), SignedAt: t, DIDOn: workerpath.DateOf(t), SessionID: sessionID})
		p.pact = true
	}
	if r.IntN(10) < 7 {
		step()
		s := g.session(p, t, 2)
		g.emit(t, s)
		if r.IntN(10) < 8 {
			pact(s.SessionID)
		}
	}
	unjustified := 0
	for range r.IntN(10) {
		step()
		switch roll := r.IntN(100); {
		case roll < 9:
			unjustified++
			kind := []string{workerpath.NoShowFirst, workerpath.NoShowSecond}[min(unjustified, 2)-1]
			if unjustified > 2 {
				kind = workerpath.NoShowRepeated
			}
			g.emit(t, &workerpath.NoShowRecorded{Meta: meta(p, t), AppointmentAt: t.Add(-time.Hour), Kind: kind,
				Unjustified: unjustified, ReportToINPS: unjustified >= 2})
		case roll < 17:
			g.emit(t, &workerpath.NoShowRecorded{Meta: meta(p, t), AppointmentAt: t.Add(-time.Hour), Justified: true,
				Reason: "malattia", Kind: workerpath.NoShowJustified, Unjustified: unjustified})
		case roll < 21:
			kind := []string{workerpath.RefusalConvocation, workerpath.RefusalPath, workerpath.RefusalJobOffer}[r.IntN(3)]
			g.emit(t, &workerpath.RefusalReported{Meta: meta(p, t), Kind: kind, At: t})
		default:
			service := []int{1, 3, 3, 5, 5, 7, 8, 9, 10, 11, 12}[r.IntN(11)]
			switch {
			case service == 5 && p.counts[5] >= 3, service == 11 && (p.category != "d" || p.counts[11] > 0):
				service = 1
			case service == 12 && p.counts[5] == 0 && p.counts[8] == 0 && !p.pact:
				service = 9
			}
			if service == 7 {
				id := g.uuid()
				g.emit(t, &workerpath.TraineeshipActivated{Meta: meta(p, t), TraineeshipID: id, HostTaxCode: "00000000000",
					StartsOn: workerpath.DateOf(t), ActivatedAt: t})
				t = t.Add(time.Second)
				s := g.session(p, t, 7)
				s.TraineeshipID = id
				g.emit(t, s)
				continue
			}
			s := g.session(p, t, service)
			g.emit(t, s)
			switch {
			case service == 12 && r.IntN(5) > 0:
				t = t.Add(time.Second)
				g.emit(t, &workerpath.PathVerified{Meta: meta(p, t), VerifiedAt: t, Outcome: workerpath.OutcomeAchieved, SessionID: s.SessionID})
			case service == 3 && !p.pact && r.IntN(3) == 0:
				pact(s.SessionID)
			}
		}
	}
	if r.IntN(10) < 4 {
		step()
		reason := []string{workerpath.CloseReemployed, workerpath.CloseSupportEnded, workerpath.CloseTransferred, workerpath.CloseWithdrawn}[r.IntN(4)]
		if unjustified >= 2 || r.IntN(10) == 0 {
			reason = workerpath.CloseDecadenza
		}
		g.emit(t, &workerpath.PathClosed{Meta: meta(p, t), ClosedAt: t, Reason: reason})
		p.end = t
	}
	if r.IntN(30) == 0 {
		step()
		g.emit(t, &workerpath.PersonalDataErased{Meta: meta(p, t), WorkerRef: p.workerRef, ErasedAt: t})
	}
}

// groups adds group sessions (04, 06) of an office's paths open at the
// time, most of 6–15 participants, some outside the range with a written
// justification.
func (g *gen) groups(code string) {
	var mine []*genPath
	for _, p := range g.paths {
		if p.office == code {
			mine = append(mine, p)
		}
	}
	for range len(mine) / 3 {
		at := g.randomTime(start.AddDate(0, 1, 0), 900)
		service := []int{workerpath.SvcGroup, workerpath.SvcWorkshop}[g.r.IntN(2)]
		var eligible []*genPath
		for _, p := range mine {
			if p.takenAt.Before(at.Add(-time.Hour)) && p.end.After(at.Add(time.Hour)) && (service != 6 || p.counts[6] < 3) {
				eligible = append(eligible, p)
			}
		}
		size := 6 + g.r.IntN(10)
		switch g.r.IntN(7) {
		case 0:
			size = 2 + g.r.IntN(4)
		case 1:
			size = 16 + g.r.IntN(3)
		}
		size = min(size, len(eligible))
		if size < 2 {
			continue
		}
		g.r.Shuffle(len(eligible), func(i, j int) { eligible[i], eligible[j] = eligible[j], eligible[i] })
		group := g.uuid()
		outside := size < 6 || size > 15
		for _, p := range eligible[:size] {
			s := g.session(p, at, service)
			s.GroupID, s.GroupSize, s.OutsideGroupRange = group, size, outside
			if outside {
				s.Justification = "=gruppo ridotto per calendario aziendale"
			}
			g.emit(at, s)
		}
	}
}

func workload(seed uint64) []pg.Item {
	g := &gen{r: rand.New(rand.NewPCG(seed, 2010))}
	for _, o := range office.All() {
		n := 3 + g.r.IntN(8)
		if o.Province == "BO" || o.Province == "MO" || o.Province == "RE" {
			n *= 4
		}
		for range n {
			var reuse *genPath
			if g.r.IntN(12) == 0 {
				for _, p := range g.paths {
					if p.end != never && !slices.ContainsFunc(g.paths, func(q *genPath) bool { return q != p && q.workerRef == p.workerRef }) {
						reuse = p
						break
					}
				}
			}
			g.path(o.Code, reuse)
		}
	}
	for _, o := range office.All() {
		g.groups(o.Code)
	}
	slices.SortStableFunc(g.events, func(a, b timed) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.order, b.order))
	})
	items := make([]pg.Item, len(g.events))
	for i, te := range g.events {
		data, err := json.Marshal(te.ev)
		if err != nil {
			panic(err)
		}
		h := te.ev.Header()
		items[i] = pg.Item{Env: &eventstore.Envelope{
			Seq: uint64(i + 1), ID: g.uuid(), Type: te.ev.EventType(), SchemaVersion: eventstore.SchemaVersion,
			PathID: h.PathID, Time: te.at, Actor: h.Operator, CommandID: g.uuid(), CorrelationID: g.uuid(),
			Hash: fmt.Sprintf("h%d", i+1), PrevHash: fmt.Sprintf("h%d", i), Data: data,
		}, Event: te.ev}
	}
	return items
}

// ---- the same figures, from the events ------------------------------

type sess struct {
	seq  uint64
	p    *pstate
	e    *workerpath.SessionDelivered
	date string
}

type noShow struct {
	seq uint64
	p   *pstate
	e   *workerpath.NoShowRecorded
}

type refusal struct {
	p *pstate
	e *workerpath.RefusalReported
}

type pstate struct {
	t           *workerpath.TakenInCharge
	province    string
	closed      *workerpath.PathClosed
	pact        *time.Time
	unjustified int
	noShows     []noShow
	sessions    []sess
	verified    bool
	erased      bool
}

type model struct {
	paths    map[string]*pstate
	sessions []sess
	noShows  []noShow
	refusals []refusal
}

func romeDate(t time.Time) string  { return t.In(rome).Format("2006-01-02") }
func romeMonth(t time.Time) string { return t.In(rome).Format("2006-01") }

func fold(items []pg.Item) *model {
	m := &model{paths: map[string]*pstate{}}
	for _, it := range items {
		switch e := it.Event.(type) {
		case *workerpath.TakenInCharge:
			o, _ := office.Lookup(e.Office)
			m.paths[e.PathID] = &pstate{t: e, province: o.Province}
		case *workerpath.SessionDelivered:
			p := m.paths[e.PathID]
			s := sess{seq: it.Env.Seq, p: p, e: e, date: romeDate(e.DeliveredAt)}
			p.sessions = append(p.sessions, s)
			m.sessions = append(m.sessions, s)
		case *workerpath.PactSigned:
			m.paths[e.PathID].pact = &e.SignedAt
		case *workerpath.PathVerified:
			m.paths[e.PathID].verified = true
		case *workerpath.NoShowRecorded:
			p := m.paths[e.PathID]
			n := noShow{seq: it.Env.Seq, p: p, e: e}
			p.noShows = append(p.noShows, n)
			m.noShows = append(m.noShows, n)
			if !e.Justified {
				p.unjustified = e.Unjustified
			}
		case *workerpath.RefusalReported:
			m.refusals = append(m.refusals, refusal{p: m.paths[e.PathID], e: e})
		case *workerpath.PathClosed:
			m.paths[e.PathID].closed = e
		case *workerpath.PersonalDataErased:
			m.paths[e.PathID].erased = true
		}
	}
	return m
}

func (p *pstate) key(k string) string {
	switch k {
	case query.KeyOffice:
		return p.t.Office
	case query.KeyProvince:
		return p.province
	case query.KeyCategory:
		return p.t.Category
	case query.KeySupportKind:
		return p.t.Support.Kind
	}
	panic("no path key " + k)
}

func inPeriod(date string, per query.Period) bool {
	return (per.From == "" || date >= per.From) && (per.To == "" || date <= per.To)
}

func inScope(code string, offices []string) bool {
	return offices == nil || slices.Contains(offices, code)
}

// cell accumulates one expected row: distinct workers and counters.
type cell struct {
	workers map[string]bool
	n       []int
}

func (c *cell) add(worker string, n ...int) {
	c.workers[worker] = true
	for i, v := range n {
		c.n[i] += v
	}
}

type cells map[string]*cell

func (cs cells) at(key string, width int) *cell {
	c := cs[key]
	if c == nil {
		c = &cell{workers: map[string]bool{}, n: make([]int, width)}
		cs[key] = c
	}
	return c
}

// flat renders expected cells as "k1|k2 -> workers,n1,n2": the form the
// report rows are compared in.
func (cs cells) flat(groupBy []string, width int) map[string]string {
	if len(groupBy) == 0 && len(cs) == 0 {
		cs.at("", width) // an ungrouped report always has its total row
	}
	out := map[string]string{}
	for k, c := range cs {
		parts := []string{strconv.Itoa(len(c.workers))}
		for _, v := range c.n {
			parts = append(parts, strconv.Itoa(v))
		}
		out[k] = strings.Join(parts, ",")
	}
	return out
}

func groupKey(g *query.Group, groupBy []string) string {
	vals := make([]string, len(groupBy))
	for i, k := range groupBy {
		vals[i] = g.Value(k)
	}
	return strings.Join(vals, "|")
}

func (m *model) activity(f query.GroupedFilter) map[string]string {
	cs := cells{}
	for _, s := range m.sessions {
		if !inPeriod(s.date, f.Period) || !inScope(s.p.t.Office, f.Offices) {
			continue
		}
		vals := make([]string, len(f.GroupBy))
		for i, k := range f.GroupBy {
			switch k {
			case query.KeyService:
				vals[i] = strconv.Itoa(s.e.Service)
			case query.KeyMonth:
				vals[i] = romeMonth(s.e.DeliveredAt)
			default:
				vals[i] = s.p.key(k)
			}
		}
		cs.at(strings.Join(vals, "|"), 3).add(s.p.t.WorkerRef, 1, s.e.CreditedMinutes, s.e.ActualMinutes)
	}
	return cs.flat(f.GroupBy, 3)
}

// pathFacts is the expectation of intake, closures and INPS: facts about
// a path on a date, with a reason.
type pathFact struct {
	p      *pstate
	at     time.Time
	reason string
}

func factCells(facts []pathFact, f query.GroupedFilter) map[string]string {
	cs := cells{}
	for _, x := range facts {
		if !inPeriod(romeDate(x.at), f.Period) || !inScope(x.p.t.Office, f.Offices) {
			continue
		}
		vals := make([]string, len(f.GroupBy))
		for i, k := range f.GroupBy {
			switch k {
			case query.KeyReason:
				vals[i] = x.reason
			case query.KeyMonth:
				vals[i] = romeMonth(x.at)
			default:
				vals[i] = x.p.key(k)
			}
		}
		cs.at(strings.Join(vals, "|"), 1).add(x.p.t.WorkerRef, 1)
	}
	return cs.flat(f.GroupBy, 1)
}

func (m *model) intakeFacts() (out []pathFact) {
	for _, p := range m.paths {
		out = append(out, pathFact{p: p, at: p.t.TakenAt})
	}
	return out
}

func (m *model) closureFacts() (out []pathFact) {
	for _, p := range m.paths {
		if p.closed != nil {
			out = append(out, pathFact{p: p, at: p.closed.ClosedAt, reason: p.closed.Reason})
		}
	}
	return out
}

func (m *model) inpsFacts() (out []pathFact) {
	for _, r := range m.refusals {
		out = append(out, pathFact{p: r.p, at: r.e.At, reason: "refusal_" + r.e.Kind})
	}
	for _, n := range m.noShows {
		if n.e.ReportToINPS {
			out = append(out, pathFact{p: n.p, at: n.e.AppointmentAt, reason: "no_show_" + n.e.Kind})
		}
	}
	return out
}

func (m *model) compliance(f query.ComplianceFilter) []string {
	var out []string
	row := func(kind string, s sess) {
		if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, kind) {
			return
		}
		if !inPeriod(s.date, f.Period) || !inScope(s.p.t.Office, f.Offices) {
			return
		}
		size, just := "", ""
		if kind == query.ExceptionGroupSize {
			size, just = strconv.Itoa(s.e.GroupSize), s.e.Justification
		}
		out = append(out, strings.Join([]string{s.e.DeliveredAt.UTC().Format(time.RFC3339), s.p.t.PathID, kind,
			strconv.Itoa(s.e.Service), s.p.t.Office, size, just}, "|"))
	}
	for _, p := range m.paths {
		count := map[int]int{}
		for _, s := range p.sessions {
			if s.e.OutsideGroupRange {
				row(query.ExceptionGroupSize, s)
			}
			if s.e.OutsideSupport {
				row(query.ExceptionOutsideSupport, s)
			}
			count[s.e.Service]++
			if svc, _ := workerpath.LookupService(s.e.Service); svc.MaxDeliveries > 0 && count[s.e.Service] == svc.MaxDeliveries {
				row(query.ExceptionRepeatLimit, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

func complianceFlat(rows []query.ComplianceRow) []string {
	out := make([]string, len(rows))
	for i, c := range rows {
		size, just := "", ""
		if c.GroupSize != nil {
			size = strconv.Itoa(*c.GroupSize)
		}
		if c.Justification != nil {
			just = *c.Justification
		}
		out[i] = strings.Join([]string{c.DeliveredAt.Format(time.RFC3339), c.PathID, c.Kind, strconv.Itoa(c.Service), c.Office, size, just}, "|")
	}
	return out
}

// deadlineItem is an expected list entry: path id and since (or support_to).
type deadlineItem struct {
	id, at string
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (m *model) deadlines(offices []string, asOfDate string) map[string][]deadlineItem {
	lists := map[string][]deadlineItem{}
	add := func(list string, p *pstate, at *time.Time) {
		lists[list] = append(lists[list], deadlineItem{p.t.PathID, fmtTime(at)})
	}
	limitDate := workerpath.MustDate(asOfDate).AddDays(query.SupportEndingDays).String()
	for _, p := range m.paths {
		if p.closed != nil || !inScope(p.t.Office, offices) {
			continue
		}
		sessionSince := func(t time.Time) bool {
			return slices.ContainsFunc(p.sessions, func(s sess) bool { return !s.e.DeliveredAt.Before(t) })
		}
		var lastUnjustified *time.Time
		for _, n := range p.noShows {
			if !n.e.Justified && (lastUnjustified == nil || n.e.AppointmentAt.After(*lastUnjustified)) {
				lastUnjustified = &n.e.AppointmentAt
			}
		}
		if p.pact == nil {
			add("without_pact", p, &p.t.TakenAt)
		}
		if p.unjustified == 1 && !sessionSince(*lastUnjustified) {
			add("first_no_show", p, lastUnjustified)
		}
		if p.unjustified >= 2 {
			add("second_no_show", p, lastUnjustified)
		}
		if len(p.noShows) > 0 {
			last := p.noShows[len(p.noShows)-1]
			if last.e.Justified && !sessionSince(last.e.AppointmentAt) {
				add("justified_absence", p, &last.e.AppointmentAt)
			}
		}
		var first58 *time.Time
		had12 := false
		for _, s := range p.sessions {
			if (s.e.Service == 5 || s.e.Service == 8) && (first58 == nil || s.e.DeliveredAt.Before(*first58)) {
				first58 = &s.e.DeliveredAt
			}
			had12 = had12 || s.e.Service == 12
		}
		if !p.verified && !had12 && (first58 != nil || p.pact != nil) {
			since := first58
			if since == nil || (p.pact != nil && p.pact.Before(*since)) {
				since = p.pact
			}
			add("verification_due", p, since)
		}
		if to := p.t.Support.To; !to.IsZero() && to.String() >= asOfDate && to.String() <= limitDate {
			lists["support_ending"] = append(lists["support_ending"], deadlineItem{p.t.PathID, to.String()})
		}
	}
	for _, l := range lists {
		slices.SortFunc(l, func(a, b deadlineItem) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.id, b.id)) })
	}
	return lists
}

func deadlineLists(d *query.Deadlines) map[string]*query.DeadlineList {
	return map[string]*query.DeadlineList{
		"without_pact": &d.WithoutPact, "first_no_show": &d.FirstNoShow, "second_no_show": &d.SecondNoShow,
		"justified_absence": &d.JustifiedAbsence, "verification_due": &d.VerificationDue, "support_ending": &d.SupportEnding,
	}
}

// ---- tests -----------------------------------------------------------

type fixture struct {
	pool  *pgxpool.Pool
	r     *pg.Reader
	m     *model
	items []pg.Item
}

func setup(t *testing.T) *fixture {
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
	items := workload(7)
	proj := pg.NewProjector(pool)
	for i := 0; i < len(items); i += 700 {
		if err := proj.Apply(ctx, items[i:min(i+700, len(items))]); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{pool: pool, r: pg.NewReader(pool), m: fold(items), items: items}
}

// TestWorkloadShape keeps the generator honest: a report test over data
// without exceptions, repeat workers or erasures would prove little.
func TestWorkloadShape(t *testing.T) {
	m := fold(workload(7))
	count := map[string]int{}
	refs := map[string]int{}
	for _, p := range m.paths {
		refs[p.t.WorkerRef]++
		count["category "+p.t.Category]++
		if p.t.Worker.Disability {
			count["disability"]++
		}
		if p.erased {
			count["erased"]++
		}
		if p.closed != nil {
			count["closed "+p.closed.Reason]++
		}
	}
	for _, n := range refs {
		if n > 1 {
			count["worker with two paths"]++
		}
	}
	for _, s := range m.sessions {
		count["service "+strconv.Itoa(s.e.Service)]++
		if s.e.OutsideGroupRange {
			count["group outside range"]++
		}
		if s.e.GroupID != "" && !s.e.OutsideGroupRange {
			count["group in range"]++
		}
		if s.e.OutsideSupport {
			count["outside support"]++
		}
		if s.date != s.e.DeliveredAt.UTC().Format("2006-01-02") {
			count["date differs in Rome"]++
		}
	}
	for _, n := range m.noShows {
		count["no-show "+n.e.Kind]++
	}
	for _, r := range m.refusals {
		count["refusal "+r.e.Kind]++
	}
	need := []string{"disability", "erased", "worker with two paths", "group outside range", "group in range",
		"outside support", "date differs in Rome", "no-show first", "no-show second", "no-show repeated",
		"no-show justified", "refusal convocation", "refusal path", "refusal job_offer"}
	for _, c := range []string{"a", "b", "c", "d", "e"} {
		need = append(need, "category "+c)
	}
	for s := 1; s <= 12; s++ {
		need = append(need, "service "+strconv.Itoa(s))
	}
	for _, r := range []string{"reemployed", "support_ended", "decadenza", "transferred", "withdrawn"} {
		need = append(need, "closed "+r)
	}
	for _, k := range need {
		if count[k] == 0 {
			t.Errorf("the workload has no %s", k)
		}
	}
	if len(m.paths) < 400 {
		t.Errorf("the workload has %d paths; want a regional volume", len(m.paths))
	}
}

func TestReports(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	bo := []string{"BO01", "BO02", "MO03"}
	periods := []query.Period{{}, {From: "2010-01-01", To: "2010-12-31"}, {From: "2010-03-31", To: "2010-04-01"}, {To: "2009-12-31"}}

	t.Run("activity", func(t *testing.T) {
		groupings := [][]string{nil, {"office"}, {"province", "category"}, {"office", "category", "service", "month"},
			{"month", "service"}, {"category", "province", "service"}}
		for _, per := range periods {
			for _, gb := range groupings {
				for _, offices := range [][]string{nil, bo, {}} {
					f := query.GroupedFilter{Period: per, Offices: offices, GroupBy: gb}
					rows, err := fx.r.Activity(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					got := map[string]string{}
					for _, r := range rows {
						got[groupKey(&r.Group, gb)] = fmt.Sprintf("%d,%d,%d,%d", *r.Workers, r.Sessions, r.CreditedMinutes, r.ActualMinutes)
					}
					if len(got) != len(rows) {
						t.Errorf("%+v: %d rows but %d distinct groups", f, len(rows), len(got))
					}
					if want := fx.m.activity(f); !mapsEqual(t, fmt.Sprintf("activity %+v", f), got, want) {
						return
					}
				}
			}
		}
	})

	t.Run("activity rows are ordered by the grouping columns", func(t *testing.T) {
		gb := []string{"service", "month"}
		rows, err := fx.r.Activity(ctx, query.GroupedFilter{GroupBy: gb})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(rows, func(a, b query.ActivityRow) int {
			return cmp.Or(cmp.Compare(*a.Service, *b.Service), cmp.Compare(*a.Month, *b.Month))
		}) {
			t.Error("rows are not in service, month order")
		}
		if rows[0].Office != nil || rows[0].Category != nil {
			t.Error("a row carries a field it was not grouped by")
		}
	})

	grouped := []struct {
		name  string
		keys  []string
		run   func(query.GroupedFilter) (map[string]string, error)
		facts []pathFact
	}{
		{"intake", query.IntakeKeys, func(f query.GroupedFilter) (map[string]string, error) {
			rows, err := fx.r.Intake(ctx, f)
			got := map[string]string{}
			for _, r := range rows {
				got[groupKey(&r.Group, f.GroupBy)] = fmt.Sprintf("%d,%d", *r.Workers, *r.Paths)
			}
			return got, err
		}, fx.m.intakeFacts()},
		{"closures", query.ClosureKeys, func(f query.GroupedFilter) (map[string]string, error) {
			rows, err := fx.r.Closures(ctx, f)
			got := map[string]string{}
			for _, r := range rows {
				got[groupKey(&r.Group, f.GroupBy)] = fmt.Sprintf("%d,%d", *r.Workers, *r.Paths)
			}
			return got, err
		}, fx.m.closureFacts()},
		{"inps", query.INPSKeys, func(f query.GroupedFilter) (map[string]string, error) {
			rows, err := fx.r.INPSReports(ctx, f)
			got := map[string]string{}
			for _, r := range rows {
				got[groupKey(&r.Group, f.GroupBy)] = fmt.Sprintf("%d,%d", *r.Workers, *r.Reports)
			}
			return got, err
		}, fx.m.inpsFacts()},
	}
	for _, g := range grouped {
		t.Run(g.name, func(t *testing.T) {
			groupings := [][]string{nil, g.keys, {g.keys[3]}, {g.keys[1], g.keys[4]}, {g.keys[0], g.keys[3]}}
			for _, per := range periods {
				for _, gb := range groupings {
					for _, offices := range [][]string{nil, bo} {
						f := query.GroupedFilter{Period: per, Offices: offices, GroupBy: gb}
						got, err := g.run(f)
						if err != nil {
							t.Fatal(err)
						}
						if !mapsEqual(t, fmt.Sprintf("%s %+v", g.name, f), got, factCells(g.facts, f)) {
							return
						}
					}
				}
			}
		})
	}

	t.Run("compliance", func(t *testing.T) {
		filters := []query.ComplianceFilter{{}, {Offices: bo}, {Period: periods[1]}, {Kinds: []string{query.ExceptionGroupSize}},
			{Kinds: []string{query.ExceptionRepeatLimit, query.ExceptionOutsideSupport}, Period: periods[1], Offices: bo}}
		for _, f := range filters {
			rows, err := fx.r.Compliance(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got, want := complianceFlat(rows), fx.m.compliance(f)
			if !slices.IsSorted(got) {
				t.Errorf("%+v: rows are not in delivery order", f)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("compliance %+v: %d rows, want %d\n%s", f, len(got), len(want), firstDiff(got, want))
			}
			if len(want) == 0 && len(f.Kinds) == 0 {
				t.Errorf("compliance %+v: the workload should have exceptions here", f)
			}
		}
	})

	t.Run("deadlines", func(t *testing.T) {
		for _, offices := range [][]string{{"BO01"}, {"MO01"}, {"PC02"}, bo, nil} {
			d, err := fx.r.Deadlines(ctx, query.DeadlineFilter{Offices: offices, AsOf: asOf, Limit: query.MaxDeadlineLimit})
			if err != nil {
				t.Fatal(err)
			}
			want := fx.m.deadlines(offices, asOf)
			for name, l := range deadlineLists(d) {
				var got []deadlineItem
				for _, it := range l.Items {
					at := fmtTime(it.Since)
					if name == "support_ending" {
						at = *it.SupportTo
					}
					got = append(got, deadlineItem{it.PathID, at})
					if !inScope(it.Office, offices) {
						t.Errorf("%v %s: path of office %s", offices, name, it.Office)
					}
				}
				if !slices.Equal(got, want[name]) || l.Count != len(want[name]) {
					t.Errorf("%v %s: count %d, %d items, want %d\n%s", offices, name, l.Count, len(got), len(want[name]),
						firstDiff(got, want[name]))
				}
				if offices == nil && len(want[name]) == 0 {
					t.Errorf("the workload has nothing on the %s list", name)
				}
			}
		}
	})

	t.Run("deadlines are capped, counts are not", func(t *testing.T) {
		d, err := fx.r.Deadlines(ctx, query.DeadlineFilter{AsOf: asOf, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		want := fx.m.deadlines(nil, asOf)
		for name, l := range deadlineLists(d) {
			if l.Count != len(want[name]) || len(l.Items) != min(3, len(want[name])) {
				t.Errorf("%s: count %d with %d items; want count %d", name, l.Count, len(l.Items), len(want[name]))
			}
			for i, it := range l.Items {
				if it.PathID != want[name][i].id {
					t.Errorf("%s[%d] = %s, want %s", name, i, it.PathID, want[name][i].id)
				}
			}
		}
	})

	t.Run("deadline items name the worker unless erased", func(t *testing.T) {
		d, err := fx.r.Deadlines(ctx, query.DeadlineFilter{AsOf: asOf, Limit: query.MaxDeadlineLimit})
		if err != nil {
			t.Fatal(err)
		}
		erased := 0
		for _, it := range d.WithoutPact.Items {
			p := fx.m.paths[it.PathID]
			switch {
			case p.erased:
				erased++
				if !it.Worker.Erased || it.Worker.TaxCode != nil || it.Worker.FamilyName != nil {
					t.Errorf("erased worker of %s still named", it.PathID)
				}
			case it.Worker.TaxCode == nil || *it.Worker.TaxCode != p.t.Worker.TaxCode || *it.Worker.FamilyName != p.t.Worker.FamilyName:
				t.Errorf("%s: worker %+v, want %s", it.PathID, it.Worker, p.t.Worker.FamilyName)
			}
		}
	})

	t.Run("list paths", func(t *testing.T) {
		var sample *pstate
		for _, p := range fx.m.paths {
			if !p.erased && (sample == nil || p.t.PathID < sample.t.PathID) {
				sample = p
			}
		}
		filters := []query.PathFilter{{}, {Offices: bo}, {Offices: []string{"BO01"}, Status: "open"}, {Status: "closed", Category: "d"},
			{TaxCode: sample.t.Worker.TaxCode}, {Offices: []string{}}, {Offices: []string{"RN03"}, TaxCode: sample.t.Worker.TaxCode}}
		for _, f := range filters {
			var want []string
			for _, p := range fx.m.paths {
				status := "open"
				if p.closed != nil {
					status = "closed"
				}
				if inScope(p.t.Office, f.Offices) && (f.Status == "" || f.Status == status) && (f.Category == "" || f.Category == p.t.Category) &&
					(f.TaxCode == "" || (!p.erased && p.t.Worker.TaxCode == f.TaxCode)) {
					want = append(want, p.t.PathID)
				}
			}
			slices.Sort(want)
			for _, size := range []int{7, query.MaxPageSize} {
				f.Limit = size
				f.After = ""
				var got []string
				for pages := 0; ; pages++ {
					page, err := fx.r.ListPaths(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					if len(page.Paths) > size {
						t.Fatalf("page of %d paths, limit %d", len(page.Paths), size)
					}
					for _, p := range page.Paths {
						got = append(got, p.PathID)
						m := fx.m.paths[p.PathID]
						if p.Office != m.t.Office || p.Category != m.t.Category || (m.closed != nil) != (p.Status == "closed") {
							t.Errorf("%s: summary %+v does not match its events", p.PathID, p)
						}
					}
					if page.NextAfter == "" {
						break
					}
					if pages > len(fx.m.paths) {
						t.Fatal("paging does not end")
					}
					f.After = page.NextAfter
				}
				if !slices.Equal(got, want) {
					t.Errorf("list %+v: %d paths, want %d", f, len(got), len(want))
				}
			}
		}
	})

	t.Run("parameters cannot inject SQL", func(t *testing.T) {
		hostile := `BO01' OR '1'='1`
		page, err := fx.r.ListPaths(ctx, query.PathFilter{Offices: []string{hostile}, TaxCode: hostile, Category: hostile, Status: hostile})
		if err != nil || len(page.Paths) != 0 {
			t.Errorf("hostile filter: %d paths, err %v", len(page.Paths), err)
		}
		rows, err := fx.r.Activity(ctx, query.GroupedFilter{Offices: []string{hostile}, GroupBy: []string{"office"}})
		if err != nil || len(rows) != 0 {
			t.Errorf("hostile office: %d rows, err %v", len(rows), err)
		}
		if _, err := fx.r.Activity(ctx, query.GroupedFilter{GroupBy: []string{"office; DROP TABLE sessions"}}); err == nil {
			t.Error("a grouping key outside the whitelist was accepted")
		}
	})
}

// TestReportsAfterRedelivery: the projector skips what it already applied,
// so replaying the whole stream leaves every figure as it was.
func TestReportsAfterRedelivery(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	f := query.GroupedFilter{GroupBy: []string{"office", "service"}}
	before, err := fx.r.Activity(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.NewProjector(fx.pool).Apply(ctx, fx.items); err != nil {
		t.Fatal(err)
	}
	after, err := fx.r.Activity(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	if string(a) != string(b) {
		t.Error("replaying the stream changed the activity report")
	}
}

func mapsEqual(t *testing.T, what string, got, want map[string]string) bool {
	t.Helper()
	ok := true
	for k, w := range want {
		if g, found := got[k]; !found || g != w {
			t.Errorf("%s: cell %q = %q, want %q", what, k, g, w)
			ok = false
		}
	}
	for k, g := range got {
		if _, found := want[k]; !found {
			t.Errorf("%s: unexpected cell %q = %q", what, k, g)
			ok = false
		}
	}
	return ok
}

// firstDiff shows where two lists part, not both in full.
func firstDiff[T comparable](got, want []T) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	at := func(l []T) string {
		if i < len(l) {
			return fmt.Sprint(l[i])
		}
		return "(end)"
	}
	return fmt.Sprintf("first difference at %d: got %s, want %s", i, at(got), at(want))
}
