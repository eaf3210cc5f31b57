package ui

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
)

type fact struct {
	ID, Label string
	Cell      cell
}

type pathBody struct {
	ID          string
	Worker      string
	Facts       []fact
	Services    figure
	Timeline    *table
	TimelineCSV string
	Audit       bool
	Verify      *query.Verification
	VerifyText  string
}

// path is one path: where it stands (the read model), and how it got there
// (the event stream, with its hash chain checked), for the roles that may
// read both.
func (h *Handler) path(q *req) (*result, error) {
	p := q.p
	if !p.SeesPersonalData() {
		return nil, fault.New(fault.Forbidden, fault.CodeForbidden, "analysts read aggregate reports only")
	}
	id := q.r.PathValue("path_id")
	if !command.ValidUUID(id) {
		return nil, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found")
	}
	view, err := h.read.Path(q.ctx(), id)
	if err != nil {
		return nil, err
	}
	if err := wire.Authorize(p, access.ActReadPath, view.Office); err != nil {
		return nil, err
	}
	h.recordRead(q, "path", id)
	l := q.l
	body := &pathBody{ID: id, Worker: workerName(l, view.Worker)}
	body.Facts = pathFacts(l, view)
	var tables []*table

	svcT := &table{ID: "path-services", Caption: l.T("path.services"), Cols: []column{
		{ID: "service", Label: l.T("col.service")},
		{ID: "delivered", Label: l.T("col.delivered"), Numeric: true},
		{ID: "credited_minutes", Label: l.T("col.credited"), Numeric: true},
	}}
	svcC := chart{ID: "path-services", Title: l.T("chart.path.services"), lang: l}
	var codes []int
	for k := range view.Services {
		if n, err := strconv.Atoi(k); err == nil {
			codes = append(codes, n)
		}
	}
	sort.Ints(codes)
	for _, c := range codes {
		s := view.Services[strconv.Itoa(c)]
		svcT.Rows = append(svcT.Rows, row{Key: strconv.Itoa(c), Cells: []cell{enumCell(strconv.Itoa(c), l.Service(c)),
			countCell(l, s.Delivered), minutesCell(l, s.CreditedMinutes)}})
		svcC.Bars = append(svcC.Bars, hoursBar(l, l.Service(c), s.CreditedMinutes))
	}
	tables = append(tables, svcT)
	body.Services = figure{L: l, ID: "path-services", Title: l.T("path.services"), Charts: []chart{svcC}, Table: svcT,
		CSV: csvHref(q.r, pathHref(id)+"/export.csv", svcT.ID)}

	if h.auditor != nil && p.Authorize(access.ActReadHistory, view.Office) == nil {
		hist, err := h.auditor.History(q.ctx(), id, query.HistoryOptions{Personal: p.SeesPersonalData()})
		if err != nil {
			return nil, err
		}
		if err := wire.Authorize(p, access.ActReadHistory, hist.Office); err != nil {
			return nil, err
		}
		h.recordRead(q, "history", id)
		v, err := h.auditor.Verify(q.ctx(), id)
		if err != nil {
			return nil, err
		}
		h.recordRead(q, "verify", id)
		body.Audit, body.Verify = true, v
		if v.OK {
			body.VerifyText = fmt.Sprintf(l.T("path.verify.ok"), v.Events)
		} else {
			body.VerifyText = fmt.Sprintf(l.T("path.verify.broken"), len(v.Problems))
		}
		body.Timeline = timelineTable(l, hist.Events)
		body.TimelineCSV = csvHref(q.r, pathHref(id)+"/export.csv", body.Timeline.ID)
		tables = append(tables, body.Timeline)
	}
	return &result{template: "path", title: l.T("path.title") + " " + id[:8], body: body, tables: tables}, nil
}

func workerName(l lang, w *query.Worker) string {
	if w == nil {
		return ""
	}
	if w.Erased || w.FamilyName == nil || w.GivenName == nil {
		return "[" + l.T("path.erased") + "]"
	}
	name := *w.FamilyName + " " + *w.GivenName
	if w.TaxCode != nil {
		name += " · " + *w.TaxCode
	}
	return name
}

func pathFacts(l lang, v *query.PathView) []fact {
	taken := v.TakenAt
	support := l.Enum("support", v.Support.Kind) + ", " + fmt.Sprintf(l.T("detail.from"), l.Date(v.Support.From))
	if v.Support.To != nil {
		support += " " + fmt.Sprintf(l.T("detail.until"), l.Date(*v.Support.To))
	}
	facts := []fact{
		{"category", l.T("path.category"), enumCell(v.Category, l.Enum("category", v.Category))},
		{"support", l.T("path.support"), enumCell(v.Support.Kind, support)},
		{"office", l.T("path.office"), enumCell(v.Office, l.Office(v.Office))},
		{"status", l.T("path.status"), enumCell(v.Status, l.Enum("status", v.Status))},
		{"taken_at", l.T("path.taken_at"), timeCell(l, &taken)},
	}
	if v.Worker != nil && v.Worker.Disability != nil {
		yn := "no"
		if *v.Worker.Disability {
			yn = "yes"
		}
		facts = append(facts, fact{"disability", l.T("path.disability"), enumCell(strconv.FormatBool(*v.Worker.Disability), l.T(yn))})
	}
	if v.Pact != nil {
		at := v.Pact.SignedAt
		c := timeCell(l, &at)
		c.Text += " · " + l.T("path.did") + " " + l.Date(v.Pact.DIDOn)
		facts = append(facts, fact{"pact", l.T("path.pact"), c})
	} else {
		facts = append(facts, fact{"pact", l.T("path.pact"), cell{Text: l.T("path.pact.none")}})
	}
	facts = append(facts,
		fact{"credited_minutes_total", l.T("path.credited"), minutesCell(l, v.CreditedMinutesTotal)},
		fact{"no_shows", l.T("path.noshows"), cell{Value: fmt.Sprintf("%d/%d", v.UnjustifiedNoShows, v.JustifiedAbsences),
			Text: l.Int(v.UnjustifiedNoShows) + " / " + l.Int(v.JustifiedAbsences)}},
		fact{"refusals", l.T("path.refusals"), countCell(l, v.Refusals)},
	)
	if v.VerifiedAt != nil {
		c := timeCell(l, v.VerifiedAt)
		if v.VerificationOutcome != nil {
			c.Text += " · " + l.Enum("outcome", *v.VerificationOutcome)
		}
		facts = append(facts, fact{"verification", l.T("path.verification"), c})
	} else {
		facts = append(facts, fact{"verification", l.T("path.verification"), cell{Text: l.T("path.verification.none")}})
	}
	if v.ClosedAt != nil {
		c := timeCell(l, v.ClosedAt)
		if v.CloseReason != nil {
			c.Text += " · " + l.Enum("reason", *v.CloseReason)
		}
		facts = append(facts, fact{"closed_at", l.T("path.closed"), c})
	}
	facts = append(facts, fact{"version", l.T("path.version"), countCell(l, int(v.Version))})
	return facts
}

// eventData is the union of the fields the timeline summarises; each event
// type fills its own.
type eventData struct {
	Category string `json:"category"`
	Support  struct {
		Kind string `json:"kind"`
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"support"`
	TakenAt         *time.Time `json:"taken_at"`
	Office          string     `json:"office"`
	Service         int        `json:"service"`
	DeliveredAt     *time.Time `json:"delivered_at"`
	CreditedMinutes int        `json:"credited_minutes"`
	ActualMinutes   int        `json:"actual_minutes"`
	MediatorPresent bool       `json:"mediator_present"`
	GroupSize       int        `json:"group_size"`
	SignedAt        *time.Time `json:"signed_at"`
	DIDOn           string     `json:"did_on"`
	HostTaxCode     string     `json:"host_tax_code"`
	StartsOn        string     `json:"starts_on"`
	EndsOn          string     `json:"ends_on"`
	Outcome         string     `json:"outcome"`
	Note            string     `json:"note"`
	AppointmentAt   *time.Time `json:"appointment_at"`
	Reason          string     `json:"reason"`
	Kind            string     `json:"kind"`
	ReportToINPS    bool       `json:"report_to_inps"`
	At              *time.Time `json:"at"`
	ClosedAt        *time.Time `json:"closed_at"`
}

// eventDetails says in a line what an event recorded, in the page's
// language.
func eventDetails(l lang, ev query.HistoryEvent) string {
	var d eventData
	if json.Unmarshal(ev.Data, &d) != nil {
		return ""
	}
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch ev.Type {
	case workerpath.TypeTakenInCharge:
		add(l.Enum("category", d.Category))
		s := l.Enum("support", d.Support.Kind) + " " + fmt.Sprintf(l.T("detail.from"), l.Date(d.Support.From))
		if d.Support.To != "" {
			s += " " + fmt.Sprintf(l.T("detail.until"), l.Date(d.Support.To))
		}
		add(s)
		add(l.Office(d.Office))
	case workerpath.TypeSessionDelivered:
		add(l.Service(d.Service))
		if d.DeliveredAt != nil {
			add(l.Time(*d.DeliveredAt))
		}
		add(fmt.Sprintf(l.T("detail.minutes"), l.Hours(d.CreditedMinutes), l.Int(d.ActualMinutes)))
		if d.GroupSize > 0 {
			add(fmt.Sprintf(l.T("detail.group"), d.GroupSize))
		}
		if d.MediatorPresent {
			add(l.T("detail.mediator"))
		}
	case workerpath.TypePactSigned:
		if d.SignedAt != nil {
			add(l.Time(*d.SignedAt))
		}
		add(l.T("path.did") + " " + l.Date(d.DIDOn))
	case workerpath.TypeTraineeshipActivated:
		s := fmt.Sprintf(l.T("detail.from"), l.Date(d.StartsOn))
		if d.EndsOn != "" {
			s += " " + fmt.Sprintf(l.T("detail.until"), l.Date(d.EndsOn))
		}
		add(s)
		add(fmt.Sprintf(l.T("detail.host"), d.HostTaxCode))
	case workerpath.TypePathVerified:
		add(l.Enum("outcome", d.Outcome))
		add(d.Note)
	case workerpath.TypeNoShowRecorded:
		add(l.Enum("noshow", d.Kind))
		if d.AppointmentAt != nil {
			add(fmt.Sprintf(l.T("detail.appointment"), l.Time(*d.AppointmentAt)))
		}
		add(d.Reason)
		if d.ReportToINPS {
			add(l.T("noshow.inps"))
		}
	case workerpath.TypeRefusalReported:
		add(l.Enum("refusal", d.Kind))
		if d.At != nil {
			add(l.Time(*d.At))
		}
		add(d.Note)
	case workerpath.TypePathClosed:
		add(l.Enum("reason", d.Reason))
		if d.ClosedAt != nil {
			add(l.Time(*d.ClosedAt))
		}
	}
	return strings.Join(parts, " · ")
}

func timelineTable(l lang, events []query.HistoryEvent) *table {
	t := &table{ID: "timeline", Caption: l.T("path.timeline"), Cols: []column{
		{ID: "seq", Label: l.T("col.seq"), Numeric: true},
		{ID: "time", Label: l.T("col.time")},
		{ID: "type", Label: l.T("col.event")},
		{ID: "details", Label: l.T("col.details")},
		{ID: "actor", Label: l.T("col.actor")},
		{ID: "hash", Label: "hash"},
	}}
	for _, ev := range events {
		at := ev.Time
		details := eventDetails(l, ev)
		hash := ev.Hash
		short := hash
		if len(short) > 12 {
			short = short[:12] + "…"
		}
		t.Rows = append(t.Rows, row{Key: strconv.FormatUint(ev.Seq, 10), Cells: []cell{
			{Value: strconv.FormatUint(ev.Seq, 10), Text: strconv.FormatUint(ev.Seq, 10)},
			timeCell(l, &at),
			enumCell(ev.Type, l.Enum("event", ev.Type)),
			{Value: details, Text: details},
			textCell(ev.Actor),
			{Value: hash, Text: short},
		}})
	}
	return t
}
