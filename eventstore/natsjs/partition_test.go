package natsjs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natsjs/jstest"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/privacy"
	"github.com/percorso/percorso/eventstore/storetest"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// A node shut down cleanly is the easy case: it says goodbye, and its
// leaderships move at once. A network partition is the hard one: the
// isolated node keeps running, may still believe it leads the stream, and
// its clients keep talking to it. The test below cuts the stream leader off
// from the other two nodes, at the TCP level, during a command load through
// the real command handler, then heals the partition. Every command
// acknowledged on either side must be on the stream exactly once, every
// command that failed must be wholly there or wholly absent, the isolated
// node must end byte for byte with the same stream as the others, and a
// projector that ran through it all must equal a fresh replay.

// partitionedCluster is three JetStream servers whose route connections
// all pass through proxies owned by the test, which can cut one node off
// and let it back.
type partitionedCluster struct {
	t       *testing.T
	Servers []*server.Server
	real    []string // each node's own cluster listener
	proxies []net.Listener

	mu       sync.Mutex
	ids      map[string]int // server id -> node index
	isolated int            // -1: none
	links    []*routeLink
}

// routeLink is one proxied route connection: from the node that dialled
// to the node that accepted.
type routeLink struct {
	from, to int
	a, b     net.Conn
}

func (l *routeLink) close() {
	l.a.Close()
	l.b.Close()
}

// newPartitionedCluster starts the cluster. Each node advertises its proxy
// as its route address, so routes learnt through gossip go through the
// proxies too, and route compression is off so the proxy can read who
// dials (the CONNECT line names the server).
func newPartitionedCluster(t *testing.T) *partitionedCluster {
	t.Helper()
	pc := &partitionedCluster{t: t, ids: map[string]int{}, isolated: -1}
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc.proxies = append(pc.proxies, l)
		t.Cleanup(func() { l.Close() })
		pc.real = append(pc.real, freeAddr(t))
	}
	var routes []string
	for _, l := range pc.proxies {
		routes = append(routes, "nats://"+l.Addr().String())
	}
	for i := range 3 {
		_, port, _ := net.SplitHostPort(pc.real[i])
		var p int
		fmt.Sscan(port, &p)
		opts := &server.Options{
			ServerName: fmt.Sprintf("p%d", i+1), Host: "127.0.0.1", Port: -1, JetStream: true,
			StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "percorso-partition", Host: "127.0.0.1", Port: p,
				Advertise:   pc.proxies[i].Addr().String(),
				Compression: server.CompressionOpts{Mode: server.CompressionOff}},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		pc.ids[s.ID()] = i
		pc.Servers = append(pc.Servers, s)
	}
	t.Cleanup(func() {
		pc.mu.Lock()
		for _, l := range pc.links {
			l.close()
		}
		pc.mu.Unlock()
		for _, s := range pc.Servers {
			s.Shutdown()
		}
	})
	for i := range pc.proxies {
		go pc.serve(i)
	}
	for _, s := range pc.Servers {
		go s.Start()
	}
	for _, s := range pc.Servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("cluster node not ready")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, s := range pc.Servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == 3 {
				return pc
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not form through the proxies")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve proxies route connections to node to.
func (pc *partitionedCluster) serve(to int) {
	for {
		a, err := pc.proxies[to].Accept()
		if err != nil {
			return
		}
		go pc.link(a, to)
	}
}

func (pc *partitionedCluster) link(a net.Conn, to int) {
	b, err := net.Dial("tcp", pc.real[to])
	if err != nil {
		a.Close()
		return
	}
	l := &routeLink{from: -1, to: to, a: a, b: b}
	// The accepting server speaks first (INFO); the dialler answers with
	// CONNECT, whose "name" is its server id.
	go func() { io.Copy(a, b); l.close() }()
	br := bufio.NewReader(a)
	line, err := br.ReadString('\n')
	if err != nil {
		l.close()
		return
	}
	var connect struct {
		Name string `json:"name"`
	}
	if rest, ok := strings.CutPrefix(line, "CONNECT "); ok && json.Unmarshal([]byte(rest), &connect) == nil {
		if i, ok := pc.ids[connect.Name]; ok {
			l.from = i
		}
	}
	if !pc.admit(l) {
		l.close()
		return
	}
	defer pc.forget(l)
	if _, err := io.WriteString(b, line); err != nil {
		l.close()
		return
	}
	io.Copy(b, br)
	l.close()
}

func (pc *partitionedCluster) admit(l *routeLink) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.isolated >= 0 && (l.from == pc.isolated || l.to == pc.isolated || l.from < 0) {
		return false
	}
	pc.links = append(pc.links, l)
	return true
}

func (pc *partitionedCluster) forget(l *routeLink) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for i, x := range pc.links {
		if x == l {
			pc.links = append(pc.links[:i], pc.links[i+1:]...)
			return
		}
	}
}

// isolate cuts node i off: its route connections are dropped and new ones
// refused, in both directions. It keeps running and serving its clients.
func (pc *partitionedCluster) isolate(i int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.isolated = i
	kept := pc.links[:0]
	for _, l := range pc.links {
		if l.from == i || l.to == i || l.from < 0 {
			l.close()
			continue
		}
		kept = append(kept, l)
	}
	pc.links = kept
}

// heal lets routes form again; the nodes reconnect on their own.
func (pc *partitionedCluster) heal() {
	pc.mu.Lock()
	pc.isolated = -1
	pc.mu.Unlock()
}

func (pc *partitionedCluster) urls(nodes ...int) string {
	var u []string
	for _, i := range nodes {
		u = append(u, pc.Servers[i].ClientURL())
	}
	return strings.Join(u, ",")
}

// localState is the stream as node i holds it on its own disk.
func (pc *partitionedCluster) localState(i int) (server.StreamState, bool) {
	acc, err := pc.Servers[i].JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return server.StreamState{}, false
	}
	for _, s := range acc.Streams {
		if s.Name == eventstore.StreamName {
			return s.State, true
		}
	}
	return server.StreamState{}, false
}

// clusterSide is the command side as `percorso serve --replicas 3` wires
// it, connected to some nodes of the cluster.
type clusterSide struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	codec   *eventstore.Codec
	store   *natsjs.Store
	handler *command.Handler
}

func newClusterSide(t *testing.T, urls string) *clusterSide {
	t.Helper()
	ctx := timeout(t, 60*time.Second)
	c := &clusterSide{}
	c.js, c.stream = provisioned(t, urls, 3)
	var ks *privacy.JetStreamKeyStore
	var idem *natsjs.Idempotency
	retry(t, ctx, func(ctx context.Context) (err error) {
		if ks, err = privacy.NewJetStreamKeyStore(ctx, c.js, jstest.Master, privacy.WithReplicas(3)); err != nil {
			return err
		}
		idem, err = natsjs.NewIdempotency(ctx, c.js, 3)
		return err
	})
	sealer, err := privacy.NewSealer(jstest.Master, ks)
	if err != nil {
		t.Fatal(err)
	}
	c.codec = eventstore.NewCodec(sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	c.store = natsjs.New(c.js, c.stream, c.codec)
	c.handler = command.New(c.store, idem, sealer)
	return c
}

// sent is one command as its client saw it.
type sent struct {
	corr   string
	events int      // events it appends when it lands
	paths  []string // paths it touches
	acked  bool
	code   string // the error's code when it failed
	phase  string
	side   string
}

// ledger records every command sent, by correlation id.
type ledger struct {
	mu   sync.Mutex
	cmds map[string]*sent
}

func (l *ledger) add(s *sent) {
	l.mu.Lock()
	l.cmds[s.corr] = s
	l.mu.Unlock()
}

// failures counts failed commands by side, phase and error code.
func (l *ledger) failures() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, s := range l.cmds {
		if !s.acked {
			out[s.side+"/"+s.phase+"/"+s.code]++
		}
	}
	return out
}

func (l *ledger) count(side, phase string, acked bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.cmds {
		if s.side == side && s.phase == phase && s.acked == acked {
			n++
		}
	}
	return n
}

var partitionStart = time.Date(2010, 2, 1, 9, 0, 0, 0, time.UTC)

// sendOne runs one random command through h and records its outcome.
func sendOne(ctx context.Context, h *command.Handler, rng *rand.Rand, paths []string, side string, phase func() string, l *ledger) {
	s := &sent{corr: command.NewUUID(), side: side, phase: phase()}
	req := command.Request{Actor: "op-" + side, CorrelationID: s.corr}
	at := partitionStart.Add(time.Duration(1+rng.IntN(2000)) * time.Hour)
	var err error
	switch n := rng.IntN(10); {
	case n < 7 || side == "minority":
		p := paths[rng.IntN(len(paths))]
		s.events, s.paths = 1, []string{p}
		_, err = h.DeliverSession(ctx, req, p, nil, workerpath.DeliverSession{
			Service: []int{1, 3, 9, 10}[rng.IntN(4)], DeliveredAt: at, Minutes: 20 + rng.IntN(60)})
	case n < 9:
		size := 6 + rng.IntN(3)
		for _, i := range rng.Perm(len(paths))[:size] {
			s.paths = append(s.paths, paths[i])
		}
		s.events = size
		_, err = h.DeliverGroupSession(ctx, req, nil, workerpath.DeliverGroupSession{
			Service: 4, DeliveredAt: at, Minutes: 200, Participants: s.paths})
	default:
		s.events = 1
		var res command.Result
		res, err = h.TakeInCharge(ctx, req, takeInChargeCmd(partitionStart))
		s.paths = []string{res.PathID}
	}
	s.acked, s.code = err == nil, fault.CodeOf(err)
	l.add(s)
}

func takeInChargeCmd(at time.Time) workerpath.TakeInCharge {
	return workerpath.TakeInCharge{
		Worker:   workerpath.Person{TaxCode: storetest.TaxCode(), GivenName: "Ottavia", FamilyName: "Partizione"},
		Category: "a", Support: workerpath.Support{Kind: workerpath.SupportCIG, From: workerpath.MustDate("2010-01-04")},
		Office: "BO01", TakenAt: at,
	}
}

// TestPartitionedLeaderUnderCommandLoad: see the comment at the top.
func TestPartitionedLeaderUnderCommandLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("holds a partition of a 3-node cluster through a leader election")
	}
	const (
		before       = time.Second
		minPartition = 3 * time.Second
		after        = time.Second
		majWriters   = 4
	)
	began := time.Now()
	pc := newPartitionedCluster(t)
	ctx := timeout(t, 150*time.Second)
	all := pc.urls(0, 1, 2)
	setup := newClusterSide(t, all)
	for i := range pc.Servers {
		waitServesReads(t, ctx, pc.Servers[i].ClientURL())
	}

	var victim int
	retry(t, ctx, func(ctx context.Context) error {
		info, err := setup.stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return errors.New("no stream leader yet")
		}
		for i, s := range pc.Servers {
			if s.Name() == info.Cluster.Leader {
				victim = i
				return nil
			}
		}
		return fmt.Errorf("leader %q is not a node of the cluster", info.Cluster.Leader)
	})
	var others []int
	for i := range 3 {
		if i != victim {
			others = append(others, i)
		}
	}
	majority := newClusterSide(t, pc.urls(others...))
	minority := newClusterSide(t, pc.urls(victim))

	l := &ledger{cmds: map[string]*sent{}}
	var paths []string
	for range 16 {
		s := &sent{corr: command.NewUUID(), events: 1, side: "setup", phase: "setup"}
		res, err := setup.handler.TakeInCharge(ctx, command.Request{Actor: "setup", CorrelationID: s.corr}, takeInChargeCmd(partitionStart))
		if err != nil {
			t.Fatal(err)
		}
		s.acked, s.paths = true, []string{res.PathID}
		l.add(s)
		paths = append(paths, res.PathID)
	}

	// A projector, connected to the majority, runs through it all.
	live := projectedPool(t)
	runner := projections.NewRunner(majority.js, majority.codec, pg.NewProjector(live), slog.New(slog.DiscardHandler))
	runCtx, stopRunner := context.WithCancel(ctx)
	runnerDone := make(chan struct{})
	go func() { runner.Run(runCtx); close(runnerDone) }()
	defer func() { stopRunner(); <-runnerDone }()

	var phase atomic.Value
	phase.Store("before")
	current := func() string { return phase.Load().(string) }
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	writer := func(side *clusterSide, name string, seed uint64, each time.Duration) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 9))
			for loadCtx.Err() == nil {
				cctx, cancel := context.WithTimeout(loadCtx, each)
				sendOne(cctx, side.handler, rng, paths, name, current, l)
				cancel()
			}
		})
	}
	for w := range majWriters {
		writer(majority, "majority", uint64(w), 5*time.Second)
	}
	writer(minority, "minority", 99, 3*time.Second)

	t.Logf("%v: cluster up, load starts", time.Since(began).Round(time.Millisecond))
	// Phases end on progress, not on the clock, within bounds: the
	// majority must have written before the cut, through the election
	// that follows it, and after healing.
	progress := func(phase string, n int, least, most time.Duration) {
		start := time.Now()
		for time.Since(start) < least || (l.count("majority", phase, true) < n && time.Since(start) < most) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	progress("before", 30, before, 20*time.Second)
	phase.Store("partition")
	cut := time.Now()
	pc.isolate(victim)
	progress("partition", 200, minPartition, 30*time.Second)
	held := time.Since(cut)
	phase.Store("healed")
	pc.heal()
	progress("healed", 10, after, 10*time.Second)
	stopLoad()
	wg.Wait()

	t.Logf("isolated %s, the stream leader, for %v; acknowledged before/during/after: majority %d/%d/%d, minority %d/%d/%d; failed: majority %d/%d/%d, minority %d/%d/%d",
		pc.Servers[victim].Name(), held.Round(time.Millisecond),
		l.count("majority", "before", true), l.count("majority", "partition", true), l.count("majority", "healed", true),
		l.count("minority", "before", true), l.count("minority", "partition", true), l.count("minority", "healed", true),
		l.count("majority", "before", false), l.count("majority", "partition", false), l.count("majority", "healed", false),
		l.count("minority", "before", false), l.count("minority", "partition", false), l.count("minority", "healed", false))
	t.Logf("failures by side, phase and code: %v", l.failures())
	if l.count("majority", "partition", true) == 0 {
		t.Error("the majority acknowledged nothing during the partition: it should have elected a leader and gone on")
	}
	if l.count("majority", "before", true) == 0 || l.count("majority", "healed", true) == 0 {
		t.Error("the load did not write before the partition and after healing")
	}

	// The isolated node catches up: its own copy of the stream ends equal
	// to the others'.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var states []server.StreamState
		for i := range pc.Servers {
			if st, ok := pc.localState(i); ok {
				states = append(states, st)
			}
		}
		same := len(states) == 3
		for _, st := range states[1:] {
			same = same && st.Msgs == states[0].Msgs && st.Bytes == states[0].Bytes && st.LastSeq == states[0].LastSeq
		}
		if same {
			t.Logf("all three nodes hold %d messages up to sequence %d", states[0].Msgs, states[0].LastSeq)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the isolated node did not catch up: %+v", states)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Logf("%v: caught up", time.Since(began).Round(time.Millisecond))
	// Reconciliation against the stream, read through every node.
	check := newClusterSide(t, all)
	byCorr, byID, last := census(t, ctx, check.js, check.stream)
	l.mu.Lock()
	for corr, s := range l.cmds {
		got := byCorr[corr]
		switch {
		case s.acked && got != s.events:
			t.Errorf("%s command %s (%s), acknowledged, has %d of its %d events on the stream", s.side, corr, s.phase, got, s.events)
		case !s.acked && got != 0 && got != s.events:
			t.Errorf("%s command %s (%s), failed, is half applied: %d of %d events", s.side, corr, s.phase, got, s.events)
		}
	}
	for corr := range byCorr {
		if l.cmds[corr] == nil {
			t.Errorf("events of correlation %s, which no client sent", corr)
		}
	}
	l.mu.Unlock()
	for id, n := range byID {
		if n != 1 {
			t.Errorf("event %s is on the stream %d times", id, n)
		}
	}
	touched := map[string]bool{}
	for _, s := range l.cmds {
		for _, p := range s.paths {
			if p != "" {
				touched[p] = true
			}
		}
	}
	for p := range touched {
		envs, err := check.store.ReadPath(ctx, p)
		if err != nil {
			t.Fatalf("ReadPath %s: %v", p, err)
		}
		if r := eventstore.Verify(p, envs); !r.OK {
			t.Errorf("path %s: hash chain broken: %+v", p, r.Problems)
		}
	}

	// The projector that lived through the partition equals a fresh replay.
	t.Logf("%v: stream reconciled", time.Since(began).Round(time.Millisecond))
	waitApplied(t, runner, last, 60*time.Second)
	t.Logf("%v: live projector caught up", time.Since(began).Round(time.Millisecond))
	fresh := projectedPool(t)
	replayer := projections.NewRunner(check.js, check.codec, pg.NewProjector(fresh), slog.New(slog.DiscardHandler))
	rctx, stopReplay := context.WithCancel(ctx)
	replayDone := make(chan struct{})
	go func() { replayer.Run(rctx); close(replayDone) }()
	waitApplied(t, replayer, last, 60*time.Second)
	stopReplay()
	<-replayDone
	t.Logf("%v: fresh replay done", time.Since(began).Round(time.Millisecond))
	if got, want := pgtest.Dump(t, live), pgtest.Dump(t, fresh); got != want {
		t.Errorf("read models projected through the partition differ from a fresh replay (%d vs %d bytes)", len(got), len(want))
	}
}

// census counts the stream's events by correlation id and by event id,
// and returns the sequence of the last event (not of a worker-index entry,
// which projectors do not consume).
func census(t *testing.T, ctx context.Context, js jetstream.JetStream, st jetstream.Stream) (byCorr, byID map[string]int, last uint64) {
	t.Helper()
	retryEach(t, ctx, 20*time.Second, func(ctx context.Context) error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		last = 0
		cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		byCorr, byID = map[string]int{}, map[string]int{}
		for got := uint64(0); got < info.State.Msgs; {
			// Exactly what is left: a fetch for more waits out its whole wait.
			batch, err := cons.Fetch(int(min(500, info.State.Msgs-got)), jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for msg := range batch.Messages() {
				n++
				got++
				if _, ok := eventstore.PathOf(msg.Subject()); ok {
					byCorr[msg.Headers().Get(eventstore.HdrCorrelationID)]++
					byID[msg.Headers().Get(eventstore.HdrID)]++
					if md, err := msg.Metadata(); err == nil {
						last = max(last, md.Sequence.Stream)
					}
				}
			}
			if err := batch.Error(); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("read %d of %d messages, then nothing", got, info.State.Msgs)
			}
		}
		return nil
	})
	return byCorr, byID, last
}

// waitServesReads waits until the node at url answers direct gets (a new
// R3 stream's replicas answer them only once current).
func waitServesReads(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	_, js := natstest.Connect(t, url)
	retryEach(t, ctx, 2*time.Second, func(ctx context.Context) error {
		st, err := js.Stream(ctx, eventstore.StreamName)
		if err != nil {
			return err
		}
		_, err = st.GetLastMsgForSubject(ctx, eventstore.EventSubject("probe"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err == nil {
			return errors.New("probe subject unexpectedly holds a message")
		}
		return err
	})
}

// projectedPool is an empty, migrated read-model database.
func projectedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := timeout(t, 30*time.Second)
	pool, err := pg.Connect(ctx, pgtest.New(t), pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// waitApplied waits until r has applied the stream up to event seq last.
func waitApplied(t *testing.T, r *projections.Runner, last uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !(r.Running() && r.Lag() == 0 && r.Applied() >= last) {
		if time.Now().After(deadline) {
			t.Fatalf("projector did not reach sequence %d: applied %d, lag %d, running %v", last, r.Applied(), r.Lag(), r.Running())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
