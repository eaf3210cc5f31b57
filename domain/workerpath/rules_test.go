package workerpath_test

// The aggregate's rules are pinned as given/when/then cases in
// testdata/rules/*.txt (format in testdata/rules/README.md). Keeping them as
// data lets a reader check the rules against the regional standard without
// reading Go, and makes a missing case visible as a missing line.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/fault"
	wp "github.com/percorso/percorso/domain/workerpath"
)

// The fixed clock and operator every case is decided with.
var (
	ruleNow      = time.Date(2011, 6, 30, 12, 0, 0, 0, time.UTC)
	ruleOperator = "mrossi"
	rulePathID   = "11111111-1111-4111-8111-111111111111"
)

// defaults is the input every command starts from; a case's JSON is merged
// into it (objects deeply, null deletes a key), so a case shows only what it
// is about.
var defaults = map[string]string{
	"take_in_charge": `{"path_id": "` + rulePathID + `",
		"worker_ref": "wref-1",
		"worker": {"tax_code": "RSSMRA80A01H501U", "given_name": "Mario", "family_name": "Rossi",
			"birth_date": "1980-01-01", "disability": false},
		"category": "a",
		"support": {"kind": "cig_deroga", "agreement_code": "ER-2010-0001", "from": "2010-12-01", "to": "2011-12-31"},
		"office": "BO01",
		"taken_at": "2011-01-10T09:00:00Z"}`,
	"deliver_session":      `{"service": 1, "delivered_at": "2011-03-01T10:00:00Z", "minutes": 60}`,
	"deliver_in_group":     `{"group_id": "33333333-3333-4333-8333-333333333333", "service": 4, "delivered_at": "2011-03-10T10:00:00Z", "minutes": 240, "group_size": 8}`,
	"sign_pact":            `{"signed_at": "2011-02-01T10:00:00Z", "did_on": "2011-01-10"}`,
	"activate_traineeship": `{"traineeship_id": "22222222-2222-4222-8222-000000000001", "host_tax_code": "00743110157", "starts_on": "2011-04-01", "ends_on": "2011-09-30", "delivered_at": "2011-03-15T10:00:00Z", "minutes": 120}`,
	"verify_path":          `{"verified_at": "2011-06-01T10:00:00Z", "outcome": "achieved", "minutes": 45}`,
	"record_no_show":       `{"appointment_at": "2011-02-15T09:00:00Z", "justified": false}`,
	"report_refusal":       `{"kind": "convocation", "at": "2011-02-20T09:00:00Z"}`,
	"close_path":           `{"closed_at": "2011-06-15T09:00:00Z", "reason": "reemployed"}`,
	"erase_personal_data":  `{}`,
}

// ruleCase is one given/when/then block.
type ruleCase struct {
	file  string
	line  int
	name  string
	given []step
	when  *step
	then  []step // expectation lines: "error CODE field=F", "no events" or "EventType k=v ..."
	state []step // key=value lines checked on the state after the emitted events
}

type step struct {
	line int
	text string
}

func (c *ruleCase) where(s step) string { return fmt.Sprintf("%s:%d", c.file, s.line) }

// parseRules reads a rules file. Directives start at column 0 (case, given,
// when, then, state); their content is indented or follows on the same line.
func parseRules(path string) ([]*ruleCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		cases   []*ruleCase
		cur     *ruleCase
		section string
		n       int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	add := func(text string) error {
		s := step{line: n, text: text}
		switch section {
		case "given":
			cur.given = append(cur.given, s)
		case "when":
			if cur.when != nil {
				return fmt.Errorf("%s:%d: a case has exactly one when", path, n)
			}
			cur.when = &s
		case "then":
			cur.then = append(cur.then, s)
		case "state":
			for _, kv := range tokens(text) {
				cur.state = append(cur.state, step{line: n, text: kv})
			}
		default:
			return fmt.Errorf("%s:%d: content outside a section: %q", path, n, text)
		}
		return nil
	}
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), " \t")
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if raw[0] == ' ' || raw[0] == '\t' {
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: content before the first case", path, n)
			}
			if err := add(trimmed); err != nil {
				return nil, err
			}
			continue
		}
		word, rest, _ := strings.Cut(trimmed, " ")
		rest = strings.TrimSpace(rest)
		switch word {
		case "case":
			if rest == "" {
				return nil, fmt.Errorf("%s:%d: case needs a name", path, n)
			}
			cur = &ruleCase{file: filepath.Base(path), line: n, name: rest}
			cases = append(cases, cur)
			section = ""
		case "given", "when", "then", "state":
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: %s before the first case", path, n, word)
			}
			section = word
			if rest != "" {
				if err := add(rest); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown directive %q", path, n, word)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, c := range cases {
		if c.when == nil || len(c.then) == 0 {
			return nil, fmt.Errorf("%s:%d: case %q needs a when and a then", path, c.line, c.name)
		}
	}
	return cases, nil
}

// tokens splits on spaces, keeping double-quoted values (k="a b") whole.
func tokens(s string) []string {
	var out []string
	var b strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quoted && i+1 < len(s):
			b.WriteByte(c)
			i++
			b.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			b.WriteByte(c)
		case c == ' ' && !quoted:
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// keyValue splits k=v, unquoting a quoted v.
func keyValue(tok string) (string, string, error) {
	k, v, ok := strings.Cut(tok, "=")
	if !ok {
		return "", "", fmt.Errorf("expected key=value, got %q", tok)
	}
	if strings.HasPrefix(v, `"`) {
		u, err := strconv.Unquote(v)
		if err != nil {
			return "", "", fmt.Errorf("bad quoted value in %q: %v", tok, err)
		}
		v = u
	}
	return k, v, nil
}

// merge deep-merges patch into base; a null in patch deletes the key.
func merge(base, patch map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range patch {
		if v == nil {
			delete(out, k)
			continue
		}
		pm, pok := v.(map[string]any)
		bm, bok := out[k].(map[string]any)
		if pok && bok {
			out[k] = merge(bm, pm)
			continue
		}
		out[k] = v
	}
	return out
}

// input merges a case's JSON into the command's defaults and decodes it
// strictly, so a misspelt field in the data fails instead of being ignored.
func input(name, body string, into any) error {
	var base, patch map[string]any
	if err := json.Unmarshal([]byte(defaults[name]), &base); err != nil {
		return fmt.Errorf("defaults of %s: %v", name, err)
	}
	if strings.TrimSpace(body) == "" {
		body = "{}"
	}
	if err := json.Unmarshal([]byte(body), &patch); err != nil {
		return fmt.Errorf("input of %s: %v", name, err)
	}
	b, err := json.Marshal(merge(base, patch))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// Test-side inputs, shaped like the API's bodies.
type (
	takeInChargeIn struct {
		PathID    string     `json:"path_id"`
		WorkerRef string     `json:"worker_ref"`
		Worker    wp.Person  `json:"worker"`
		Category  string     `json:"category"`
		Support   wp.Support `json:"support"`
		Office    string     `json:"office"`
		TakenAt   time.Time  `json:"taken_at"`
	}
	pactIn struct {
		SignedAt time.Time `json:"signed_at"`
		DIDOn    wp.Date   `json:"did_on"`
	}
	deliverSessionIn struct {
		SessionID       string    `json:"session_id"`
		Service         int       `json:"service"`
		DeliveredAt     time.Time `json:"delivered_at"`
		Minutes         int       `json:"minutes"`
		MediatorPresent bool      `json:"mediator_present"`
		Justification   string    `json:"justification"`
		Pact            *pactIn   `json:"pact"`
	}
	groupIn struct {
		GroupID       string    `json:"group_id"`
		Service       int       `json:"service"`
		DeliveredAt   time.Time `json:"delivered_at"`
		Minutes       int       `json:"minutes"`
		Justification string    `json:"justification"`
		// GroupSize stands for a participant list of that many paths, this
		// one first; Participants, when given, is used as is.
		GroupSize    int      `json:"group_size"`
		Participants []string `json:"participants"`
	}
	traineeshipIn struct {
		TraineeshipID string    `json:"traineeship_id"`
		HostTaxCode   string    `json:"host_tax_code"`
		StartsOn      wp.Date   `json:"starts_on"`
		EndsOn        wp.Date   `json:"ends_on"`
		DeliveredAt   time.Time `json:"delivered_at"`
		Minutes       int       `json:"minutes"`
	}
	verifyIn struct {
		SessionID  string    `json:"session_id"`
		VerifiedAt time.Time `json:"verified_at"`
		Outcome    string    `json:"outcome"`
		Minutes    int       `json:"minutes"`
		Note       string    `json:"note"`
	}
	noShowIn struct {
		AppointmentAt time.Time `json:"appointment_at"`
		Justified     bool      `json:"justified"`
		Reason        string    `json:"reason"`
	}
	refusalIn struct {
		Kind string    `json:"kind"`
		At   time.Time `json:"at"`
		Note string    `json:"note"`
	}
	closeIn struct {
		ClosedAt time.Time `json:"closed_at"`
		Reason   string    `json:"reason"`
	}
)

// decide runs one command line ("name {json}") against the path.
func decide(p *wp.Path, line string) ([]wp.Event, error) {
	name, body, _ := strings.Cut(line, " ")
	if _, ok := defaults[name]; !ok {
		return nil, fmt.Errorf("unknown command %q", name)
	}
	ctx := wp.Ctx{Operator: ruleOperator, Now: ruleNow}
	bad := func(err error) ([]wp.Event, error) { return nil, fmt.Errorf("test data: %w", err) }
	switch name {
	case "take_in_charge":
		var in takeInChargeIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.TakeInCharge(ctx, wp.TakeInCharge(in))
	case "deliver_session":
		var in deliverSessionIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		c := wp.DeliverSession{SessionID: in.SessionID, Service: in.Service, DeliveredAt: in.DeliveredAt,
			Minutes: in.Minutes, MediatorPresent: in.MediatorPresent, Justification: in.Justification}
		if in.Pact != nil {
			c.Pact = &wp.PactInput{SignedAt: in.Pact.SignedAt, DIDOn: in.Pact.DIDOn}
		}
		return p.DeliverSession(ctx, c)
	case "deliver_in_group":
		var in groupIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		parts := in.Participants
		if parts == nil {
			for i := 0; i < in.GroupSize; i++ {
				if i == 0 {
					parts = append(parts, p.ID)
				} else {
					parts = append(parts, fmt.Sprintf("peer-%03d", i))
				}
			}
		}
		return p.DeliverInGroup(ctx, wp.DeliverGroupSession{GroupID: in.GroupID, Service: in.Service,
			DeliveredAt: in.DeliveredAt, Minutes: in.Minutes, Justification: in.Justification, Participants: parts})
	case "sign_pact":
		var in pactIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.SignPact(ctx, wp.PactInput(in))
	case "activate_traineeship":
		var in traineeshipIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.ActivateTraineeship(ctx, wp.ActivateTraineeship(in))
	case "verify_path":
		var in verifyIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.VerifyPath(ctx, wp.VerifyPath(in))
	case "record_no_show":
		var in noShowIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.RecordNoShow(ctx, wp.RecordNoShow(in))
	case "report_refusal":
		var in refusalIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.ReportRefusal(ctx, wp.ReportRefusal(in))
	case "close_path":
		var in closeIn
		if err := input(name, body, &in); err != nil {
			return bad(err)
		}
		return p.ClosePath(ctx, wp.ClosePath(in))
	case "erase_personal_data":
		if strings.TrimSpace(body) != "" && strings.TrimSpace(body) != "{}" {
			return bad(fmt.Errorf("erase_personal_data takes no input"))
		}
		return p.ErasePersonalData(ctx)
	}
	return nil, fmt.Errorf("unhandled command %q", name)
}

// givenEvent decodes a raw event line ("EventType {json}"). TakenInCharge
// also reads "worker", which its JSON never carries.
func givenEvent(line string) (wp.Event, error) {
	typ, body, _ := strings.Cut(line, " ")
	e, ok := wp.NewEvent(typ)
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", typ)
	}
	if strings.TrimSpace(body) == "" {
		body = "{}"
	}
	if err := json.Unmarshal([]byte(body), e); err != nil {
		return nil, err
	}
	if t, ok := e.(*wp.TakenInCharge); ok {
		var w struct {
			Worker wp.Person `json:"worker"`
		}
		if err := json.Unmarshal([]byte(body), &w); err != nil {
			return nil, err
		}
		t.Worker = w.Worker
	}
	return e, nil
}

// fields flattens an event's JSON into dotted keys with string values.
func fields(e wp.Event) (map[string]string, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if t, ok := e.(*wp.TakenInCharge); ok {
		// The in-memory worker is checked too, under "worker.".
		wb, err := json.Marshal(t.Worker)
		if err != nil {
			return nil, err
		}
		var w map[string]any
		d := json.NewDecoder(bytes.NewReader(wb))
		d.UseNumber()
		if err := d.Decode(&w); err != nil {
			return nil, err
		}
		m["worker"] = w
	}
	if t, ok := e.(*wp.TraineeshipActivated); ok {
		// The in-memory host code is checked too; the store seals it.
		m["host_tax_code"] = t.HostTaxCode
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(prefix+k+".", x)
			}
		case string:
			out[strings.TrimSuffix(prefix, ".")] = v
		case nil:
			out[strings.TrimSuffix(prefix, ".")] = "null"
		default:
			out[strings.TrimSuffix(prefix, ".")] = fmt.Sprint(v)
		}
	}
	walk("", m)
	return out, nil
}

// zeroValues match a key the event's JSON omits (omitempty, omitzero).
var zeroValues = map[string]bool{"": true, "false": true, "0": true}

// stateOf exposes the state for the "state" lines.
func stateOf(p *wp.Path, key string) (string, bool) {
	if k, n, ok := strings.Cut(key, "."); ok && (k == "delivered" || k == "credited") {
		code, err := strconv.Atoi(n)
		if err != nil {
			return "", false
		}
		if k == "delivered" {
			return strconv.Itoa(p.Delivered[code]), true
		}
		return strconv.Itoa(p.Credited[code]), true
	}
	switch key {
	case "status":
		return p.Status, true
	case "category":
		return p.Category, true
	case "office":
		return p.Office, true
	case "support.kind":
		return p.Support.Kind, true
	case "reason":
		return p.Reason, true
	case "unjustified":
		return strconv.Itoa(p.Unjustified), true
	case "justified":
		return strconv.Itoa(p.Justified), true
	case "refusals":
		return strconv.Itoa(p.Refusals), true
	case "pact":
		return strconv.FormatBool(p.Pact != nil), true
	case "verified":
		if p.Verified == nil {
			return "", true
		}
		return p.Verified.Outcome, true
	case "erased":
		return strconv.FormatBool(p.Erased), true
	case "worker.disability":
		return strconv.FormatBool(p.Worker.Disability), true
	case "worker.tax_code":
		return p.Worker.TaxCode, true
	case "traineeships":
		return strconv.Itoa(len(p.Traineeships)), true
	case "events":
		return strconv.Itoa(p.Events), true
	case "credited_total":
		return strconv.Itoa(p.CreditedTotal()), true
	}
	return "", false
}

// kindOf is the transport class API.md gives each code the aggregate uses.
func kindOf(code string) fault.Kind {
	switch code {
	case fault.CodeInvalidField:
		return fault.Invalid
	case fault.CodePathNotFound:
		return fault.NotFound
	case fault.CodePathExists:
		return fault.Conflict
	}
	return fault.Rule
}

func loadRuleCases(t *testing.T) []*ruleCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rules", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no rule files in testdata/rules")
	}
	var all []*ruleCase
	for _, f := range files {
		cases, err := parseRules(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(cases) == 0 {
			t.Fatalf("%s has no cases", f)
		}
		seen := map[string]int{}
		for _, c := range cases {
			if prev, dup := seen[c.name]; dup {
				t.Fatalf("%s:%d: case %q already at line %d", f, c.line, c.name, prev)
			}
			seen[c.name] = c.line
		}
		all = append(all, cases...)
	}
	return all
}

func TestRules(t *testing.T) {
	for _, c := range loadRuleCases(t) {
		t.Run(strings.TrimSuffix(c.file, ".txt")+"/"+c.name, func(t *testing.T) { runRuleCase(t, c) })
	}
}

func runRuleCase(t *testing.T, c *ruleCase) {
	var history []wp.Event
	p := &wp.Path{}
	for _, g := range c.given {
		var evs []wp.Event
		if r := g.text[0]; r >= 'A' && r <= 'Z' {
			e, err := givenEvent(g.text)
			if err != nil {
				t.Fatalf("%s: %v", c.where(g), err)
			}
			evs = []wp.Event{e}
		} else {
			var err error
			evs, err = decide(p, g.text)
			if err != nil {
				t.Fatalf("%s: given step failed: %v", c.where(g), err)
			}
		}
		for _, e := range evs {
			p.Apply(e)
			history = append(history, e)
		}
	}

	got, err := decide(p, c.when.text)
	if err != nil && strings.HasPrefix(err.Error(), "test data:") {
		t.Fatalf("%s: %v", c.where(*c.when), err)
	}
	// Deciding never changes the state: only Apply does.
	if !reflect.DeepEqual(p, wp.Rebuild(history)) {
		t.Errorf("%s: deciding changed the state", c.where(*c.when))
	}

	first := c.then[0]
	if strings.HasPrefix(first.text, "error ") {
		checkError(t, c, first, got, err)
		return
	}
	if err != nil {
		t.Fatalf("%s: want events, got error %v", c.where(first), err)
	}
	want := c.then
	if len(want) == 1 && want[0].text == "no events" {
		want = nil
	}
	if len(got) != len(want) {
		t.Errorf("%s: got %d events %s, want %d", c.where(first), len(got), typesOf(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		checkEvent(t, c, want[i], got[i])
	}
	for _, e := range got {
		checkMeta(t, c, e, p)
		checkRoundTrip(t, c, e)
		p.Apply(e)
	}
	for _, s := range c.state {
		k, v, err := keyValue(s.text)
		if err != nil {
			t.Fatalf("%s: %v", c.where(s), err)
		}
		have, ok := stateOf(p, k)
		if !ok {
			t.Fatalf("%s: unknown state key %q", c.where(s), k)
		}
		if have != v {
			t.Errorf("%s: state %s = %q, want %q", c.where(s), k, have, v)
		}
	}
}

func checkError(t *testing.T, c *ruleCase, s step, got []wp.Event, err error) {
	t.Helper()
	toks := tokens(s.text)
	if len(toks) < 2 {
		t.Fatalf("%s: error needs a code", c.where(s))
	}
	if err == nil {
		t.Fatalf("%s: want error %s, got events %s", c.where(s), toks[1], typesOf(got))
	}
	if got != nil {
		t.Errorf("%s: a refused command returned events %s", c.where(s), typesOf(got))
	}
	fe := fault.As(err)
	if fe.Code != toks[1] {
		t.Errorf("%s: error code %q, want %q (%v)", c.where(s), fe.Code, toks[1], err)
	}
	if fe.Kind != kindOf(fe.Code) {
		t.Errorf("%s: error %s has kind %d, want %d", c.where(s), fe.Code, fe.Kind, kindOf(fe.Code))
	}
	wantField := ""
	for _, tok := range toks[2:] {
		k, v, err := keyValue(tok)
		if err != nil || k != "field" {
			t.Fatalf("%s: only field=... may follow the code, got %q", c.where(s), tok)
		}
		wantField = v
	}
	// The field is part of the contract: a missing field= means none.
	if fe.Field != wantField {
		t.Errorf("%s: error field %q, want %q (%v)", c.where(s), fe.Field, wantField, err)
	}
}

func checkEvent(t *testing.T, c *ruleCase, s step, e wp.Event) {
	t.Helper()
	toks := tokens(s.text)
	if toks[0] != e.EventType() {
		t.Errorf("%s: event %s, want %s", c.where(s), e.EventType(), toks[0])
		return
	}
	have, err := fields(e)
	if err != nil {
		t.Fatalf("%s: %v", c.where(s), err)
	}
	for _, tok := range toks[1:] {
		k, v, err := keyValue(tok)
		if err != nil {
			t.Fatalf("%s: %v", c.where(s), err)
		}
		got, present := have[k]
		switch {
		case !present && !zeroValues[v]:
			t.Errorf("%s: %s has no %s, want %q", c.where(s), e.EventType(), k, v)
		case present && got != v:
			t.Errorf("%s: %s.%s = %q, want %q", c.where(s), e.EventType(), k, got, v)
		}
	}
}

// checkMeta: every event names its path, office, operator and the decision time.
func checkMeta(t *testing.T, c *ruleCase, e wp.Event, p *wp.Path) {
	t.Helper()
	m := e.Header()
	office := p.Office
	if tic, ok := e.(*wp.TakenInCharge); ok {
		office = tic.Office
	} else if m.PathID != p.ID {
		t.Errorf("%s: %s path_id %q, want %q", c.file, e.EventType(), m.PathID, p.ID)
	}
	if m.Office != office || m.Operator != ruleOperator || !m.RecordedAt.Equal(ruleNow) || m.RecordedAt.Location() != time.UTC {
		t.Errorf("%s: %s meta %+v, want office %s operator %s recorded_at %s", c.file, e.EventType(), *m, office, ruleOperator, ruleNow)
	}
}

// checkRoundTrip: what the aggregate emits decodes back to the same JSON.
func checkRoundTrip(t *testing.T, c *ruleCase, e wp.Event) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := wp.NewEvent(e.EventType())
	if !ok {
		t.Fatalf("%s: NewEvent does not know %s", c.file, e.EventType())
	}
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatalf("%s: %s does not decode: %v", c.file, e.EventType(), err)
	}
	b2, _ := json.Marshal(back)
	if !bytes.Equal(b, b2) {
		t.Errorf("%s: %s JSON round trip differs:\n%s\n%s", c.file, e.EventType(), b, b2)
	}
}

func typesOf(evs []wp.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.EventType())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestRulesCoverEveryCode keeps the data honest: every code the aggregate
// can refuse with appears in at least one case, and every command has at
// least one case where it succeeds.
func TestRulesCoverEveryCode(t *testing.T) {
	codes := map[string]bool{}
	allowed := map[string]bool{}
	for _, c := range loadRuleCases(t) {
		cmd, _, _ := strings.Cut(c.when.text, " ")
		if toks := tokens(c.then[0].text); toks[0] == "error" {
			codes[toks[1]] = true
		} else {
			allowed[cmd] = true
		}
	}
	var missing []string
	for _, code := range []string{
		fault.CodeInvalidField, fault.CodeInvalidTaxCode, fault.CodeSupportMismatch, fault.CodeRepeatLimitReached,
		fault.CodeServiceNotAllowed, fault.CodeVerificationNotDue, fault.CodeGroupSizeOutOfRange,
		fault.CodePathClosed, fault.CodeInvalidDate, fault.CodeInvalidMinutes, fault.CodeUnknownOffice,
		fault.CodeUnknownService, fault.CodePactAlreadySigned, fault.CodePactNotAllowed, fault.CodeWorkerErased,
		fault.CodePathNotFound, fault.CodePathExists,
	} {
		if !codes[code] {
			missing = append(missing, "refused with "+code)
		}
	}
	for cmd := range defaults {
		if !allowed[cmd] {
			missing = append(missing, cmd+" allowed")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no case for: %s", strings.Join(missing, ", "))
	}
}

// TestRuleParser pins the data format itself, so a parser bug cannot make
// every case pass vacuously.
func TestRuleParser(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.txt")
	src := "# comment\ncase one\ngiven\n  take_in_charge {}\nwhen deliver_session {\"service\": 5}\nthen\n  SessionDelivered service=5 justification=\"a b\"\nstate delivered.5=1 status=open\n\ncase two\nwhen sign_pact\nthen error path_not_found\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cases, err := parseRules(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("got %d cases", len(cases))
	}
	one := cases[0]
	if one.name != "one" || len(one.given) != 1 || one.when.text != `deliver_session {"service": 5}` || len(one.then) != 1 || len(one.state) != 2 {
		t.Errorf("case one parsed as %+v", one)
	}
	if toks := tokens(one.then[0].text); len(toks) != 3 || toks[2] != `justification="a b"` {
		t.Errorf("tokens: %q", toks)
	}
	if cases[1].when.text != "sign_pact" || cases[1].then[0].text != "error path_not_found" {
		t.Errorf("case two parsed as %+v", cases[1])
	}
	for _, bad := range []string{
		"  orphan\n",
		"case x\nwhen a\nwhen b\nthen no events\n",
		"case x\nwhen a\n",
		"case x\nfrobnicate\n",
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := parseRules(path); err == nil {
			t.Errorf("parsed %q without error", bad)
		}
	}
	got := merge(map[string]any{"a": 1.0, "o": map[string]any{"x": 1.0, "y": 2.0}},
		map[string]any{"o": map[string]any{"y": nil, "z": 3.0}, "b": true})
	want := map[string]any{"a": 1.0, "b": true, "o": map[string]any{"x": 1.0, "z": 3.0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge = %v, want %v", got, want)
	}
}
