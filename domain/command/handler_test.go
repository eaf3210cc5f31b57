package command_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	wp "github.com/percorso/percorso/domain/workerpath"
)

var now = time.Date(2011, 6, 30, 12, 0, 0, 0, time.UTC)

// Tax codes that check, one per worker.
var workers = []string{
	"RSSMRA80A01H501U", "RSSMRA45D25F205N", "VRDGPP70M12A944D", "BNCLRA85T41F257H",
	"FRRMRC60C15D548D", "GLLSRA92E52H223P", "01234567897", "02840971200",
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

type env struct {
	t     *testing.T
	ctx   context.Context
	store *fakeStore
	idem  *fakeIdem
	vault *fakeVault
	h     *command.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), store: newFakeStore(), idem: newFakeIdem(), vault: &fakeVault{}}
	e.h = command.New(e.store, e.idem, e.vault)
	e.h.Now = func() time.Time { return now }
	return e
}

func req() command.Request { return command.Request{Actor: "mrossi"} }

func keyed(key, digest string) command.Request {
	return command.Request{Actor: "mrossi", IdempotencyKey: key, Digest: digest}
}

func takeInCharge(taxCode string) wp.TakeInCharge {
	return wp.TakeInCharge{
		Worker:   wp.Person{TaxCode: taxCode, GivenName: "Mario", FamilyName: "Rossi", BirthDate: wp.MustDate("1980-01-01")},
		Category: "a",
		Support:  wp.Support{Kind: wp.SupportCIG, From: wp.MustDate("2010-12-01"), To: wp.MustDate("2011-12-31")},
		Office:   "BO01",
		TakenAt:  at("2011-01-10T09:00:00Z"),
	}
}

func session(service int) wp.DeliverSession {
	return wp.DeliverSession{Service: service, DeliveredAt: at("2011-03-01T10:00:00Z"), Minutes: 60}
}

func group(service int, participants ...string) wp.DeliverGroupSession {
	return wp.DeliverGroupSession{Service: service, DeliveredAt: at("2011-03-10T10:00:00Z"), Minutes: 240, Participants: participants}
}

func pact() wp.PactInput {
	return wp.PactInput{SignedAt: at("2011-02-01T10:00:00Z"), DIDOn: wp.MustDate("2011-01-10")}
}

func traineeship() wp.ActivateTraineeship {
	return wp.ActivateTraineeship{HostTaxCode: "00743110157", StartsOn: wp.MustDate("2011-04-01"),
		DeliveredAt: at("2011-03-15T10:00:00Z"), Minutes: 120}
}

func verify() wp.VerifyPath {
	return wp.VerifyPath{VerifiedAt: at("2011-06-01T10:00:00Z"), Outcome: wp.OutcomeAchieved, Minutes: 45}
}

func noShow() wp.RecordNoShow { return wp.RecordNoShow{AppointmentAt: at("2011-02-15T09:00:00Z")} }

func refusal() wp.ReportRefusal {
	return wp.ReportRefusal{Kind: wp.RefusalConvocation, At: at("2011-02-20T09:00:00Z")}
}

func closing() wp.ClosePath {
	return wp.ClosePath{ClosedAt: at("2011-06-15T09:00:00Z"), Reason: wp.CloseReemployed}
}

// open takes a worker in charge and returns the new path's id.
func (e *env) open(taxCode string) string {
	e.t.Helper()
	res, err := e.h.TakeInCharge(e.ctx, req(), takeInCharge(taxCode))
	if err != nil {
		e.t.Fatalf("take in charge: %v", err)
	}
	return res.PathID
}

func (e *env) deliver(pathID string, service int) {
	e.t.Helper()
	c := session(service)
	if service == wp.SvcGroup || service == wp.SvcWorkshop {
		c.Justification = "test"
	}
	if _, err := e.h.DeliverSession(e.ctx, req(), pathID, nil, c); err != nil {
		e.t.Fatalf("deliver %d: %v", service, err)
	}
}

func (e *env) close(pathID string) {
	e.t.Helper()
	if _, err := e.h.ClosePath(e.ctx, req(), pathID, nil, closing()); err != nil {
		e.t.Fatalf("close: %v", err)
	}
}

// openGroup opens n paths for n different workers.
func (e *env) openGroup(n int) []string {
	e.t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, e.open(workers[i]))
	}
	return ids
}

func wantErr(t *testing.T, err error, code string, kind fault.Kind) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got no error", code)
	}
	fe := fault.As(err)
	if fe.Code != code || fe.Kind != kind {
		t.Fatalf("got %v (kind %d), want %s (kind %d)", err, fe.Kind, code, kind)
	}
	return fe
}

func types(rs []command.Recorded) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Event.EventType())
	}
	return out
}

func countService(rs []command.Recorded, service int) int {
	n := 0
	for _, r := range rs {
		if s, ok := r.Event.(*wp.SessionDelivered); ok && s.Service == service {
			n++
		}
	}
	return n
}

// TestEveryCommand runs each use case once through the Handler and checks
// what lands on the stream and what the caller is told.
func TestEveryCommand(t *testing.T) {
	e := newEnv(t)
	seen := map[string]int{} // events per path already checked

	// landed checks that exactly the wanted events were appended to the path
	// by one command, and that the result names the path's new version.
	landed := func(step string, res command.Result, err error, pathID string, want ...string) []command.Recorded {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		evs := e.store.events(pathID)
		fresh := evs[seen[pathID]:]
		seen[pathID] = len(evs)
		if got := types(fresh); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s appended %v, want %v", step, got, want)
		}
		for _, r := range fresh {
			if r.CommandID != fresh[0].CommandID || r.CommandID == "" {
				t.Errorf("%s: events of one command carry command ids %q and %q", step, fresh[0].CommandID, r.CommandID)
			}
			if r.Event.Header().Operator != "mrossi" || !r.Event.Header().RecordedAt.Equal(now) || r.Event.Header().PathID != pathID {
				t.Errorf("%s: event meta %+v", step, *r.Event.Header())
			}
		}
		last := fresh[len(fresh)-1].Seq
		if res.PathID != "" && (res.PathID != pathID || res.Version != last) {
			t.Errorf("%s: result %+v, want path %s version %d", step, res, pathID, last)
		}
		if res.Versions != nil && res.Versions[pathID] != last {
			t.Errorf("%s: result versions %v, want %s at %d", step, res.Versions, pathID, last)
		}
		return fresh
	}

	cmdID := command.CommandIDFor("mrossi", "k-take")
	res, err := e.h.TakeInCharge(e.ctx, keyed("k-take", "d"), takeInCharge(" rssmra80a01h501u "))
	p := command.NameUUID(cmdID, "path")
	evs := landed("take_in_charge", res, err, p, wp.TypeTakenInCharge)
	tic := evs[0].Event.(*wp.TakenInCharge)
	if tic.Worker.TaxCode != "RSSMRA80A01H501U" || tic.WorkerRef != e.vault.Pseudonym("RSSMRA80A01H501U") {
		t.Errorf("the tax code is not normalized before it is used: %q %q", tic.Worker.TaxCode, tic.WorkerRef)
	}
	if !reflect.DeepEqual(res.Offices, []string{"BO01"}) {
		t.Errorf("offices %v", res.Offices)
	}
	if wi, _ := e.store.Worker(e.ctx, tic.WorkerRef); wi.OpenPath != p || !reflect.DeepEqual(wi.Paths, []string{p}) {
		t.Errorf("worker index %+v", wi)
	}

	cmdID = command.CommandIDFor("mrossi", "k-05")
	res, err = e.h.DeliverSession(e.ctx, keyed("k-05", "d"), p, nil, session(wp.SvcCounselling))
	evs = landed("deliver_session", res, err, p, wp.TypeSessionDelivered)
	if s := evs[0].Event.(*wp.SessionDelivered); s.SessionID != command.NameUUID(cmdID, "session") || s.Service != 5 || s.CreditedMinutes != 90 {
		t.Errorf("session %+v", s)
	}

	c := session(wp.SvcIndividual)
	c.SessionID = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
	c.Pact = &wp.PactInput{SignedAt: at("2011-03-01T10:00:00Z"), DIDOn: wp.MustDate("2011-03-01")}
	res, err = e.h.DeliverSession(e.ctx, req(), p, nil, c)
	evs = landed("deliver_session with a patto", res, err, p, wp.TypeSessionDelivered, wp.TypePactSigned)
	if ps := evs[1].Event.(*wp.PactSigned); ps.SessionID != c.SessionID {
		t.Errorf("patto session %q, want %q", ps.SessionID, c.SessionID)
	}

	q := e.open(workers[1])
	seen[q] = 1
	res, err = e.h.SignPact(e.ctx, req(), q, nil, pact())
	landed("sign_pact", res, err, q, wp.TypePactSigned)

	cmdID = command.CommandIDFor("mrossi", "k-07")
	res, err = e.h.ActivateTraineeship(e.ctx, keyed("k-07", "d"), p, nil, wp.ActivateTraineeship{
		HostTaxCode: " 00743110157", StartsOn: wp.MustDate("2011-04-01"), DeliveredAt: at("2011-03-15T10:00:00Z"), Minutes: 120})
	evs = landed("activate_traineeship", res, err, p, wp.TypeTraineeshipActivated, wp.TypeSessionDelivered)
	if ta := evs[0].Event.(*wp.TraineeshipActivated); ta.TraineeshipID != command.NameUUID(cmdID, "traineeship") || ta.HostTaxCode != "00743110157" {
		t.Errorf("traineeship %+v", ta)
	}

	cmdID = command.CommandIDFor("mrossi", "k-12")
	res, err = e.h.VerifyPath(e.ctx, keyed("k-12", "d"), p, nil, verify())
	evs = landed("verify_path", res, err, p, wp.TypeSessionDelivered, wp.TypePathVerified)
	if v := evs[1].Event.(*wp.PathVerified); v.SessionID != command.NameUUID(cmdID, "session") || v.SessionID != evs[0].Event.(*wp.SessionDelivered).SessionID {
		t.Errorf("verification %+v", v)
	}

	res, err = e.h.RecordNoShow(e.ctx, req(), p, nil, noShow())
	evs = landed("record_no_show", res, err, p, wp.TypeNoShowRecorded)
	if n := evs[0].Event.(*wp.NoShowRecorded); n.Kind != wp.NoShowFirst {
		t.Errorf("no-show %+v", n)
	}

	res, err = e.h.ReportRefusal(e.ctx, req(), p, nil, refusal())
	landed("report_refusal", res, err, p, wp.TypeRefusalReported)

	peers := []string{p, q}
	for i := 2; i < 6; i++ {
		peers = append(peers, e.open(workers[i]))
		seen[peers[i]] = 1
	}
	before := e.store.appended
	cmdID = command.CommandIDFor("mrossi", "k-group")
	res, err = e.h.DeliverGroupSession(e.ctx, keyed("k-group", "d"), nil, group(wp.SvcGroup, peers...))
	if err != nil {
		t.Fatal(err)
	}
	if res.GroupID != command.NameUUID(cmdID, "group") || len(res.Versions) != 6 || len(res.Offices) != 6 {
		t.Errorf("group result %+v", res)
	}
	for _, id := range peers {
		evs := landed("deliver_group_session", res, nil, id, wp.TypeSessionDelivered)
		if s := evs[0].Event.(*wp.SessionDelivered); s.GroupID != res.GroupID || s.GroupSize != 6 || s.OutsideGroupRange {
			t.Errorf("group session on %s: %+v", id, s)
		}
	}
	if e.store.appended != before+1 {
		t.Errorf("a group session took %d appends, want one atomic batch", e.store.appended-before)
	}

	res, err = e.h.ClosePath(e.ctx, req(), p, nil, closing())
	landed("close_path", res, err, p, wp.TypePathClosed)
	if wi, _ := e.store.Worker(e.ctx, tic.WorkerRef); wi.OpenPath != "" {
		t.Errorf("closing left the worker index open: %+v", wi)
	}

	res, err = e.h.EraseWorker(e.ctx, req(), "RSSMRA80A01H501U")
	landed("erase_worker", res, err, p, wp.TypePersonalDataErased)
	if got := e.vault.erasedRefs(); !reflect.DeepEqual(got, []string{tic.WorkerRef}) {
		t.Errorf("vault erased %v", got)
	}
}

// cmdCase is one use case, set up on a fresh store, for the properties every
// command shares.
type cmdCase struct {
	name      string
	pathScope bool // takes a path id (and so an If-Match)
	setup     func(e *env) []string
	run       func(e *env, r command.Request, ids []string) (command.Result, error)
}

func onPath(run func(e *env, r command.Request, id string) (command.Result, error)) func(*env, command.Request, []string) (command.Result, error) {
	return func(e *env, r command.Request, ids []string) (command.Result, error) { return run(e, r, ids[0]) }
}

func openOne(e *env) []string { return []string{e.open(workers[0])} }

var cmdCases = []cmdCase{
	{name: "take_in_charge",
		setup: func(e *env) []string { return nil },
		run: func(e *env, r command.Request, _ []string) (command.Result, error) {
			return e.h.TakeInCharge(e.ctx, r, takeInCharge(workers[0]))
		}},
	{name: "take_in_charge with a path id",
		setup: func(e *env) []string { return nil },
		run: func(e *env, r command.Request, _ []string) (command.Result, error) {
			c := takeInCharge(workers[0])
			c.PathID = "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f"
			return e.h.TakeInCharge(e.ctx, r, c)
		}},
	{name: "deliver_session", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.DeliverSession(e.ctx, r, id, nil, session(wp.SvcCounselling))
		})},
	{name: "sign_pact", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.SignPact(e.ctx, r, id, nil, pact())
		})},
	{name: "activate_traineeship", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.ActivateTraineeship(e.ctx, r, id, nil, traineeship())
		})},
	{name: "verify_path", pathScope: true,
		setup: func(e *env) []string {
			id := e.open(workers[0])
			e.deliver(id, wp.SvcPlacement)
			return []string{id}
		},
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.VerifyPath(e.ctx, r, id, nil, verify())
		})},
	{name: "record_no_show", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.RecordNoShow(e.ctx, r, id, nil, noShow())
		})},
	{name: "report_refusal", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.ReportRefusal(e.ctx, r, id, nil, refusal())
		})},
	{name: "close_path", pathScope: true, setup: openOne,
		run: onPath(func(e *env, r command.Request, id string) (command.Result, error) {
			return e.h.ClosePath(e.ctx, r, id, nil, closing())
		})},
	{name: "deliver_group_session",
		setup: func(e *env) []string { return e.openGroup(6) },
		run: func(e *env, r command.Request, ids []string) (command.Result, error) {
			return e.h.DeliverGroupSession(e.ctx, r, nil, group(wp.SvcWorkshop, ids...))
		}},
	{name: "erase_worker",
		setup: func(e *env) []string {
			a := e.open(workers[0])
			e.close(a)
			return []string{a, e.open(workers[0])}
		},
		run: func(e *env, r command.Request, _ []string) (command.Result, error) {
			return e.h.EraseWorker(e.ctx, r, workers[0])
		}},
}

func TestIdempotentReplay(t *testing.T) {
	for _, c := range cmdCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.setup(e)
			first, err := c.run(e, keyed("key-1", "digest-1"), ids)
			if err != nil {
				t.Fatal(err)
			}
			appended, seq, vault := e.store.appended, e.store.lastSeq(), len(e.vault.erasedRefs())

			again, err := c.run(e, keyed("key-1", "digest-1"), ids)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if !reflect.DeepEqual(again, first) {
				t.Errorf("replay answered %+v, first answer was %+v", again, first)
			}
			if e.store.appended != appended || e.store.lastSeq() != seq {
				t.Errorf("replay appended %d more batches", e.store.appended-appended)
			}
			if c.name == "erase_worker" && len(e.vault.erasedRefs()) < vault {
				t.Errorf("vault forgot an erasure")
			}

			_, err = c.run(e, keyed("key-1", "digest-2"), ids)
			wantErr(t, err, fault.CodeIdempotencyKeyReused, fault.Rule)
			if e.store.lastSeq() != seq {
				t.Errorf("a reused key appended")
			}
		})
	}
}

// TestReplayWithoutTheRecord: the idempotency record is a convenience; if it
// is missing, the command id on the landed events answers the retry.
func TestReplayWithoutTheRecord(t *testing.T) {
	for _, c := range cmdCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.setup(e)
			first, err := c.run(e, keyed("key-1", "digest-1"), ids)
			if err != nil {
				t.Fatal(err)
			}
			seq := e.store.lastSeq()
			cmdID := command.CommandIDFor("mrossi", "key-1")
			e.idem.forget(cmdID)

			again, err := c.run(e, keyed("key-1", "digest-1"), ids)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !reflect.DeepEqual(again, first) {
				t.Errorf("retry answered %+v, first answer was %+v", again, first)
			}
			if e.store.lastSeq() != seq {
				t.Errorf("retry appended again (store at %d, was %d)", e.store.lastSeq(), seq)
			}
			if rec, _ := e.idem.Get(e.ctx, cmdID); rec == nil || !reflect.DeepEqual(rec.Result, first) {
				t.Fatalf("the record was not rebuilt: %+v", rec)
			}
			// The rebuilt record answers on its own, and knows the body.
			loads := len(e.store.loads)
			if third, err := c.run(e, keyed("key-1", "digest-1"), ids); err != nil || !reflect.DeepEqual(third, first) {
				t.Errorf("third call: %+v, %v", third, err)
			}
			if len(e.store.loads) != loads {
				t.Error("a recorded command went back to the store")
			}
			_, err = c.run(e, keyed("key-1", "digest-2"), ids)
			wantErr(t, err, fault.CodeIdempotencyKeyReused, fault.Rule)
		})
	}
}

// The same key from another principal is another command.
func TestIdempotencyKeyIsPerPrincipal(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	a, err := e.h.DeliverSession(e.ctx, keyed("k", "d"), p, nil, session(1))
	if err != nil {
		t.Fatal(err)
	}
	r := keyed("k", "d")
	r.Actor = "lbianchi"
	b, err := e.h.DeliverSession(e.ctx, r, p, nil, session(1))
	if err != nil {
		t.Fatal(err)
	}
	if a.Version == b.Version || countService(e.store.events(p), 1) != 2 {
		t.Errorf("two principals' commands collapsed into one: %+v %+v", a, b)
	}
}

func TestIfMatch(t *testing.T) {
	for _, c := range cmdCases {
		if !c.pathScope {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.setup(e)
			v := e.store.version(ids[0])
			stale := v - 1
			r := req()
			r.IfMatch = &stale
			_, err := c.run(e, r, ids)
			wantErr(t, err, fault.CodeVersionMismatch, fault.Precondition)
			if e.store.version(ids[0]) != v {
				t.Fatal("a refused If-Match appended")
			}
			r.IfMatch = &v
			res, err := c.run(e, r, ids)
			if err != nil {
				t.Fatalf("matching If-Match: %v", err)
			}
			if res.Version <= v || res.Version != e.store.version(ids[0]) {
				t.Errorf("version %d after %d", res.Version, v)
			}
		})
	}
}

// With If-Match, losing a race is a 412, never a silent re-decision.
func TestIfMatchLosesARace(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	v := e.store.version(p)
	e.store.interfere = func(call int) {
		if call == 2 {
			e.store.write(p, &wp.RefusalReported{Meta: wp.Meta{PathID: p}, Kind: wp.RefusalPath})
		}
	}
	r := req()
	r.IfMatch = &v
	_, err := e.h.DeliverSession(e.ctx, r, p, nil, session(1))
	wantErr(t, err, fault.CodeVersionMismatch, fault.Precondition)
	if got := types(e.store.events(p)); !reflect.DeepEqual(got, []string{wp.TypeTakenInCharge, wp.TypeRefusalReported}) {
		t.Errorf("path holds %v", got)
	}
}

// A command that loses a race is re-decided on fresh state: the handler must
// ask for a fresh load, or a caching store keeps handing it the same stale
// copy.
func TestConflictIsReDecidedOnFreshState(t *testing.T) {
	e := newEnv(t)
	e.store.staleReads = true
	p := e.open(workers[0])
	loads := len(e.store.freshFlags(p))
	e.store.interfere = func(call int) {
		if call == 2 { // the first append of the command below
			e.store.write(p, &wp.SessionDelivered{Meta: wp.Meta{PathID: p}, Service: 1, CreditedMinutes: 30})
		}
	}
	res, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(wp.SvcIndividual))
	if err != nil {
		t.Fatal(err)
	}
	evs := e.store.events(p)
	if got := types(evs); len(got) != 3 || countService(evs, 1) != 1 || countService(evs, 3) != 1 {
		t.Fatalf("path holds %v", got)
	}
	if res.Version != evs[2].Seq {
		t.Errorf("version %d, want %d", res.Version, evs[2].Seq)
	}
	if got := e.store.freshFlags(p)[loads:]; !reflect.DeepEqual(got, []bool{false, true}) {
		t.Errorf("loads (fresh?) %v, want a cached load then a fresh one", got)
	}
}

// Two operators deliver the third consulenza at once: one wins, the other is
// re-decided on the new state and refused by the rule.
func TestRaceForTheLastCounselling(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	e.deliver(p, wp.SvcCounselling)
	e.deliver(p, wp.SvcCounselling)
	calls := e.store.appendCalls
	e.store.interfere = func(call int) {
		if call == calls+1 {
			e.store.write(p, &wp.SessionDelivered{Meta: wp.Meta{PathID: p}, Service: 5, CreditedMinutes: 90})
		}
	}
	_, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(wp.SvcCounselling))
	fe := wantErr(t, err, fault.CodeRepeatLimitReached, fault.Rule)
	if fe.Field != "service" {
		t.Errorf("field %q", fe.Field)
	}
	if n := countService(e.store.events(p), 5); n != 3 {
		t.Errorf("%d consulenze on the path, want 3", n)
	}
}

// Many operators at once: the limit holds exactly, whoever wins.
func TestConcurrentCounsellingKeepsTheLimit(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = e.h.DeliverSession(e.ctx, req(), p, nil, session(wp.SvcCounselling))
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch fault.CodeOf(err) {
		case "":
			ok++
		case fault.CodeRepeatLimitReached:
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 3 || countService(e.store.events(p), 5) != 3 {
		t.Errorf("%d succeeded, %d on the path; want 3 and 3", ok, countService(e.store.events(p), 5))
	}
}

// Two offices take the same worker in charge at once: exactly one path opens.
func TestConcurrentTakeInChargeOpensOnePath(t *testing.T) {
	e := newEnv(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = e.h.TakeInCharge(e.ctx, req(), takeInCharge(workers[0]))
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch fault.CodeOf(err) {
		case "":
			ok++
		case fault.CodeWorkerHasOpenPath:
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	wi, _ := e.store.Worker(e.ctx, e.vault.Pseudonym(workers[0]))
	if ok != 1 || len(wi.Paths) != 1 || wi.OpenPath == "" {
		t.Errorf("%d take-in-charges succeeded, index %+v; want exactly one", ok, wi)
	}
}

func TestAttemptsAreBounded(t *testing.T) {
	for _, c := range cmdCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.setup(e)
			seq := e.store.lastSeq()
			e.store.alwaysConflict = true
			calls := e.store.appendCalls
			e.h.Attempts = 3
			_, err := c.run(e, req(), ids)
			wantErr(t, err, fault.CodeConflict, fault.Conflict)
			if got := e.store.appendCalls - calls; got != 3 {
				t.Errorf("%d append attempts, want 3", got)
			}
			if e.store.lastSeq() != seq {
				t.Error("a conflicting command appended")
			}
			if c.name == "erase_worker" && len(e.vault.erasedRefs()) != 0 {
				t.Error("the key was destroyed although the erasure was not recorded")
			}
		})
	}
	e := newEnv(t)
	p := e.open(workers[0])
	e.store.alwaysConflict = true
	calls := e.store.appendCalls
	_, err := e.h.SignPact(e.ctx, req(), p, nil, pact())
	wantErr(t, err, fault.CodeConflict, fault.Conflict)
	if got := e.store.appendCalls - calls; got != 8 {
		t.Errorf("New allows %d attempts, want 8", got)
	}
}

// An append whose reply is lost may have landed: the handler looks again and
// finds its own events by command id instead of appending twice.
func TestLostReplyIsFoundByCommandID(t *testing.T) {
	for _, c := range cmdCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.setup(e)
			appended := e.store.appended
			e.store.lostReplies = 1
			res, err := c.run(e, req(), ids)
			if err != nil {
				t.Fatal(err)
			}
			if e.store.appended != appended+1 {
				t.Errorf("%d appends, want exactly one", e.store.appended-appended)
			}
			if res.PathID != "" && res.Version != e.store.version(res.PathID) {
				t.Errorf("version %d, path at %d", res.Version, e.store.version(res.PathID))
			}
			for id, v := range res.Versions {
				if v != e.store.version(id) {
					t.Errorf("version of %s %d, path at %d", id, v, e.store.version(id))
				}
			}
		})
	}
}

// An append whose reply is lost, read back from a replica a moment behind:
// the command's own effect (its path, its session) must not come back as a
// refusal or a conflict. The handler looks again a little later and finds
// it; when it never shows, the answer is that the outcome is unknown.
func TestLostReplyReadFromBehind(t *testing.T) {
	for _, c := range cmdCases {
		t.Run(c.name, func(t *testing.T) {
			for _, lag := range []int{2, 1000} {
				e := newEnv(t)
				ids := c.setup(e)
				appended := e.store.appended
				e.store.lostReplies = 1
				e.store.lagAfterLostReply = lag
				_, err := c.run(e, req(), ids)
				if e.store.appended != appended+1 {
					t.Errorf("lag %d: %d appends, want exactly one", lag, e.store.appended-appended)
				}
				switch {
				case lag < 1000 && err != nil:
					t.Errorf("lag %d: %v, want the landed command found", lag, err)
				case lag == 1000:
					wantErr(t, err, fault.CodeUnavailable, fault.Unavailable)
				}
			}
		})
	}
}

// Another instance's append is not in this instance's cache: a refusal
// decided on the cached copy is decided again on the stream's state, and
// a real refusal is still given.
func TestRefusalOnCachedStateIsCheckedFresh(t *testing.T) {
	e := newEnv(t)
	e.store.staleReads = true
	p := e.open(workers[0])
	before := e.store.version(p)
	v := e.store.write(p, &wp.RefusalReported{Meta: wp.Meta{PathID: p}, Kind: wp.RefusalPath})
	r := req()
	r.IfMatch = &v
	res, err := e.h.DeliverSession(e.ctx, r, p, nil, session(wp.SvcIndividual))
	if err != nil {
		t.Fatalf("If-Match of the version another instance appended: %v", err)
	}
	if res.Version != e.store.version(p) || countService(e.store.events(p), wp.SvcIndividual) != 1 {
		t.Errorf("version %d, path at %d", res.Version, e.store.version(p))
	}
	r.IfMatch = &before
	_, err = e.h.DeliverSession(e.ctx, r, p, nil, session(wp.SvcIndividual))
	wantErr(t, err, fault.CodeVersionMismatch, fault.Precondition)
}

// The record of a keyed command is written with a few tries: the path
// remembers only its latest command ids, and a record lost to one failed
// write would let a late retry of the key apply the command again.
func TestIdempotencyRecordIsRetried(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	e.idem.putFailures = 2
	first, err := e.h.DeliverSession(e.ctx, keyed("k-retried", "d"), p, nil, session(wp.SvcIndividual))
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := e.idem.Get(e.ctx, command.CommandIDFor("mrossi", "k-retried")); rec == nil || rec.Result.Version != first.Version {
		t.Fatalf("record after two failed writes: %+v, want the command's result", rec)
	}
	e.idem.putFailures = 10
	if _, err := e.h.DeliverSession(e.ctx, keyed("k-lost", "d"), p, nil, session(wp.SvcIndividual)); err != nil {
		t.Fatalf("a command whose record cannot be written still succeeds: %v", err)
	}
}

func TestStoreDown(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	e.store.loadErr = errDown
	_, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(1))
	fe := wantErr(t, err, fault.CodeUnavailable, fault.Unavailable)
	if !errors.Is(fe, errDown) {
		t.Errorf("the cause is lost: %v", fe)
	}
	_, err = e.h.TakeInCharge(e.ctx, req(), takeInCharge(workers[1]))
	wantErr(t, err, fault.CodeUnavailable, fault.Unavailable)
}

func TestOneOpenPathPerWorker(t *testing.T) {
	e := newEnv(t)
	p1 := e.open(workers[0])
	seq := e.store.lastSeq()

	for _, code := range []string{workers[0], " rssmra80a01h501u"} {
		_, err := e.h.TakeInCharge(e.ctx, req(), takeInCharge(code))
		fe := wantErr(t, err, fault.CodeWorkerHasOpenPath, fault.Conflict)
		if fe.Field != "worker.tax_code" {
			t.Errorf("field %q", fe.Field)
		}
	}
	if e.store.lastSeq() != seq {
		t.Error("a refused take-in-charge appended")
	}

	// Another worker is not affected.
	e.open(workers[1])

	// The same path id cannot be opened twice, for anyone.
	c := takeInCharge(workers[2])
	c.PathID = p1
	_, err := e.h.TakeInCharge(e.ctx, req(), c)
	wantErr(t, err, fault.CodePathExists, fault.Conflict)

	e.close(p1)
	p2 := e.open(workers[0])
	if p2 == p1 {
		t.Fatal("a new path reused the closed one's id")
	}
	wi, _ := e.store.Worker(e.ctx, e.vault.Pseudonym(workers[0]))
	if wi.OpenPath != p2 || !reflect.DeepEqual(wi.Paths, []string{p1, p2}) {
		t.Errorf("worker index %+v", wi)
	}
	// The closed path stays closed.
	_, err = e.h.DeliverSession(e.ctx, req(), p1, nil, session(1))
	wantErr(t, err, fault.CodePathClosed, fault.Rule)
}

func TestGroupSessionIsAllOrNothing(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(e *env, ids []string) []string // returns the participants
		code    string
		kind    fault.Kind
		field   string
	}{
		{"one participant closed", func(e *env, ids []string) []string {
			e.close(ids[3])
			return ids
		}, fault.CodePathClosed, fault.Rule, "participants"},
		{"one participant at the 06 limit", func(e *env, ids []string) []string {
			for i := 0; i < 3; i++ {
				e.deliver(ids[5], wp.SvcWorkshop)
			}
			return ids
		}, fault.CodeRepeatLimitReached, fault.Rule, "participants"},
		{"one participant not taken in charge", func(e *env, ids []string) []string {
			return append(ids[:5:5], "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a")
		}, fault.CodePathNotFound, fault.NotFound, "participants"},
		{"one participant erased", func(e *env, ids []string) []string {
			if _, err := e.h.EraseWorker(e.ctx, req(), workers[2]); err != nil {
				e.t.Fatal(err)
			}
			return ids
		}, fault.CodeWorkerErased, fault.Rule, "participants"},
		{"one participant taken in charge after the session", func(e *env, ids []string) []string {
			c := takeInCharge(workers[7])
			c.TakenAt = at("2011-03-11T09:00:00Z")
			res, err := e.h.TakeInCharge(e.ctx, req(), c)
			if err != nil {
				e.t.Fatal(err)
			}
			return append(ids[:5:5], res.PathID)
		}, fault.CodeInvalidDate, fault.Rule, "delivered_at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ids := c.prepare(e, e.openGroup(6))
			seq := e.store.lastSeq()
			_, err := e.h.DeliverGroupSession(e.ctx, req(), nil, group(wp.SvcWorkshop, ids...))
			fe := wantErr(t, err, c.code, c.kind)
			if fe.Field != c.field {
				t.Errorf("field %q, want %q", fe.Field, c.field)
			}
			if e.store.lastSeq() != seq {
				t.Error("part of the group was appended")
			}
		})
	}
}

func TestGroupSessionStatelessChecksComeFirst(t *testing.T) {
	e := newEnv(t)
	ids := e.openGroup(6)
	loads := len(e.store.loads)
	for _, c := range []struct {
		cmd   wp.DeliverGroupSession
		code  string
		kind  fault.Kind
		field string
	}{
		{group(wp.SvcGroup, ids[:3]...), fault.CodeGroupSizeOutOfRange, fault.Rule, "participants"},
		{group(wp.SvcIndividual, ids...), fault.CodeServiceNotAllowed, fault.Rule, "service"},
		{group(wp.SvcGroup, append(ids[:5:5], "not-a-path")...), fault.CodePathNotFound, fault.NotFound, "participants"},
		{group(wp.SvcGroup, append(ids[:5:5], ids[0])...), fault.CodeInvalidField, fault.Invalid, "participants"},
		{wp.DeliverGroupSession{GroupID: "G1", Service: 4, DeliveredAt: now, Minutes: 60, Participants: ids}, fault.CodeInvalidField, fault.Invalid, "group_id"},
	} {
		_, err := e.h.DeliverGroupSession(e.ctx, req(), nil, c.cmd)
		fe := wantErr(t, err, c.code, c.kind)
		if fe.Field != c.field {
			t.Errorf("%s: field %q, want %q", c.code, fe.Field, c.field)
		}
	}
	if len(e.store.loads) != loads {
		t.Error("input that needs no state reached the store")
	}
	// A small group is allowed with a justification, and flagged.
	c := group(wp.SvcGroup, ids[:3]...)
	c.Justification = "tre soli lavoratori in cassa integrazione nel comune"
	c.GroupID = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
	res, err := e.h.DeliverGroupSession(e.ctx, req(), nil, c)
	if err != nil {
		t.Fatal(err)
	}
	if res.GroupID != c.GroupID || len(res.Versions) != 3 {
		t.Errorf("result %+v", res)
	}
	for _, id := range ids[:3] {
		evs := e.store.events(id)
		s := evs[len(evs)-1].Event.(*wp.SessionDelivered)
		if !s.OutsideGroupRange || s.GroupSize != 3 || s.GroupID != c.GroupID || s.Justification != c.Justification {
			t.Errorf("session %+v", s)
		}
	}
}

func TestEraseWorker(t *testing.T) {
	e := newEnv(t)
	old := e.open(workers[0])
	e.deliver(old, wp.SvcCounselling)
	e.close(old)
	cur := e.open(workers[0])
	other := e.open(workers[1])
	ref := e.vault.Pseudonym(workers[0])

	res, err := e.h.EraseWorker(e.ctx, req(), " "+workers[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{old, cur} {
		evs := e.store.events(id)
		last, ok := evs[len(evs)-1].Event.(*wp.PersonalDataErased)
		if !ok || last.WorkerRef != ref || !last.ErasedAt.Equal(now) {
			t.Errorf("path %s ends with %v", id, types(evs))
		}
		if res.Versions[id] != e.store.version(id) {
			t.Errorf("version of %s: %d, path at %d", id, res.Versions[id], e.store.version(id))
		}
	}
	if got := types(e.store.events(other)); len(got) != 1 {
		t.Errorf("another worker's path was touched: %v", got)
	}
	if got := e.vault.erasedRefs(); !reflect.DeepEqual(got, []string{ref}) {
		t.Errorf("vault erased %v, want %s", got, ref)
	}
	if wi, _ := e.store.Worker(e.ctx, ref); !wi.Erased || wi.OpenPath != "" {
		t.Errorf("index %+v", wi)
	}
	// The statistics survive on the path; the path takes nothing more.
	if countService(e.store.events(old), 5) != 1 {
		t.Error("erasure lost a delivered session")
	}
	_, err = e.h.DeliverSession(e.ctx, req(), cur, nil, session(1))
	wantErr(t, err, fault.CodeWorkerErased, fault.Rule)
	_, err = e.h.TakeInCharge(e.ctx, req(), takeInCharge(workers[0]))
	wantErr(t, err, fault.CodeWorkerErased, fault.Rule)

	// Running it again records nothing more and destroys the key again.
	seq := e.store.lastSeq()
	again, err := e.h.EraseWorker(e.ctx, req(), workers[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.store.lastSeq() != seq || !reflect.DeepEqual(again.Versions, res.Versions) {
		t.Errorf("second erasure appended or answered differently: %+v vs %+v", again, res)
	}
	if len(e.vault.erasedRefs()) != 2 {
		t.Errorf("vault erased %v", e.vault.erasedRefs())
	}
}

// If destroying the key fails after the events landed, running the erasure
// again completes it.
func TestInterruptedErasureCompletes(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	e.vault.failing = 1
	_, err := e.h.EraseWorker(e.ctx, req(), workers[0])
	wantErr(t, err, fault.CodeUnavailable, fault.Unavailable)
	if got := types(e.store.events(p)); got[len(got)-1] != wp.TypePersonalDataErased {
		t.Fatalf("path holds %v", got)
	}
	seq := e.store.lastSeq()
	if _, err := e.h.EraseWorker(e.ctx, req(), workers[0]); err != nil {
		t.Fatal(err)
	}
	if e.store.lastSeq() != seq || len(e.vault.erasedRefs()) != 1 {
		t.Errorf("completion appended (%d->%d) or vault %v", seq, e.store.lastSeq(), e.vault.erasedRefs())
	}
}

func TestEraseRefusals(t *testing.T) {
	e := newEnv(t)
	e.open(workers[0])
	_, err := e.h.EraseWorker(e.ctx, req(), workers[1])
	wantErr(t, err, fault.CodeWorkerNotFound, fault.NotFound)
	fe := func() *fault.Error {
		_, err := e.h.EraseWorker(e.ctx, req(), "RSSMRA80A01H501X")
		return wantErr(t, err, fault.CodeInvalidTaxCode, fault.Rule)
	}()
	if fe.Field != "tax_code" {
		t.Errorf("field %q", fe.Field)
	}
	if len(e.vault.erasedRefs()) != 0 {
		t.Error("a refused erasure destroyed a key")
	}
}

// pathCommands are the commands addressed to one path.
var pathCommands = map[string]func(e *env, id string) error{
	"deliver_session": func(e *env, id string) error {
		_, err := e.h.DeliverSession(e.ctx, req(), id, nil, session(1))
		return err
	},
	"sign_pact": func(e *env, id string) error {
		_, err := e.h.SignPact(e.ctx, req(), id, nil, pact())
		return err
	},
	"activate_traineeship": func(e *env, id string) error {
		_, err := e.h.ActivateTraineeship(e.ctx, req(), id, nil, traineeship())
		return err
	},
	"verify_path": func(e *env, id string) error {
		_, err := e.h.VerifyPath(e.ctx, req(), id, nil, verify())
		return err
	},
	"record_no_show": func(e *env, id string) error {
		_, err := e.h.RecordNoShow(e.ctx, req(), id, nil, noShow())
		return err
	},
	"report_refusal": func(e *env, id string) error {
		_, err := e.h.ReportRefusal(e.ctx, req(), id, nil, refusal())
		return err
	},
	"close_path": func(e *env, id string) error {
		_, err := e.h.ClosePath(e.ctx, req(), id, nil, closing())
		return err
	},
	"deliver_group_session (one participant)": func(e *env, id string) error {
		c := group(wp.SvcGroup, id)
		c.Justification = "colloquio individuale sostitutivo"
		_, err := e.h.DeliverGroupSession(e.ctx, req(), nil, c)
		return err
	},
}

func TestUnknownPath(t *testing.T) {
	for name, run := range pathCommands {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.open(workers[0])
			wantErr(t, run(e, "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"), fault.CodePathNotFound, fault.NotFound)
		})
	}
}

// Path ids that are not canonical UUIDs cannot name a path: they are refused
// as unknown without reaching the store (they would also make bad subjects).
func TestNonUUIDPathIDs(t *testing.T) {
	bad := []string{"", "abc", "P-1", "7F3C2A1E-5B8D-4C6F-9A0E-1D2B3C4D5E6F", "{7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f}",
		"7f3c2a1e5b8d4c6f9a0e1d2b3c4d5e6f", "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f ", "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6g",
		"percorso.events.>", "*"}
	for name, run := range pathCommands {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			for _, id := range bad {
				wantErr(t, run(e, id), fault.CodePathNotFound, fault.NotFound)
			}
			if len(e.store.loads) != 0 {
				t.Errorf("malformed ids reached the store: %v", e.store.loads)
			}
		})
	}
}

func TestNonUUIDInputIDs(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	c := takeInCharge(workers[1])
	c.PathID = "P-1"
	_, err := e.h.TakeInCharge(e.ctx, req(), c)
	if fe := wantErr(t, err, fault.CodeInvalidField, fault.Invalid); fe.Field != "path_id" {
		t.Errorf("field %q", fe.Field)
	}
	s := session(1)
	s.SessionID = "S-1"
	_, err = e.h.DeliverSession(e.ctx, req(), p, nil, s)
	if fe := wantErr(t, err, fault.CodeInvalidField, fault.Invalid); fe.Field != "session_id" {
		t.Errorf("field %q", fe.Field)
	}
	tr := traineeship()
	tr.TraineeshipID = "T-1"
	_, err = e.h.ActivateTraineeship(e.ctx, req(), p, nil, tr)
	if fe := wantErr(t, err, fault.CodeInvalidField, fault.Invalid); fe.Field != "traineeship_id" {
		t.Errorf("field %q", fe.Field)
	}
}

// Rules that need no state refuse before the store is touched.
func TestTakeInChargeValidatesFirst(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*wp.TakeInCharge)
		code  string
		field string
	}{
		{"bad tax code", func(c *wp.TakeInCharge) { c.Worker.TaxCode = "RSSMRA80A01H501X" }, fault.CodeInvalidTaxCode, "worker.tax_code"},
		{"support mismatch", func(c *wp.TakeInCharge) { c.Category = "d" }, fault.CodeSupportMismatch, "support.kind"},
		{"unknown office", func(c *wp.TakeInCharge) { c.Office = "XX01" }, fault.CodeUnknownOffice, "office"},
		{"in the future", func(c *wp.TakeInCharge) { c.TakenAt = now.Add(time.Hour) }, fault.CodeInvalidDate, "taken_at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			in := takeInCharge(workers[0])
			c.edit(&in)
			_, err := e.h.TakeInCharge(e.ctx, req(), in)
			if fe := wantErr(t, err, c.code, fault.Rule); fe.Field != c.field {
				t.Errorf("field %q, want %q", fe.Field, c.field)
			}
			if len(e.store.loads) != 0 || e.store.appendCalls != 0 {
				t.Error("invalid input reached the store")
			}
		})
	}
}

// The edge's authorizer sees the loaded path and can stop the command,
// replays included.
func TestAuthorizer(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	forbidden := fault.New(fault.Forbidden, fault.CodeForbidden, "not your office")
	var seen []string
	auth := func(path *wp.Path) error {
		seen = append(seen, path.Office)
		if path.Office != "MO01" {
			return forbidden
		}
		return nil
	}
	peers := e.openGroupFrom(1, 6)
	seq := e.store.lastSeq()
	_, err := e.h.DeliverSession(e.ctx, req(), p, auth, session(1))
	wantErr(t, err, fault.CodeForbidden, fault.Forbidden)
	_, err = e.h.DeliverGroupSession(e.ctx, req(), auth, group(wp.SvcGroup, append([]string{p}, peers...)...))
	wantErr(t, err, fault.CodeForbidden, fault.Forbidden)
	if e.store.lastSeq() != seq {
		t.Error("an unauthorized command appended")
	}
	if !reflect.DeepEqual(seen, []string{"BO01", "BO01"}) {
		t.Errorf("authorizer saw %v", seen)
	}

	// A landed command replayed without its record is authorized again.
	res, err := e.h.DeliverSession(e.ctx, keyed("k", "d"), p, nil, session(1))
	if err != nil {
		t.Fatal(err)
	}
	e.idem.forget(command.CommandIDFor("mrossi", "k"))
	_, err = e.h.DeliverSession(e.ctx, keyed("k", "d"), p, auth, session(1))
	wantErr(t, err, fault.CodeForbidden, fault.Forbidden)
	if e.store.version(p) != res.Version {
		t.Error("a refused replay appended")
	}
}

// openGroupFrom opens paths for workers[from:to].
func (e *env) openGroupFrom(from, to int) []string {
	e.t.Helper()
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, e.open(workers[i]))
	}
	return ids
}

// Every event of a command has the id EventID(command id, i), which the
// stream deduplicates on, and the command's meta travels with it.
func TestEventIDsAndMeta(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	r := keyed("k-ids", "d")
	r.CorrelationID = "corr-1"
	if _, err := e.h.ActivateTraineeship(e.ctx, r, p, nil, traineeship()); err != nil {
		t.Fatal(err)
	}
	cmdID := command.CommandIDFor("mrossi", "k-ids")
	last := e.store.metas[len(e.store.metas)-1]
	if last != (command.Meta{CommandID: cmdID, Actor: "mrossi", CorrelationID: "corr-1"}) {
		t.Errorf("meta %+v", last)
	}
	for i := 0; i < 2; i++ {
		if !e.store.eventID[command.EventID(cmdID, i)] {
			t.Errorf("event %d of the command is not stored under EventID", i)
		}
	}
	// Without a correlation id, the command id stands in.
	if _, err := e.h.RecordNoShow(e.ctx, req(), p, nil, noShow()); err != nil {
		t.Fatal(err)
	}
	last = e.store.metas[len(e.store.metas)-1]
	if last.CorrelationID != last.CommandID || !command.ValidUUID(last.CommandID) {
		t.Errorf("meta %+v", last)
	}
}

// Rules refused by the aggregate come back unchanged through the handler.
func TestRuleRefusalsPassThrough(t *testing.T) {
	e := newEnv(t)
	p := e.open(workers[0])
	seq := e.store.lastSeq()
	for _, c := range []struct {
		name string
		err  error
		code string
	}{
		{"12 not due", func() error { _, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(12)); return err }(), fault.CodeVerificationNotDue},
		{"11 outside mobilità", func() error { _, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(11)); return err }(), fault.CodeServiceNotAllowed},
		{"unknown service", func() error { _, err := e.h.DeliverSession(e.ctx, req(), p, nil, session(13)); return err }(), fault.CodeUnknownService},
		{"bad host", func() error {
			c := traineeship()
			c.HostTaxCode = "00743110158"
			_, err := e.h.ActivateTraineeship(e.ctx, req(), p, nil, c)
			return err
		}(), fault.CodeInvalidTaxCode},
	} {
		if fault.CodeOf(c.err) != c.code {
			t.Errorf("%s: got %v, want %s", c.name, c.err, c.code)
		}
	}
	if e.store.lastSeq() != seq {
		t.Error("a refused command appended")
	}
}
