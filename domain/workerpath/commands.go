package workerpath

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/taxcode"
)

// Ctx is who decides and when: the operator's name and the decision time.
type Ctx struct {
	Operator string
	Now      time.Time
}

func (c Ctx) meta(p *Path) Meta {
	return Meta{PathID: p.ID, Office: p.Office, Operator: c.Operator, RecordedAt: c.Now.UTC()}
}

// Limits on input that no real case reaches; they keep hostile input small.
const (
	maxText        = 2000 // free-text notes and justifications, in characters
	maxName        = 200
	maxSessionMins = 24 * 60
	earliest       = 2000 // no path predates the system's records
	clockSkew      = 5 * time.Minute
)

// TakeInCharge is the presa in carico.
type TakeInCharge struct {
	PathID    string
	WorkerRef string // the worker's pseudonym, computed by the caller from the tax code
	Worker    Person
	Category  string
	Support   Support
	Office    string
	TakenAt   time.Time
}

var supportOf = map[string]string{
	"a": SupportCIG, "b": SupportCIG, "c": SupportCIG, "d": SupportMobilita, "e": SupportCoCoPro,
}

// ValidateTakeInCharge checks everything that needs no state. The command
// layer calls it before touching the store, so bad input costs nothing.
func ValidateTakeInCharge(c TakeInCharge, now time.Time) error {
	w := c.Worker
	if err := taxcode.CheckPerson(w.TaxCode); err != nil {
		return fault.Rulef(fault.CodeInvalidTaxCode, "the worker's tax code is not valid: %v", err).OnField("worker.tax_code")
	}
	if err := checkName(w.GivenName, "worker.given_name"); err != nil {
		return err
	}
	if err := checkName(w.FamilyName, "worker.family_name"); err != nil {
		return err
	}
	if !w.BirthDate.IsZero() {
		// A missing taken_at is reported below, on its own field, rather
		// than as an implausible age.
		ref := c.TakenAt
		if ref.IsZero() {
			ref = now
		}
		age := ref.Year() - w.BirthDate.Year()
		if w.BirthDate.Year() < 1900 || w.BirthDate.Time().After(now) || age < 14 || age > 100 {
			return fault.Rulef(fault.CodeInvalidDate, "birth date %s is not plausible for a worker", w.BirthDate).OnField("worker.birth_date")
		}
	}
	if err := checkChars(w.MediatorLanguage, "worker.mediator_language", 50); err != nil {
		return err
	}
	if utf8.RuneCountInString(w.MediatorLanguage) > 50 {
		return fault.Invalidf("worker.mediator_language", "mediator language is longer than 50 characters")
	}
	want, ok := supportOf[c.Category]
	if !ok {
		return fault.Invalidf("category", "category must be one of a, b, c, d, e")
	}
	switch c.Support.Kind {
	case SupportCIG, SupportMobilita, SupportCoCoPro:
	default:
		return fault.Invalidf("support.kind", "support kind must be cig_deroga, mobilita_deroga or cocopro")
	}
	if c.Support.Kind != want {
		return fault.Rulef(fault.CodeSupportMismatch, "worker type %q requires support %q, not %q", c.Category, want, c.Support.Kind).OnField("support.kind")
	}
	if err := checkChars(c.Support.AgreementCode, "support.agreement_code", 100); err != nil {
		return err
	}
	if len(c.Support.AgreementCode) > 100 {
		return fault.Invalidf("support.agreement_code", "agreement code is longer than 100 characters")
	}
	if c.Support.From.IsZero() {
		return fault.Rulef(fault.CodeInvalidDate, "the support start date is required").OnField("support.from")
	}
	if c.Support.From.Year() < earliest {
		return fault.Rulef(fault.CodeInvalidDate, "support start %s is before %d", c.Support.From, earliest).OnField("support.from")
	}
	if !c.Support.To.IsZero() && c.Support.To.Before(c.Support.From) {
		return fault.Rulef(fault.CodeInvalidDate, "support end %s is before its start %s", c.Support.To, c.Support.From).OnField("support.to")
	}
	if _, ok := office.Lookup(c.Office); !ok {
		return fault.Rulef(fault.CodeUnknownOffice, "unknown office %q", c.Office).OnField("office")
	}
	return checkOccurred(c.TakenAt, time.Time{}, now, "taken_at")
}

// TakeInCharge opens the path. It must be the first event of the path.
func (p *Path) TakeInCharge(ctx Ctx, c TakeInCharge) ([]Event, error) {
	// Any earlier event, even one a damaged history holds without its
	// take-in-charge, means the path is not new: the presa in carico is first.
	if p.Exists() || p.Events > 0 {
		return nil, fault.New(fault.Conflict, fault.CodePathExists, "path %s already exists", c.PathID)
	}
	if err := ValidateTakeInCharge(c, ctx.Now); err != nil {
		return nil, err
	}
	return []Event{&TakenInCharge{
		Meta:             Meta{PathID: c.PathID, Office: c.Office, Operator: ctx.Operator, RecordedAt: ctx.Now.UTC()},
		WorkerRef:        c.WorkerRef,
		Worker:           c.Worker,
		Category:         c.Category,
		Support:          c.Support,
		TakenAt:          c.TakenAt.UTC(),
		CatalogueVersion: CatalogueVersion,
	}}, nil
}

// PactInput is a patto di servizio signed during a session.
type PactInput struct {
	SignedAt time.Time
	DIDOn    Date
}

// DeliverSession is one individual service delivered.
type DeliverSession struct {
	SessionID       string
	Service         int
	DeliveredAt     time.Time
	Minutes         int
	MediatorPresent bool
	Justification   string
	Pact            *PactInput
}

// DeliverSession records a delivered service, and the patto if signed in it.
func (p *Path) DeliverSession(ctx Ctx, c DeliverSession) ([]Event, error) {
	svc, err := p.checkService(ctx, c.Service, c.DeliveredAt, c.Minutes, "delivered_at")
	if err != nil {
		return nil, err
	}
	if err := checkText(c.Justification, "justification"); err != nil {
		return nil, err
	}
	switch svc.Code {
	case SvcTraineeship:
		return nil, fault.Rulef(fault.CodeRepeatLimitReached, "service 7 is delivered by activating a new traineeship").OnField("service")
	case SvcVerification:
		if err := p.verificationDue(); err != nil {
			return nil, err
		}
	}
	s := p.session(ctx, svc, c.SessionID, c.DeliveredAt, c.Minutes, c.MediatorPresent)
	if svc.Group {
		// Delivered to one worker alone: a group of one, allowed only with a
		// justification, and flagged.
		if strings.TrimSpace(c.Justification) == "" {
			return nil, fault.Rulef(fault.CodeGroupSizeOutOfRange, "service %d is a group session of %d–%d workers: deliver it as a group, or give a justification", svc.Code, svc.GroupMin, svc.GroupMax).OnField("service")
		}
		s.GroupSize, s.OutsideGroupRange = 1, true
	}
	s.Justification = c.Justification
	out := []Event{s}
	if c.Pact != nil {
		if svc.Code != SvcAccess && svc.Code != SvcIndividual && svc.Code != SvcGroup {
			return nil, fault.Rulef(fault.CodePactNotAllowed, "the patto di servizio is signed in service 2, 3 or 4, not %d", svc.Code).OnField("pact")
		}
		pact, err := p.pact(ctx, *c.Pact, "pact.")
		if err != nil {
			return nil, err
		}
		pact.SessionID = s.SessionID
		out = append(out, pact)
	}
	return out, nil
}

// SignPact records the patto di servizio outside a session.
func (p *Path) SignPact(ctx Ctx, c PactInput) ([]Event, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	e, err := p.pact(ctx, c, "")
	if err != nil {
		return nil, err
	}
	return []Event{e}, nil
}

func (p *Path) pact(ctx Ctx, c PactInput, field string) (*PactSigned, error) {
	if p.Pact != nil {
		return nil, fault.Rulef(fault.CodePactAlreadySigned, "the patto di servizio was already signed on %s", p.Pact.SignedAt.Format(time.DateOnly)).OnField(strings.TrimSuffix(field, "."))
	}
	if err := checkOccurred(c.SignedAt, p.TakenAt, ctx.Now, field+"signed_at"); err != nil {
		return nil, err
	}
	if c.DIDOn.IsZero() || c.DIDOn.Year() < earliest || c.DIDOn.After(DateOf(c.SignedAt)) {
		return nil, fault.Rulef(fault.CodeInvalidDate, "the DID date must be given and not after the signature").OnField(field + "did_on")
	}
	return &PactSigned{Meta: ctx.meta(p), SignedAt: c.SignedAt.UTC(), DIDOn: c.DIDOn}, nil
}

// ActivateTraineeship is service 7: a new traineeship with its host employer.
type ActivateTraineeship struct {
	TraineeshipID string
	HostTaxCode   string
	StartsOn      Date
	EndsOn        Date
	DeliveredAt   time.Time
	Minutes       int
}

// ActivateTraineeship records the traineeship and its service-7 session.
func (p *Path) ActivateTraineeship(ctx Ctx, c ActivateTraineeship) ([]Event, error) {
	svc, err := p.checkService(ctx, SvcTraineeship, c.DeliveredAt, c.Minutes, "delivered_at")
	if err != nil {
		return nil, err
	}
	if err := taxcode.CheckCompany(c.HostTaxCode); err != nil {
		return nil, fault.Rulef(fault.CodeInvalidTaxCode, "the host employer's tax code is not valid: %v", err).OnField("host_tax_code")
	}
	if c.StartsOn.IsZero() || c.StartsOn.Year() < earliest {
		return nil, fault.Rulef(fault.CodeInvalidDate, "the traineeship start date is required").OnField("starts_on")
	}
	if !c.EndsOn.IsZero() && c.EndsOn.Before(c.StartsOn) {
		return nil, fault.Rulef(fault.CodeInvalidDate, "the traineeship ends before it starts").OnField("ends_on")
	}
	if p.Traineeships[c.TraineeshipID] {
		return nil, fault.Rulef(fault.CodeRepeatLimitReached, "traineeship %s was already activated: service 7 needs a new traineeship", c.TraineeshipID).OnField("traineeship_id")
	}
	t := &TraineeshipActivated{Meta: ctx.meta(p), WorkerRef: p.WorkerRef, TraineeshipID: c.TraineeshipID, HostTaxCode: c.HostTaxCode,
		StartsOn: c.StartsOn, EndsOn: c.EndsOn, ActivatedAt: c.DeliveredAt.UTC()}
	s := p.session(ctx, svc, "", c.DeliveredAt, c.Minutes, false)
	s.SessionID = c.TraineeshipID
	s.TraineeshipID = c.TraineeshipID
	return []Event{t, s}, nil
}

// VerifyPath is the verification interview (service 12) and its outcome.
type VerifyPath struct {
	SessionID  string
	VerifiedAt time.Time
	Outcome    string
	Minutes    int
	Note       string
}

// VerifyPath records the service-12 session and the outcome.
func (p *Path) VerifyPath(ctx Ctx, c VerifyPath) ([]Event, error) {
	svc, err := p.checkService(ctx, SvcVerification, c.VerifiedAt, c.Minutes, "verified_at")
	if err != nil {
		return nil, err
	}
	switch c.Outcome {
	case OutcomeAchieved, OutcomePartiallyAchieved, OutcomeNotAchieved:
	default:
		return nil, fault.Invalidf("outcome", "outcome must be achieved, partially_achieved or not_achieved")
	}
	if err := checkText(c.Note, "note"); err != nil {
		return nil, err
	}
	if err := p.verificationDue(); err != nil {
		return nil, err
	}
	s := p.session(ctx, svc, c.SessionID, c.VerifiedAt, c.Minutes, false)
	v := &PathVerified{Meta: ctx.meta(p), VerifiedAt: c.VerifiedAt.UTC(), Outcome: c.Outcome, Note: c.Note, SessionID: s.SessionID}
	return []Event{s, v}, nil
}

// RecordNoShow is a missed appointment.
type RecordNoShow struct {
	AppointmentAt time.Time
	Justified     bool
	Reason        string
}

// RecordNoShow counts the absence: first, second (reported to INPS), later, or justified.
func (p *Path) RecordNoShow(ctx Ctx, c RecordNoShow) ([]Event, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	if err := checkOccurred(c.AppointmentAt, p.TakenAt, ctx.Now, "appointment_at"); err != nil {
		return nil, err
	}
	if err := checkText(c.Reason, "reason"); err != nil {
		return nil, err
	}
	e := &NoShowRecorded{Meta: ctx.meta(p), AppointmentAt: c.AppointmentAt.UTC(), Justified: c.Justified, Reason: c.Reason, Unjustified: p.Unjustified}
	switch {
	case c.Justified:
		e.Kind = NoShowJustified
	default:
		e.Unjustified++
		switch e.Unjustified {
		case 1:
			e.Kind = NoShowFirst
		case 2:
			e.Kind = NoShowSecond
		default:
			e.Kind = NoShowRepeated
		}
		e.ReportToINPS = e.Unjustified >= 2
	}
	return []Event{e}, nil
}

// ReportRefusal is an unjustified refusal reported to INPS.
type ReportRefusal struct {
	Kind string
	At   time.Time
	Note string
}

// ReportRefusal records the segnalazione.
func (p *Path) ReportRefusal(ctx Ctx, c ReportRefusal) ([]Event, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	switch c.Kind {
	case RefusalConvocation, RefusalPath, RefusalJobOffer:
	default:
		return nil, fault.Invalidf("kind", "kind must be convocation, path or job_offer")
	}
	if err := checkOccurred(c.At, p.TakenAt, ctx.Now, "at"); err != nil {
		return nil, err
	}
	if err := checkText(c.Note, "note"); err != nil {
		return nil, err
	}
	return []Event{&RefusalReported{Meta: ctx.meta(p), Kind: c.Kind, At: c.At.UTC(), Note: c.Note}}, nil
}

// ClosePath ends the path.
type ClosePath struct {
	ClosedAt time.Time
	Reason   string
}

// ClosePath records the closure.
func (p *Path) ClosePath(ctx Ctx, c ClosePath) ([]Event, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	switch c.Reason {
	case CloseReemployed, CloseSupportEnded, CloseDecadenza, CloseTransferred, CloseWithdrawn:
	default:
		return nil, fault.Invalidf("reason", "reason must be reemployed, support_ended, decadenza, transferred or withdrawn")
	}
	if err := checkOccurred(c.ClosedAt, p.TakenAt, ctx.Now, "closed_at"); err != nil {
		return nil, err
	}
	return []Event{&PathClosed{Meta: ctx.meta(p), ClosedAt: c.ClosedAt.UTC(), Reason: c.Reason}}, nil
}

// ErasePersonalData records the erasure of the worker's personal data on
// this path. It is allowed on closed paths too; an erased path is frozen.
func (p *Path) ErasePersonalData(ctx Ctx) ([]Event, error) {
	if !p.Exists() {
		return nil, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found")
	}
	if p.Erased {
		return nil, nil
	}
	return []Event{&PersonalDataErased{Meta: ctx.meta(p), WorkerRef: p.WorkerRef, ErasedAt: ctx.Now.UTC()}}, nil
}

// DeliverGroupSession is a group service (04 or 06) delivered to several workers.
type DeliverGroupSession struct {
	GroupID       string
	Service       int
	DeliveredAt   time.Time
	Minutes       int
	Justification string
	Participants  []string
}

// MaxGroup bounds a group even with a justification: one atomic batch.
const MaxGroup = 100

// ValidateGroup checks a group session's stateless rules.
func ValidateGroup(c DeliverGroupSession) error {
	svc, ok := LookupService(c.Service)
	if !ok {
		return fault.Rulef(fault.CodeUnknownService, "service must be 1 to 12").OnField("service")
	}
	if !svc.Group {
		return fault.Rulef(fault.CodeServiceNotAllowed, "service %d is not a group service: only 4 and 6 are", c.Service).OnField("service")
	}
	n := len(c.Participants)
	seen := make(map[string]bool, n)
	for _, id := range c.Participants {
		if seen[id] {
			return fault.Invalidf("participants", "path %s is listed twice", id)
		}
		seen[id] = true
	}
	if err := checkText(c.Justification, "justification"); err != nil {
		return err
	}
	if n == 0 || n > MaxGroup {
		return fault.Rulef(fault.CodeGroupSizeOutOfRange, "a group has 1 to %d participants", MaxGroup).OnField("participants")
	}
	if (n < svc.GroupMin || n > svc.GroupMax) && strings.TrimSpace(c.Justification) == "" {
		return fault.Rulef(fault.CodeGroupSizeOutOfRange, "a group of %d is outside %d–%d: give a justification", n, svc.GroupMin, svc.GroupMax).OnField("participants")
	}
	return nil
}

// DeliverInGroup decides this path's share of a group session; the caller
// decides every participant and appends all or nothing.
func (p *Path) DeliverInGroup(ctx Ctx, c DeliverGroupSession) ([]Event, error) {
	if err := ValidateGroup(c); err != nil {
		return nil, err
	}
	svc, err := p.checkService(ctx, c.Service, c.DeliveredAt, c.Minutes, "delivered_at")
	if err != nil {
		if fe := fault.As(err); fe.Field == "" || fe.Code == fault.CodePathClosed || fe.Code == fault.CodeRepeatLimitReached {
			fe = fe.OnField("participants")
			fe.Message = "path " + p.ID + ": " + fe.Message
			return nil, fe
		}
		return nil, err
	}
	s := p.session(ctx, svc, "", c.DeliveredAt, c.Minutes, false)
	s.GroupID = c.GroupID
	s.GroupSize = len(c.Participants)
	s.OutsideGroupRange = s.GroupSize < svc.GroupMin || s.GroupSize > svc.GroupMax
	s.Justification = c.Justification
	return []Event{s}, nil
}

// checkService applies the rules every delivered service shares.
func (p *Path) checkService(ctx Ctx, code int, at time.Time, minutes int, atField string) (Service, error) {
	if err := p.open(); err != nil {
		return Service{}, err
	}
	svc, ok := LookupService(code)
	if !ok {
		return Service{}, fault.Rulef(fault.CodeUnknownService, "service must be 1 to 12, not %d", code).OnField("service")
	}
	if minutes < 1 || minutes > maxSessionMins {
		return Service{}, fault.Rulef(fault.CodeInvalidMinutes, "minutes must be 1 to %d, not %d", maxSessionMins, minutes).OnField("minutes")
	}
	if err := checkOccurred(at, p.TakenAt, ctx.Now, atField); err != nil {
		return Service{}, err
	}
	if svc.Code == SvcMobilityList && p.Support.Kind != SupportMobilita {
		return Service{}, fault.Rulef(fault.CodeServiceNotAllowed, "service 11 (mobility lists) is only for workers in mobilità").OnField("service")
	}
	if svc.MaxDeliveries > 0 && p.Delivered[svc.Code] >= svc.MaxDeliveries {
		return Service{}, fault.Rulef(fault.CodeRepeatLimitReached, "service %d has reached its limit of %d delivered sessions on this path", svc.Code, svc.MaxDeliveries).OnField("service")
	}
	return svc, nil
}

func (p *Path) verificationDue() error {
	if p.Delivered[SvcCounselling] == 0 && p.Delivered[SvcPlacement] == 0 && p.Pact == nil {
		return fault.Rulef(fault.CodeVerificationNotDue, "a verification interview needs a prior consulenza orientativa (5), a personalised path (8) or a signed patto")
	}
	return nil
}

func (p *Path) session(ctx Ctx, svc Service, id string, at time.Time, minutes int, mediator bool) *SessionDelivered {
	s := &SessionDelivered{
		Meta: ctx.meta(p), SessionID: id, Service: svc.Code, DeliveredAt: at.UTC(),
		StandardMinutes: svc.StandardMinutes, CreditedMinutes: CreditedMinutes(svc, p.Worker.Disability),
		ActualMinutes: minutes, MediatorPresent: mediator, CatalogueVersion: CatalogueVersion,
	}
	day := DateOf(at)
	s.OutsideSupport = day.Before(p.Support.From) || (!p.Support.To.IsZero() && day.After(p.Support.To))
	return s
}

func (p *Path) open() error {
	switch {
	case !p.Exists():
		return fault.New(fault.NotFound, fault.CodePathNotFound, "path not found")
	case p.Erased:
		return fault.Rulef(fault.CodeWorkerErased, "the worker's personal data were erased: the path takes no further records")
	case p.Status == StatusClosed:
		return fault.Rulef(fault.CodePathClosed, "the path was closed on %s (%s)", p.ClosedAt.Format(time.DateOnly), p.Reason)
	}
	return nil
}

// checkOccurred: an occurrence time is given, not before the take-in-charge
// (when known) and not in the future.
func checkOccurred(at, notBefore, now time.Time, field string) error {
	switch {
	case at.IsZero():
		return fault.Rulef(fault.CodeInvalidDate, "%s is required", field).OnField(field)
	case at.Year() < earliest:
		return fault.Rulef(fault.CodeInvalidDate, "%s is before %d", field, earliest).OnField(field)
	case at.After(now.Add(clockSkew)):
		return fault.Rulef(fault.CodeInvalidDate, "%s is in the future", field).OnField(field)
	case !notBefore.IsZero() && at.Before(notBefore):
		return fault.Rulef(fault.CodeInvalidDate, "%s is before the take-in-charge (%s)", field, notBefore.Format(time.RFC3339)).OnField(field)
	}
	return nil
}

func checkName(s, field string) error {
	if strings.TrimSpace(s) == "" {
		return fault.Invalidf(field, "%s is required", field)
	}
	return checkChars(s, field, maxName)
}

func checkText(s, field string) error { return checkChars(s, field, maxText) }

// checkChars bounds free text and keeps out what no record needs and the
// read models cannot store: invalid UTF-8 and control characters other than
// line breaks and tabs (a NUL byte above all).
func checkChars(s, field string, limit int) error {
	if !utf8.ValidString(s) {
		return fault.Invalidf(field, "%s is not valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > limit {
		return fault.Invalidf(field, "%s is longer than %d characters", field, limit)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return fault.Invalidf(field, "%s contains a control character", field)
		}
	}
	return nil
}
