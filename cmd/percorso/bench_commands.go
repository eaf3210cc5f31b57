package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// A regional office's day, as one operator client works it: a group of
// eight workers is taken in charge, each gets the access interview where
// the patto is prepared, signs the patto, has an individual interview and a
// consulenza, attends a group workshop together with the other seven, a
// second consulenza, and a verification interview. Then the next eight.
// Per 57 commands: 8 take-in-charge, 32 individual sessions, 8 pacts, 1
// group session (8 events, one atomic batch), 8 verifications (2 events
// each): 72 events and 8 worker-index entries.
type mixStage struct {
	name   string // NATS command name
	group  bool   // once for the eight paths
	events int    // per command
}

var mixStages = []mixStage{
	{"take_in_charge", false, 1},
	{"deliver_session", false, 1}, // 02 access
	{"sign_pact", false, 1},
	{"deliver_session", false, 1}, // 03 individual interview
	{"deliver_session", false, 1}, // 05 consulenza
	{"deliver_group_session", true, benchGroupSize},
	{"deliver_session", false, 1}, // 05 consulenza
	{"verify_path", false, 2},
}

// mixCommand is one command of the script.
type mixCommand struct {
	name   string
	pathID string // "" for take_in_charge and group sessions
	body   string // without path_id
	events int
}

// mixClient is one operator working through groups of eight workers.
type mixClient struct {
	nextTax func() int
	paths   [benchGroupSize]string
	stage   int
	member  int
}

// next is the command to send; done records its answer.
func (c *mixClient) next() mixCommand {
	st := mixStages[c.stage]
	day := "2010-03-01"
	at := func(hour int) string { return fmt.Sprintf("%sT%02d:%02d:00+01:00", day, 9+hour, c.member*5) }
	p := c.paths[c.member]
	switch c.stage {
	case 0:
		n := c.nextTax()
		code := benchTaxCode(n)
		cat, sup := benchCategory(n)
		dis := "false"
		if n%7 == 0 {
			dis = "true"
		}
		return mixCommand{name: st.name, events: 1, body: fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":"Nome %s","family_name":"Cognome %s","birth_date":"1971-05-04","disability":%s},`+
			`"category":%q,"support":{"kind":%q,"from":"2010-01-04","to":"2011-12-31"},"office":"BO01","taken_at":"2010-03-01T08:30:00+01:00"}`,
			code, code[3:6], code[:3], dis, cat, sup.Kind)}
	case 1:
		return mixCommand{name: st.name, pathID: p, events: 1, body: fmt.Sprintf(`{"service":2,"delivered_at":%q,"minutes":25}`, at(0))}
	case 2:
		return mixCommand{name: st.name, pathID: p, events: 1, body: fmt.Sprintf(`{"signed_at":%q,"did_on":%q}`, at(1), day)}
	case 3:
		return mixCommand{name: st.name, pathID: p, events: 1, body: fmt.Sprintf(`{"service":3,"delivered_at":%q,"minutes":55}`, at(2))}
	case 4, 6:
		return mixCommand{name: st.name, pathID: p, events: 1, body: fmt.Sprintf(`{"service":5,"delivered_at":%q,"minutes":80,"mediator_present":%t}`, at(c.stage), c.member == 3)}
	case 5:
		ids, _ := json.Marshal(c.paths[:])
		return mixCommand{name: st.name, events: benchGroupSize, body: fmt.Sprintf(`{"service":4,"delivered_at":"%sT14:00:00+01:00","minutes":230,"participants":%s}`, day, ids)}
	default:
		return mixCommand{name: st.name, pathID: p, events: 2, body: fmt.Sprintf(`{"verified_at":%q,"outcome":"achieved","minutes":50}`, at(8))}
	}
}

func (c *mixClient) done(res benchReply) {
	if c.stage == 0 {
		c.paths[c.member] = res.PathID
	}
	if mixStages[c.stage].group {
		c.member = benchGroupSize - 1
	}
	c.member++
	if c.member == benchGroupSize {
		c.member = 0
		c.stage = (c.stage + 1) % len(mixStages)
	}
}

// benchReply is the part of a command's answer the bench needs.
type benchReply struct {
	PathID   string            `json:"path_id"`
	Version  uint64            `json:"version"`
	Versions map[string]uint64 `json:"versions"`
}

// seq is the highest stream sequence the command wrote.
func (r benchReply) seq() uint64 {
	s := r.Version
	for _, v := range r.Versions {
		s = max(s, v)
	}
	return s
}

// benchSender sends one command over a transport.
type benchSender func(ctx context.Context, c mixCommand) (benchReply, error)

var benchHTTPRoutes = map[string]string{
	"take_in_charge":        "/v1/paths",
	"deliver_session":       "/v1/paths/%s/sessions",
	"sign_pact":             "/v1/paths/%s/pact",
	"deliver_group_session": "/v1/group-sessions",
	"verify_path":           "/v1/paths/%s/verification",
}

// benchHTTPSender posts commands as an operator app does, over a pool of
// keep-alive connections large enough for every client.
func benchHTTPSender(base, token string, clients int) benchSender {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute,
	}}
	return func(ctx context.Context, c mixCommand) (benchReply, error) {
		route := benchHTTPRoutes[c.name]
		if c.pathID != "" {
			route = fmt.Sprintf(route, c.pathID)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+route, strings.NewReader(c.body))
		if err != nil {
			return benchReply{}, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return benchReply{}, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return benchReply{}, err
		}
		if resp.StatusCode/100 != 2 {
			return benchReply{}, &benchRefusal{command: c.name, status: resp.StatusCode, code: benchErrorCode(raw)}
		}
		var r benchReply
		err = json.Unmarshal(raw, &r)
		return r, err
	}
}

// benchErrorCode is the code of an API error body, never its message (which may
// quote input).
func benchErrorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "unreadable error body"
	}
	return e.Error.Code
}

// benchNATSSender sends commands as NATS requests on one shared connection.
func benchNATSSender(nc *nats.Conn, token string) benchSender {
	return func(ctx context.Context, c mixCommand) (benchReply, error) {
		body := c.body
		if c.pathID != "" {
			body = `{"path_id":"` + c.pathID + `",` + body[1:]
		}
		msg := nats.NewMsg(natsapi.SubjectPrefix + c.name)
		msg.Header.Set("Authorization", "Bearer "+token)
		msg.Data = []byte(body)
		resp, err := nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			return benchReply{}, err
		}
		if code := resp.Header.Get("Nats-Service-Error-Code"); code != "" {
			status, _ := strconv.Atoi(code)
			return benchReply{}, &benchRefusal{command: c.name, status: status, code: benchErrorCode(resp.Data)}
		}
		var r benchReply
		err = json.Unmarshal(resp.Data, &r)
		return r, err
	}
}

// benchOp is one operation of a client: a command, or a raw publish.
type benchOp func(ctx context.Context) (benchResult, error)

type benchResult struct {
	kind    string // the command's name, for the per-command figures
	events  int
	seq     uint64 // the highest stream sequence written
	refused string // status and code, when percorso turned the command away under load
}

// benchRefusal is an error answer of percorso to a command.
type benchRefusal struct {
	command string
	status  int
	code    string
}

func (r *benchRefusal) Error() string { return fmt.Sprintf("%s: %d %s", r.command, r.status, r.code) }

// underLoad: percorso turned the command away for want of capacity (503,
// 429), which a client retries, as opposed to refusing it (4xx), which
// would mean the bench's script is wrong.
func (r *benchRefusal) underLoad() bool { return r.status >= 500 || r.status == 429 }

// mixOp makes an operator client's next command over a transport. A
// command turned away under load is reported and left for the client to
// try again: its place in the script does not move.
func mixOp(send benchSender, c *mixClient) benchOp {
	return func(ctx context.Context) (benchResult, error) {
		cmd := c.next()
		r, err := send(ctx, cmd)
		var ref *benchRefusal
		if errors.As(err, &ref) && ref.underLoad() {
			return benchResult{kind: cmd.name, refused: fmt.Sprintf("%d %s", ref.status, ref.code)}, nil
		}
		if err != nil {
			return benchResult{}, err
		}
		c.done(r)
		return benchResult{kind: cmd.name, events: cmd.events, seq: r.seq()}, nil
	}
}

// benchRawStream is the baseline's stream: the settings of the event stream
// (file storage, no limits, the server's sync policy) on subjects of its own.
const (
	benchRawStream   = "BENCH_RAW"
	benchRawSubjects = "bench.raw.>"
)

func benchProvisionRaw(ctx context.Context, js jetstream.JetStream, replicas int) error {
	cfg := jetstream.StreamConfig{Name: benchRawStream, Subjects: []string{benchRawSubjects}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxMsgs: -1, MaxBytes: -1, MaxMsgsPerSubject: -1, MaxConsumers: -1,
		Discard: jetstream.DiscardNew, Replicas: replicas, Duplicates: 2 * time.Minute, AllowDirect: true}
	_, err := js.CreateOrUpdateStream(ctx, cfg)
	return err
}

// benchRawMessage is what a one-event command appends, prepared once: the same
// headers and data, a new message id per publish.
func benchRawMessage(ctx context.Context, codec *eventstore.Codec) (nats.Header, []byte, error) {
	path := command.NewUUID()
	at := time.Date(2010, 3, 1, 10, 0, 0, 0, time.UTC)
	ev := &workerpath.SessionDelivered{Meta: workerpath.Meta{PathID: path, Office: "BO01", Operator: "op.bench", RecordedAt: at},
		SessionID: command.NewUUID(), Service: 5, DeliveredAt: at, StandardMinutes: 90, CreditedMinutes: 90, ActualMinutes: 80,
		CatalogueVersion: workerpath.CatalogueVersion}
	data, err := codec.Encode(ctx, ev)
	if err != nil {
		return nil, nil, err
	}
	env := &eventstore.Envelope{ID: command.NewUUID(), Type: ev.EventType(), SchemaVersion: eventstore.SchemaVersion, PathID: path,
		Time: at, Actor: "op.bench", CommandID: command.NewUUID(), CorrelationID: command.NewUUID(), PrevSeq: 1, PrevHash: strings.Repeat("0", 64), Data: data}
	env.Hash = env.ComputeHash()
	h := nats.Header{}
	for k, v := range env.Headers() {
		h.Set(k, v)
	}
	return h, data, nil
}

// benchRawOp publishes like a one-event command: round-robin over eight subjects
// of its own, each publish expecting the subject's last sequence.
func benchRawOp(js jetstream.JetStream, hdr nats.Header, data []byte, prefix string) benchOp {
	subjects := make([]string, benchGroupSize)
	last := make([]uint64, benchGroupSize)
	for i := range subjects {
		subjects[i] = prefix + command.NewUUID()
	}
	i := 0
	return func(ctx context.Context) (benchResult, error) {
		k := i % benchGroupSize
		i++
		msg := nats.NewMsg(subjects[k])
		for name, v := range hdr {
			msg.Header[name] = v
		}
		msg.Header.Set(eventstore.HdrMsgID, command.NewUUID())
		msg.Data = data
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last[k]))
		if err != nil {
			return benchResult{}, err
		}
		last[k] = ack.Sequence
		return benchResult{kind: "publish", events: 1, seq: ack.Sequence}, nil
	}
}

// benchStats is what a closed-loop run measured.
type benchStats struct {
	ops     int
	events  int
	elapsed time.Duration
	lat     []time.Duration
	top     uint64 // the highest sequence written
	byName  map[string][]time.Duration
	refused map[string]int // commands turned away under load, by status and code
}

func (s benchStats) perSecond() float64 { return float64(s.ops) / s.elapsed.Seconds() }

// benchClosed runs clients, each sending its next operation as soon as the
// previous one is answered, for d. An error stops the run: the mix is valid
// by construction, so any refusal is a fault to report, not a figure.
func benchClosed(ctx context.Context, clients int, d time.Duration, newOp func(i int) benchOp) (benchStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ops := make([]benchOp, clients)
	for i := range ops {
		ops[i] = newOp(i)
	}
	lats := make([][]time.Duration, clients)
	kinds := make([][]string, clients)
	refused := make([]map[string]int, clients)
	events := make([]int, clients)
	tops := make([]uint64, clients)
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				r, err := ops[i](ctx)
				if err != nil {
					if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if r.refused != "" {
					if refused[i] == nil {
						refused[i] = map[string]int{}
					}
					refused[i][r.refused]++
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
				kinds[i] = append(kinds[i], r.kind)
				events[i] += r.events
				tops[i] = max(tops[i], r.seq)
			}
		})
	}
	wg.Wait()
	st := benchStats{elapsed: time.Since(start)}
	if firstErr != nil {
		return st, firstErr
	}
	st.byName = map[string][]time.Duration{}
	st.refused = map[string]int{}
	for i := range clients {
		for k, n := range refused[i] {
			st.refused[k] += n
		}
		st.lat = append(st.lat, lats[i]...)
		st.events += events[i]
		st.top = max(st.top, tops[i])
		for j, k := range kinds[i] {
			st.byName[k] = append(st.byName[k], lats[i][j])
		}
	}
	st.ops = len(st.lat)
	return st, nil
}

// benchPct is the q-quantile of ds in milliseconds.
func benchPct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s)) + 0.5)
	i = min(max(i-1, 0), len(s)-1)
	return float64(s[i].Nanoseconds()) / 1e6
}

// benchCommandFigure is one transport at one concurrency, beside the raw
// publishes at the same concurrency on the same server.
type benchCommandFigure struct {
	Sync         string   `json:"sync"`
	Transport    string   `json:"transport"`
	Clients      int      `json:"clients"`
	Commands     int      `json:"commands"`
	CommandsPerS float64  `json:"commands_per_s"`
	EventsPerS   float64  `json:"events_per_s"`
	P50ms        float64  `json:"p50_ms"`
	P99ms        float64  `json:"p99_ms"`
	RawPerS      float64  `json:"raw_publishes_per_s"`
	RawP50ms     float64  `json:"raw_p50_ms"`
	RawP99ms     float64  `json:"raw_p99_ms"`
	Ratio        float64  `json:"x_raw"` // commands/s over raw publishes/s
	CPU          benchCPU `json:"cpu"`
	// ByCommand is the latency of each command of the mix, which tells
	// the one-message commands from the atomic batches.
	ByCommand map[string]benchLatency `json:"by_command"`
	// Refused counts commands percorso turned away under load (by status
	// and error code); the client sent them again.
	Refused map[string]int `json:"refused,omitempty"`
}

type benchLatency struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

func benchLatencies(by map[string][]time.Duration) map[string]benchLatency {
	out := map[string]benchLatency{}
	for k, ds := range by {
		out[k] = benchLatency{N: len(ds), P50ms: benchPct(ds, 0.5), P99ms: benchPct(ds, 0.99)}
	}
	return out
}

// benchCommands measures the mix over HTTP and NATS at each concurrency,
// each level beside its raw baseline, waiting between runs for the
// projection to drain so that no run pays for the previous one's backlog.
func (b *bench) benchCommands(ctx context.Context, sys *benchSystem) ([]benchCommandFigure, error) {
	hdr, data, err := benchRawMessage(ctx, sys.codec)
	if err != nil {
		return nil, err
	}
	if err := benchProvisionRaw(ctx, sys.js, sys.replicas); err != nil {
		return nil, fmt.Errorf("baseline stream: %w", err)
	}
	nc, err := nats.Connect(sys.natsURL, nats.Name("percorso-bench-commands"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	transports := []struct {
		name string
		op   func(clients int) func(i int) benchOp
	}{
		{"raw", func(int) func(int) benchOp {
			return func(int) benchOp { return benchRawOp(sys.js, hdr, data, "bench.raw.") }
		}},
		// Client i of n works as operator i*64/n: operators spread evenly
		// over the script, so that a run at any number of clients sees the
		// whole mix, not the part of the script the first operators are at.
		{"http", func(clients int) func(int) benchOp {
			send := benchHTTPSender(sys.httpURL, sys.operator, clients)
			return func(i int) benchOp { return mixOp(send, sys.mix[i*mixClients/clients]) }
		}},
		{"nats", func(clients int) func(int) benchOp {
			send := benchNATSSender(nc, sys.operator)
			return func(i int) benchOp { return mixOp(send, sys.mix[i*mixClients/clients]) }
		}},
	}
	b.progressf("commands (%s): warming up, and spreading the 64 operators over the office's script", sys.sync)
	if _, err := benchClosed(ctx, 4, b.cmdDur/4, transports[0].op(4)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	top, err := b.staggerMix(ctx, sys)
	if err != nil {
		return nil, err
	}
	if err := b.drain(ctx, sys, top); err != nil {
		return nil, err
	}
	var out []benchCommandFigure
	for _, clients := range []int{1, 16, 64} {
		var raw benchStats
		for _, t := range transports {
			b.progressf("commands (%s): %s, %d client(s), %s", sys.sync, t.name, clients, b.cmdDur)
			stop := b.profile(fmt.Sprintf("commands-%s-%s-%d", sys.sync, t.name, clients))
			cpu := sys.cpuMeter()
			st, err := benchClosed(ctx, clients, b.cmdDur, t.op(clients))
			share := cpu.share()
			stop()
			if err != nil {
				return nil, fmt.Errorf("%s at %d clients: %w", t.name, clients, err)
			}
			if t.name == "raw" {
				raw = st
				continue
			}
			out = append(out, benchCommandFigure{Sync: sys.sync, Transport: t.name, Clients: clients, Commands: st.ops,
				CommandsPerS: st.perSecond(), EventsPerS: float64(st.events) / st.elapsed.Seconds(),
				P50ms: benchPct(st.lat, 0.50), P99ms: benchPct(st.lat, 0.99),
				RawPerS: raw.perSecond(), RawP50ms: benchPct(raw.lat, 0.50), RawP99ms: benchPct(raw.lat, 0.99),
				Ratio: st.perSecond() / raw.perSecond(), CPU: share, ByCommand: benchLatencies(st.byName), Refused: st.refused})
			if err := b.drain(ctx, sys, st.top); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// taxBase keeps the command mix's workers apart from the loaded ones and
// from an earlier run's on the same system.
func (b *bench) taxBase(sys *benchSystem) int {
	return 250_000_000 + int(time.Now().UnixNano()/1000%50_000_000)
}

// mixClients is the number of operators: the most clients a run uses.
const mixClients = 64

// staggerMix makes the system's operators, and moves operator i
// i/64ths of the way through the office's script (over HTTP, unmeasured):
// fresh operators would all start with eight take-in-charges, and a short
// run at 64 clients would measure nothing else. The operators keep their
// place from run to run, on either transport.
func (b *bench) staggerMix(ctx context.Context, sys *benchSystem) (uint64, error) {
	var taxSeq atomic.Int64
	taxSeq.Store(int64(b.taxBase(sys)))
	script := 0
	for _, st := range mixStages {
		if st.group {
			script++
		} else {
			script += benchGroupSize
		}
	}
	sys.mix = make([]*mixClient, mixClients)
	for i := range sys.mix {
		sys.mix[i] = &mixClient{nextTax: func() int { return int(taxSeq.Add(1)) }}
	}
	send := benchHTTPSender(sys.httpURL, sys.operator, mixClients)
	tops := make([]uint64, mixClients)
	errs := make([]error, mixClients)
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for i, c := range sys.mix {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			op := mixOp(send, c)
			steps := int(float64(i*script/mixClients) * benchScale)
			for n := 0; n < steps; {
				r, err := op(ctx)
				if err != nil {
					errs[i] = err
					return
				}
				if r.refused == "" {
					n++
					tops[i] = max(tops[i], r.seq)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("spreading the operators: %w", err)
	}
	return slices.Max(tops), nil
}

// drain waits until the projection has applied the events up to seq (the
// stream's last sequence may be a worker-index entry, which no projection
// applies).
func (b *bench) drain(ctx context.Context, sys *benchSystem, seq uint64) error {
	return b.waitApplied(ctx, sys, seq, "projection catching up", false)
}

// waitApplied waits for the projection to reach seq, drawing progress when
// asked to.
func (b *bench) waitApplied(ctx context.Context, sys *benchSystem, seq uint64, label string, bar bool) error {
	var pb *progressBar
	if bar {
		pb = newProgressBar(b.stderr, label)
	}
	first, err := sys.applied(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got, err := sys.applied(ctx)
		if err != nil {
			return err
		}
		if pb != nil {
			pb.update(got-min(got, first), seq-min(seq, got))
		}
		if got >= seq {
			if pb != nil {
				pb.finish()
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the projection is at %d after ten minutes, the stream at %d", label, got, seq)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
