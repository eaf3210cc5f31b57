package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections"
)

// benchSchema holds the baselines' plain tables, apart from the read models.
const benchSchema = "percorso_bench"

// benchLagFigure: how long after a command is answered its events show in
// PostgreSQL, under a steady rate of commands, beside the same rate of raw
// publishes consumed by the simplest possible projector (an ordered
// consumer copying each batch into a plain table).
type benchLagFigure struct {
	Sync           string   `json:"sync"`
	TargetPerS     float64  `json:"target_commands_per_s"`
	AchievedPerS   float64  `json:"achieved_commands_per_s"`
	Commands       int      `json:"commands"`
	P50ms          float64  `json:"p50_ms"`
	P99ms          float64  `json:"p99_ms"`
	MaxMs          float64  `json:"max_ms"`
	BaselinePerS   float64  `json:"baseline_publishes_per_s"`
	BaselineP50ms  float64  `json:"baseline_p50_ms"`
	BaselineP99ms  float64  `json:"baseline_p99_ms"`
	Ratio          float64  `json:"x_baseline"` // p99 over the baseline's p99
	CPU            benchCPU `json:"cpu"`
	SustainedLimit bool     `json:"rate_limited_by_system"` // the target was lowered to what the system sustains
	Refused        int      `json:"refused,omitempty"`      // commands turned away under load
}

// benchAppended is one write: its stream sequence and when its writer learnt it.
type benchAppended struct {
	seq uint64
	at  time.Time
}

// benchCommit is a projection commit: everything up to seq is queryable from at.
type benchCommit struct {
	seq uint64
	at  time.Time
}

// benchLags pairs each write with the first commit that covers it.
func benchLags(writes []benchAppended, commits []benchCommit) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(writes))
	for _, w := range writes {
		i := sort.Search(len(commits), func(i int) bool { return commits[i].seq >= w.seq })
		if i == len(commits) {
			return nil, fmt.Errorf("write %d never became visible", w.seq)
		}
		out = append(out, max(commits[i].at.Sub(w.at), 0))
	}
	return out, nil
}

// benchOpen sends operations at a steady rate from a pool of workers for d
// and returns each write's sequence and answer time. A system slower than
// the rate makes the dispatcher wait: the achieved rate says so.
func benchOpen(ctx context.Context, rate float64, d time.Duration, workers int, newOp func(i int) benchOp) ([]benchAppended, time.Duration, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tickets := make(chan struct{}, workers)
	results := make([][]benchAppended, workers)
	var refused atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for i := range workers {
		op := newOp(i)
		wg.Go(func() {
			for range tickets {
				r, err := op(ctx)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				if r.refused != "" {
					refused.Add(1)
					continue
				}
				results[i] = append(results[i], benchAppended{r.seq, time.Now()})
			}
		})
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for n := 0; ; n++ {
		at := start.Add(time.Duration(n) * interval)
		if at.Sub(start) >= d {
			break
		}
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		select {
		case tickets <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(tickets)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, 0, firstErr
	}
	var all []benchAppended
	for _, r := range results {
		all = append(all, r...)
	}
	return all, elapsed, int(refused.Load()), nil
}

// benchWatchCommits records the projection's commits until stop is closed.
func benchWatchCommits(ctx context.Context, sys *benchSystem, stop <-chan struct{}) func() []benchCommit {
	var mu sync.Mutex
	var commits []benchCommit
	record := func(seq uint64) {
		mu.Lock()
		if len(commits) == 0 || commits[len(commits)-1].seq < seq {
			commits = append(commits, benchCommit{seq, time.Now()})
		}
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ch <-chan struct{}
			if sys.changed != nil {
				ch = sys.changed()
			}
			if seq, err := sys.applied(ctx); err == nil {
				record(seq)
			}
			var poll <-chan time.Time
			if ch == nil {
				poll = time.After(2 * time.Millisecond)
			}
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-ch:
			case <-poll:
			}
		}
	}()
	return func() []benchCommit {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return commits
	}
}

// benchLag measures the projection lag at rate commands/s over HTTP.
func (b *bench) benchLag(ctx context.Context, sys *benchSystem, rate float64, limited bool) (*benchLagFigure, error) {
	fig := &benchLagFigure{Sync: sys.sync, TargetPerS: rate, SustainedLimit: limited}
	const workers = mixClients
	send := benchHTTPSender(sys.httpURL, sys.operator, workers)
	b.progressf("projection lag (%s): %.0f commands/s over HTTP for %s", sys.sync, rate, b.lagDur)
	stop := make(chan struct{})
	result := benchWatchCommits(ctx, sys, stop)
	endProfile := b.profile("lag-" + sys.sync)
	cpu := sys.cpuMeter()
	writes, elapsed, refused, err := benchOpen(ctx, rate, b.lagDur, workers, func(i int) benchOp { return mixOp(send, sys.mix[i]) })
	fig.Refused = refused
	if err == nil && len(writes) > 0 {
		top := uint64(0)
		for _, w := range writes {
			top = max(top, w.seq)
		}
		err = b.waitApplied(ctx, sys, top, "projection", false)
	}
	fig.CPU = cpu.share()
	endProfile()
	close(stop)
	commits := result()
	if err != nil {
		return nil, err
	}
	ls, err := benchLags(writes, commits)
	if err != nil {
		return nil, err
	}
	fig.Commands = len(writes)
	fig.AchievedPerS = float64(len(writes)) / elapsed.Seconds()
	fig.P50ms, fig.P99ms, fig.MaxMs = benchPct(ls, 0.5), benchPct(ls, 0.99), benchPct(ls, 1)

	b.progressf("projection lag (%s): baseline, %.0f raw publishes/s into an ordered consumer and a plain table", sys.sync, rate)
	base, perS, err := b.lagBaseline(ctx, sys, rate, workers)
	if err != nil {
		return nil, fmt.Errorf("lag baseline: %w", err)
	}
	fig.BaselinePerS = perS
	fig.BaselineP50ms, fig.BaselineP99ms = benchPct(base, 0.5), benchPct(base, 0.99)
	fig.Ratio = fig.P99ms / fig.BaselineP99ms
	return fig, nil
}

// lagBaseline publishes at the same rate to the raw stream while an ordered
// consumer copies whatever has arrived into a plain table, one transaction
// per batch, without waiting for more: the least any projector into this
// PostgreSQL can do.
func (b *bench) lagBaseline(ctx context.Context, sys *benchSystem, rate float64, workers int) ([]time.Duration, float64, error) {
	hdr, data, err := benchRawMessage(ctx, sys.codec)
	if err != nil {
		return nil, 0, err
	}
	if _, err := sys.pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+benchSchema+`; DROP TABLE IF EXISTS `+benchSchema+`.lag; CREATE TABLE `+benchSchema+`.lag (seq bigint NOT NULL, subject text NOT NULL)`); err != nil {
		return nil, 0, err
	}
	defer sys.pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+benchSchema+`.lag`)
	prefix := "bench.raw.lag." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
	cons, err := sys.js.OrderedConsumer(ctx, benchRawStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, 0, err
	}
	msgs := make(chan jetstream.Msg, 1000)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	var mu sync.Mutex
	var commits []benchCommit
	cctx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		var batch [][]any
		var top uint64
		for {
			batch, top = batch[:0], 0
			select {
			case m, ok := <-msgs:
				if !ok {
					consumed <- nil
					return
				}
				md, err := m.Metadata()
				if err != nil {
					consumed <- err
					return
				}
				batch = append(batch, []any{int64(md.Sequence.Stream), m.Subject()})
				top = md.Sequence.Stream
			case <-cctx.Done():
				consumed <- nil
				return
			}
		more:
			for len(batch) < 1000 {
				select {
				case m, ok := <-msgs:
					if !ok {
						break more
					}
					md, err := m.Metadata()
					if err != nil {
						consumed <- err
						return
					}
					batch = append(batch, []any{int64(md.Sequence.Stream), m.Subject()})
					top = md.Sequence.Stream
				default:
					break more
				}
			}
			err := pgx.BeginFunc(cctx, sys.pool, func(tx pgx.Tx) error {
				_, err := tx.CopyFrom(cctx, pgx.Identifier{benchSchema, "lag"}, []string{"seq", "subject"}, pgx.CopyFromRows(batch))
				return err
			})
			if err != nil {
				if cctx.Err() != nil {
					consumed <- nil
				} else {
					consumed <- err
				}
				return
			}
			mu.Lock()
			commits = append(commits, benchCommit{top, time.Now()})
			mu.Unlock()
		}
	}()
	defer func() { stopConsumer(); it.Stop(); <-consumed }()
	writes, elapsed, _, err := benchOpen(ctx, rate, b.lagDur, workers, func(int) benchOp {
		return benchRawOp(sys.js, hdr, data, prefix)
	})
	if err != nil {
		return nil, 0, err
	}
	top := uint64(0)
	for _, w := range writes {
		top = max(top, w.seq)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(commits)
		reached := n > 0 && commits[n-1].seq >= top
		mu.Unlock()
		if reached {
			break
		}
		select {
		case err := <-consumed:
			if err == nil {
				err = errors.New("the consumer stopped")
			}
			consumed <- err
			return nil, 0, err
		default:
		}
		if time.Now().After(deadline) {
			return nil, 0, errors.New("the baseline consumer did not catch up within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	cs := append([]benchCommit(nil), commits...)
	mu.Unlock()
	ls, err := benchLags(writes, cs)
	return ls, float64(len(writes)) / elapsed.Seconds(), err
}

// benchHistoryFigure: GET /v1/paths/{id}/history of 50-event paths in the
// loaded stream, as an auditor (whose reads are recorded), beside the raw
// reads of the same events (the subject's last message, then the chain of
// back-pointers) on the same server.
type benchHistoryFigure struct {
	PathEvents   int      `json:"path_events"`
	StreamEvents int      `json:"stream_events"`
	Reads        int      `json:"reads"`
	P50ms        float64  `json:"p50_ms"`
	P99ms        float64  `json:"p99_ms"`
	RawP50ms     float64  `json:"raw_p50_ms"`
	RawP99ms     float64  `json:"raw_p99_ms"`
	Ratio        float64  `json:"x_raw"` // p99 over the raw p99
	CPU          benchCPU `json:"cpu"`
}

func (b *bench) benchHistory(ctx context.Context, sys *benchSystem, load *benchLoad) (*benchHistoryFigure, error) {
	if len(load.long) == 0 {
		return nil, errors.New("no long path was loaded")
	}
	b.progressf("history: %d reads of 50-event paths over HTTP, and the same raw reads", b.historyReads)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	get := func(id string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sys.httpURL+"/v1/paths/"+id+"/history", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+sys.auditor)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("history: HTTP %d: %s", resp.StatusCode, benchErrorCode(raw))
		}
		var h struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			return err
		}
		if len(h.Events) != benchLongEvents {
			return fmt.Errorf("history of %s: %d events, want %d", id, len(h.Events), benchLongEvents)
		}
		return nil
	}
	raw := func(id string) error {
		n, err := benchRawChain(ctx, sys.events, id)
		if err == nil && n != benchLongEvents {
			err = fmt.Errorf("raw chain of %s: %d events, want %d", id, n, benchLongEvents)
		}
		return err
	}
	var api, base []time.Duration
	endProfile := b.profile("history")
	cpu := sys.cpuMeter()
	for i := range b.historyReads {
		id := load.long[rand.IntN(len(load.long))]
		// Alternate which read goes first, so neither always finds the
		// blocks the other just brought into memory.
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, viaAPI := range order {
			t0 := time.Now()
			var err error
			if viaAPI {
				err = get(id)
			} else {
				err = raw(id)
			}
			d := time.Since(t0)
			if err != nil {
				endProfile()
				return nil, err
			}
			if viaAPI {
				api = append(api, d)
			} else {
				base = append(base, d)
			}
		}
	}
	share := cpu.share()
	endProfile()
	return &benchHistoryFigure{PathEvents: benchLongEvents, StreamEvents: load.Events, Reads: len(api),
		P50ms: benchPct(api, 0.5), P99ms: benchPct(api, 0.99), RawP50ms: benchPct(base, 0.5), RawP99ms: benchPct(base, 0.99),
		Ratio: benchPct(api, 0.99) / benchPct(base, 0.99), CPU: share}, nil
}

// benchRawChain reads a path's events the cheapest way the stream allows: its
// subject's last message, then each back-pointer.
func benchRawChain(ctx context.Context, st jetstream.Stream, pathID string) (int, error) {
	m, err := st.GetLastMsgForSubject(ctx, eventstore.EventSubject(pathID))
	if err != nil {
		return 0, err
	}
	n := 1
	for {
		var prev uint64
		if m.Header.Get(eventstore.HdrPrevInBatch) == "1" {
			prev = m.Sequence - 1
		} else if v := m.Header.Get(eventstore.HdrPrevSeq); v != "" {
			if prev, err = strconv.ParseUint(v, 10, 64); err != nil {
				return n, err
			}
		} else {
			return n, nil
		}
		if m, err = st.GetMsg(ctx, prev); err != nil {
			return n, err
		}
		n++
	}
}

// benchRebuildFigure: projections.Rebuild of the whole stream into fresh read
// models, beside a COPY of the same events' rows (as audit_events holds
// them) from the same stream into a plain table of the same database.
type benchRebuildFigure struct {
	Events     int64   `json:"events"`
	Paths      int64   `json:"paths"`
	Sessions   int64   `json:"sessions"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_s"`
	// Where the time went: a fresh schema and a first count of the
	// stream's events, the replay, and the switch with its second count.
	PrepareSeconds float64  `json:"prepare_seconds"`
	ReplaySeconds  float64  `json:"replay_seconds"`
	SwitchSeconds  float64  `json:"switch_seconds"`
	CopyRows       int64    `json:"copy_rows"`
	CopySeconds    float64  `json:"copy_seconds"`
	CopyRowsPerS   float64  `json:"copy_rows_per_s"`
	Ratio          float64  `json:"x_copy"` // events/s over copied rows/s
	CPU            benchCPU `json:"cpu"`
	CopyCPU        benchCPU `json:"copy_cpu"`
	// ConsumersCreated counts the consumers created on the event stream
	// during the rebuild: each costs the server a count of the pending
	// messages over every path's subject.
	ConsumersCreated int `json:"consumers_created"`
}

// benchCountConsumers counts the consumers created on the event stream until
// the returned function is called, from the server's advisories.
func benchCountConsumers(sys *benchSystem) func() int {
	var n atomic.Int64
	sub, err := sys.nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED."+eventstore.StreamName+".>", func(*nats.Msg) { n.Add(1) })
	if err != nil {
		return func() int { return -1 }
	}
	sys.nc.Flush()
	return func() int {
		sys.nc.Flush()
		sub.Unsubscribe()
		return int(n.Load())
	}
}

func (b *bench) benchRebuild(ctx context.Context, sys *benchSystem) (*benchRebuildFigure, error) {
	fig := &benchRebuildFigure{}
	b.progressf("rebuild: replaying the stream into fresh read models")
	bar := newProgressBar(b.stderr, "rebuild")
	endProfile := b.profile("rebuild")
	consumers := benchCountConsumers(sys)
	cpu := sys.cpuMeter()
	start := time.Now()
	// Rebuild reports progress only while it waits for the replay: its
	// first report marks the end of the preparation (a fresh schema and a
	// count of the stream's events), the first with nothing remaining the
	// end of the replay; the rest is the switch (a second count included).
	var replayFrom, replayTo time.Time
	progress := func(done, remaining uint64) {
		now := time.Now()
		if replayFrom.IsZero() {
			replayFrom = now
		}
		if remaining == 0 && done > 0 && replayTo.IsZero() {
			replayTo = now
		}
		bar.update(done, remaining)
	}
	counts, err := projections.Rebuild(ctx, sys.js, sys.codec, sys.pool, sys.pgURL, b.log, progress)
	d := time.Since(start)
	if !replayFrom.IsZero() && !replayTo.IsZero() {
		fig.PrepareSeconds = replayFrom.Sub(start).Seconds()
		fig.ReplaySeconds = replayTo.Sub(replayFrom).Seconds()
		fig.SwitchSeconds = start.Add(d).Sub(replayTo).Seconds()
	}
	fig.CPU = cpu.share()
	fig.ConsumersCreated = consumers()
	endProfile()
	bar.finish()
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	fig.Events, fig.Paths, fig.Sessions = counts.Events, counts.Paths, counts.Sessions
	fig.Seconds = d.Seconds()
	fig.EventsPerS = float64(counts.Events) / d.Seconds()

	copyRows := min(counts.Events, benchCopyMax)
	b.progressf("rebuild: baseline, COPY of the first %d events' rows into a plain table", copyRows)
	endProfile = b.profile("rebuild-copy")
	cpu = sys.cpuMeter()
	start = time.Now()
	n, err := benchCopyBaseline(ctx, sys, copyRows)
	d = time.Since(start)
	fig.CopyCPU = cpu.share()
	endProfile()
	if err != nil {
		return nil, fmt.Errorf("copy baseline: %w", err)
	}
	fig.CopyRows, fig.CopySeconds, fig.CopyRowsPerS = n, d.Seconds(), float64(n)/d.Seconds()
	fig.Ratio = fig.EventsPerS / fig.CopyRowsPerS
	return fig, nil
}

// benchCopyMax bounds the rows of the COPY baseline: its rate, into a table
// without indexes, does not change with the table's size, and half a
// million rows measure it well in half the time of a million.
const benchCopyMax = 500_000

// benchCopyBaseline reads the stream's events with an ordered consumer, as the
// rebuild does, and copies their audit rows into a table without indexes.
func benchCopyBaseline(ctx context.Context, sys *benchSystem, events int64) (int64, error) {
	if _, err := sys.pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+benchSchema+`; DROP TABLE IF EXISTS `+benchSchema+`.copy;
		CREATE TABLE `+benchSchema+`.copy (seq bigint, event_id uuid, path_id uuid, type text, schema_version integer, recorded_at timestamptz,
		actor text, command_id text, correlation_id text, hash text, prev_hash text, data jsonb)`); err != nil {
		return 0, err
	}
	defer sys.pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+benchSchema+`.copy`)
	cons, err := sys.js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventstore.EventsWildcard}})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	var read int64
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if read >= events {
			return nil, nil
		}
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		e, err := eventstore.FromHeaders(md.Sequence.Stream, m.Subject(), m.Headers().Get, m.Data())
		if err != nil {
			return nil, err
		}
		read++
		// Ids as the projector sends them: binary uuids, not text for the
		// server to parse.
		id, err := uuid.Parse(e.ID)
		if err != nil {
			return nil, err
		}
		path, err := uuid.Parse(e.PathID)
		if err != nil {
			return nil, err
		}
		return []any{int64(e.Seq), pgtype.UUID{Bytes: id, Valid: true}, pgtype.UUID{Bytes: path, Valid: true}, e.Type, e.SchemaVersion, e.Time, e.Actor, e.CommandID, e.CorrelationID, e.Hash, e.PrevHash, json.RawMessage(e.Data)}, nil
	})
	return sys.pool.CopyFrom(ctx, pgx.Identifier{benchSchema, "copy"},
		[]string{"seq", "event_id", "path_id", "type", "schema_version", "recorded_at", "actor", "command_id", "correlation_id", "hash", "prev_hash", "data"}, src)
}

// benchMemoryFigure: resident memory of the server (embedded NATS and
// percorso; PostgreSQL runs apart) with the loaded stream, beside the same
// server on an empty store.
type benchMemoryFigure struct {
	Paths  int `json:"paths"`
	Events int `json:"events"`
	// MeasuredIn is "percorso serve", a process started on the data dir
	// for the purpose, or "this process" where that is not possible (the
	// package's test): the bench's own history then weighs on the figure.
	MeasuredIn    string  `json:"measured_in"`
	RSSEmptyMB    float64 `json:"rss_empty_mb"`
	RSSRestMB     float64 `json:"rss_rest_mb"`           // started afresh on the loaded store
	PerHundredKMB float64 `json:"rss_per_100k_paths_mb"` // the loaded store's share at rest, per 100k paths
	At100kMB      float64 `json:"rss_at_100k_paths_mb"`  // empty + 100k paths' share
	// RSSActiveMB is this process right after the history reads, with the
	// blocks they loaded still cached (the file store keeps a block's
	// messages 10 s, its per-subject state 2 minutes after the last access).
	RSSActiveMB float64 `json:"rss_active_mb"`
	HeapInuseMB float64 `json:"go_heap_inuse_mb,omitempty"` // at rest, when measured in this process
	Ratio       float64 `json:"x_empty"`                    // at rest over empty
}

// benchSettledRSS is VmRSS after a collection has given freed memory back.
func benchSettledRSS() (float64, float64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return benchVMRSS(), float64(ms.HeapInuse) / (1 << 20)
}

// benchVMRSS is this process's resident set in MB.
func benchVMRSS() float64 { return benchProcRSS(0) }

// benchProcRSS is a process's resident set in MB, from /proc/<pid>/status
// (0: this process).
func benchProcRSS(pid int) float64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// benchCPU is how many cores each process kept busy during a phase.
type benchCPU struct {
	Percorso float64 `json:"percorso_cores"` // this process: NATS server, percorso, bench clients
	Postgres float64 `json:"postgres_cores"` // every process of the embedded PostgreSQL (0: not measured)
	// Machine counts every process: what it has beyond the two above is
	// other work on the machine, competing with the run.
	Machine float64 `json:"machine_cores"`
}

type benchCPUMeter struct {
	start   time.Time
	self    time.Duration
	pg      time.Duration
	machine time.Duration
	pgPID   int
}

func newBenchCPUMeter(pgPID int) *benchCPUMeter {
	return &benchCPUMeter{start: time.Now(), self: benchSelfCPU(), pg: benchPostgresCPU(pgPID), machine: benchMachineCPU(), pgPID: pgPID}
}

func (c *benchCPUMeter) share() benchCPU {
	wall := time.Since(c.start).Seconds()
	s := benchCPU{Percorso: (benchSelfCPU() - c.self).Seconds() / wall, Machine: (benchMachineCPU() - c.machine).Seconds() / wall}
	if c.pgPID > 0 {
		s.Postgres = (benchPostgresCPU(c.pgPID) - c.pg).Seconds() / wall
	}
	return s
}

// benchMachineCPU is the busy time of all CPUs, from /proc/stat.
func benchMachineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:8] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * benchClockTick
}

// benchLoadAverage is the one-minute load average.
func benchLoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func benchSelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchClockTick is USER_HZ, 100 on every Linux this runs on.
const benchClockTick = 10 * time.Millisecond

// benchPostgresCPU is the CPU time of the postmaster, its live children, and the
// children it has reaped.
func benchPostgresCPU(postmaster int) time.Duration {
	if postmaster <= 0 {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != postmaster && ppid != postmaster {
			continue
		}
		for _, k := range []int{11, 12} { // utime, stime
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
		if pid == postmaster {
			for _, k := range []int{13, 14} { // cutime, cstime
				v, _ := strconv.ParseInt(f[k], 10, 64)
				ticks += v
			}
		}
	}
	return time.Duration(ticks) * benchClockTick
}

// benchPostmasterPID reads the embedded server's pid file.
func benchPostmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// benchQuietLog keeps percorso's own logs to warnings, so progress stays readable.
func benchQuietLog(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
