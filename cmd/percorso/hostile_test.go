package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/projections/pgtest"
)

// Hostile input, from outside: bodies and headers too large, clients too
// slow, tokens wrong or guessed, query parameters carrying injections, and
// CLI output paths leaving the working directory. The API must refuse each
// with the right 4xx, never answer 500, never show one office's data to
// another, and never put a worker's personal data in an error or a log.

// TestHostileInput runs the edge's limits against one percorso, in order:
// the brute-force case comes last, since it spends the address's budget of
// failed authentications.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the header timeout of slow clients")
	}
	m := startMain(t)
	opTok := token(t, m, access.RoleOperator)
	op := client{t, m.HTTPURL(), opTok}
	st, b, _ := op.do("POST", "/v1/paths", testPerson(t, 40000).body("BO01"))
	if st != http.StatusCreated {
		t.Fatalf("take_in_charge: %d %v", st, b)
	}
	path := b["path_id"].(string)
	healthy := func(t *testing.T) {
		t.Helper()
		if st, _, _ := op.do("GET", "/v1/paths/"+path, ""); st != http.StatusOK {
			t.Fatalf("the server stopped answering: %d", st)
		}
	}

	t.Run("oversized bodies", func(t *testing.T) {
		session := `{"service":1,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":20}`
		pad := func(n int) string { return session + strings.Repeat(" ", n-len(session)) }
		cases := []struct {
			name, route, body string
			chunked           bool
			status            int
		}{
			// Exactly the limit is still read (and recorded: the padding is
			// JSON whitespace); one byte more is refused unread.
			{"1 MiB session", "/v1/paths/" + path + "/sessions", pad(1 << 20), false, http.StatusCreated},
			{"1 MiB + 1 session", "/v1/paths/" + path + "/sessions", pad(1<<20 + 1), false, http.StatusRequestEntityTooLarge},
			{"8 MiB take in charge", "/v1/paths", `{"worker":{"tax_code":"` + strings.Repeat("A", 8<<20) + `"}}`, false, http.StatusRequestEntityTooLarge},
			{"2 MiB chunked group", "/v1/group-sessions", `{"participants":[` + strings.Repeat(`"x",`, 1<<19) + `"x"]}`, true, http.StatusRequestEntityTooLarge},
		}
		for _, c := range cases {
			req, err := http.NewRequest("POST", m.HTTPURL()+c.route, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(strings.NewReader(c.body))
			}
			req.Header.Set("Authorization", "Bearer "+opTok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, raw, c.status)
			}
			if c.status == http.StatusRequestEntityTooLarge && !bytes.Contains(raw, []byte(`"code":"`+fault.CodeTooLarge+`"`)) {
				t.Errorf("%s: body %s, want the %s error", c.name, raw, fault.CodeTooLarge)
			}
		}
		healthy(t)
	})

	t.Run("oversized headers", func(t *testing.T) {
		for name, hdr := range map[string]func(h http.Header){
			"one 100 KiB header": func(h http.Header) { h.Set("X-Padding", strings.Repeat("a", 100<<10)) },
			"2000 headers": func(h http.Header) {
				for i := range 2000 {
					h.Set(fmt.Sprintf("X-H%d", i), strings.Repeat("b", 40))
				}
			},
			"100 KiB token": func(h http.Header) { h.Set("Authorization", "Bearer "+strings.Repeat("c", 100<<10)) },
		} {
			req, _ := http.NewRequest("GET", m.HTTPURL()+"/v1/paths/"+path, nil)
			req.Header.Set("Authorization", "Bearer "+opTok)
			hdr(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: %d, want 431", name, resp.StatusCode)
			}
		}
		healthy(t)
	})

	t.Run("slow clients", func(t *testing.T) {
		// Slowloris: connections sending their headers a byte at a time,
		// never finishing. Each must be cut off at the header timeout
		// (5 s), and meanwhile everybody else is served promptly.
		const slow = 50
		start := time.Now()
		cut := make(chan time.Duration, slow)
		var wg sync.WaitGroup
		for range slow {
			conn, err := net.Dial("tcp", strings.TrimPrefix(m.HTTPURL(), "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			wg.Go(func() {
				go io.Copy(io.Discard, conn)
				req := "GET /v1/paths/" + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + opTok + "\r\nX-Slow: "
				for i := 0; ; i++ {
					b := []byte{'z'}
					if i < len(req) {
						b[0] = req[i]
					}
					if _, err := conn.Write(b); err != nil {
						cut <- time.Since(start)
						return
					}
					if time.Since(start) > 20*time.Second {
						cut <- -1
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		var worst time.Duration
		for time.Since(start) < 6*time.Second {
			t0 := time.Now()
			healthy(t)
			worst = max(worst, time.Since(t0))
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		close(cut)
		var first, last time.Duration = time.Hour, 0
		for d := range cut {
			if d < 0 {
				t.Fatal("a slow client was still connected after 20 s")
			}
			first, last = min(first, d), max(last, d)
		}
		t.Logf("%d slow clients cut off after %v to %v; slowest answer to a normal client meanwhile %v", slow,
			first.Round(time.Millisecond), last.Round(time.Millisecond), worst.Round(time.Millisecond))
		if first < 4*time.Second || last > 12*time.Second {
			t.Errorf("slow clients cut off after %v to %v, want about the 5 s header timeout", first, last)
		}
		if worst > 2*time.Second {
			t.Errorf("a normal request took %v while slow clients were connected", worst)
		}
	})

	t.Run("export paths", func(t *testing.T) {
		work := filepath.Join(t.TempDir(), "work")
		if err := os.MkdirAll(work, 0o700); err != nil {
			t.Fatal(err)
		}
		outside := filepath.Join(t.TempDir(), "outside.jsonl")
		if err := os.Symlink(outside, filepath.Join(work, "link.jsonl")); err != nil {
			t.Fatal(err)
		}
		t.Chdir(work)
		day := time.Now().UTC().Format(time.DateOnly)
		for _, out := range []string{"../x.jsonl", "../../x.jsonl", "sub/../../x.jsonl", "./../x.jsonl", "..", "link.jsonl"} {
			if msg, err := cli(t, m, "export", "--from", day, "--to", day, "--out", out, "events"); err == nil {
				t.Errorf("export --out %s was accepted:\n%s", out, msg)
			}
		}
		for _, f := range []string{filepath.Join(filepath.Dir(work), "x.jsonl"), filepath.Join(filepath.Dir(filepath.Dir(work)), "x.jsonl"), outside} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("export wrote %s, outside the working directory", f)
			}
		}
		// Inside the working directory, it works.
		if msg, err := cli(t, m, "export", "--from", day, "--to", day, "--out", "sub.jsonl", "events"); err != nil {
			t.Errorf("export into the working directory: %v\n%s", err, msg)
		}
	})

	t.Run("bad and guessed tokens", func(t *testing.T) {
		refused := map[string]string{
			"no scheme":           opTok,
			"basic":               "Basic b3BlcmF0b3I6c2VjcmV0",
			"empty bearer":        "Bearer ",
			"bearer alone":        "Bearer",
			"the stored hash":     "Bearer " + access.HashToken(opTok),
			"a prefix":            "Bearer " + opTok[:len(opTok)-1],
			"one more":            "Bearer " + opTok + "0",
			"two tokens":          "Bearer " + opTok + " " + opTok,
			"unicode":             "Bearer pct_" + strings.Repeat("é", 32),
			"case changed":        "Bearer " + strings.ToUpper(opTok),
			"NUL":                 "Bearer " + opTok + "\x00",
			"sql":                 "Bearer ' OR '1'='1",
			"10 KiB":              "Bearer " + strings.Repeat("pct_", 2560),
			"another server's":    "Bearer pct_" + strings.Repeat("0", 64),
			"token in query only": "",
		}
		for _, name := range slices.Sorted(maps.Keys(refused)) {
			req, _ := http.NewRequest("GET", m.HTTPURL()+"/v1/paths/"+path+"?access_token="+opTok, nil)
			if v := refused[name]; v != "" {
				req.Header["Authorization"] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// Go's client refuses to send some values (NUL): nothing to test.
				continue
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want 401", name, resp.StatusCode, raw)
			}
			if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}

		// Guessing: past the budget of failures (30 a minute per address)
		// a wrong token gets 429, and a valid one still gets in.
		var statuses []int
		for i := range 40 {
			tok, _ := access.NewToken()
			st, _, _ := (client{t, m.HTTPURL(), tok}).do("GET", fmt.Sprintf("/v1/paths/%s?i=%d", path, i), "")
			statuses = append(statuses, st)
		}
		if statuses[0] != http.StatusUnauthorized || statuses[len(statuses)-1] != http.StatusTooManyRequests {
			t.Errorf("40 guessed tokens answered %v: want 401 first, 429 at the end", statuses)
		}
		if st, b, _ := op.do("GET", "/v1/paths/"+path, ""); st != http.StatusOK {
			t.Errorf("a valid token after the guesses: %d %v", st, b)
		}
		if st, b, _ := op.do("POST", "/v1/paths/"+path+"/sessions", `{"service":3,"delivered_at":"2010-03-02T09:00:00+01:00","minutes":50}`); st != http.StatusCreated {
			t.Errorf("a valid token's command after the guesses: %d %v", st, b)
		}

		// Over NATS the budget is per token presented: a script repeating
		// a wrong token is throttled, the valid token is not.
		nc, err := nats.Connect(m.NATSURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		call := func(tok string) string {
			msg := nats.NewMsg(natsapi.SubjectPrefix + "record_no_show")
			msg.Header.Set("Authorization", "Bearer "+tok)
			msg.Data = []byte(fmt.Sprintf(`{"path_id":%q,"appointment_at":"2010-03-03T09:00:00+01:00","justified":true}`, path))
			reply, err := nc.RequestMsg(msg, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
				return code
			}
			return "ok"
		}
		wrong, _ := access.NewToken()
		var codes []string
		for range 35 {
			codes = append(codes, call(wrong))
		}
		if codes[0] != "401" || codes[len(codes)-1] != "429" {
			t.Errorf("35 NATS requests with a wrong token: %v, want 401 first, 429 at the end", codes)
		}
		if got := call(opTok); got != "ok" {
			t.Errorf("a valid token over NATS after the guesses: %s", got)
		}
	})
}

// hostileEnv is a percorso with principals of two offices and its logs
// captured.
type hostileEnv struct {
	m      *Main
	tokens map[string]string
	logs   *lockedBuffer
}

func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	e := &hostileEnv{tokens: map[string]string{}, logs: &lockedBuffer{}}
	var f access.File
	for _, p := range testPrincipals {
		tok, err := access.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[p.key] = tok
		f.Principals = append(f.Principals, access.FileEntry{
			Principal:   access.Principal{Name: "test-" + p.key, Role: p.role, Offices: p.offices},
			TokenSHA256: access.HashToken(tok)})
	}
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(authFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e.m = NewMain(Config{HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "-1", PGURL: pgtest.New(t),
		AuthFile: authFile, Replicas: 1}, io.Discard)
	e.m.Log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.m.Run(ctx); err != nil {
		e.m.Close()
		t.Fatalf("starting percorso: %v", err)
	}
	t.Cleanup(func() { e.m.Close() })
	return e
}

func (e *hostileEnv) client(t *testing.T, key string) client {
	return client{t, e.m.HTTPURL(), e.tokens[key]}
}

// injections are values no query parameter should choke on.
func injections(otherTax, otherPath string) []string {
	return []string{
		"'", `"`, `\`, "%", "_", "*", "' OR '1'='1", "1 OR 1=1", "BO01' OR office<>'BO01", "'; DROP TABLE paths;--",
		"1); DELETE FROM sessions;--", "'; SELECT pg_sleep(3);--", "$1", "NULL", "-1", "0", "99999999999999999999999",
		"1e3", "0x10", "2010-02-30", "0001-01-01", "9999-12-31T23:59:59Z", "2010-01-01' OR '1'='1", "MO01", "BO01,MO01",
		"office,office", "office;category", "../../../etc/passwd", "{{7*7}}", "${jndi:ldap://x/a}", "<script>alert(1)</script>",
		"\x00", "\xff\xfe", "\xc0\xae", "BÖ01", "ＢＯ０１", "BO01\u202e", "😀", strings.Repeat("A", 4000), strings.Repeat("'", 2000),
		otherTax, strings.ToLower(otherTax), otherPath, query.EncodeCursor(otherPath), query.EncodeCursor("' OR 1=1--"),
	}
}

// TestInjectionInEveryQueryParameter sends injection attempts in every
// parameter of every GET route the OpenAPI document lists (query and path
// parameters alike), as principals of office BO01, an analyst and an admin,
// while office MO01 has paths of its own. No answer may be a 5xx (a query
// that PostgreSQL refused would surface as 503), none may show MO01's data
// to BO01, none may show personal data to the analyst, and nothing may be
// logged as an error.
func TestInjectionInEveryQueryParameter(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of requests")
	}
	t.Parallel()
	e := startHostile(t)
	var home, away []string
	var homePeople, awayPeople []person
	versions := map[string]float64{}
	for i := range 3 {
		for _, side := range []struct {
			key, office string
			paths       *[]string
			people      *[]person
			n           int
		}{{"operator", "BO01", &home, &homePeople, i}, {"operator_mo", "MO01", &away, &awayPeople, 10 + i}} {
			p := testPerson(t, 50000+side.n)
			c := e.client(t, side.key)
			st, b, _ := c.do("POST", "/v1/paths", p.body(side.office))
			if st != http.StatusCreated {
				t.Fatalf("take_in_charge: %d %v", st, b)
			}
			id := b["path_id"].(string)
			var last float64
			for _, body := range []string{`{"service":5,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":80}`,
				`{"appointment_at":"2010-03-08T09:00:00+01:00","justified":false}`} {
				route := "/v1/paths/" + id + "/sessions"
				if strings.Contains(body, "appointment_at") {
					route = "/v1/paths/" + id + "/no-shows"
				}
				st, b, _ := c.do("POST", route, body)
				if st != http.StatusCreated {
					t.Fatalf("%s: %d %v", route, st, b)
				}
				last = b["version"].(float64)
			}
			versions[id] = last
			*side.paths = append(*side.paths, id)
			*side.people = append(*side.people, p)
		}
	}
	admin := e.client(t, "admin")
	for id, v := range versions {
		if st, _, _ := admin.do("GET", fmt.Sprintf("/v1/paths/%s?min_version=%d", id, int(v)), ""); st != http.StatusOK {
			t.Fatalf("read models not caught up: %d", st)
		}
	}

	type param struct{ route, in, name string }
	var params []param
	st, spec, _ := admin.do("GET", "/openapi.json", "")
	if st != http.StatusOK {
		t.Fatalf("openapi.json: %d", st)
	}
	components, _ := spec["components"].(map[string]any)
	shared, _ := components["parameters"].(map[string]any)
	for route, item := range spec["paths"].(map[string]any) {
		ops := item.(map[string]any)
		get, ok := ops["get"].(map[string]any)
		if !ok {
			continue
		}
		list, _ := get["parameters"].([]any)
		more, _ := ops["parameters"].([]any)
		for _, p := range append(list, more...) {
			pm := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				pm = shared[ref[strings.LastIndex(ref, "/")+1:]].(map[string]any)
			}
			params = append(params, param{route, pm["in"].(string), pm["name"].(string)})
		}
		params = append(params, param{route, "query", "unknown_parameter"})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].route+params[i].name < params[j].route+params[j].name })
	if len(params) < 40 {
		t.Fatalf("the OpenAPI document lists only %d GET parameters", len(params))
	}

	payloads := injections(awayPeople[0].tax, away[0])
	who := []string{"operator", "supervisor", "analyst", "admin"}
	clients := map[string]*loadClient{}
	for _, key := range who {
		clients[key] = newLoadClient(e.m.HTTPURL(), e.tokens[key])
		defer clients[key].close()
	}
	var requests, refused atomic.Int64
	var mu sync.Mutex
	byStatus := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, p := range params {
		for _, v := range payloads {
			if p.route == "/v1/audit/reads" && p.name == "principal" && (!utf8.ValidString(v) || strings.ContainsRune(v, 0)) {
				continue // TestTextPostgreSQLCannotStore
			}
			target := strings.ReplaceAll(p.route, "{path_id}", home[0])
			switch p.in {
			case "path":
				target = strings.ReplaceAll(p.route, "{"+p.name+"}", url.PathEscape(v))
			case "query":
				target += "?" + url.QueryEscape(p.name) + "=" + url.QueryEscape(v)
			}
			for _, key := range who {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					st, raw, _, err := clients[key].call("GET", target, "")
					requests.Add(1)
					mu.Lock()
					byStatus[st]++
					mu.Unlock()
					if err != nil {
						t.Errorf("%s GET %s: %v", key, target, err)
						return
					}
					if st >= 400 {
						refused.Add(1)
					}
					body := string(raw)
					// A value the client sent may come back in a refusal
					// ("unknown office ..."): only data it did not send is a
					// leak. The tax_code parameter is never echoed at all.
					unsent := func(found []string) []string {
						return slices.DeleteFunc(found, func(f string) bool {
							return p.name != "tax_code" && strings.Contains(strings.ToUpper(v), strings.ToUpper(f))
						})
					}
					if st >= 500 {
						t.Errorf("%s GET %s (%s=%.40q): %d %.300s", key, p.route, p.name, v, st, body)
					}
					switch key {
					case "operator", "supervisor":
						for _, id := range away {
							if strings.Contains(body, id) && !strings.Contains(v, id) {
								t.Errorf("%s GET %s (%s=%.40q) shows MO01's path %s: %.300s", key, p.route, p.name, v, id, body)
							}
						}
						if strings.Contains(body, `"office":"MO01"`) {
							t.Errorf("%s GET %s (%s=%.40q) shows MO01 rows: %.300s", key, p.route, p.name, v, body)
						}
						if l := unsent(leaksOf(body, awayPeople)); len(l) > 0 {
							t.Errorf("%s GET %s (%s=%.40q) shows MO01's workers %v", key, p.route, p.name, v, l)
						}
					case "analyst":
						if l := unsent(leaks(body, append(homePeople, awayPeople...))); len(l) > 0 {
							t.Errorf("analyst GET %s (%s=%.40q) shows personal data %v", p.route, p.name, v, l)
						}
					}
					if st >= 400 {
						if l := unsent(leaks(body, append(homePeople, awayPeople...))); len(l) > 0 {
							t.Errorf("%s GET %s (%s=%.40q): the error shows personal data %v: %.300s", key, p.route, p.name, v, l, body)
						}
					}
				}()
			}
		}
	}
	// Malformed and repeated parameters, on every route.
	for _, p := range params {
		route := strings.ReplaceAll(p.route, "{path_id}", home[0])
		for _, raw := range []string{"%zz", "office=BO01&office=MO01", "a=" + strings.Repeat("%27", 3000), strings.Repeat("&", 5000)} {
			st, b, _, err := clients["operator"].call("GET", route+"?"+raw, "")
			requests.Add(1)
			if err != nil || st >= 500 || bytes.Contains(b, []byte(away[0])) {
				t.Errorf("GET %s?%.40s: %d %v %.300s", route, raw, st, err, b)
			}
		}
	}
	wg.Wait()
	t.Logf("%d requests over %d parameters and %d payloads, %d refused: statuses %v", requests.Load(), len(params), len(payloads), refused.Load(), byStatus)

	// Nothing was dropped or deleted.
	for _, id := range append(home, away...) {
		if st, v, _ := admin.do("GET", "/v1/paths/"+id, ""); st != http.StatusOK || v["version"] != versions[id] {
			t.Errorf("path %s after the injections: %d %v", id, st, v)
		}
	}
	if l := leaks(e.logs.String(), append(homePeople, awayPeople...)); len(l) > 0 {
		t.Errorf("the log shows personal data %v", l)
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("logged an error: %s", line)
		}
	}
}

// TestNoPersonalDataInLogsOrErrors runs a workload meant to make percorso
// talk about its workers — their commands refused in every way that names a
// field of personal data, over HTTP and NATS, an erasure, reads by tax code
// — and searches the log, every error body and the raw stream for their tax
// codes, names and birth dates.
func TestNoPersonalDataInLogsOrErrors(t *testing.T) {
	t.Parallel()
	e := startHostile(t)
	op, admin := e.client(t, "operator"), e.client(t, "admin")
	var people []person
	for i := range 6 {
		people = append(people, testPerson(t, 60000+i))
	}
	var errorBodies []string
	expect := func(c client, method, route, body string, status int) map[string]any {
		t.Helper()
		st, out, _ := c.do(method, route, body)
		if st != status {
			t.Errorf("%s %s: %d %v, want %d", method, route, st, out, status)
		}
		if st >= 400 {
			raw, _ := json.Marshal(out)
			errorBodies = append(errorBodies, string(raw))
		}
		return out
	}
	p0, p1 := people[0], people[1]
	b := expect(op, "POST", "/v1/paths", p0.body("BO01"), 201)
	path := b["path_id"].(string)
	expect(op, "POST", "/v1/paths", p0.body("BO01"), 409) // the worker has an open path
	badCheck := p1.tax[:15] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(strings.Index("ABCDEFGHIJKLMNOPQRSTUVWXYZ", p1.tax[15:])+1)%26])
	for _, bad := range []string{
		strings.Replace(p1.body("BO01"), p1.tax, badCheck, 1),                                             // check character
		strings.Replace(p1.body("BO01"), p1.birth, "1931-02-30", 1),                                       // impossible birth date
		strings.Replace(p1.body("BO01"), `"disability":false`, `"disability":"`+p1.given+`"`, 1),          // wrong type
		strings.Replace(p1.body("BO01"), `"given_name":`, `"nick_name":"`+p1.family+`","given_name":`, 1), // unknown field
		strings.Replace(p1.body("BO01"), p1.given, strings.Repeat(p1.given, 40), 1),                       // name too long
		strings.Replace(p1.body("BO01"), `"BO01"`, `"ZZ99"`, 1),                                           // unknown office
		strings.Replace(p1.body("BO01"), `"cig_deroga"`, `"cocopro"`, 1),                                  // support mismatch
		p1.body("BO01")[:120], // truncated
	} {
		st, out, _ := op.do("POST", "/v1/paths", bad)
		raw, _ := json.Marshal(out)
		if st < 400 || st >= 500 {
			t.Errorf("refused take_in_charge: %d %s", st, raw)
		}
		errorBodies = append(errorBodies, string(raw))
	}
	expect(op, "GET", "/v1/paths?tax_code="+url.QueryEscape(badCheck), "", 422)
	expect(op, "GET", "/v1/paths?tax_code="+p1.tax, "", 200)
	expect(op, "GET", "/v1/paths?tax_code="+strings.ToLower(p0.tax), "", 200)
	expect(op, "POST", "/v1/workers/"+p0.tax+"/erasure", "", 403)
	expect(admin, "POST", "/v1/workers/"+p1.tax+"/erasure", "", 404)
	expect(admin, "POST", "/v1/workers/"+badCheck+"/erasure", "", 422)
	expect(admin, "GET", "/v1/workers/"+p0.tax+"/erasure", "", 405)
	expect(admin, "GET", "/v1/workers/"+p0.tax, "", 404)
	expect(admin, "POST", "/v1/workers/"+p0.tax+"/erasure", "", 200)
	expect(op, "POST", "/v1/paths", p0.body("BO01"), 422) // erased worker
	expect(op, "GET", "/v1/paths/"+path+"/history", "", 200)

	// The same over NATS.
	nc, err := nats.Connect(e.m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, c := range []struct{ subject, body string }{
		{"take_in_charge", strings.Replace(people[2].body("BO01"), people[2].tax, people[2].tax[:15]+"0", 1)},
		{"take_in_charge", strings.Replace(people[2].body("BO01"), people[2].birth, "1931-13-01", 1)},
		{"erase_worker", fmt.Sprintf(`{"tax_code":%q}`, people[3].tax)},
		{"erase_worker", fmt.Sprintf(`{"tax_code":%q,"given_name":%q}`, people[3].tax, people[3].given)},
	} {
		msg := nats.NewMsg(natsapi.SubjectPrefix + c.subject)
		msg.Header.Set("Authorization", "Bearer "+e.tokens["admin"])
		msg.Data = []byte(c.body)
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if reply.Header.Get("Nats-Service-Error-Code") == "" {
			t.Errorf("NATS %s was not refused: %s", c.subject, reply.Data)
		}
		errorBodies = append(errorBodies, reply.Header.Get("Nats-Service-Error")+" "+string(reply.Data))
	}

	for _, body := range errorBodies {
		if l := leaks(body, people); len(l) > 0 {
			t.Errorf("an error shows personal data %v: %s", l, body)
		}
	}
	if l := leaks(e.logs.String(), people); len(l) > 0 {
		t.Errorf("the log shows personal data %v", l)
	}
	// The stream carries them sealed only.
	_, js := connectJS(t, e.m.NATSURL())
	for _, msg := range readStream(t, js) {
		var hdr strings.Builder
		for k, vs := range msg.Headers() {
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ","))
		}
		if l := leaks(hdr.String()+string(msg.Data()), people); len(l) > 0 {
			t.Errorf("message %s of the stream shows %v in clear", msg.Subject(), l)
		}
	}
	if t.Failed() {
		sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
		for sc.Scan() {
			t.Log(sc.Text())
		}
	}
}

// TestTextPostgreSQLCannotStore sends text that PostgreSQL cannot store (a
// NUL, invalid UTF-8) in every free-text field of the commands and in the
// headers that reach the stream, over HTTP and NATS, and in the one query
// parameter passed to SQL as free text. An edge may refuse it (400/422) or
// accept it; what must not happen is an event on the stream that no
// projector can apply — one operator's typo, or one hostile app, would then
// stop every office's read models until an admin skipped the event — nor a
// query answered 503 as if the database were down.
func TestTextPostgreSQLCannotStore(t *testing.T) {
	t.Parallel()
	e := startHostile(t)
	op := e.client(t, "operator")
	base := testPerson(t, 70000)
	st, b, _ := op.do("POST", "/v1/paths", base.body("BO01"))
	if st != http.StatusCreated {
		t.Fatalf("take_in_charge: %d %v", st, b)
	}
	path := b["path_id"].(string)
	var n int
	fresh := func(field, value string) string {
		n++
		p := testPerson(t, 70000+n)
		body := p.body("BO01")
		switch field {
		case "given_name":
			return strings.Replace(body, p.given, value, 1)
		case "family_name":
			return strings.Replace(body, p.family, value, 1)
		case "mediator_language":
			return strings.Replace(body, `"disability":false`, `"disability":false,"mediator_language":"`+value+`"`, 1)
		case "agreement_code":
			return strings.Replace(body, `"kind":"cig_deroga"`, `"kind":"cig_deroga","agreement_code":"`+value+`"`, 1)
		}
		panic(field)
	}
	type cmd struct{ name, route, body string }
	var cmds []cmd
	for _, v := range []string{`Anna\u0000`, `\u0000`, "Anna\xff"} {
		for _, f := range []string{"given_name", "family_name", "mediator_language", "agreement_code"} {
			cmds = append(cmds, cmd{"take_in_charge", "/v1/paths", fresh(f, v)})
		}
		cmds = append(cmds,
			cmd{"deliver_session", "/v1/paths/" + path + "/sessions", `{"service":1,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":20,"justification":"` + v + `"}`},
			cmd{"record_no_show", "/v1/paths/" + path + "/no-shows", `{"appointment_at":"2010-03-01T09:00:00+01:00","justified":true,"reason":"` + v + `"}`},
			cmd{"report_refusal", "/v1/paths/" + path + "/refusals", `{"kind":"job_offer","at":"2010-03-01T09:00:00+01:00","note":"` + v + `"}`},
		)
	}
	var accepted []string
	for _, c := range cmds {
		st, b, _ := op.do("POST", c.route, c.body)
		switch {
		case st == http.StatusCreated:
			accepted = append(accepted, fmt.Sprintf("HTTP %s %.60q", c.name, c.body))
		case st >= 500:
			t.Errorf("HTTP %s %.60q: %d %v", c.name, c.body, st, b)
		}
	}
	nc, err := nats.Connect(e.m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, corr := range []string{"corr\x00", "corr\xff\xfe", "corr\x01\x02", strings.Repeat("c", 60000)} {
		msg := nats.NewMsg(natsapi.SubjectPrefix + "record_no_show")
		msg.Header.Set("Authorization", "Bearer "+e.tokens["operator"])
		msg.Header.Set("X-Correlation-Id", corr)
		msg.Data = []byte(fmt.Sprintf(`{"path_id":%q,"appointment_at":"2010-03-02T09:00:00+01:00","justified":true}`, path))
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		code := reply.Header.Get("Nats-Service-Error-Code")
		if code == "" {
			accepted = append(accepted, fmt.Sprintf("NATS X-Correlation-Id %.30q", corr))
		} else if code >= "500" {
			t.Errorf("NATS X-Correlation-Id %.30q: %s %s", corr, code, reply.Data)
		}
	}
	t.Logf("accepted %d of %d: %q", len(accepted), len(cmds)+4, accepted)

	admin := e.client(t, "admin")
	for _, v := range []string{"\x00", "\xff\xfe", "\xc0\xae", "a\x01b"} {
		if st, b, _ := admin.do("GET", "/v1/audit/reads?principal="+url.QueryEscape(v), ""); st != http.StatusOK && st != http.StatusBadRequest {
			t.Errorf("GET /v1/audit/reads?principal=%q: %d %v, want 200 or 400", v, st, b)
		}
	}

	deadline := time.Now().Add(15 * time.Second)
	for !(e.m.runner.Running() && e.m.runner.Lag() == 0) && e.m.runner.Poisoned() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := e.m.runner.Poisoned(); p != nil {
		t.Fatalf("the projection stopped on event %d: %v — accepted text PostgreSQL cannot store", p.Seq, p.Err)
	}
	if st, b, _ := (client{t, e.m.HTTPURL(), ""}).do("GET", "/readyz", ""); st != http.StatusOK {
		t.Errorf("readyz: %d %v", st, b)
	}
}
