package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
)

// Request is what every command carries besides its body.
type Request struct {
	Actor          string
	IdempotencyKey string
	// Digest identifies the request body (the edges hash its canonical form),
	// so a reused key with another body is refused.
	Digest        string
	IfMatch       *uint64
	CorrelationID string
}

// Result is a command's answer; it is also the body of the 201 response.
type Result struct {
	PathID   string            `json:"path_id,omitempty"`
	Version  uint64            `json:"version,omitempty"`
	GroupID  string            `json:"group_id,omitempty"`
	Versions map[string]uint64 `json:"versions,omitempty"`
	// Offices are the offices of the paths the command touched, for the
	// edges' authorization of idempotent replays; not part of the response.
	Offices []string `json:"-"`
}

// Handler runs the use cases.
type Handler struct {
	store Store
	idem  Idempotency
	vault Vault
	// Now is the clock, replaceable in tests.
	Now func() time.Time
	// Attempts bounds re-deciding after conflicts.
	Attempts int
}

// New returns a Handler.
func New(store Store, idem Idempotency, vault Vault) *Handler {
	return &Handler{store: store, idem: idem, vault: vault, Now: time.Now, Attempts: 8}
}

// decision is what one attempt decided: the writes, and the answer to give
// once they are appended (versions are filled in afterwards).
type decision struct {
	writes []Write
	index  *IndexEntry
	result Result
}

// attempt loads, decides and returns a decision; done reports that this
// command already landed (found by its id on a loaded path), with its result.
type attempt func(ctx context.Context, cmdID string, fresh bool, now time.Time) (d *decision, done *Result, err error)

func (h *Handler) commandID(r Request) string {
	if r.IdempotencyKey != "" {
		return CommandIDFor(r.Actor, r.IdempotencyKey)
	}
	return NewUUID()
}

// execute is the one loop every command goes through.
func (h *Handler) execute(ctx context.Context, r Request, run attempt) (Result, error) {
	cmdID := h.commandID(r)
	if r.IdempotencyKey != "" {
		// The digest of a body holding personal data must not be
		// reversible by guessing: key it like a pseudonym.
		r.Digest = h.vault.Pseudonym("request-digest\x00" + r.Digest)
		rec, err := h.idem.Get(ctx, cmdID)
		if err != nil {
			return Result{}, unavailable(err)
		}
		if rec != nil {
			if rec.Digest != r.Digest {
				return Result{}, fault.Rulef(fault.CodeIdempotencyKeyReused, "this Idempotency-Key was used with another request")
			}
			return rec.Result, nil
		}
	}
	var lastErr error
	ambiguous := false // an append whose outcome was not known
	for i := 0; i < h.Attempts; i++ {
		fresh := i > 0
		if ambiguous {
			// A replica that serves reads may lag the write a moment.
			if err := sleep(ctx, time.Duration(i)*10*time.Millisecond); err != nil {
				return Result{}, outcomeUnknown(lastErr)
			}
		}
		d, done, err := run(ctx, cmdID, fresh, h.Now())
		if err != nil && !fresh && refusal(err) {
			// Decided on the cached state, which misses what other
			// instances appended since: a refusal is only given on the
			// stream's own state.
			d, done, err = run(ctx, cmdID, true, h.Now())
		}
		if err != nil && ambiguous && refusal(err) {
			// An earlier append of this command may have landed where this
			// read cannot see it yet, and the refusal may be of its own
			// doing (the path it created, the session it delivered): look
			// again a little later, and if it never shows, the outcome is
			// unknown, not refused.
			continue
		}
		if err != nil {
			return Result{}, err
		}
		res := Result{}
		if done != nil {
			res = *done
		} else {
			meta := Meta{CommandID: cmdID, Actor: r.Actor, CorrelationID: r.CorrelationID}
			if meta.CorrelationID == "" {
				meta.CorrelationID = cmdID
			}
			versions, err := h.store.Append(ctx, meta, d.writes, d.index)
			if errors.Is(err, ErrConflict) {
				lastErr = err
				continue
			}
			if err != nil {
				// Ambiguous: the events may have landed. Look again on fresh
				// state; a landed command is found by its id.
				lastErr, ambiguous = err, true
				if ctx.Err() != nil {
					return Result{}, outcomeUnknown(err)
				}
				continue
			}
			res = d.result
			fill(&res, versions)
		}
		if r.IdempotencyKey != "" {
			// The events are appended whatever happens here. A retry of the
			// key finds the command by its id on the path while the path
			// remembers it (snapshots keep the latest command ids only), so
			// the record is written with a few tries before giving up.
			// The command happened whether or not its caller still waits.
			putCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			for try := 0; try < 3; try++ {
				if h.idem.Put(putCtx, cmdID, Record{Digest: r.Digest, Result: res}) == nil || sleep(putCtx, time.Duration(try+1)*20*time.Millisecond) != nil {
					break
				}
			}
			cancel()
		}
		return res, nil
	}
	if ambiguous {
		return Result{}, outcomeUnknown(lastErr)
	}
	if errors.Is(lastErr, ErrConflict) {
		return Result{}, fault.New(fault.Conflict, fault.CodeConflict, "too many concurrent changes to this path: try again")
	}
	return Result{}, unavailable(lastErr)
}

// refusal: an answer that depends on the path's state (a rule, a missing
// path, a conflict, a version), as opposed to the input alone, the path's
// office (fixed for its life) or a dependency being away.
func refusal(err error) bool {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return false
	}
	switch fe.Kind {
	case fault.Rule, fault.NotFound, fault.Conflict, fault.Precondition:
		return true
	}
	return false
}

func outcomeUnknown(err error) error {
	return &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable,
		Message: "the event store did not confirm the command, which may have been applied: send it again with the same Idempotency-Key", Err: err}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func fill(res *Result, versions map[string]uint64) {
	if res.PathID != "" {
		res.Version = versions[res.PathID]
		return
	}
	merged := make(map[string]uint64, len(res.Versions)+len(versions))
	for k, v := range res.Versions {
		merged[k] = v
	}
	for k, v := range versions {
		merged[k] = v
	}
	res.Versions = merged
}

func unavailable(err error) error {
	return &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "the event store is unavailable: try again", Err: err}
}

// landed finds this command's last event on a path.
func landed(h *History, cmdID string) (uint64, bool) {
	for i := len(h.Events) - 1; i >= 0; i-- {
		if h.Events[i].CommandID == cmdID {
			return h.Events[i].Seq, true
		}
	}
	seq, ok := h.BaseCommands[cmdID]
	return seq, ok
}

func rebuild(h *History) *workerpath.Path { return h.State() }

// TakeInCharge opens a path for a worker who has none open.
func (h *Handler) TakeInCharge(ctx context.Context, r Request, c workerpath.TakeInCharge) (Result, error) {
	c.Worker.TaxCode = taxcode.Normalize(c.Worker.TaxCode)
	if err := workerpath.ValidateTakeInCharge(c, h.Now()); err != nil {
		return Result{}, err
	}
	if c.PathID != "" && !ValidUUID(c.PathID) {
		return Result{}, fault.Invalidf("path_id", "path_id must be a UUID in lowercase canonical form")
	}
	c.WorkerRef = h.vault.Pseudonym(c.Worker.TaxCode)
	return h.execute(ctx, r, func(ctx context.Context, cmdID string, fresh bool, now time.Time) (*decision, *Result, error) {
		if c.PathID == "" {
			c.PathID = NameUUID(cmdID, "path")
		}
		hist, err := h.store.Load(ctx, c.PathID, fresh)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		if seq, ok := landed(hist, cmdID); ok {
			return nil, &Result{PathID: c.PathID, Version: seq, Offices: []string{c.Office}}, nil
		}
		if hist.Version != 0 {
			return nil, nil, fault.New(fault.Conflict, fault.CodePathExists, "path %s already exists", c.PathID)
		}
		wi, err := h.store.Worker(ctx, c.WorkerRef)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		if wi.Erased {
			return nil, nil, fault.Rulef(fault.CodeWorkerErased, "this worker's personal data were erased")
		}
		if wi.OpenPath != "" {
			return nil, nil, &fault.Error{Kind: fault.Conflict, Code: fault.CodeWorkerHasOpenPath,
				Message: "the worker already has an open path: " + wi.OpenPath, Field: "worker.tax_code"}
		}
		evs, err := rebuild(hist).TakeInCharge(workerpath.Ctx{Operator: r.Actor, Now: now}, c)
		if err != nil {
			return nil, nil, err
		}
		return &decision{
			writes: []Write{{PathID: c.PathID, Expected: 0, Events: evs}},
			index:  &IndexEntry{WorkerRef: c.WorkerRef, Expected: wi.Seq, PathID: c.PathID, Status: IndexOpen},
			result: Result{PathID: c.PathID, Offices: []string{c.Office}},
		}, nil, nil
	})
}

// onPath runs a command that touches one existing path. decide returns the
// events, and whether the worker index must record a closure.
func (h *Handler) onPath(ctx context.Context, r Request, pathID string, authorize func(*workerpath.Path) error,
	decide func(p *workerpath.Path, wctx workerpath.Ctx, cmdID string) ([]workerpath.Event, error), closes bool) (Result, error) {
	if !ValidUUID(pathID) {
		return Result{}, fault.New(fault.NotFound, fault.CodePathNotFound, "path %q not found", pathID)
	}
	return h.execute(ctx, r, func(ctx context.Context, cmdID string, fresh bool, now time.Time) (*decision, *Result, error) {
		hist, err := h.store.Load(ctx, pathID, fresh)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		if hist.Version == 0 {
			return nil, nil, fault.New(fault.NotFound, fault.CodePathNotFound, "path %s not found", pathID)
		}
		p := rebuild(hist)
		if authorize != nil {
			if err := authorize(p); err != nil {
				return nil, nil, err
			}
		}
		if seq, ok := landed(hist, cmdID); ok {
			return nil, &Result{PathID: pathID, Version: seq, Offices: []string{p.Office}}, nil
		}
		if r.IfMatch != nil && *r.IfMatch != hist.Version {
			return nil, nil, &fault.Error{Kind: fault.Precondition, Code: fault.CodeVersionMismatch,
				Message: fmt.Sprintf("the path is at version %d, not %d", hist.Version, *r.IfMatch)}
		}
		evs, err := decide(p, workerpath.Ctx{Operator: r.Actor, Now: now}, cmdID)
		if err != nil {
			return nil, nil, err
		}
		d := &decision{
			writes: []Write{{PathID: pathID, Expected: hist.Version, Events: evs}},
			result: Result{PathID: pathID, Offices: []string{p.Office}},
		}
		if closes {
			wi, err := h.store.Worker(ctx, p.WorkerRef)
			if err != nil {
				return nil, nil, unavailable(err)
			}
			d.index = &IndexEntry{WorkerRef: p.WorkerRef, Expected: wi.Seq, PathID: pathID, Status: IndexClosed}
		}
		return d, nil, nil
	})
}

// Authorizer lets the edge check the loaded path (its office) before the
// command is decided; nil allows everything.
type Authorizer func(p *workerpath.Path) error

// DeliverSession records an individual session (and a patto signed in it).
func (h *Handler) DeliverSession(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.DeliverSession) (Result, error) {
	if c.SessionID != "" && !ValidUUID(c.SessionID) {
		return Result{}, fault.Invalidf("session_id", "session_id must be a UUID in lowercase canonical form")
	}
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, cmdID string) ([]workerpath.Event, error) {
		if c.SessionID == "" {
			c.SessionID = NameUUID(cmdID, "session")
		}
		return p.DeliverSession(w, c)
	}, false)
}

// SignPact records the patto di servizio.
func (h *Handler) SignPact(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.PactInput) (Result, error) {
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, _ string) ([]workerpath.Event, error) {
		return p.SignPact(w, c)
	}, false)
}

// ActivateTraineeship records a traineeship and its service-7 session.
func (h *Handler) ActivateTraineeship(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.ActivateTraineeship) (Result, error) {
	if c.TraineeshipID != "" && !ValidUUID(c.TraineeshipID) {
		return Result{}, fault.Invalidf("traineeship_id", "traineeship_id must be a UUID in lowercase canonical form")
	}
	c.HostTaxCode = taxcode.Normalize(c.HostTaxCode)
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, cmdID string) ([]workerpath.Event, error) {
		if c.TraineeshipID == "" {
			c.TraineeshipID = NameUUID(cmdID, "traineeship")
		}
		return p.ActivateTraineeship(w, c)
	}, false)
}

// VerifyPath records the verification interview and its outcome.
func (h *Handler) VerifyPath(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.VerifyPath) (Result, error) {
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, cmdID string) ([]workerpath.Event, error) {
		c.SessionID = NameUUID(cmdID, "session")
		return p.VerifyPath(w, c)
	}, false)
}

// RecordNoShow records a missed appointment.
func (h *Handler) RecordNoShow(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.RecordNoShow) (Result, error) {
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, _ string) ([]workerpath.Event, error) {
		return p.RecordNoShow(w, c)
	}, false)
}

// ReportRefusal records a refusal reported to INPS.
func (h *Handler) ReportRefusal(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.ReportRefusal) (Result, error) {
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, _ string) ([]workerpath.Event, error) {
		return p.ReportRefusal(w, c)
	}, false)
}

// ClosePath closes the path and frees the worker for a new one.
func (h *Handler) ClosePath(ctx context.Context, r Request, pathID string, auth Authorizer, c workerpath.ClosePath) (Result, error) {
	return h.onPath(ctx, r, pathID, auth, func(p *workerpath.Path, w workerpath.Ctx, _ string) ([]workerpath.Event, error) {
		return p.ClosePath(w, c)
	}, true)
}

// DeliverGroupSession appends one SessionDelivered to every participant's
// path in one atomic batch: all or nothing, each path's version checked.
func (h *Handler) DeliverGroupSession(ctx context.Context, r Request, auth Authorizer, c workerpath.DeliverGroupSession) (Result, error) {
	if c.GroupID != "" && !ValidUUID(c.GroupID) {
		return Result{}, fault.Invalidf("group_id", "group_id must be a UUID in lowercase canonical form")
	}
	for _, id := range c.Participants {
		if !ValidUUID(id) {
			return Result{}, fault.New(fault.NotFound, fault.CodePathNotFound, "participant path %q not found", id).OnField("participants")
		}
	}
	if err := workerpath.ValidateGroup(c); err != nil {
		return Result{}, err
	}
	return h.execute(ctx, r, func(ctx context.Context, cmdID string, fresh bool, now time.Time) (*decision, *Result, error) {
		if c.GroupID == "" {
			c.GroupID = NameUUID(cmdID, "group")
		}
		d := &decision{result: Result{GroupID: c.GroupID}}
		done := &Result{GroupID: c.GroupID, Versions: map[string]uint64{}}
		w := workerpath.Ctx{Operator: r.Actor, Now: now}
		for _, id := range c.Participants {
			hist, err := h.store.Load(ctx, id, fresh)
			if err != nil {
				return nil, nil, unavailable(err)
			}
			if hist.Version == 0 {
				return nil, nil, fault.New(fault.NotFound, fault.CodePathNotFound, "participant path %s not found", id).OnField("participants")
			}
			p := rebuild(hist)
			if auth != nil {
				if err := auth(p); err != nil {
					return nil, nil, err
				}
			}
			d.result.Offices = append(d.result.Offices, p.Office)
			if seq, ok := landed(hist, cmdID); ok {
				done.Versions[id] = seq
				continue
			}
			evs, err := p.DeliverInGroup(w, c)
			if err != nil {
				return nil, nil, err
			}
			// Each participant's session has its own id, derived so a retry
			// names it the same.
			if s, ok := evs[0].(*workerpath.SessionDelivered); ok {
				s.SessionID = NameUUID(cmdID, "session/"+id)
			}
			d.writes = append(d.writes, Write{PathID: id, Expected: hist.Version, Events: evs})
		}
		if len(d.writes) == 0 {
			done.Offices = d.result.Offices
			return nil, done, nil
		}
		return d, nil, nil
	})
}

// EraseWorker records PersonalDataErased on every path of the worker, then
// destroys the worker's key. Running it again completes an interrupted erasure.
func (h *Handler) EraseWorker(ctx context.Context, r Request, taxCode string) (Result, error) {
	taxCode = taxcode.Normalize(taxCode)
	if err := taxcode.CheckPerson(taxCode); err != nil {
		return Result{}, fault.Rulef(fault.CodeInvalidTaxCode, "the tax code is not valid: %v", err).OnField("tax_code")
	}
	ref := h.vault.Pseudonym(taxCode)
	res, err := h.execute(ctx, r, func(ctx context.Context, cmdID string, fresh bool, now time.Time) (*decision, *Result, error) {
		wi, err := h.store.Worker(ctx, ref)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		if len(wi.Paths) == 0 {
			return nil, nil, fault.New(fault.NotFound, fault.CodeWorkerNotFound, "no path for this worker")
		}
		d := &decision{}
		versions := map[string]uint64{}
		w := workerpath.Ctx{Operator: r.Actor, Now: now}
		for _, id := range wi.Paths {
			hist, err := h.store.Load(ctx, id, fresh)
			if err != nil {
				return nil, nil, unavailable(err)
			}
			versions[id] = hist.Version
			p := rebuild(hist)
			d.result.Offices = append(d.result.Offices, p.Office)
			evs, err := p.ErasePersonalData(w)
			if err != nil {
				return nil, nil, err
			}
			if len(evs) > 0 {
				d.writes = append(d.writes, Write{PathID: id, Expected: hist.Version, Events: evs})
			}
		}
		if wi.Erased && len(d.writes) == 0 {
			return nil, &Result{Versions: versions, Offices: d.result.Offices}, nil
		}
		d.index = &IndexEntry{WorkerRef: ref, Expected: wi.Seq, Status: IndexErased}
		d.result.Versions = versions
		return d, nil, nil
	})
	if err != nil {
		return Result{}, err
	}
	if err := h.vault.Erase(ctx, ref); err != nil {
		return Result{}, unavailable(err)
	}
	return res, nil
}
