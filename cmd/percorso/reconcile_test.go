package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/eventstore"
)

// What the fault, load and hostile-input tests share: a client that keeps
// going when the server fails (and records what it saw), a census of the
// stream, and the reconciliation of one against the other. Every command a
// test sends carries its own X-Correlation-Id, which the events it appends
// carry as ce-correlationid: that is how a test finds, on the stream, the
// events of each command it sent, whatever the server answered.

// sentCommand is one command as its HTTP client saw it.
type sentCommand struct {
	corr    string
	route   string
	paths   []string // paths it touches
	events  int      // events it appends when it lands
	service int      // the session's service, for sessions
	kind    string   // what it records on each path: "session", "no_show", ...
	group   string   // group id, for group sessions
	status  int      // 0: no answer (connection lost, timeout)
	phase   string
}

// acked reports whether the client was told the command was recorded.
func (s *sentCommand) acked() bool { return s.status == http.StatusCreated }

// commandLog collects the commands of a test, safe for many senders.
type commandLog struct {
	mu   sync.Mutex
	cmds []*sentCommand
}

func (l *commandLog) add(s *sentCommand) {
	l.mu.Lock()
	l.cmds = append(l.cmds, s)
	l.mu.Unlock()
}

func (l *commandLog) all() []*sentCommand {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*sentCommand(nil), l.cmds...)
}

// statuses counts the answers by status, "0" being no answer.
func (l *commandLog) statuses() map[int]int {
	out := map[int]int{}
	for _, s := range l.all() {
		out[s.status]++
	}
	return out
}

// loadClient is an HTTP client for many concurrent requests that returns
// transport errors instead of failing the test: when the server dies, the
// client's view (no answer) is what the test reconciles.
type loadClient struct {
	base, token string
	hc          *http.Client
}

func newLoadClient(base, token string) *loadClient {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	return &loadClient{base: base, token: token, hc: &http.Client{Transport: tr, Timeout: 40 * time.Second}}
}

func (c *loadClient) close() { c.hc.CloseIdleConnections() }

func (c *loadClient) call(method, path, body string, hdr ...string) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// send posts a command with its correlation id and records the answer.
func (c *loadClient) send(l *commandLog, s *sentCommand, body string, hdr ...string) (int, map[string]any) {
	hdr = append(hdr, "X-Correlation-Id", s.corr)
	st, raw, _, err := c.call("POST", s.route, body, hdr...)
	var out map[string]any
	if err == nil {
		json.Unmarshal(raw, &out)
	}
	s.status = st
	l.add(s)
	return st, out
}

// lockedBuffer is a log sink written by many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// person is a test worker whose personal data are distinctive enough to be
// searched for in logs and error bodies.
type person struct {
	tax, given, family, birth string
}

// Markers of the test workers' names: no log line, message or identifier
// of percorso's own contains them.
const (
	givenMarker  = "Ermenegilda"
	familyMarker = "Quagliarulo"
)

// testPerson returns the i-th test worker: tax codes differ from those of
// taxCode (another surname and name part) for i below 33600.
func testPerson(t testing.TB, i int) person {
	t.Helper()
	const months = "ABCDEHLMPRST"
	first := fmt.Sprintf("QGLRMN%02d%c%02dF205", i%100, months[(i/100)%12], 41+(i/1200)%28)
	c, err := taxcode.CheckChar(first)
	if err != nil {
		t.Fatal(err)
	}
	letters := func(n int) string { return string(rune('a'+n%26)) + string(rune('a'+(n/26)%26)) }
	return person{tax: first + string(c), given: givenMarker + " " + letters(i), family: familyMarker + "-" + letters(i+7),
		birth: fmt.Sprintf("1931-07-%02d", 1+i%28)}
}

// body is a take_in_charge body for the person at office.
func (p person) body(office string) string {
	return fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":%q,"family_name":%q,"birth_date":%q,"disability":false},
		"category":"c","support":{"kind":"cig_deroga","from":"2010-01-04","to":"2010-12-31"},"office":%q,"taken_at":"2010-02-01T09:00:00+01:00"}`,
		p.tax, p.given, p.family, p.birth, office)
}

// leaks returns the personal data of people found in text, and the name
// markers every test worker shares.
func leaks(text string, people []person) []string {
	found := leaksOf(text, people)
	for _, m := range []string{givenMarker, familyMarker} {
		if strings.Contains(text, m) {
			found = append(found, m)
		}
	}
	return found
}

// leaksOf returns the personal data of these people found in text.
func leaksOf(text string, people []person) []string {
	var found []string
	for _, p := range people {
		for _, v := range []string{p.tax, p.given, p.family, p.birth} {
			if strings.Contains(text, v) {
				found = append(found, v)
			}
		}
	}
	return found
}

// streamCensus is what the stream holds, counted.
type streamCensus struct {
	byCorr    map[string]int            // correlation id -> events
	byID      map[string]int            // event id -> copies
	groups    map[string]map[string]int // group id -> path -> sessions
	events    int
	lastEvent uint64
}

// takeCensus reads every event of the stream once, in order.
func takeCensus(t *testing.T, js jetstream.JetStream) streamCensus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := streamCensus{byCorr: map[string]int{}, byID: map[string]int{}, groups: map[string]map[string]int{}}
	st, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return c
	}
	cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for got := uint64(0); got < info.State.Msgs; {
		// Exactly what is left: a fetch for more waits out its whole wait.
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-got)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			got++
			path, ok := eventstore.PathOf(msg.Subject())
			if !ok {
				continue // the worker index
			}
			h := msg.Headers()
			c.events++
			c.byCorr[h.Get(eventstore.HdrCorrelationID)]++
			c.byID[h.Get(eventstore.HdrID)]++
			if md, err := msg.Metadata(); err == nil {
				c.lastEvent = max(c.lastEvent, md.Sequence.Stream)
			}
			if h.Get(eventstore.HdrType) == "SessionDelivered" {
				var d struct {
					GroupID string `json:"group_id"`
				}
				if json.Unmarshal(msg.Data(), &d) == nil && d.GroupID != "" {
					if c.groups[d.GroupID] == nil {
						c.groups[d.GroupID] = map[string]int{}
					}
					c.groups[d.GroupID][path]++
				}
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages, then nothing", got, info.State.Msgs)
		}
	}
	return c
}

// reconcile holds the stream to what the clients were told: an
// acknowledged command has all its events exactly once; a refused one (a
// 4xx) has none; one without a clear answer (no answer, 5xx) has all or
// none; no event is duplicated and none belongs to a command nobody sent.
// It returns how many commands without a clear answer landed.
func reconcile(t *testing.T, c streamCensus, cmds []*sentCommand) (landedUnanswered int) {
	t.Helper()
	known := map[string]bool{}
	for _, s := range cmds {
		known[s.corr] = true
		got := c.byCorr[s.corr]
		switch {
		case s.acked():
			if got != s.events {
				t.Errorf("%s %s (%s): acknowledged, but %d of its %d events are on the stream", s.route, s.corr, s.phase, got, s.events)
			}
		case s.status >= 400 && s.status < 500:
			if got != 0 {
				t.Errorf("%s %s (%s): refused with %d, but %d events are on the stream", s.route, s.corr, s.phase, s.status, got)
			}
		default:
			if got != 0 && got != s.events {
				t.Errorf("%s %s (%s): no clear answer (%d), and half applied: %d of %d events", s.route, s.corr, s.phase, s.status, got, s.events)
			}
			if got != 0 {
				landedUnanswered++
			}
		}
	}
	for corr, n := range c.byCorr {
		if !known[corr] {
			t.Errorf("%d events of correlation %q, which no client sent", n, corr)
		}
	}
	for id, n := range c.byID {
		if n != 1 {
			t.Errorf("event %s is on the stream %d times", id, n)
		}
	}
	return landedUnanswered
}

func freeHTTPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
