package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/projections/pgtest"
)

// The role matrix lives in testdata/roles/*.txt rather than in code so that
// the policy of API.md can be read, reviewed and extended as a table, one
// line per principal, office and endpoint, without reading any Go.

// The principals of the role tests. Keys are what the matrix files name.
const (
	homeOffice  = "BO01"
	awayOffice  = "MO01"
	keyNone     = "none"
	keyUnknown  = "unknown"
	keyAdmin    = "admin"
	keyAuditor  = "auditor"
	keyOperator = "operator"
)

type testPrincipal struct {
	key     string
	role    access.Role
	offices []string
}

var testPrincipals = []testPrincipal{
	{keyOperator, access.RoleOperator, []string{homeOffice}},
	{"operator_mo", access.RoleOperator, []string{awayOffice}},
	{"supervisor", access.RoleSupervisor, []string{homeOffice}},
	{keyAuditor, access.RoleAuditor, nil},
	{"analyst", access.RoleAnalyst, nil},
	{keyAdmin, access.RoleAdmin, nil},
}

// relationOffices returns the offices a relation names for a principal key.
func relationOffices(key, relation string) []string {
	home := homeOffice
	for _, p := range testPrincipals {
		if p.key == key && len(p.offices) > 0 {
			home = p.offices[0]
		}
	}
	away := awayOffice
	if home == awayOffice {
		away = homeOffice
	}
	switch relation {
	case "own":
		return []string{home}
	case "other":
		return []string{away}
	case "mixed":
		return []string{home, away}
	}
	return nil
}

// rolesEnv is one percorso with the test principals, and what the cases
// share: clients, a NATS connection, and a supply of fresh workers.
type rolesEnv struct {
	m      *Main
	tokens map[string]string
	nc     *nats.Conn
	next   atomic.Int64
}

// startWithPrincipals runs a percorso, like startMain, but with a principals
// file of testPrincipals instead of the dev principals.
func startWithPrincipals(t *testing.T) *rolesEnv {
	t.Helper()
	e := &rolesEnv{tokens: map[string]string{keyNone: ""}}
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
	unknown, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[keyUnknown] = unknown
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.m.Run(ctx); err != nil {
		e.m.Close()
		t.Fatalf("starting percorso: %v", err)
	}
	t.Cleanup(func() { e.m.Close() })
	if e.nc, err = nats.Connect(e.m.NATSURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	return e
}

func (e *rolesEnv) http(t *testing.T, key string) client {
	return client{t, e.m.HTTPURL(), e.tokens[key]}
}

func (e *rolesEnv) nats(t *testing.T, key string) natsClient {
	return natsClient{t, e.nc, e.tokens[key]}
}

// natsClient sends commands as a NATS micro client does.
type natsClient struct {
	t     *testing.T
	nc    *nats.Conn
	token string
}

// okStatus is the HTTP status of a command's success; a NATS success has
// none, so it is reported as the one HTTP would give.
func okStatus(name string) int {
	if name == "erase_worker" {
		return http.StatusOK
	}
	return http.StatusCreated
}

// call sends a command on percorso.cmd.<name>. The status is that of
// Nats-Service-Error-Code for an error reply, whose Nats-Service-Error must
// agree with the code of the JSON body.
func (c natsClient) call(name, body string, hdr ...string) (int, map[string]any) {
	c.t.Helper()
	msg := nats.NewMsg(natsapi.SubjectPrefix + name)
	msg.Data = []byte(body)
	if c.token != "" {
		msg.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		msg.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		c.t.Fatalf("nats %s: %v", name, err)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		c.t.Fatalf("nats %s: reply is not JSON: %s", name, resp.Data)
	}
	code := resp.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		if resp.Header.Get(micro.ErrorHeader) != "" {
			c.t.Errorf("nats %s: %s without %s", name, micro.ErrorHeader, micro.ErrorCodeHeader)
		}
		return okStatus(name), out
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		c.t.Fatalf("nats %s: %s %q is not a status", name, micro.ErrorCodeHeader, code)
	}
	if h := resp.Header.Get(micro.ErrorHeader); h != errCode(out) {
		c.t.Errorf("nats %s: %s = %q but the body's code is %q", name, micro.ErrorHeader, h, errCode(out))
	}
	return status, out
}

// freshTaxCode returns a codice fiscale no other case of the run uses; a
// worker has at most one open path, and erasure is for good.
func freshTaxCode(t *testing.T, i int64) string {
	t.Helper()
	const months = "ABCDEHLMPRST"
	first := fmt.Sprintf("VRDLGU%02d%c%02dF257", i%100, months[(i/100)%12], 1+(i/1200)%28)
	c, err := taxcode.CheckChar(first)
	if err != nil {
		t.Fatal(err)
	}
	return first + string(c)
}

// ticBody is a take_in_charge body.
func ticBody(pathID, tax, office, takenAt string) string {
	id := ""
	if pathID != "" {
		id = fmt.Sprintf(`"path_id":%q,`, pathID)
	}
	return fmt.Sprintf(`{%s"worker":{"tax_code":%q,"given_name":"Luigi","family_name":"Verdi","birth_date":"1970-01-02","disability":false},
		"category":"c","support":{"kind":"cig_deroga","from":"2010-01-04","to":"2011-12-31"},"office":%q,"taken_at":%q}`,
		id, tax, office, takenAt)
}

// newPath opens a path for a fresh worker, as admin, and returns its id,
// the worker's tax code and the version reached.
func (e *rolesEnv) newPath(t *testing.T, office, takenAt string) (id, tax string, version int) {
	t.Helper()
	id, tax = command.NewUUID(), freshTaxCode(t, e.next.Add(1))
	st, b, _ := e.http(t, keyAdmin).do("POST", "/v1/paths", ticBody(id, tax, office, takenAt))
	if st != http.StatusCreated {
		t.Fatalf("setup take_in_charge at %s: %d %v", office, st, b)
	}
	return id, tax, int(b["version"].(float64))
}

// eventCount is how many events the stream holds for a path (-1: none, the
// path does not exist), read as admin through the chain verification.
func (e *rolesEnv) eventCount(t *testing.T, id string) int {
	t.Helper()
	st, b, _ := e.http(t, keyAdmin).do("GET", "/v1/paths/"+id+"/verify", "")
	switch st {
	case http.StatusOK:
		return int(b["events"].(float64))
	case http.StatusNotFound:
		return -1
	}
	t.Fatalf("verify %s: %d %v", id, st, b)
	return 0
}

// matrixCase is one line of a matrix file.
type matrixCase struct {
	file      string
	line      int
	principal string
	relation  string
	transport string
	endpoint  string
	status    int
	code      string
}

func (c matrixCase) String() string {
	return fmt.Sprintf("%s:%d %s/%s/%s/%s", c.file, c.line, c.principal, c.relation, c.transport, c.endpoint)
}

func loadMatrix(t *testing.T) []matrixCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "roles", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no matrix files in testdata/roles: %v", err)
	}
	var cases []matrixCase
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fs := strings.Fields(line)
			if len(fs) != 6 {
				t.Fatalf("%s:%d: want 6 fields (principal relation transport endpoint status code), got %q", name, n, line)
			}
			st, err := strconv.Atoi(fs[4])
			if err != nil {
				t.Fatalf("%s:%d: status %q", name, n, fs[4])
			}
			c := matrixCase{file: filepath.Base(name), line: n, principal: fs[0], relation: fs[1], transport: fs[2],
				endpoint: fs[3], status: st, code: fs[5]}
			if c.code == "-" {
				c.code = ""
			}
			cases = append(cases, c)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cases
}

// relationsOf lists the relations an endpoint must be covered for, and
// those it accepts at all.
func relationsOf(endpoint string) (required, accepted []string) {
	switch {
	case endpoint == "deliver_group_session":
		return []string{"own", "other"}, []string{"own", "other", "mixed"}
	case commandSpecs[endpoint] != nil:
		return []string{"own", "other"}, []string{"own", "other"}
	}
	q := querySpecs[endpoint]
	if q == nil {
		return nil, nil
	}
	if q.office {
		return []string{"own", "other", "region"}, []string{"own", "other", "region"}
	}
	if q.path {
		return []string{"own", "other"}, []string{"own", "other"}
	}
	return []string{"region"}, []string{"region"}
}

// checkMatrix refuses a malformed matrix and one that leaves a principal,
// an office relation or a transport of some endpoint untested.
func checkMatrix(t *testing.T, cases []matrixCase) {
	t.Helper()
	keys := []string{keyNone, keyUnknown}
	for _, p := range testPrincipals {
		keys = append(keys, p.key)
	}
	seen := map[string]matrixCase{}
	unknownHTTP := 0
	for _, c := range cases {
		_, accepted := relationsOf(c.endpoint)
		_, isCommand := commandSpecs[c.endpoint]
		switch {
		case accepted == nil:
			t.Fatalf("%v: unknown endpoint", c)
		case !slices.Contains(keys, c.principal):
			t.Fatalf("%v: unknown principal", c)
		case !slices.Contains(accepted, c.relation):
			t.Fatalf("%v: relation must be one of %v", c, accepted)
		case c.transport != "http" && c.transport != "nats" && c.transport != "both",
			!isCommand && c.transport != "http":
			t.Fatalf("%v: bad transport (queries are http only)", c)
		case c.status < 200 || c.status > 599, (c.status >= 300) != (c.code != ""):
			t.Fatalf("%v: a success has code -, an error a code", c)
		}
		for _, tr := range transportsOf(c) {
			k := strings.Join([]string{c.principal, c.relation, tr, c.endpoint}, "/")
			if prev, dup := seen[k]; dup {
				t.Fatalf("%v repeats %v", c, prev)
			}
			seen[k] = c
			if c.principal == keyUnknown && tr == "http" {
				unknownHTTP++
			}
		}
	}
	// Every failed authentication counts against the one address the
	// tests come from; past the limit unknown tokens get 429 instead of
	// 401, and those cases would be testing the limiter.
	if unknownHTTP > 25 {
		t.Fatalf("%d http cases with an unknown token: keep them under the server's 30 a minute", unknownHTTP)
	}
	var endpoints []string
	for name := range commandSpecs {
		endpoints = append(endpoints, name)
	}
	for name := range querySpecs {
		endpoints = append(endpoints, name)
	}
	slices.Sort(endpoints)
	for _, ep := range endpoints {
		required, _ := relationsOf(ep)
		transports := []string{"http"}
		if commandSpecs[ep] != nil {
			transports = []string{"http", "nats"}
		}
		for _, tr := range transports {
			for _, key := range keys {
				rels := required
				if key == keyNone || key == keyUnknown {
					rels = required[:1] // refused before any office is looked at
				}
				for _, rel := range rels {
					if _, ok := seen[strings.Join([]string{key, rel, tr, ep}, "/")]; !ok {
						t.Errorf("matrix misses %s %s %s %s", key, rel, tr, ep)
					}
				}
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func transportsOf(c matrixCase) []string {
	if c.transport == "both" {
		return []string{"http", "nats"}
	}
	return []string{c.transport}
}

// commandSpec builds one command for a case: the paths it is made for, and
// its request on each transport.
type commandSpec struct {
	// paths is how many fresh paths the command needs, one per office of
	// the relation (a group needs two even in one office).
	paths func(offices []string) []string
	// prepare brings a fresh path to where the command can succeed.
	prepare func(t *testing.T, e *rolesEnv, id string)
	// route is the HTTP route; "" for take_in_charge's own.
	route string
	// body is the request body without the path id.
	body func(c *cmdCase) map[string]any
}

// cmdCase is the state made for one command case.
type cmdCase struct {
	paths  []string
	taxes  []string
	newID  string // take_in_charge: the path it asks for
	newTax string
	office string
}

func onePath(offices []string) []string { return offices }

func twoPaths(offices []string) []string {
	if len(offices) == 1 {
		return []string{offices[0], offices[0]}
	}
	return offices
}

func noPath([]string) []string { return nil }

var commandSpecs = map[string]*commandSpec{
	"take_in_charge": {paths: noPath, body: func(c *cmdCase) map[string]any {
		var b map[string]any
		json.Unmarshal([]byte(ticBody(c.newID, c.newTax, c.office, "2010-02-01T09:00:00+01:00")), &b)
		return b
	}},
	"deliver_session": {paths: onePath, route: "sessions", body: func(*cmdCase) map[string]any {
		return map[string]any{"service": 1, "delivered_at": "2010-02-02T09:00:00+01:00", "minutes": 25}
	}},
	"deliver_group_session": {paths: twoPaths, body: func(c *cmdCase) map[string]any {
		return map[string]any{"service": 4, "delivered_at": "2010-02-03T09:00:00+01:00", "minutes": 200,
			"participants": c.paths, "justification": "two workers only"}
	}},
	"sign_pact": {paths: onePath, route: "pact", body: func(*cmdCase) map[string]any {
		return map[string]any{"signed_at": "2010-02-02T10:00:00+01:00", "did_on": "2010-02-01"}
	}},
	"activate_traineeship": {paths: onePath, route: "traineeships", body: func(*cmdCase) map[string]any {
		return map[string]any{"host_tax_code": "00743110157", "starts_on": "2010-03-01", "ends_on": "2010-06-30",
			"delivered_at": "2010-02-20T10:00:00+01:00", "minutes": 700}
	}},
	"verify_path": {paths: onePath, route: "verification",
		prepare: func(t *testing.T, e *rolesEnv, id string) {
			t.Helper()
			body := `{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25,"pact":{"signed_at":"2010-02-01T09:50:00+01:00","did_on":"2010-02-01"}}`
			if st, b, _ := e.http(t, keyAdmin).do("POST", "/v1/paths/"+id+"/sessions", body); st != http.StatusCreated {
				t.Fatalf("setup pact: %d %v", st, b)
			}
		},
		body: func(*cmdCase) map[string]any {
			return map[string]any{"verified_at": "2010-06-30T10:00:00+02:00", "outcome": "achieved", "minutes": 50}
		}},
	"record_no_show": {paths: onePath, route: "no-shows", body: func(*cmdCase) map[string]any {
		return map[string]any{"appointment_at": "2010-03-01T09:00:00+01:00", "justified": false}
	}},
	"report_refusal": {paths: onePath, route: "refusals", body: func(*cmdCase) map[string]any {
		return map[string]any{"kind": "convocation", "at": "2010-03-10T09:00:00+01:00"}
	}},
	"close_path": {paths: onePath, route: "close", body: func(*cmdCase) map[string]any {
		return map[string]any{"closed_at": "2010-07-01T09:00:00+02:00", "reason": "withdrawn"}
	}},
	"erase_worker": {paths: onePath, body: func(*cmdCase) map[string]any { return nil }},
}

// runCommand runs one command case on fresh paths and checks both the
// answer and the stream: a success appended to every path it names, a
// refusal to none.
func runCommand(t *testing.T, e *rolesEnv, c matrixCase, transport string) {
	spec := commandSpecs[c.endpoint]
	offs := relationOffices(c.principal, c.relation)
	if c.principal == keyNone || c.principal == keyUnknown {
		offs = []string{homeOffice}
	}
	cc := &cmdCase{office: offs[0]}
	for _, o := range spec.paths(offs) {
		id, tax, _ := e.newPath(t, o, "2010-02-01T09:00:00+01:00")
		if spec.prepare != nil {
			spec.prepare(t, e, id)
		}
		cc.paths, cc.taxes = append(cc.paths, id), append(cc.taxes, tax)
	}
	if c.endpoint == "take_in_charge" {
		cc.newID, cc.newTax = command.NewUUID(), freshTaxCode(t, e.next.Add(1))
	}
	before := make([]int, len(cc.paths))
	for i, id := range cc.paths {
		before[i] = e.eventCount(t, id)
	}

	body := spec.body(cc)
	var status int
	var out map[string]any
	switch transport {
	case "http":
		route := "/v1/paths"
		switch {
		case c.endpoint == "deliver_group_session":
			route = "/v1/group-sessions"
		case c.endpoint == "erase_worker":
			route = "/v1/workers/" + cc.taxes[0] + "/erasure"
		case spec.route != "":
			route = "/v1/paths/" + cc.paths[0] + "/" + spec.route
		}
		raw := ""
		if body != nil {
			b, _ := json.Marshal(body)
			raw = string(b)
		}
		status, out, _ = e.http(t, c.principal).do("POST", route, raw)
	case "nats":
		if body == nil {
			body = map[string]any{}
		}
		switch {
		case c.endpoint == "erase_worker":
			body["tax_code"] = cc.taxes[0]
		case spec.route != "":
			body["path_id"] = cc.paths[0]
		}
		b, _ := json.Marshal(body)
		status, out = e.nats(t, c.principal).call(c.endpoint, string(b))
	}
	if status != c.status || errCode(out) != c.code {
		t.Errorf("%v over %s: got %d %q (%v), want %d %q", c, transport, status, errCode(out), out, c.status, c.code)
	}

	ok := status < 300
	for i, id := range cc.paths {
		after := e.eventCount(t, id)
		if ok && after <= before[i] {
			t.Errorf("%v over %s: succeeded but path %d still has %d events", c, transport, i, after)
		}
		if !ok && after != before[i] {
			t.Errorf("%v over %s: refused but path %d went from %d to %d events", c, transport, i, before[i], after)
		}
	}
	if cc.newID != "" {
		n := e.eventCount(t, cc.newID)
		if ok != (n == 1) {
			t.Errorf("%v over %s: the path asked for has %d events after a %d", c, transport, n, status)
		}
	}
}

// querySpec is one read endpoint.
type querySpec struct {
	method string
	route  string // with {path} for path reads
	path   bool   // reads one path: own and other name fixture paths
	office bool   // takes ?office=: own and other name it, region leaves it out
}

var querySpecs = map[string]*querySpec{
	"get_path":           {route: "/v1/paths/{path}", path: true},
	"history":            {route: "/v1/paths/{path}/history", path: true},
	"verify":             {route: "/v1/paths/{path}/verify", path: true},
	"list_paths":         {route: "/v1/paths", office: true},
	"report_activity":    {route: "/v1/reports/activity?from=2010-01-01&to=2010-12-31&group_by=office,service", office: true},
	"report_compliance":  {route: "/v1/reports/compliance?from=2010-01-01&to=2010-12-31", office: true},
	"report_intake":      {route: "/v1/reports/intake?group_by=office,category", office: true},
	"report_closures":    {route: "/v1/reports/closures?group_by=office,reason", office: true},
	"report_inps":        {route: "/v1/reports/inps?group_by=office", office: true},
	"report_deadlines":   {route: "/v1/reports/deadlines?as_of=2010-06-01", office: true},
	"catalogue_services": {route: "/v1/catalogue/services"},
	"catalogue_offices":  {route: "/v1/catalogue/offices"},
	"admin_poison":       {route: "/v1/admin/projections/poison"},
	"admin_poison_skip":  {method: "POST", route: "/v1/admin/projections/poison/1/skip"},
	"audit_reads":        {route: "/v1/audit/reads"},
}

func runQuery(t *testing.T, e *rolesEnv, c matrixCase, fixtures map[string]string) {
	q := querySpecs[c.endpoint]
	target := q.route
	offs := relationOffices(c.principal, c.relation)
	if c.principal == keyNone || c.principal == keyUnknown {
		offs = []string{homeOffice}
	}
	switch {
	case q.path:
		target = strings.Replace(target, "{path}", fixtures[offs[0]], 1)
	case q.office && c.relation != "region":
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "office=" + offs[0]
	}
	method := q.method
	if method == "" {
		method = "GET"
	}
	status, out, _ := e.http(t, c.principal).do(method, target, "")
	if status != c.status || errCode(out) != c.code {
		t.Errorf("%v: %s %s: got %d %q (%v), want %d %q", c, method, target, status, errCode(out), out, c.status, c.code)
	}
	if status == http.StatusOK && out == nil {
		t.Errorf("%v: 200 without a JSON body", c)
	}
}

// TestRoles runs the role x endpoint matrix of testdata/roles against one
// percorso, then checks what the matrix cannot say in a status: that a
// listing stays in the principal's offices, what analysts are shown, and
// that auditors' reads are on record.
func TestRoles(t *testing.T) {
	cases := loadMatrix(t)
	checkMatrix(t, cases)
	e := startWithPrincipals(t)

	// One read-only path per office for the reads, visible in the read
	// models before any read runs.
	fixtures := map[string]string{}
	last := 0
	var lastID string
	for _, o := range []string{homeOffice, awayOffice} {
		id, _, _ := e.newPath(t, o, "2010-02-01T09:00:00+01:00")
		st, b, _ := e.http(t, keyAdmin).do("POST", "/v1/paths/"+id+"/sessions",
			`{"service":5,"delivered_at":"2010-02-10T09:00:00+01:00","minutes":90}`)
		if st != http.StatusCreated {
			t.Fatalf("fixture session: %d %v", st, b)
		}
		fixtures[o], last, lastID = id, int(b["version"].(float64)), id
	}
	e.waitProjected(t, lastID, last)

	t.Run("matrix", func(t *testing.T) {
		for _, c := range cases {
			for _, tr := range transportsOf(c) {
				t.Run(strings.Join([]string{c.principal, c.relation, tr, c.endpoint}, "/"), func(t *testing.T) {
					t.Parallel()
					if commandSpecs[c.endpoint] != nil {
						runCommand(t, e, c, tr)
					} else {
						runQuery(t, e, c, fixtures)
					}
				})
			}
		}
	})
	t.Run("listing_scope", func(t *testing.T) { testListingScope(t, e) })
	t.Run("analyst_cells", func(t *testing.T) { testAnalystCells(t, e) })
	t.Run("auditor_reads_recorded", func(t *testing.T) { testAuditorReads(t, e) })
}

// waitProjected waits until the read models have applied version of path
// id, and with it everything the stream held before.
func (e *rolesEnv) waitProjected(t *testing.T, id string, version int) {
	t.Helper()
	st, b, _ := e.http(t, keyAdmin).do("GET", fmt.Sprintf("/v1/paths/%s?min_version=%d", id, version), "")
	if st != http.StatusOK {
		t.Fatalf("read model did not reach version %d: %d %v", version, st, b)
	}
}

// testListingScope: a listing that names no office covers the principal's
// offices and nothing else.
func testListingScope(t *testing.T, e *rolesEnv) {
	for key, want := range map[string]string{keyOperator: homeOffice, "operator_mo": awayOffice, "supervisor": homeOffice} {
		st, b, _ := e.http(t, key).do("GET", "/v1/paths?limit=100", "")
		if st != http.StatusOK {
			t.Fatalf("%s listing: %d %v", key, st, b)
		}
		paths, _ := b["paths"].([]any)
		if len(paths) == 0 {
			t.Errorf("%s listing is empty", key)
		}
		for _, p := range paths {
			if o := p.(map[string]any)["office"]; o != want {
				t.Errorf("%s listing shows a path of %v", key, o)
			}
		}
	}
}

// testAnalystCells: in an activity report analysts get the worker count of
// cells of five or more workers only, and of the compliance report the
// totals alone, no path's row; other principals see both.
func testAnalystCells(t *testing.T, e *rolesEnv) {
	// June 2011 is used by no other case: six workers in a BO01 workshop,
	// two in a MO01 group too small for the rule, hence justified.
	const takenAt = "2011-06-01T09:00:00+02:00"
	group := func(office string, n int, service int, justification string) {
		ids := make([]string, n)
		for i := range ids {
			ids[i], _, _ = e.newPath(t, office, takenAt)
		}
		b, _ := json.Marshal(map[string]any{"service": service, "delivered_at": "2011-06-15T09:00:00+02:00", "minutes": 240,
			"participants": ids, "justification": justification})
		if st, out, _ := e.http(t, keyAdmin).do("POST", "/v1/group-sessions", string(b)); st != http.StatusCreated {
			t.Fatalf("group at %s: %d %v", office, st, out)
		}
	}
	group(homeOffice, 6, 6, "")
	group(awayOffice, 2, 4, "Two workers left in the crisis unit")
	// The projector applies the stream in order: once the second group
	// shows, the first has too.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, b, _ := e.http(t, keyAdmin).do("GET", "/v1/reports/activity?from=2011-06-01&to=2011-06-30&group_by=office", "")
		if st == http.StatusOK && activityWorkers(t, b)[awayOffice] == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity for June 2011 never showed the second group: %d %v", st, b)
		}
	}

	const activity = "/v1/reports/activity?from=2011-06-01&to=2011-06-30&group_by=office"
	for _, c := range []struct {
		key  string
		want map[string]string // office -> workers ("null" when blanked)
	}{
		{"analyst", map[string]string{homeOffice: "6", awayOffice: "null"}},
		{keyAdmin, map[string]string{homeOffice: "6", awayOffice: "2"}},
		{keyAuditor, map[string]string{homeOffice: "6", awayOffice: "2"}},
		{"supervisor", map[string]string{homeOffice: "6"}},
		{"operator_mo", map[string]string{awayOffice: "2"}},
	} {
		st, b, _ := e.http(t, c.key).do("GET", activity, "")
		if st != http.StatusOK {
			t.Errorf("%s activity: %d %v", c.key, st, b)
			continue
		}
		if got := activityWorkers(t, b); !maps.Equal(got, c.want) {
			t.Errorf("%s activity workers by office = %v, want %v", c.key, got, c.want)
		}
	}

	const compliance = "/v1/reports/compliance?from=2011-06-01&to=2011-06-30&office=" + awayOffice
	// The analyst's total concerns two workers: blanked (null).
	for key, want := range map[string]struct {
		rows  int
		total any
	}{"analyst": {0, nil}, keyAdmin: {2, float64(2)}} {
		st, b, _ := e.http(t, key).do("GET", compliance, "")
		rows, _ := b["rows"].([]any)
		totals, _ := b["totals"].(map[string]any)
		total, present := totals["group_size_out_of_range"]
		if st != http.StatusOK || len(rows) != want.rows || !present || total != want.total {
			t.Errorf("%s compliance: %d, want %d rows and a total of %v groups outside the range: %v", key, st, want.rows, want.total, b)
			continue
		}
		for _, r := range rows {
			if j := r.(map[string]any)["justification"]; j != "Two workers left in the crisis unit" {
				t.Errorf("%s compliance justification = %v", key, j)
			}
		}
	}
	// An auditor's compliance report lists paths: a recorded read of each.
	st, b, _ := e.http(t, keyAuditor).do("GET", compliance, "")
	listed := map[string]bool{}
	for _, r := range b["rows"].([]any) {
		listed[r.(map[string]any)["path_id"].(string)] = true
	}
	if st != http.StatusOK || len(listed) != 2 {
		t.Fatalf("auditor compliance: %d %v", st, b)
	}
	_, log, _ := e.http(t, keyAdmin).do("GET", "/v1/audit/reads?limit=1000&principal=test-auditor", "")
	for _, r := range log["reads"].([]any) {
		if r.(map[string]any)["action"] == "compliance" {
			delete(listed, r.(map[string]any)["path_id"].(string))
		}
	}
	if len(listed) != 0 {
		t.Errorf("the auditor's compliance report left no read of %v", listed)
	}

	req, err := http.NewRequest("GET", e.m.HTTPURL()+compliance, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens["analyst"])
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "kind,sessions\r\n") || !strings.Contains(string(body), "group_size_out_of_range,\r\n") || strings.Contains(string(body), "-4") {
		t.Errorf("analyst compliance CSV: %d %q, want the totals by kind alone", resp.StatusCode, body)
	}
}

// activityWorkers maps an activity report grouped by office to each
// office's workers, as text ("null" for a blanked cell).
func activityWorkers(t *testing.T, b map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows, _ := b["rows"].([]any)
	for _, r := range rows {
		row := r.(map[string]any)
		w, _ := json.Marshal(row["workers"])
		out[fmt.Sprint(row["office"])] = string(w)
	}
	return out
}

// testAuditorReads: API.md has auditors' reads recorded, so every read of
// one path by an auditor, its current state included, adds one entry to the
// read log, and nobody else's reads do.
func testAuditorReads(t *testing.T, e *rolesEnv) {
	id, _, v := e.newPath(t, homeOffice, "2010-02-01T09:00:00+01:00")
	e.waitProjected(t, id, v)
	recorded := func(principal string) int {
		t.Helper()
		st, b, _ := e.http(t, keyAdmin).do("GET", "/v1/audit/reads?limit=1000&principal="+principal, "")
		if st != http.StatusOK {
			t.Fatalf("read log: %d %v", st, b)
		}
		n := 0
		for _, r := range b["reads"].([]any) {
			if r.(map[string]any)["path_id"] == id {
				n++
			}
		}
		return n
	}
	for _, route := range []string{"/v1/paths/" + id, "/v1/paths/" + id + "/history", "/v1/paths/" + id + "/verify"} {
		before := recorded("test-auditor")
		if st, b, _ := e.http(t, keyAuditor).do("GET", route, ""); st != http.StatusOK {
			t.Fatalf("auditor GET %s: %d %v", route, st, b)
		}
		if after := recorded("test-auditor"); after != before+1 {
			t.Errorf("auditor GET %s: %d reads recorded, want 1", route, after-before)
		}
		if st, b, _ := e.http(t, "supervisor").do("GET", route, ""); st != http.StatusOK {
			t.Fatalf("supervisor GET %s: %d %v", route, st, b)
		}
	}
	if n := recorded("test-supervisor"); n != 0 {
		t.Errorf("a supervisor's reads were recorded: %d", n)
	}
}
