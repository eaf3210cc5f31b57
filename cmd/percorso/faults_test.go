package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/cmd/percorso/internal/embeddedpg"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/privacy"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// Faults that only a whole percorso shows: the read-model database going
// away under a running server, and the server itself dying mid-command. The
// NATS cluster's faults (a killed leader, a partitioned node) are tested
// where the store lives, in eventstore/natsjs; a projector killed mid-batch
// in projections. Each test ends with the same reconciliation: the stream
// holds exactly what the clients were told, nothing half-applied, and the
// read models equal a fresh replay of the stream.

// pgOutage is one phase of TestPostgresRestartedUnderLoad.
type pgOutage struct {
	mu     sync.Mutex
	phase  string
	counts map[string]map[int]int // phase -> query status -> count
}

func (o *pgOutage) set(p string) {
	o.mu.Lock()
	o.phase = p
	o.mu.Unlock()
}

func (o *pgOutage) get() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.phase
}

func (o *pgOutage) record(phase string, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts[phase] == nil {
		o.counts[phase] = map[int]int{}
	}
	o.counts[phase][status]++
}

// TestPostgresRestartedUnderLoad stops the read models' PostgreSQL twice
// while commands and queries keep coming: once cleanly (fast shutdown),
// once by killing the postmaster (crash recovery on restart). It runs a
// private PostgreSQL, never the machine's. Commands do not need PostgreSQL
// and must keep succeeding; queries must answer 503 while it is away (never
// 500); afterwards the projector resumes from its checkpoint and the read
// models equal a fresh replay. The logs of percorso and of PostgreSQL are
// then searched for the workers' personal data.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a private PostgreSQL")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	began := time.Now()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pgDir := t.TempDir()
	var pgMu sync.Mutex
	pgs, err := embeddedpg.Start(ctx, pgDir, log)
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		pgMu.Lock()
		defer pgMu.Unlock()
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pgs.Stop(stopCtx)
	})
	pgURL := pgs.URL()
	t.Logf("%v: private PostgreSQL up", time.Since(began).Round(time.Millisecond))

	m := NewMain(Config{HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "off", PGURL: pgURL, Replicas: 1}, io.Discard)
	m.Log = log
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("starting percorso: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	op := newLoadClient(m.HTTPURL(), token(t, m, access.RoleOperator))
	defer op.close()
	anon := newLoadClient(m.HTTPURL(), "")
	defer anon.close()

	cmds := &commandLog{}
	var people []person
	var paths []string
	for i := range 12 {
		p := testPerson(t, i)
		people = append(people, p)
		s := &sentCommand{corr: command.NewUUID(), route: "/v1/paths", events: 1, phase: "setup"}
		st, b := op.send(cmds, s, p.body("BO01"))
		if st != http.StatusCreated {
			t.Fatalf("take_in_charge: %d %v", st, b)
		}
		id := b["path_id"].(string)
		s.paths = []string{id}
		paths = append(paths, id)
	}

	o := &pgOutage{phase: "up", counts: map[string]map[int]int{}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for loadCtx.Err() == nil {
				i := rng.IntN(len(paths))
				svc := []int{1, 3, 9, 10}[rng.IntN(4)]
				s := &sentCommand{corr: command.NewUUID(), route: "/v1/paths/" + paths[i] + "/sessions", paths: paths[i : i+1],
					events: 1, service: svc, kind: "session", phase: o.get()}
				op.send(cmds, s, fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-%02dT09:00:00+01:00","minutes":30}`, svc, 1+rng.IntN(28)))
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	queries := []string{
		"/v1/paths/%s", "/v1/paths?office=BO01&limit=5", "/v1/paths/%s?min_version=1",
		"/v1/reports/activity?from=2010-01-01&to=2010-12-31&group_by=office,service",
		"/v1/reports/compliance?from=2010-01-01&to=2010-12-31", "/v1/reports/deadlines?office=BO01",
	}
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for loadCtx.Err() == nil {
				q := queries[rng.IntN(len(queries))]
				if strings.Contains(q, "%s") {
					q = fmt.Sprintf(q, paths[rng.IntN(len(paths))])
				}
				phase := o.get()
				st, raw, _, err := op.call("GET", q, "")
				if err != nil {
					if loadCtx.Err() == nil {
						t.Errorf("GET %s: %v", q, err)
					}
					return
				}
				o.record(phase, st)
				if st >= 500 && st != http.StatusServiceUnavailable && st != http.StatusGatewayTimeout {
					t.Errorf("GET %s during phase %s: %d %s", q, phase, st, raw)
				}
				if st == http.StatusServiceUnavailable && !strings.Contains(string(raw), `"code":"unavailable"`) {
					t.Errorf("GET %s: 503 without the unavailable code: %s", q, raw)
				}
				if leaked := leaks(string(raw), people); st >= 400 && len(leaked) > 0 {
					t.Errorf("GET %s: error body shows personal data %v", q, leaked)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for loadCtx.Err() == nil {
			phase := o.get()
			if st, _, _, err := anon.call("GET", "/readyz", ""); err == nil {
				o.record(phase+" readyz", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	time.Sleep(time.Second)
	// A clean stop: PostgreSQL's fast shutdown, as an operator's restart.
	o.set("stopped")
	pgMu.Lock()
	if err := pgs.Stop(ctx); err != nil {
		t.Fatalf("stopping PostgreSQL: %v", err)
	}
	pgMu.Unlock()
	time.Sleep(2 * time.Second)
	pgMu.Lock()
	pgs = restartPG(t, ctx, pgDir, pgURL, log)
	pgMu.Unlock()
	o.set("restarted")
	time.Sleep(1500 * time.Millisecond)

	// A crash: the postmaster killed, its backends orphaned.
	pidLine, err := os.ReadFile(filepath.Join(pgDir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidLine), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	o.set("crashed")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	pgMu.Lock()
	pgs.Stop(ctx) // notices it is gone, and releases the directory
	pgs = restartPG(t, ctx, pgDir, pgURL, log)
	pgMu.Unlock()
	o.set("recovered")
	time.Sleep(1500 * time.Millisecond)
	stopLoad()
	wg.Wait()

	o.mu.Lock()
	t.Logf("query statuses by phase: %v", o.counts)
	for _, down := range []string{"stopped", "crashed"} {
		if o.counts[down][http.StatusServiceUnavailable] == 0 {
			t.Errorf("no query answered 503 while PostgreSQL was %s: %v", down, o.counts[down])
		}
		if o.counts[down+" readyz"][http.StatusServiceUnavailable] == 0 {
			t.Errorf("/readyz never said 503 while PostgreSQL was %s: %v", down, o.counts[down+" readyz"])
		}
	}
	if o.counts["recovered"][http.StatusOK] == 0 {
		t.Errorf("no query succeeded after the second restart: %v", o.counts["recovered"])
	}
	o.mu.Unlock()

	// Commands never needed PostgreSQL: all of them were recorded.
	byPhase := map[string]int{}
	for _, s := range cmds.all() {
		if !s.acked() {
			t.Errorf("%s (%s): %d", s.route, s.phase, s.status)
		}
		byPhase[s.phase]++
	}
	t.Logf("commands acknowledged by phase: %v", byPhase)
	if byPhase["stopped"] == 0 || byPhase["crashed"] == 0 {
		t.Errorf("no command was sent while PostgreSQL was away: %v", byPhase)
	}

	t.Logf("%v: load stopped", time.Since(began).Round(time.Millisecond))
	waitCaughtUp(t, m)
	t.Logf("%v: projector caught up", time.Since(began).Round(time.Millisecond))
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, raw, _, err := anon.call("GET", "/readyz", "")
		if err == nil && st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready again after PostgreSQL came back: %d %s %v", st, raw, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	reconcile(t, takeCensus(t, m.js), cmds.all())
	t.Logf("%v: census", time.Since(began).Round(time.Millisecond))
	checkPathCounters(t, op, paths, cmds.all())
	t.Logf("%v: counters", time.Since(began).Round(time.Millisecond))
	fresh := replay(t, m)
	t.Logf("%v: replayed", time.Since(began).Round(time.Millisecond))
	if got, want := pgtest.Dump(t, m.pool), pgtest.Dump(t, fresh); got != want {
		t.Errorf("read models after two PostgreSQL restarts differ from a fresh replay (%d vs %d bytes)", len(got), len(want))
	}

	t.Logf("%v: reconciled", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { t.Logf("%v: cleaned up", time.Since(began).Round(time.Millisecond)) })
	pgLog, err := os.ReadFile(filepath.Join(pgDir, "postgres", "log"))
	if err != nil {
		t.Fatal(err)
	}
	if leaked := leaks(string(pgLog), people); len(leaked) > 0 {
		t.Errorf("PostgreSQL's log shows personal data: %v", leaked)
	}
	if leaked := leaks(logs.String(), people); len(leaked) > 0 {
		t.Errorf("percorso's log shows personal data: %v", leaked)
	}
}

// restartPG starts the private PostgreSQL again on its directory; it must
// come back on the same URL, the one percorso was started with.
func restartPG(t *testing.T, ctx context.Context, dir, url string, log *slog.Logger) *embeddedpg.Server {
	t.Helper()
	var lastErr error
	for range 20 {
		s, err := embeddedpg.Start(ctx, dir, log)
		if err == nil {
			if s.URL() != url {
				t.Fatalf("PostgreSQL came back on %s, not %s", s.URL(), url)
			}
			return s
		}
		// After a crash, orphaned backends may hold the shared memory a moment.
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("restarting PostgreSQL: %v", lastErr)
	return nil
}

// checkPathCounters reads each path's read model and holds its counters to
// the commands acknowledged on it: a lost update shows here.
func checkPathCounters(t *testing.T, c *loadClient, paths []string, cmds []*sentCommand) {
	t.Helper()
	type counts struct {
		services                       map[int]int
		refusals, unjustified, excused int
	}
	want := map[string]*counts{}
	for _, p := range paths {
		want[p] = &counts{services: map[int]int{}}
	}
	for _, s := range cmds {
		if !s.acked() {
			continue
		}
		for _, p := range s.paths {
			w := want[p]
			if w == nil {
				continue
			}
			switch s.kind {
			case "session":
				w.services[s.service]++
			case "refusal":
				w.refusals++
			case "no_show":
				w.unjustified++
			case "absence":
				w.excused++
			}
		}
	}
	for _, p := range paths {
		st, raw, _, err := c.call("GET", "/v1/paths/"+p, "")
		if err != nil || st != http.StatusOK {
			t.Fatalf("GET path %s: %d %v %s", p, st, err, raw)
		}
		var v struct {
			Services map[string]struct {
				Delivered int `json:"delivered"`
			} `json:"services"`
			Refusals           int `json:"refusals"`
			UnjustifiedNoShows int `json:"unjustified_no_shows"`
			JustifiedAbsences  int `json:"justified_absences"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("path view: %v", err)
		}
		w := want[p]
		for svc, n := range w.services {
			if got := v.Services[strconv.Itoa(svc)].Delivered; got != n {
				t.Errorf("path %s: service %d delivered %d times in the read model, %d acknowledged", p, svc, got, n)
			}
		}
		for k, got := range v.Services {
			svc, _ := strconv.Atoi(k)
			if w.services[svc] == 0 && got.Delivered != 0 {
				t.Errorf("path %s: service %d delivered %d times in the read model, never acknowledged", p, svc, got.Delivered)
			}
		}
		if v.Refusals != w.refusals || v.UnjustifiedNoShows != w.unjustified || v.JustifiedAbsences != w.excused {
			t.Errorf("path %s: refusals/no-shows/absences %d/%d/%d in the read model, %d/%d/%d acknowledged", p,
				v.Refusals, v.UnjustifiedNoShows, v.JustifiedAbsences, w.refusals, w.unjustified, w.excused)
		}
	}
}

// percorsoProcess is `percorso serve` running as a child process.
type percorsoProcess struct {
	cmd     *exec.Cmd
	natsURL string
	stderr  *lockedBuffer
	done    chan struct{}
}

// buildPercorso builds the binary once for the test.
func buildPercorso(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "percorso")
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built percorso in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

var natsLine = regexp.MustCompile(`^NATS: (nats://\S+)`)

// startPercorso runs `percorso serve` and waits for its banner.
func startPercorso(t *testing.T, bin, dataDir, httpAddr, pgURL string) *percorsoProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", httpAddr, "--nats-listen", "-1", "--pg-url", pgURL)
	cmd.Env = append(os.Environ(), "PERCORSO_MASTER_KEY=", "PERCORSO_AUTH_FILE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &percorsoProcess{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := natsLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				urls <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case p.natsURL = <-urls:
	case <-p.done:
		t.Fatalf("percorso exited at start-up: %s", p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("percorso did not start: %s", p.stderr.String())
	}
	// The banner comes once the API is serving.
	return p
}

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *percorsoProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func devToken(t *testing.T, dataDir string, role access.Role) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "dev-tokens.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 && f[0] == string(role) {
			return f[2]
		}
	}
	t.Fatalf("no %s token in dev-tokens.txt", role)
	return ""
}

// TestKilledDuringGroupSessions SIGKILLs a `percorso serve` process while
// operators record group sessions of 6 to 15 workers, restarts it on the
// same data directory, twice. A group session is one atomic batch across
// its participants' paths: each group must be on all of them or on none,
// and an acknowledged one on all. The read models the restarted process
// builds must equal a fresh replay.
func TestKilledDuringGroupSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	t.Parallel()
	bin := buildPercorso(t)
	dataDir, httpAddr, pgURL := t.TempDir(), freeHTTPAddr(t), pgtest.New(t)
	proc := startPercorso(t, bin, dataDir, httpAddr, pgURL)
	op := newLoadClient("http://"+httpAddr, devToken(t, dataDir, access.RoleOperator))
	defer op.close()

	cmds := &commandLog{}
	var people []person
	var paths []string
	for i := range 40 {
		p := testPerson(t, 1000+i)
		people = append(people, p)
		s := &sentCommand{corr: command.NewUUID(), route: "/v1/paths", events: 1, phase: "setup"}
		st, b := op.send(cmds, s, p.body("BO01"))
		if st != http.StatusCreated {
			t.Fatalf("take_in_charge: %d %v", st, b)
		}
		s.paths = []string{b["path_id"].(string)}
		paths = append(paths, s.paths[0])
	}

	group := func(rng *rand.Rand, phase string) *sentCommand {
		n := 6 + rng.IntN(10)
		var members []string
		for _, i := range rng.Perm(len(paths))[:n] {
			members = append(members, paths[i])
		}
		s := &sentCommand{corr: command.NewUUID(), route: "/v1/group-sessions", paths: members, events: n,
			service: 4, kind: "session", group: command.NewUUID(), phase: phase}
		body := fmt.Sprintf(`{"group_id":%q,"service":4,"delivered_at":"2010-04-%02dT09:00:00+02:00","minutes":240,"participants":["%s"]}`,
			s.group, 1+rng.IntN(28), strings.Join(members, `","`))
		op.send(cmds, s, body)
		return s
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 3 {
		phase := fmt.Sprintf("round %d", round+1)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for {
					if group(rng, phase).status == 0 {
						return // the kill cut this writer's command off
					}
				}
			})
		}
		time.Sleep(time.Duration(500+rng.IntN(700)) * time.Millisecond)
		proc.kill()
		wg.Wait()
		proc = startPercorso(t, bin, dataDir, httpAddr, pgURL)
	}
	// The restarted process takes new commands.
	for range 5 {
		group(rng, "after")
	}

	st := cmds.statuses()
	t.Logf("group sessions by answer: %v (0: connection lost)", st)
	if st[0] == 0 {
		t.Error("no command was cut off by the kills: they did not land mid-command")
	}
	_, js := connectJS(t, proc.natsURL)
	census := takeCensus(t, js)
	landed := reconcile(t, census, cmds.all())
	t.Logf("%d commands without an answer landed whole, the others not at all", landed)
	for _, s := range cmds.all() {
		if s.group == "" {
			continue
		}
		got := census.groups[s.group]
		if len(got) == 0 && !s.acked() {
			continue
		}
		if len(got) != len(s.paths) {
			t.Errorf("group %s (%d, %s): on %d of its %d participants' paths", s.group, s.status, s.phase, len(got), len(s.paths))
		}
		for _, p := range s.paths {
			if got[p] != 1 {
				t.Errorf("group %s: %d sessions on participant %s", s.group, got[p], p)
			}
		}
		if s.status == http.StatusCreated {
			continue
		}
		if s.status != 0 && s.status < 500 && len(got) > 0 {
			t.Errorf("group %s refused with %d but recorded", s.group, s.status)
		}
	}

	// The restarted process's read models equal a fresh replay.
	waitProcessProjected(t, op, census.lastEvent)
	live, err := pg.Connect(context.Background(), pgURL, pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if got, want := pgtest.Dump(t, live), pgtest.Dump(t, replayFrom(t, js, dataDir, census.lastEvent)); got != want {
		t.Errorf("read models after the kills differ from a fresh replay (%d vs %d bytes)", len(got), len(want))
	}
	if leaked := leaks(proc.stderr.String(), people); len(leaked) > 0 {
		t.Errorf("percorso's log shows personal data: %v", leaked)
	}
}

func connectJS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

var metricLine = regexp.MustCompile(`(?m)^(percorso_projection_applied_sequence|percorso_projection_lag_events) (\S+)$`)

// waitProcessProjected waits, through /metrics, until the process has
// applied the stream up to event seq last.
func waitProcessProjected(t *testing.T, c *loadClient, last uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, raw, _, err := c.call("GET", "/metrics", "")
		var applied, lag float64 = -1, -1
		if err == nil && st == http.StatusOK {
			for _, m := range metricLine.FindAllStringSubmatch(string(raw), -1) {
				v, _ := strconv.ParseFloat(m[2], 64)
				if m[1] == "percorso_projection_applied_sequence" {
					applied = v
				} else {
					lag = v
				}
			}
		}
		if lag == 0 && applied >= float64(last) {
			time.Sleep(100 * time.Millisecond) // a batch may be committing
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process has not projected up to %d: applied %v, lag %v (%v)", last, applied, lag, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replayFrom projects the stream into a fresh database with the keys of the
// data directory, as `percorso rebuild` would.
func replayFrom(t *testing.T, js jetstream.JetStream, dataDir string, last uint64) pgtest.Queryer {
	t.Helper()
	ctx := context.Background()
	master, err := privacy.LoadMasterKey(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := privacy.NewJetStreamKeyStore(ctx, js, master)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := privacy.NewSealer(master, ks)
	if err != nil {
		t.Fatal(err)
	}
	codec := eventstore.NewCodec(sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	pool, err := pg.Connect(ctx, pgtest.New(t), pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	r := projections.NewRunner(js, codec, pg.NewProjector(pool), slog.New(slog.DiscardHandler))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for !(r.Running() && r.Lag() == 0 && r.Applied() >= last) {
		if time.Now().After(deadline) {
			t.Fatalf("fresh replay did not reach %d: applied %d, lag %d", last, r.Applied(), r.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pool
}

// TestEmbeddedNATSSyncsEveryWrite: on a single node nothing but the disk
// holds an acknowledged event, so the embedded server must fsync each write
// before acknowledging it (JetStream's default syncs every two minutes).
func TestEmbeddedNATSSyncsEveryWrite(t *testing.T) {
	m := startMain(t)
	if m.ns == nil {
		t.Fatal("no embedded NATS server")
	}
	if cfg := m.ns.JetStreamConfig(); cfg == nil || !cfg.SyncAlways {
		t.Errorf("embedded JetStream config %+v: SyncAlways is off", cfg)
	}
}
