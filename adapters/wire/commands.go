package wire

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/workerpath"
)

// Command names, as in NATS subjects percorso.cmd.<name>.
const (
	CmdTakeInCharge        = "take_in_charge"
	CmdDeliverSession      = "deliver_session"
	CmdDeliverGroupSession = "deliver_group_session"
	CmdSignPact            = "sign_pact"
	CmdActivateTraineeship = "activate_traineeship"
	CmdVerifyPath          = "verify_path"
	CmdRecordNoShow        = "record_no_show"
	CmdReportRefusal       = "report_refusal"
	CmdClosePath           = "close_path"
	CmdEraseWorker         = "erase_worker"
)

// CommandNames lists every command.
var CommandNames = []string{CmdTakeInCharge, CmdDeliverSession, CmdDeliverGroupSession, CmdSignPact,
	CmdActivateTraineeship, CmdVerifyPath, CmdRecordNoShow, CmdReportRefusal, CmdClosePath, CmdEraseWorker}

// Bodies of API.md.
type (
	WorkerBody struct {
		TaxCode          string `json:"tax_code"`
		GivenName        string `json:"given_name"`
		FamilyName       string `json:"family_name"`
		BirthDate        string `json:"birth_date,omitempty"`
		Disability       bool   `json:"disability" wire:"required"`
		MediatorLanguage string `json:"mediator_language,omitempty"`
	}
	SupportBody struct {
		Kind          string `json:"kind"`
		AgreementCode string `json:"agreement_code,omitempty"`
		From          string `json:"from"`
		To            string `json:"to,omitempty"`
	}
	TakeInChargeBody struct {
		PathID   string      `json:"path_id,omitempty"`
		Worker   WorkerBody  `json:"worker"`
		Category string      `json:"category"`
		Support  SupportBody `json:"support"`
		Office   string      `json:"office"`
		TakenAt  string      `json:"taken_at"`
	}
	PactBody struct {
		SignedAt string `json:"signed_at"`
		DIDOn    string `json:"did_on"`
	}
	DeliverSessionBody struct {
		PathID          string    `json:"path_id,omitempty"` // NATS only
		SessionID       string    `json:"session_id,omitempty"`
		Service         int       `json:"service"`
		DeliveredAt     string    `json:"delivered_at"`
		Minutes         int       `json:"minutes"`
		MediatorPresent bool      `json:"mediator_present,omitempty"`
		Justification   string    `json:"justification,omitempty"`
		Pact            *PactBody `json:"pact,omitempty"`
	}
	GroupSessionBody struct {
		GroupID       string   `json:"group_id,omitempty"`
		Service       int      `json:"service"`
		DeliveredAt   string   `json:"delivered_at"`
		Minutes       int      `json:"minutes"`
		Participants  []string `json:"participants"`
		Justification string   `json:"justification,omitempty"`
	}
	SignPactBody struct {
		PathID   string `json:"path_id,omitempty"`
		SignedAt string `json:"signed_at"`
		DIDOn    string `json:"did_on"`
	}
	TraineeshipBody struct {
		PathID        string `json:"path_id,omitempty"`
		TraineeshipID string `json:"traineeship_id,omitempty"`
		HostTaxCode   string `json:"host_tax_code"`
		StartsOn      string `json:"starts_on"`
		EndsOn        string `json:"ends_on,omitempty"`
		DeliveredAt   string `json:"delivered_at"`
		Minutes       int    `json:"minutes"`
	}
	VerifyBody struct {
		PathID     string `json:"path_id,omitempty"`
		VerifiedAt string `json:"verified_at"`
		Outcome    string `json:"outcome"`
		Minutes    int    `json:"minutes"`
		Note       string `json:"note,omitempty"`
	}
	NoShowBody struct {
		PathID        string `json:"path_id,omitempty"`
		AppointmentAt string `json:"appointment_at"`
		Justified     bool   `json:"justified" wire:"required"`
		Reason        string `json:"reason,omitempty"`
	}
	RefusalBody struct {
		PathID string `json:"path_id,omitempty"`
		Kind   string `json:"kind"`
		At     string `json:"at"`
		Note   string `json:"note,omitempty"`
	}
	CloseBody struct {
		PathID   string `json:"path_id,omitempty"`
		ClosedAt string `json:"closed_at"`
		Reason   string `json:"reason"`
	}
	EraseBody struct {
		TaxCode string `json:"tax_code,omitempty"` // NATS only
	}
)

// Call is one command invocation, from either transport.
type Call struct {
	Name      string
	Principal access.Principal
	// PathID comes from the URL over HTTP and from the body over NATS.
	PathID string
	// TaxCode is erase_worker's subject (URL over HTTP, body over NATS).
	TaxCode        string
	Body           []byte
	IdempotencyKey string
	IfMatch        *uint64
	CorrelationID  string
	// FromBody says the path id / tax code is read from the body (NATS).
	FromBody bool
}

// Dispatch decodes and runs a command. Every error is a *fault.Error.
func Dispatch(ctx context.Context, h *command.Handler, c Call) (command.Result, error) {
	if len(c.IdempotencyKey) > 200 || strings.ContainsFunc(c.IdempotencyKey, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return command.Result{}, fault.Invalidf("Idempotency-Key", "Idempotency-Key must be at most 200 printable ASCII characters")
	}
	// The correlation id travels on every event and into the audit tables:
	// printable ASCII only, bounded.
	if len(c.CorrelationID) > 200 || strings.ContainsFunc(c.CorrelationID, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return command.Result{}, fault.Invalidf("X-Correlation-Id", "X-Correlation-Id must be at most 200 printable ASCII characters")
	}
	// Refuse a principal who may never run this command before looking at
	// the input, so validation tells them nothing.
	act := access.ActCommand
	if c.Name == CmdEraseWorker {
		act = access.ActErase
	}
	if !mayEver(c.Principal, act) {
		msg := "not allowed: the " + string(c.Principal.Role) + " role runs no commands"
		if act == access.ActErase {
			msg = "not allowed: only an admin erases a worker's personal data"
		}
		return command.Result{}, &fault.Error{Kind: fault.Forbidden, Code: fault.CodeForbidden, Message: msg}
	}
	req := command.Request{Actor: c.Principal.Name, IdempotencyKey: c.IdempotencyKey, IfMatch: c.IfMatch, CorrelationID: c.CorrelationID}
	auth := func(p *workerpath.Path) error { return authorize(c.Principal, access.ActCommand, p.Office) }
	switch c.Name {
	case CmdTakeInCharge:
		var b TakeInChargeBody
		if err := Decode(c.Body, &b); err != nil {
			return command.Result{}, err
		}
		cmd, err := b.command()
		if err != nil {
			return command.Result{}, err
		}
		if err := authorize(c.Principal, access.ActCommand, cmd.Office); err != nil {
			return command.Result{}, err
		}
		req.Digest = digest(c.Name, "", b)
		return h.TakeInCharge(ctx, req, cmd)
	case CmdDeliverSession:
		return onPath(c, req, func(b *DeliverSessionBody) *string { return &b.PathID }, func(b DeliverSessionBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.DeliverSession{SessionID: b.SessionID, Service: b.Service, Minutes: b.Minutes,
				MediatorPresent: b.MediatorPresent, Justification: b.Justification}
			var err error
			if cmd.DeliveredAt, err = parseTime(b.DeliveredAt, "delivered_at"); err != nil {
				return command.Result{}, err
			}
			if b.Pact != nil {
				p, err := b.Pact.input("pact.")
				if err != nil {
					return command.Result{}, err
				}
				cmd.Pact = &p
			}
			return h.DeliverSession(ctx, req, id, auth, cmd)
		})
	case CmdDeliverGroupSession:
		var b GroupSessionBody
		if err := Decode(c.Body, &b); err != nil {
			return command.Result{}, err
		}
		cmd := workerpath.DeliverGroupSession{GroupID: b.GroupID, Service: b.Service, Minutes: b.Minutes,
			Justification: b.Justification, Participants: b.Participants}
		var err error
		if cmd.DeliveredAt, err = parseTime(b.DeliveredAt, "delivered_at"); err != nil {
			return command.Result{}, err
		}
		req.Digest = digest(c.Name, "", b)
		return h.DeliverGroupSession(ctx, req, auth, cmd)
	case CmdSignPact:
		return onPath(c, req, func(b *SignPactBody) *string { return &b.PathID }, func(b SignPactBody, id string, req command.Request) (command.Result, error) {
			p, err := PactBody{SignedAt: b.SignedAt, DIDOn: b.DIDOn}.input("")
			if err != nil {
				return command.Result{}, err
			}
			return h.SignPact(ctx, req, id, auth, p)
		})
	case CmdActivateTraineeship:
		return onPath(c, req, func(b *TraineeshipBody) *string { return &b.PathID }, func(b TraineeshipBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.ActivateTraineeship{TraineeshipID: b.TraineeshipID, HostTaxCode: b.HostTaxCode, Minutes: b.Minutes}
			var err error
			if cmd.StartsOn, err = parseDate(b.StartsOn, "starts_on", true); err != nil {
				return command.Result{}, err
			}
			if cmd.EndsOn, err = parseDate(b.EndsOn, "ends_on", false); err != nil {
				return command.Result{}, err
			}
			if cmd.DeliveredAt, err = parseTime(b.DeliveredAt, "delivered_at"); err != nil {
				return command.Result{}, err
			}
			return h.ActivateTraineeship(ctx, req, id, auth, cmd)
		})
	case CmdVerifyPath:
		return onPath(c, req, func(b *VerifyBody) *string { return &b.PathID }, func(b VerifyBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.VerifyPath{Outcome: b.Outcome, Minutes: b.Minutes, Note: b.Note}
			var err error
			if cmd.VerifiedAt, err = parseTime(b.VerifiedAt, "verified_at"); err != nil {
				return command.Result{}, err
			}
			return h.VerifyPath(ctx, req, id, auth, cmd)
		})
	case CmdRecordNoShow:
		return onPath(c, req, func(b *NoShowBody) *string { return &b.PathID }, func(b NoShowBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.RecordNoShow{Justified: b.Justified, Reason: b.Reason}
			var err error
			if cmd.AppointmentAt, err = parseTime(b.AppointmentAt, "appointment_at"); err != nil {
				return command.Result{}, err
			}
			return h.RecordNoShow(ctx, req, id, auth, cmd)
		})
	case CmdReportRefusal:
		return onPath(c, req, func(b *RefusalBody) *string { return &b.PathID }, func(b RefusalBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.ReportRefusal{Kind: b.Kind, Note: b.Note}
			var err error
			if cmd.At, err = parseTime(b.At, "at"); err != nil {
				return command.Result{}, err
			}
			return h.ReportRefusal(ctx, req, id, auth, cmd)
		})
	case CmdClosePath:
		return onPath(c, req, func(b *CloseBody) *string { return &b.PathID }, func(b CloseBody, id string, req command.Request) (command.Result, error) {
			cmd := workerpath.ClosePath{Reason: b.Reason}
			var err error
			if cmd.ClosedAt, err = parseTime(b.ClosedAt, "closed_at"); err != nil {
				return command.Result{}, err
			}
			return h.ClosePath(ctx, req, id, auth, cmd)
		})
	case CmdEraseWorker:
		tax := c.TaxCode
		if c.FromBody || len(c.Body) > 0 {
			var b EraseBody
			if err := Decode(c.Body, &b); err != nil {
				return command.Result{}, err
			}
			if c.FromBody {
				tax = b.TaxCode
			} else if b.TaxCode != "" {
				return command.Result{}, &fault.Error{Kind: fault.Invalid, Code: fault.CodeUnknownField, Field: "tax_code", Message: "tax_code is given in the URL"}
			}
		}
		if err := authorize(c.Principal, access.ActErase, ""); err != nil {
			return command.Result{}, err
		}
		req.Digest = digest(c.Name, "", tax)
		return h.EraseWorker(ctx, req, tax)
	}
	return command.Result{}, fault.New(fault.NotFound, fault.CodeNotFound, "unknown command %q", c.Name)
}

// onPath runs a path-scoped command: it decodes the body, takes the path id
// from the URL (HTTP) or the body (NATS), and identifies the request by the
// command name, the path and the body without its path id, so the same
// request over either transport is the same request.
func onPath[B any](c Call, req command.Request, pathField func(*B) *string, run func(b B, pathID string, req command.Request) (command.Result, error)) (command.Result, error) {
	var b B
	if err := Decode(c.Body, &b); err != nil {
		return command.Result{}, err
	}
	id, err := c.pathID(*pathField(&b))
	if err != nil {
		return command.Result{}, err
	}
	*pathField(&b) = ""
	req.Digest = digest(c.Name, id, b)
	return run(b, id, req)
}

func (c Call) pathID(fromBody string) (string, error) {
	if !c.FromBody {
		if fromBody != "" {
			return "", &fault.Error{Kind: fault.Invalid, Code: fault.CodeUnknownField, Field: "path_id", Message: "path_id is given in the URL"}
		}
		return c.PathID, nil
	}
	if fromBody == "" {
		return "", fault.Invalidf("path_id", "path_id is required")
	}
	return fromBody, nil
}

func (b TakeInChargeBody) command() (workerpath.TakeInCharge, error) {
	c := workerpath.TakeInCharge{PathID: b.PathID, Category: b.Category, Office: b.Office,
		Worker: workerpath.Person{TaxCode: b.Worker.TaxCode, GivenName: b.Worker.GivenName, FamilyName: b.Worker.FamilyName,
			Disability: b.Worker.Disability, MediatorLanguage: b.Worker.MediatorLanguage},
		Support: workerpath.Support{Kind: b.Support.Kind, AgreementCode: b.Support.AgreementCode}}
	var err error
	if c.Worker.BirthDate, err = parseDate(b.Worker.BirthDate, "worker.birth_date", false); err != nil {
		return c, err
	}
	if c.Support.From, err = parseDate(b.Support.From, "support.from", true); err != nil {
		return c, err
	}
	if c.Support.To, err = parseDate(b.Support.To, "support.to", false); err != nil {
		return c, err
	}
	c.TakenAt, err = parseTime(b.TakenAt, "taken_at")
	return c, err
}

func (b PactBody) input(prefix string) (workerpath.PactInput, error) {
	var p workerpath.PactInput
	var err error
	if p.SignedAt, err = parseTime(b.SignedAt, prefix+"signed_at"); err != nil {
		return p, err
	}
	p.DIDOn, err = parseDate(b.DIDOn, prefix+"did_on", true)
	return p, err
}

// digest identifies a request by its canonical form (re-encoded, so
// whitespace and key order do not matter), for idempotency checks.
func digest(name, pathID string, body any) string {
	b, _ := json.Marshal(body)
	h := sha256.New()
	h.Write([]byte(name + "\x00" + pathID + "\x00"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func authorize(p access.Principal, act access.Action, office string) error {
	if err := p.Authorize(act, office); err != nil {
		return &fault.Error{Kind: fault.Forbidden, Code: fault.CodeForbidden, Message: "not allowed: " + err.Error()}
	}
	return nil
}

// mayEver reports whether p may do act anywhere at all.
func mayEver(p access.Principal, act access.Action) bool {
	scope := p.OfficeScope()
	if scope == nil {
		return p.Authorize(act, "") == nil
	}
	for _, o := range scope {
		if p.Authorize(act, o) == nil {
			return true
		}
	}
	return false
}

// Authorize is authorize for the edges' queries.
func Authorize(p access.Principal, act access.Action, office string) error {
	return authorize(p, act, office)
}
