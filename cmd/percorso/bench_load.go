package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// The loaded stream: ordinary paths of ten events (the normal script
// below), and a few long paths of fifty events for the history figure. The
// events of a path are spread over a window of about 100k events, as a
// region's paths unfold over weeks among everyone else's, so reading one
// path touches many blocks of the file store.
const (
	benchGroupSize      = 8
	benchNormalEvents   = 10
	benchNormalCommands = 8
	benchLongEvents     = 50
	benchRounds         = 50
	benchMaxWindow      = 10000 // ordinary paths per window; a multiple of groupSize
	benchOperator       = "op.bench"
)

// benchPlan is how many paths of each kind a load of about n events makes.
type benchPlan struct {
	normal, long, window int
}

func newBenchPlan(events int) benchPlan {
	long := max(events/10000, 4)
	normal := max((events-long*benchLongEvents)/benchNormalEvents, benchGroupSize)
	normal -= normal % benchGroupSize
	return benchPlan{normal: normal, long: long, window: min(normal, benchMaxWindow)}
}

func (p benchPlan) events() int { return p.normal*benchNormalEvents + p.long*benchLongEvents }

// messages counts the events and a worker-index entry per path.
func (p benchPlan) messages() int { return p.events() + p.normal + p.long }

// benchLoad is what a load leaves behind for the figures that read it.
type benchLoad struct {
	Events    int     `json:"events"`
	Paths     int     `json:"paths"`
	LongPaths int     `json:"long_paths"`
	Messages  int     `json:"messages"` // events plus worker-index entries
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"messages_per_s"`
	LastSeq   uint64  `json:"last_event_seq"`
	long      []string
}

// benchLoader publishes what the command handler would append for a region's
// worth of commands, decided by the domain (so every event obeys the rules)
// and encoded exactly as natsjs.Store.Append encodes them — envelope,
// back-pointers, hash chain, personal data sealed under the worker's own key,
// worker-index entries — but asynchronously and without per-subject
// expectations: it predicts each message's sequence and checks every
// acknowledgement against it, so a chain can never point at the wrong
// message. Messages carry no Nats-Msg-Id: a year's stream loaded in seconds
// would otherwise leave the server holding every id of its two-minute
// duplicate window, which no real stream does.
type benchLoader struct {
	js        jetstream.JetStream
	codec     *eventstore.Codec
	pseudo    func(taxCode string) string
	next      uint64
	lastEvent uint64
	window    []benchAck
	done      int
	total     int
	progress  func(done, remaining uint64)
	taxBase   int
	offices   []string
}

type benchAck struct {
	fut jetstream.PubAckFuture
	seq uint64
}

// benchPath is a path being written, with what the next event must chain to.
type benchPath struct {
	n        int
	long     bool
	p        *workerpath.Path
	id       string
	headSeq  uint64
	headHash string
	day      time.Time
	tic      *workerpath.TakenInCharge
	ticData  []byte
}

func newBenchLoader(js jetstream.JetStream, codec *eventstore.Codec, pseudo func(string) string, lastSeq uint64, progress func(done, remaining uint64)) *benchLoader {
	var offices []string
	for _, o := range office.All() {
		offices = append(offices, o.Code)
	}
	return &benchLoader{js: js, codec: codec, pseudo: pseudo, next: lastSeq + 1, progress: progress,
		taxBase: rand.IntN(200_000_000), offices: offices}
}

// run loads the plan and returns once every message is acknowledged.
func (l *benchLoader) run(ctx context.Context, plan benchPlan) (*benchLoad, error) {
	start := time.Now()
	l.total = plan.events()
	res := &benchLoad{}
	windows := (plan.normal + plan.window - 1) / plan.window
	longDone := 0
	for w := range windows {
		lo := w * plan.window
		hi := min(lo+plan.window, plan.normal)
		nLong := (w+1)*plan.long/windows - longDone
		paths := make([]*benchPath, 0, hi-lo+nLong)
		for i := lo; i < hi; i++ {
			paths = append(paths, l.newPath(i, false, w))
		}
		for i := range nLong {
			lp := l.newPath(plan.normal+longDone+i, true, w)
			paths = append(paths, lp)
			res.long = append(res.long, lp.id)
		}
		longDone += nLong
		if err := l.prepare(ctx, paths); err != nil {
			return nil, err
		}
		if err := l.window50(ctx, paths, hi-lo); err != nil {
			return nil, err
		}
	}
	if err := l.settle(ctx); err != nil {
		return nil, err
	}
	// The messages after the last acknowledged one: the stream must end
	// where the loader does.
	st, err := l.js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.State.LastSeq == l.next-1 {
			break
		}
		if info.State.LastSeq > l.next-1 || time.Now().After(deadline) {
			return nil, fmt.Errorf("bench data: the stream ends at %d, the load at %d", info.State.LastSeq, l.next-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	res.Events = l.done
	res.Paths = plan.normal + plan.long
	res.LongPaths = plan.long
	res.Messages = l.done + res.Paths
	res.Seconds = d.Seconds()
	res.PerSecond = float64(res.Messages) / d.Seconds()
	res.LastSeq = l.lastEvent
	return res, nil
}

func (l *benchLoader) newPath(n int, long bool, window int) *benchPath {
	// A group's members are taken in charge the same day, so their events
	// are in the same order in time as on the stream.
	day := time.Date(2010, 1, 11, 8, 0, 0, 0, time.UTC).AddDate(0, 0, window*7+(n/benchGroupSize)%20)
	return &benchPath{n: n, long: long, p: &workerpath.Path{}, id: command.NewUUID(), day: day}
}

// benchTaxCode is the n-th of 26^6 distinct valid codici fiscali.
func benchTaxCode(n int) string {
	var b [16]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte('A' + n%26)
		n /= 26
	}
	copy(b[6:], "80A01H501")
	c, _ := taxcode.CheckChar(string(b[:15]))
	b[15] = c
	return string(b[:])
}

// benchPerson is a plausible worker; the name letters repeat the code's.
func benchPerson(code string, n int) workerpath.Person {
	p := workerpath.Person{TaxCode: code, GivenName: "Nome " + code[3:6], FamilyName: "Cognome " + code[:3],
		BirthDate: workerpath.MustDate("1960-01-01").AddDays(n % 10000), Disability: n%7 == 0}
	if n%11 == 0 {
		p.MediatorLanguage = "ar"
	}
	return p
}

// benchCategory spreads workers over the five types with the right support.
func benchCategory(n int) (string, workerpath.Support) {
	cats := []struct{ cat, kind string }{
		{"a", workerpath.SupportCIG}, {"b", workerpath.SupportCIG}, {"c", workerpath.SupportCIG},
		{"d", workerpath.SupportMobilita}, {"e", workerpath.SupportCoCoPro},
	}
	c := cats[n%len(cats)]
	return c.cat, workerpath.Support{Kind: c.kind, From: workerpath.MustDate("2010-01-04"), To: workerpath.MustDate("2011-12-31")}
}

// prepare decides and seals every take-in-charge of a window in parallel:
// sealing creates the worker's key in the key bucket, a round trip each.
func (l *benchLoader) prepare(ctx context.Context, paths []*benchPath) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	work := make(chan *benchPath)
	for range 8 {
		wg.Go(func() {
			for lp := range work {
				if err := l.decideTIC(ctx, lp); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, lp := range paths {
		work <- lp
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (l *benchLoader) decideTIC(ctx context.Context, lp *benchPath) error {
	code := benchTaxCode(l.taxBase + lp.n)
	cat, sup := benchCategory(lp.n)
	off := "BO01"
	if lp.n%2 == 1 {
		off = l.offices[lp.n/2%len(l.offices)]
	}
	at := lp.day.Add(time.Hour)
	evs, err := (&workerpath.Path{}).TakeInCharge(workerpath.Ctx{Operator: benchOperator, Now: at.Add(30 * time.Minute)},
		workerpath.TakeInCharge{PathID: lp.id, WorkerRef: l.pseudo(code), Worker: benchPerson(code, lp.n), Category: cat,
			Support: sup, Office: off, TakenAt: at})
	if err != nil {
		return fmt.Errorf("bench data: take in charge: %w", err)
	}
	lp.tic = evs[0].(*workerpath.TakenInCharge)
	lp.ticData, err = l.codec.Encode(ctx, lp.tic)
	return err
}

// window50 writes a window's paths over fifty rounds. An ordinary path acts
// every sixth round (offset by its group, so rounds are evenly loaded), a
// long path every round.
func (l *benchLoader) window50(ctx context.Context, paths []*benchPath, normal int) error {
	for r := range benchRounds {
		for i := 0; i < len(paths); i++ {
			lp := paths[i]
			if lp.long {
				if r < benchLongEvents-1 {
					if err := l.longStep(ctx, lp, r); err != nil {
						return err
					}
				}
				continue
			}
			off := (i / benchGroupSize) % 6
			if r < off || (r-off)%6 != 0 || (r-off)/6 >= benchNormalCommands {
				continue
			}
			k := (r - off) / 6
			if k == 4 {
				// The group session: the whole group at once, from its first member.
				if i%benchGroupSize == 0 {
					if err := l.group(ctx, paths[i:i+benchGroupSize], lp.day.AddDate(0, 0, 13).Add(2*time.Hour)); err != nil {
						return err
					}
				}
				continue
			}
			if err := l.normalStep(ctx, lp, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *benchLoader) normalStep(ctx context.Context, lp *benchPath, k int) error {
	at := lp.day.AddDate(0, 0, 3*k).Add(2 * time.Hour)
	switch k {
	case 0:
		return l.takeInCharge(ctx, lp)
	case 1:
		return l.session(ctx, lp, 2, at, &workerpath.PactInput{SignedAt: at.Add(20 * time.Minute), DIDOn: workerpath.DateOf(at)})
	case 2:
		return l.session(ctx, lp, 3, at, nil)
	case 3, 5:
		return l.session(ctx, lp, 5, at, nil)
	case 6:
		return l.session(ctx, lp, 9, at, nil)
	case 7:
		cmd := command.NewUUID()
		evs, err := lp.p.VerifyPath(l.ctx(at), workerpath.VerifyPath{SessionID: command.NameUUID(cmd, "session"), VerifiedAt: at,
			Outcome: workerpath.OutcomePartiallyAchieved, Minutes: 55})
		if err != nil {
			return fmt.Errorf("bench data: verification: %w", err)
		}
		return l.append(ctx, cmd, []benchWrite{{lp, evs}}, false)
	}
	return nil
}

// longStep is command r of a long path: take-in-charge, access with the
// patto, then repeatable services.
func (l *benchLoader) longStep(ctx context.Context, lp *benchPath, r int) error {
	at := lp.day.AddDate(0, 0, r).Add(2 * time.Hour)
	switch r {
	case 0:
		return l.takeInCharge(ctx, lp)
	case 1:
		return l.session(ctx, lp, 2, at, &workerpath.PactInput{SignedAt: at.Add(20 * time.Minute), DIDOn: workerpath.DateOf(at)})
	}
	return l.session(ctx, lp, []int{1, 3, 9, 10}[r%4], at, nil)
}

func (l *benchLoader) ctx(at time.Time) workerpath.Ctx {
	return workerpath.Ctx{Operator: benchOperator, Now: at.Add(30 * time.Minute)}
}

func (l *benchLoader) takeInCharge(ctx context.Context, lp *benchPath) error {
	cmd := command.NewUUID()
	return l.append(ctx, cmd, []benchWrite{{lp, []workerpath.Event{lp.tic}}}, true)
}

func (l *benchLoader) session(ctx context.Context, lp *benchPath, service int, at time.Time, pact *workerpath.PactInput) error {
	cmd := command.NewUUID()
	evs, err := lp.p.DeliverSession(l.ctx(at), workerpath.DeliverSession{SessionID: command.NameUUID(cmd, "session"), Service: service,
		DeliveredAt: at, Minutes: 30 + service*5, MediatorPresent: lp.p.Worker.MediatorLanguage != "", Pact: pact})
	if err != nil {
		return fmt.Errorf("bench data: service %d: %w", service, err)
	}
	return l.append(ctx, cmd, []benchWrite{{lp, evs}}, false)
}

func (l *benchLoader) group(ctx context.Context, members []*benchPath, at time.Time) error {
	cmd := command.NewUUID()
	ids := make([]string, len(members))
	for i, lp := range members {
		ids[i] = lp.id
	}
	c := workerpath.DeliverGroupSession{GroupID: command.NameUUID(cmd, "group"), Service: 4, DeliveredAt: at, Minutes: 230, Participants: ids}
	writes := make([]benchWrite, len(members))
	for i, lp := range members {
		evs, err := lp.p.DeliverInGroup(l.ctx(at), c)
		if err != nil {
			return fmt.Errorf("bench data: group session: %w", err)
		}
		evs[0].(*workerpath.SessionDelivered).SessionID = command.NameUUID(cmd, "session/"+lp.id)
		writes[i] = benchWrite{lp, evs}
	}
	return l.append(ctx, cmd, writes, false)
}

type benchWrite struct {
	lp  *benchPath
	evs []workerpath.Event
}

// append writes a command's events as natsjs.Store.Append lays them out:
// event ids from the command id, the first event of each path pointing back
// at the path's last sequence, later ones marked as following it in the
// batch, and the worker-index entry last.
func (l *benchLoader) append(ctx context.Context, cmd string, writes []benchWrite, index bool) error {
	n := 0
	for _, w := range writes {
		lp := w.lp
		for j, ev := range w.evs {
			var data []byte
			var err error
			if ev == workerpath.Event(lp.tic) {
				data = lp.ticData
			} else if data, err = l.codec.Encode(ctx, ev); err != nil {
				return err
			}
			env := &eventstore.Envelope{ID: command.EventID(cmd, n), Type: ev.EventType(), SchemaVersion: eventstore.SchemaVersion,
				PathID: lp.id, Time: ev.Header().RecordedAt, Actor: benchOperator, CommandID: cmd, CorrelationID: cmd,
				PrevHash: lp.headHash, Data: data}
			if j == 0 {
				env.PrevSeq = lp.headSeq
			} else {
				env.PrevInBatch = true
			}
			env.Hash = env.ComputeHash()
			msg := nats.NewMsg(eventstore.EventSubject(lp.id))
			for k, v := range env.Headers() {
				if k != eventstore.HdrMsgID {
					msg.Header[k] = []string{v}
				}
			}
			msg.Data = data
			seq, err := l.publish(ctx, msg)
			if err != nil {
				return err
			}
			lp.p.Apply(ev)
			lp.headSeq, lp.headHash = seq, env.Hash
			l.lastEvent = seq
			n++
			l.done++
		}
	}
	if index {
		lp := writes[0].lp
		data, err := json.Marshal(map[string]any{"path_id": lp.id, "status": command.IndexOpen, "paths": []string{lp.id}})
		if err != nil {
			return err
		}
		msg := nats.NewMsg(eventstore.WorkerSubject(lp.tic.WorkerRef))
		for k, v := range eventstore.IndexHeaders(command.NameUUID(cmd, "index"), lp.tic.WorkerRef, command.IndexOpen, cmd, lp.tic.RecordedAt) {
			msg.Header[k] = []string{v}
		}
		// Loaded messages carry no message id (see the events above).
		delete(msg.Header, eventstore.HdrMsgID)
		msg.Data = data
		if _, err := l.publish(ctx, msg); err != nil {
			return err
		}
		// The path is written: its sealed data is no longer needed.
		lp.ticData = nil
	}
	return nil
}

// publish sends a message and returns the sequence it will get. Only every
// ackEvery-th message asks for an acknowledgement: the stream stores one
// connection's messages in order, so an acknowledgement carrying the
// predicted sequence proves every message before it was stored where its
// successors' back-pointers say, and the acknowledgements in flight bound
// how far the loader runs ahead of the server.
func (l *benchLoader) publish(ctx context.Context, msg *nats.Msg) (uint64, error) {
	seq := l.next
	l.next++
	if seq%benchAckEvery != 0 {
		return seq, l.js.Conn().PublishMsg(msg)
	}
	fut, err := l.js.PublishMsgAsync(msg)
	if err != nil {
		return 0, err
	}
	l.window = append(l.window, benchAck{fut, seq})
	if len(l.window) >= benchMaxPendingAcks {
		if err := l.settleTo(ctx, benchMaxPendingAcks/2); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

const (
	benchAckEvery = 128
	// benchMaxPendingAcks bounds the acknowledgements awaited, and so the
	// messages in flight (ackEvery times as many); the JetStream context
	// is made with room for it.
	benchMaxPendingAcks = 32
)

// settle waits for every outstanding acknowledgement.
func (l *benchLoader) settle(ctx context.Context) error { return l.settleTo(ctx, 0) }

// settleTo waits for the oldest acknowledgements until at most keep remain,
// checking that each message got the sequence its successors'
// back-pointers were computed with.
func (l *benchLoader) settleTo(ctx context.Context, keep int) error {
	n := len(l.window) - keep
	for _, w := range l.window[:n] {
		select {
		case ack := <-w.fut.Ok():
			if ack.Sequence != w.seq {
				return fmt.Errorf("bench data: a message was stored at %d, the chain expected %d: is the stream receiving other writes?", ack.Sequence, w.seq)
			}
		case err := <-w.fut.Err():
			return fmt.Errorf("bench data: publish: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.window = append(l.window[:0], l.window[n:]...)
	if l.progress != nil {
		l.progress(uint64(l.done), uint64(max(l.total-l.done, 0)))
	}
	return nil
}
