package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/projections/pgtest"
)

// loadSeconds is how long TestLoadConflictingWriters runs: 10 s in the
// default suite, PERCORSO_LOAD_SECONDS (e.g. 30) for the figures of
// docs/reliability.md.
func loadSeconds(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("PERCORSO_LOAD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PERCORSO_LOAD_SECONDS=%q: a number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	return 10 * time.Second
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// loadStats are the figures of a load run.
type loadStats struct {
	retries       atomic.Int64 // attempts after the first, all causes
	preconditions atomic.Int64 // 412 answers to If-Match
	conflicts     atomic.Int64 // 409 conflict answers (the server gave up re-deciding)
	unavailable   atomic.Int64 // 503 answers
	reads         atomic.Int64
}

// TestLoadConflictingWriters runs sustained mixed commands over HTTP with
// writers deliberately colliding on a few paths: blind writers (no
// If-Match, the server re-decides on fresh state), careful writers
// (If-Match, retrying on 412 with the version they read back), group
// sessions spanning the same paths, new workers taken in charge, and
// readers. Whatever the contention: no 5xx, no acknowledged command lost
// or duplicated on the stream, every path's counters in the read model
// equal to the commands acknowledged on it, and the read models equal to a
// fresh replay.
func TestLoadConflictingWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("sustained load")
	}
	run := loadSeconds(t)
	m := startMain(t)
	op := newLoadClient(m.HTTPURL(), token(t, m, access.RoleOperator))
	defer op.close()
	cmds := &commandLog{}

	open := func(i int) string {
		s := &sentCommand{corr: command.NewUUID(), route: "/v1/paths", events: 1, phase: "setup"}
		st, b := op.send(cmds, s, testPerson(t, 20000+i).body("BO01"))
		if st != http.StatusCreated {
			t.Fatalf("take_in_charge: %d %v", st, b)
		}
		s.paths = []string{b["path_id"].(string)}
		return s.paths[0]
	}
	var hot, cold []string
	for i := range 4 {
		hot = append(hot, open(i))
	}
	for i := range 12 {
		cold = append(cold, open(100+i))
	}

	var stats loadStats
	var fails sync.Map // unexpected answers, by status and code
	unexpected := func(s *sentCommand, body map[string]any) {
		k := fmt.Sprintf("%s %d %s", uuidPattern.ReplaceAllString(s.route, "{id}"), s.status, errCode(body))
		v, _ := fails.LoadOrStore(k, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	// deliver sends one logical command until it is recorded or refused
	// for good: conflicts and unavailability are retried, with the same
	// Idempotency-Key, so a retry never records it twice.
	deliver := func(s *sentCommand, body string, ifMatch func() string) {
		key := command.NewUUID()
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				stats.retries.Add(1)
			}
			hdr := []string{"Idempotency-Key", key, "X-Correlation-Id", s.corr}
			if ifMatch != nil {
				hdr = append(hdr, "If-Match", ifMatch())
			}
			st, raw, _, err := op.call("POST", s.route, body, hdr...)
			s.status = st
			var out map[string]any
			if err == nil {
				json.Unmarshal(raw, &out)
			}
			switch {
			case st == http.StatusPreconditionFailed:
				stats.preconditions.Add(1)
			case st == http.StatusConflict && errCode(out) == "conflict":
				stats.conflicts.Add(1)
			case st == http.StatusServiceUnavailable:
				stats.unavailable.Add(1)
			case st == http.StatusCreated:
				cmds.add(s)
				return
			default:
				unexpected(s, out)
				cmds.add(s)
				return
			}
			if attempt == 30 {
				cmds.add(s) // gave up: the last answer stands
				return
			}
			time.Sleep(time.Duration(attempt) * time.Millisecond)
		}
	}
	session := func(rng *rand.Rand, path string) (*sentCommand, string) {
		svc := []int{1, 3, 9, 10}[rng.IntN(4)]
		return &sentCommand{corr: command.NewUUID(), route: "/v1/paths/" + path + "/sessions", paths: []string{path}, events: 1,
				service: svc, kind: "session"},
			fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-%02dT10:00:00+01:00","minutes":%d}`, svc, 1+rng.IntN(28), 10+rng.IntN(90))
	}
	mixed := func(rng *rand.Rand, path string) (*sentCommand, string) {
		switch n := rng.IntN(10); {
		case n == 0:
			justified := rng.IntN(2) == 0
			kind := "no_show"
			if justified {
				kind = "absence"
			}
			return &sentCommand{corr: command.NewUUID(), route: "/v1/paths/" + path + "/no-shows", paths: []string{path}, events: 1, kind: kind},
				fmt.Sprintf(`{"appointment_at":"2010-03-%02dT09:00:00+01:00","justified":%t}`, 1+rng.IntN(28), justified)
		case n == 1:
			return &sentCommand{corr: command.NewUUID(), route: "/v1/paths/" + path + "/refusals", paths: []string{path}, events: 1, kind: "refusal"},
				fmt.Sprintf(`{"kind":"convocation","at":"2010-03-%02dT09:00:00+01:00"}`, 1+rng.IntN(28))
		}
		return session(rng, path)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(seed uint64, f func(rng *rand.Rand)) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 42))
			for {
				select {
				case <-stop:
					return
				default:
					f(rng)
				}
			}
		})
	}
	// Blind writers: the server re-decides a command that lost a race.
	for w := range 8 {
		worker(uint64(w), func(rng *rand.Rand) {
			s, body := mixed(rng, hot[rng.IntN(len(hot))])
			deliver(s, body, nil)
		})
	}
	// Careful writers: If-Match with the version last seen, read back
	// from the read model after a 412.
	for w := range 4 {
		var mu sync.Mutex
		seen := map[string]string{}
		worker(uint64(100+w), func(rng *rand.Rand) {
			path := hot[rng.IntN(len(hot))]
			s, body := mixed(rng, path)
			first := true
			deliver(s, body, func() string {
				mu.Lock()
				defer mu.Unlock()
				if v, ok := seen[path]; ok && first {
					first = false
					return v
				}
				first = false
				if _, _, hdr, err := op.call("GET", "/v1/paths/"+path, ""); err == nil && hdr.Get("ETag") != "" {
					seen[path] = hdr.Get("ETag")
				}
				return seen[path]
			})
		})
	}
	// Group sessions over two hot paths and some cold ones.
	for w := range 2 {
		worker(uint64(200+w), func(rng *rand.Rand) {
			members := []string{}
			for _, i := range rng.Perm(len(hot))[:2] {
				members = append(members, hot[i])
			}
			for _, i := range rng.Perm(len(cold))[:4+rng.IntN(5)] {
				members = append(members, cold[i])
			}
			s := &sentCommand{corr: command.NewUUID(), route: "/v1/group-sessions", paths: members, events: len(members),
				service: 4, kind: "session", group: command.NewUUID()}
			deliver(s, fmt.Sprintf(`{"group_id":%q,"service":4,"delivered_at":"2010-04-%02dT09:00:00+02:00","minutes":240,"participants":["%s"]}`,
				s.group, 1+rng.IntN(28), strings.Join(members, `","`)), nil)
		})
	}
	// New workers keep arriving.
	var intake atomic.Int64
	worker(300, func(rng *rand.Rand) {
		i := int(intake.Add(1))
		s := &sentCommand{corr: command.NewUUID(), route: "/v1/paths", events: 1}
		deliver(s, testPerson(t, 30000+i).body("BO01"), nil)
		time.Sleep(20 * time.Millisecond)
	})
	// Readers.
	for w := range 2 {
		worker(uint64(400+w), func(rng *rand.Rand) {
			q := []string{"/v1/paths/" + hot[rng.IntN(len(hot))], "/v1/paths?office=BO01&limit=20",
				"/v1/reports/activity?from=2010-01-01&to=2010-12-31&group_by=service"}[rng.IntN(3)]
			st, raw, _, err := op.call("GET", q, "")
			stats.reads.Add(1)
			if err != nil || st != http.StatusOK {
				t.Errorf("GET %s: %d %v %s", q, st, err, raw)
			}
			time.Sleep(10 * time.Millisecond)
		})
	}

	start := time.Now()
	time.Sleep(run)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	all := cmds.all()
	acked, events := 0, 0
	for _, s := range all {
		if s.acked() && s.phase != "setup" {
			acked++
			events += s.events
		}
	}
	t.Logf("load: %v, %d commands acknowledged (%.0f commands/s, %.0f events/s), %d reads; "+
		"%d answers 412 to If-Match, %d answers 409 conflict, %d answers 503, %d retried attempts in all",
		elapsed.Round(time.Millisecond), acked, float64(acked)/elapsed.Seconds(), float64(events)/elapsed.Seconds(), stats.reads.Load(),
		stats.preconditions.Load(), stats.conflicts.Load(), stats.unavailable.Load(), stats.retries.Load())
	fails.Range(func(k, v any) bool {
		t.Errorf("unexpected answers %s: %d", k, v.(*atomic.Int64).Load())
		return true
	})
	if stats.unavailable.Load() > 0 {
		t.Errorf("%d commands answered 503 under load", stats.unavailable.Load())
	}
	if acked == 0 || stats.preconditions.Load() == 0 {
		t.Errorf("the load did not collide: %d acknowledged, %d answers 412", acked, stats.preconditions.Load())
	}

	waitCaughtUp(t, m)
	census := takeCensus(t, m.js)
	if landed := reconcile(t, census, all); landed > 0 {
		t.Errorf("%d commands without an answer landed", landed)
	}
	checkPathCounters(t, op, append(append([]string{}, hot...), cold...), all)
	if got, want := pgtest.Dump(t, m.pool), pgtest.Dump(t, replay(t, m)); got != want {
		t.Errorf("read models after the load differ from a fresh replay (%d vs %d bytes)", len(got), len(want))
	}
}
