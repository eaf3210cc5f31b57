package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/taxcode"
)

// TestBenchQuickJSON runs `percorso bench --quick --json` against an
// embedded system, shrunk further so that it fits a test, and checks that
// every figure and every ratio to a baseline is there and positive: a
// measurement that silently produced nothing would read as a zero.
func TestBenchQuickJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and PostgreSQL and runs the whole bench")
	}
	defer func(s float64, i bool) { benchScale, benchQuickInterval = s, i }(benchScale, benchQuickInterval)
	benchScale, benchQuickInterval = 0.25, true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errw bytes.Buffer
	start := time.Now()
	if err := run(ctx, []string{"bench", "--quick", "--json"}, &out, &errw); err != nil {
		t.Fatalf("bench: %v\n%s", err, errw.String())
	}
	t.Logf("bench ran in %s", time.Since(start).Round(time.Millisecond))
	var rep benchReport
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("the output is not the report's JSON: %v", err)
	}
	if !strings.Contains(errw.String(), "commands (always)") {
		t.Errorf("no progress on stderr:\n%s", errw.String())
	}

	type figure struct {
		name  string
		value float64
	}
	figs := []figure{{"load events", float64(rep.Load.Events)}, {"load paths", float64(rep.Load.Paths)}}
	want := map[string]bool{}
	for _, s := range []string{"always", "interval"} {
		for _, tr := range []string{"http", "nats"} {
			for _, n := range []int{1, 16, 64} {
				want[fmt.Sprintf("%s/%s/%d", s, tr, n)] = true
			}
		}
	}
	for _, c := range rep.Commands {
		key := fmt.Sprintf("%s/%s/%d", c.Sync, c.Transport, c.Clients)
		delete(want, key)
		figs = append(figs,
			figure{key + " commands/s", c.CommandsPerS}, figure{key + " events/s", c.EventsPerS},
			figure{key + " p50", c.P50ms}, figure{key + " p99", c.P99ms},
			figure{key + " raw/s", c.RawPerS}, figure{key + " raw p50", c.RawP50ms}, figure{key + " raw p99", c.RawP99ms},
			figure{key + " x raw", c.Ratio}, figure{key + " commands of the mix", float64(len(c.ByCommand))})
	}
	for k := range want {
		t.Errorf("no command figure for %s", k)
	}
	if len(rep.Lag) != 2 {
		t.Errorf("%d projection lag figures, want one per sync mode", len(rep.Lag))
	}
	for _, l := range rep.Lag {
		figs = append(figs, figure{l.Sync + " lag rate", l.AchievedPerS}, figure{l.Sync + " lag p50", l.P50ms},
			figure{l.Sync + " lag p99", l.P99ms}, figure{l.Sync + " lag baseline p50", l.BaselineP50ms},
			figure{l.Sync + " lag baseline p99", l.BaselineP99ms}, figure{l.Sync + " lag x baseline", l.Ratio})
	}
	if rep.History == nil || rep.Rebuild == nil || rep.Memory == nil {
		t.Fatalf("missing sections: history %v, rebuild %v, memory %v", rep.History != nil, rep.Rebuild != nil, rep.Memory != nil)
	}
	h, r, m := rep.History, rep.Rebuild, rep.Memory
	figs = append(figs,
		figure{"history p50", h.P50ms}, figure{"history p99", h.P99ms}, figure{"history raw p50", h.RawP50ms},
		figure{"history raw p99", h.RawP99ms}, figure{"history x raw", h.Ratio},
		figure{"rebuild events/s", r.EventsPerS}, figure{"rebuild copy rows/s", r.CopyRowsPerS}, figure{"rebuild x copy", r.Ratio},
		figure{"rss empty", m.RSSEmptyMB}, figure{"rss active", m.RSSActiveMB}, figure{"rss at rest", m.RSSRestMB}, figure{"rss per 100k paths", m.PerHundredKMB},
		figure{"rss x empty", m.Ratio}, figure{"targets", float64(len(rep.Targets))})
	for _, f := range figs {
		if !(f.value > 0) {
			t.Errorf("%s = %v, want > 0", f.name, f.value)
		}
	}
	// The rebuilt read models hold what was loaded and what the commands
	// appended before it, no more, no less: the rebuild saw the whole stream.
	if r.Events < int64(rep.Load.Events) {
		t.Errorf("rebuild applied %d events, the load wrote %d", r.Events, rep.Load.Events)
	}
	if r.CopyRows != min(r.Events, benchCopyMax) {
		t.Errorf("the copy baseline copied %d rows for %d events", r.CopyRows, r.Events)
	}
	if h.PathEvents != benchLongEvents || h.Reads == 0 {
		t.Errorf("history read %d paths of %d events", h.Reads, h.PathEvents)
	}
}

// TestBenchHelpers checks the arithmetic the figures rest on.
func TestBenchHelpers(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, n := range v {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	for _, c := range []struct {
		ds   []time.Duration
		q    float64
		want float64
	}{
		{ms(5, 1, 3, 2, 4), 0.5, 3},
		{ms(5, 1, 3, 2, 4), 1, 5},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 0.99, 100},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 0.5, 50},
		{nil, 0.5, 0},
	} {
		if got := benchPct(c.ds, c.q); got != c.want {
			t.Errorf("pct(%v, %v) = %v, want %v", c.ds, c.q, got, c.want)
		}
	}

	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	commits := []benchCommit{{3, at(10)}, {7, at(25)}, {9, at(40)}}
	for _, c := range []struct {
		w    benchAppended
		want time.Duration
	}{
		{benchAppended{1, at(0)}, 10 * time.Millisecond},
		{benchAppended{3, at(5)}, 5 * time.Millisecond},
		{benchAppended{4, at(12)}, 13 * time.Millisecond},
		{benchAppended{9, at(30)}, 10 * time.Millisecond},
		{benchAppended{2, at(15)}, 0}, // committed before its writer heard back
	} {
		got, err := benchLags([]benchAppended{c.w}, commits)
		if err != nil || got[0] != c.want {
			t.Errorf("lag of %+v = %v, %v; want %v", c.w, got, err, c.want)
		}
	}
	if _, err := benchLags([]benchAppended{{10, at(0)}}, commits); err == nil {
		t.Error("a write past the last commit got a lag")
	}

	for _, events := range []int{2000, 50_000, 1_000_000} {
		p := newBenchPlan(events)
		if p.normal%benchGroupSize != 0 || p.window%benchGroupSize != 0 || p.long < 4 {
			t.Errorf("plan for %d events: %+v", events, p)
		}
		if got := p.events(); got < events*9/10 || got > events {
			t.Errorf("plan for %d events makes %d", events, got)
		}
		if p.messages() != p.events()+p.normal+p.long {
			t.Errorf("plan for %d events: %d messages", events, p.messages())
		}
	}

	seen := map[string]bool{}
	for _, n := range []int{0, 1, 25, 26, 675, 17575, 308_915_775} {
		code := benchTaxCode(n)
		if err := taxcode.CheckPerson(code); err != nil || seen[code] {
			t.Errorf("benchTaxCode(%d) = %s: %v (seen before: %v)", n, code, err, seen[code])
		}
		seen[code] = true
	}

	// One pass of the office's script: what its comment promises.
	n := 0
	c := &mixClient{nextTax: func() int { n++; return n }}
	count := map[string]int{}
	events := 0
	for i := 0; i < 57; i++ {
		cmd := c.next()
		count[cmd.name]++
		events += cmd.events
		if cmd.name != "take_in_charge" && cmd.name != "deliver_group_session" && cmd.pathID == "" {
			t.Fatalf("command %d (%s) has no path", i, cmd.name)
		}
		c.done(benchReply{PathID: fmt.Sprintf("path-%d", i)})
	}
	want := map[string]int{"take_in_charge": 8, "deliver_session": 32, "sign_pact": 8, "deliver_group_session": 1, "verify_path": 8}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%s: %d in a pass, want %d", k, count[k], v)
		}
	}
	if events != 72 || c.stage != 0 || c.member != 0 {
		t.Errorf("a pass wrote %d events and ended at stage %d member %d", events, c.stage, c.member)
	}
}
