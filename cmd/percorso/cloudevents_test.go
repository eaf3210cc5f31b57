package main

// Analytics teams read the stream with their own tools, not with percorso's
// code: a CloudEvents SDK, a JSON Schema validator, the hash-chain recipe of
// docs/analytics.md. This test is such a consumer. It drives a real percorso
// through every event type and then reads every message the way the
// documents say, so a header, a field or a hash that drifts from the
// published contract fails here, where a consumer would have failed.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

var docsDir = filepath.Join("..", "..", "docs")

// contract holds the published documents, compiled: the data schema of
// every event type and the header schema of every message of the AsyncAPI
// document, plus the header names it declares.
type contract struct {
	data     map[string]*jsonschema.Schema
	headers  map[string]*jsonschema.Schema
	declared map[string]bool
}

func loadContract(t *testing.T) contract {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	k := contract{data: map[string]*jsonschema.Schema{}, headers: map[string]*jsonschema.Schema{}, declared: map[string]bool{}}
	for _, typ := range append(slices.Clone(workerpath.EventTypes), eventstore.IndexType) {
		path, err := filepath.Abs(filepath.Join(docsDir, "events", typ+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		if k.data[typ], err = c.Compile(path); err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
	}
	path, err := filepath.Abs(filepath.Join(docsDir, "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(j)); err != nil {
		t.Fatal(err)
	}
	base := "file://" + filepath.ToSlash(path)
	if err := c.AddResource(base, doc); err != nil {
		t.Fatal(err)
	}
	for _, typ := range workerpath.EventTypes {
		if k.headers[typ], err = c.Compile(base + "#/components/messages/" + typ + "/headers"); err != nil {
			t.Fatalf("asyncapi headers of %s: %v", typ, err)
		}
	}
	props, _ := doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)["EventHeaders"].(map[string]any)["properties"].(map[string]any)
	for name := range props {
		k.declared[name] = true
	}
	if len(k.declared) == 0 {
		t.Fatal("asyncapi.yaml declares no event headers")
	}
	return k
}

// readStream reads every message of the stream on the filter subjects with an
// ordered consumer, as a one-off replay would.
func readStream(t *testing.T, js jetstream.JetStream, filter ...string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: filter})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading the stream after %d messages: %v", len(out), err)
		}
		out = append(out, msg)
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumPending == 0 {
			return out
		}
	}
}

// readDurable reads the events with a durable pull consumer configured as
// docs/analytics.md says, in fetches of batch messages acknowledged after
// each fetch, and returns their ids in delivery order.
func readDurable(t *testing.T, js jetstream.JetStream, batch int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, eventstore.StreamName, jetstream.ConsumerConfig{
		Durable:       "analytics",
		FilterSubject: eventstore.EventsWildcard,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: batch,
		MaxDeliver:    -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		b, err := cons.Fetch(batch, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var msgs []jetstream.Msg
		for msg := range b.Messages() {
			msgs = append(msgs, msg)
		}
		if err := b.Error(); err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatalf("the durable consumer stopped delivering after %d events", len(ids))
		}
		for _, msg := range msgs {
			ids = append(ids, msg.Headers().Get("ce-id"))
			if err := msg.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		md, err := msgs[len(msgs)-1].Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumPending == 0 {
			break
		}
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("durable consumer after reading everything: pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
	return ids
}

// canonicalHash is the recipe of docs/analytics.md, written from the
// document rather than from eventstore.ComputeHash: each field as its byte
// length in decimal, a colon, the bytes and a newline, then SHA-256.
func canonicalHash(h nats.Header, data []byte) string {
	sum := sha256.New()
	for _, f := range []string{"percorso-event-v1", h.Get("ce-id"), h.Get("ce-type"), h.Get("ce-schemaversion"),
		h.Get("ce-subject"), h.Get("ce-time"), h.Get("ce-actor"), h.Get("ce-commandid"), h.Get("ce-correlationid"),
		h.Get("ce-prevhash"), string(data)} {
		fmt.Fprintf(sum, "%d:%s\n", len(f), f)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

type streamWorker struct {
	tax, given, family, born, language, category, support string
}

func (w streamWorker) body() string {
	return fmt.Sprintf(`{"worker":{"tax_code":%q,"given_name":%q,"family_name":%q,"birth_date":%q,"disability":true,"mediator_language":%q},
		"category":%q,"support":{"kind":%q,"agreement_code":"ER-2010-0457","from":"2010-01-04","to":"2010-12-31"},"office":"BO01","taken_at":"2010-02-01T09:00:00+01:00"}`,
		w.tax, w.given, w.family, w.born, w.language, w.category, w.support)
}

// TestStreamIsReadableAsCloudEvents records every event type through the
// HTTP API, then reads the whole stream as an analytics consumer would.
func TestStreamIsReadableAsCloudEvents(t *testing.T) {
	m := startMain(t)
	k := loadContract(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}

	a := streamWorker{taxCode(t, 11), "Giuseppina", "Zanardelli", "1971-03-14", "tigrino", "c", "cig_deroga"}
	// The group session carries the caller's correlation id, so that on
	// its events ce-correlationid differs from ce-commandid.
	const correlation = "workshop-2010-07-02"
	b := streamWorker{taxCode(t, 12), "Ottavio", "Brambillasca", "1968-11-02", "albanese", "e", "cocopro"}
	post := func(c client, path, body string, want int, hdr ...string) map[string]any {
		t.Helper()
		status, resp, _ := c.do("POST", path, body, hdr...)
		if status != want {
			t.Fatalf("POST %s: %d %v, want %d", path, status, resp, want)
		}
		return resp
	}
	pathA := post(op, "/v1/paths", a.body(), http.StatusCreated)["path_id"].(string)
	pathB := post(op, "/v1/paths", b.body(), http.StatusCreated)["path_id"].(string)
	pa := "/v1/paths/" + pathA
	post(op, pa+"/sessions", `{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25,"pact":{"signed_at":"2010-02-01T09:50:00+01:00","did_on":"2010-02-01"}}`, http.StatusCreated)
	post(op, pa+"/sessions", `{"service":5,"delivered_at":"2011-01-15T10:00:00+01:00","minutes":80,"mediator_present":true}`, http.StatusCreated)
	// A sole trader hosts the traineeship: its tax code is a person's.
	const hostTax = "VRDGPP70M12A944D"
	post(op, pa+"/traineeships", `{"host_tax_code":"`+hostTax+`","starts_on":"2010-03-01","ends_on":"2010-06-30","delivered_at":"2010-02-20T10:00:00+01:00","minutes":700}`, http.StatusCreated)
	post(op, pa+"/no-shows", `{"appointment_at":"2010-03-01T09:00:00+01:00","justified":false}`, http.StatusCreated)
	post(op, pa+"/refusals", `{"kind":"job_offer","at":"2010-03-10T09:00:00+01:00","note":"offerta congrua rifiutata"}`, http.StatusCreated)
	post(op, pa+"/verification", `{"verified_at":"2010-06-30T10:00:00+02:00","outcome":"partially_achieved","minutes":55}`, http.StatusCreated)
	post(op, "/v1/group-sessions", fmt.Sprintf(`{"service":4,"delivered_at":"2010-07-02T09:00:00+02:00","minutes":200,"participants":[%q,%q],"justification":"gruppo ridotto"}`, pathA, pathB), http.StatusCreated,
		"X-Correlation-Id", correlation)
	post(op, pa+"/close", `{"closed_at":"2010-07-05T09:00:00+02:00","reason":"reemployed"}`, http.StatusCreated)
	post(admin, "/v1/workers/"+b.tax+"/erasure", "", http.StatusOK)

	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]int{
		workerpath.TypeTakenInCharge: 2, workerpath.TypeSessionDelivered: 6, workerpath.TypePactSigned: 1,
		workerpath.TypeTraineeshipActivated: 1, workerpath.TypePathVerified: 1, workerpath.TypeNoShowRecorded: 1,
		workerpath.TypeRefusalReported: 1, workerpath.TypePathClosed: 1, workerpath.TypePersonalDataErased: 1,
	}
	type head struct {
		seq  uint64
		hash string
	}
	heads := map[string]head{}
	got := map[string]int{}
	lastOfCommand := map[string]uint64{}
	correlated := 0
	ctx := context.Background()
	events := readStream(t, js, eventstore.EventsWildcard)
	for _, msg := range events {
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq := md.Sequence.Stream
		h := msg.Headers()
		where := fmt.Sprintf("seq %d (%s)", seq, h.Get("ce-type"))

		// A third-party SDK reads it as a binary-mode CloudEvent 1.0.
		cm := cejs.NewMessage(&nats.Msg{Subject: msg.Subject(), Header: h, Data: msg.Data()})
		if enc := cm.ReadEncoding(); enc != binding.EncodingBinary {
			t.Fatalf("%s: the SDK sees encoding %v, want binary", where, enc)
		}
		ev, err := binding.ToEvent(ctx, cm)
		if err != nil {
			t.Fatalf("%s: the CloudEvents SDK cannot read it: %v", where, err)
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: not a valid CloudEvent: %v", where, err)
		}
		typ := ev.Type()
		got[typ]++
		pathID, _ := strings.CutPrefix(msg.Subject(), eventstore.EventSubjectRoot)
		var data struct {
			PathID     string    `json:"path_id"`
			RecordedAt time.Time `json:"recorded_at"`
			Operator   string    `json:"operator"`
		}
		if err := json.Unmarshal(ev.Data(), &data); err != nil {
			t.Fatalf("%s: data: %v", where, err)
		}
		checks := []struct {
			attr      string
			got, want any
		}{
			{"specversion", ev.SpecVersion(), "1.0"},
			{"id", ev.ID(), h.Get("Nats-Msg-Id")},
			{"source", ev.Source(), "/percorso"},
			{"subject", ev.Subject(), pathID},
			{"subject = data.path_id", ev.Subject(), data.PathID},
			{"time = data.recorded_at", ev.Time().Equal(data.RecordedAt), true},
			{"dataschema", ev.DataSchema(), eventstore.DataSchema(typ, eventstore.SchemaVersion)},
			{"datacontenttype", ev.DataContentType(), "application/json"},
			{"data", string(ev.Data()), string(msg.Data())},
			{"actor", ev.Extensions()["actor"], data.Operator},
			{"schemaversion", ev.Extensions()["schemaversion"], strconv.Itoa(eventstore.SchemaVersion)},
			{"hash", ev.Extensions()["hash"], h.Get("ce-hash")},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("%s: %s = %v, want %v", where, c.attr, c.got, c.want)
			}
		}
		for _, ext := range []string{"commandid", "correlationid"} {
			if s, _ := ev.Extensions()[ext].(string); s == "" {
				t.Errorf("%s: extension %s missing", where, ext)
			}
		}
		if ev.Extensions()["correlationid"] == correlation {
			correlated++
		}
		if _, ok := k.data[typ]; !ok {
			t.Fatalf("%s: unknown type %q", where, typ)
		}

		// The data validates against its published schema, and the headers
		// against the AsyncAPI message, every one of them declared there.
		if err := k.data[typ].Validate(mustInstance(t, msg.Data())); err != nil {
			t.Errorf("%s: data does not validate: %v\n%s", where, err, msg.Data())
		}
		hdrs := map[string]any{}
		for name, vs := range h {
			if len(vs) != 1 {
				t.Errorf("%s: header %s has %d values", where, name, len(vs))
			}
			hdrs[name] = vs[0]
			if !k.declared[name] {
				t.Errorf("%s: header %s is not declared in asyncapi.yaml", where, name)
			}
		}
		if err := k.headers[typ].Validate(hdrs); err != nil {
			t.Errorf("%s: headers do not match asyncapi.yaml: %v", where, err)
		}

		// The hash chain and the back-pointers hold, recomputed as the
		// analytics guide tells.
		if hash := canonicalHash(h, msg.Data()); hash != h.Get("ce-hash") {
			t.Errorf("%s: ce-hash %s, recomputed %s", where, h.Get("ce-hash"), hash)
		}
		prev := heads[pathID]
		if h.Get("ce-prevhash") != prev.hash {
			t.Errorf("%s: ce-prevhash %q, the path's previous hash is %q", where, h.Get("ce-prevhash"), prev.hash)
		}
		switch {
		case h.Get("Percorso-Prev-In-Batch") == "1":
			if prev.seq != seq-1 || h.Get("ce-prevseq") != "" {
				t.Errorf("%s: in-batch back-pointer, but the previous event of the path is at %d", where, prev.seq)
			}
		case prev.seq == 0:
			if h.Get("ce-prevseq") != "" {
				t.Errorf("%s: first event of the path has ce-prevseq %s", where, h.Get("ce-prevseq"))
			}
		default:
			if h.Get("ce-prevseq") != strconv.FormatUint(prev.seq, 10) {
				t.Errorf("%s: ce-prevseq %q, want %d", where, h.Get("ce-prevseq"), prev.seq)
			}
		}
		heads[pathID] = head{seq: seq, hash: h.Get("ce-hash")}

		// The events of one command are one atomic batch: contiguous.
		cmd := h.Get("ce-commandid")
		if last, ok := lastOfCommand[cmd]; ok && last != seq-1 {
			t.Errorf("%s: command %s has events at %d and %d with others between", where, cmd, last, seq)
		}
		lastOfCommand[cmd] = seq
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event types on the stream %v, want %v", got, want)
	}
	if correlated != 2 {
		t.Errorf("%d events carry the caller's correlation id, want the group session's 2", correlated)
	}
	if len(heads) != 2 {
		t.Errorf("%d paths on the stream, want 2", len(heads))
	}

	// A durable pull consumer set up as the analytics guide says gets the
	// same events in the same order, across fetch boundaries that cut
	// through atomic batches.
	var ordered []string
	for _, msg := range events {
		ordered = append(ordered, msg.Headers().Get("ce-id"))
	}
	if durable := readDurable(t, js, 4); strings.Join(durable, ",") != strings.Join(ordered, ",") {
		t.Errorf("durable consumer read %v\nordered consumer read %v", durable, ordered)
	}

	// No message of the stream, events or worker index, shows a worker's
	// identity in clear, in its data or in any header.
	all := readStream(t, js)
	if len(all) <= len(events) {
		t.Errorf("the whole stream has %d messages, the events alone %d: where is the worker index?", len(all), len(events))
	}
	for _, msg := range all {
		// Every message, worker-index entries included, is a CloudEvent
		// an SDK reads, its data valid against the schema it names.
		cm := cejs.NewMessage(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		ev, err := binding.ToEvent(ctx, cm)
		if err != nil {
			t.Errorf("message on %s: the CloudEvents SDK cannot read it: %v", msg.Subject(), err)
		} else if err := ev.Validate(); err != nil {
			t.Errorf("message on %s: not a valid CloudEvent: %v", msg.Subject(), err)
		} else if ref, index := strings.CutPrefix(msg.Subject(), eventstore.WorkerSubjectRoot); index {
			if ev.Type() != eventstore.IndexType || ev.Subject() != ref || ev.DataSchema() != eventstore.DataSchema(eventstore.IndexType, eventstore.SchemaVersion) {
				t.Errorf("index entry on %s: type %s, subject %s, dataschema %s", msg.Subject(), ev.Type(), ev.Subject(), ev.DataSchema())
			}
			if err := k.data[eventstore.IndexType].Validate(mustInstance(t, msg.Data())); err != nil {
				t.Errorf("index entry on %s: data does not validate: %v\n%s", msg.Subject(), err, msg.Data())
			}
		}
		var text strings.Builder
		text.Write(msg.Data())
		for name, vs := range msg.Headers() {
			fmt.Fprintf(&text, "\n%s: %s", name, strings.Join(vs, ", "))
		}
		lower := strings.ToLower(text.String())
		for _, secret := range []string{hostTax, a.tax, a.given, a.family, a.born, a.language, b.tax, b.given, b.family, b.born, b.language} {
			if strings.Contains(lower, strings.ToLower(secret)) {
				t.Errorf("message on %s contains %q in clear", msg.Subject(), secret)
			}
		}
		for _, key := range []string{`"tax_code"`, `"host_tax_code"`, `"given_name"`, `"family_name"`, `"birth_date"`, `"disability"`, `"mediator_language"`} {
			if strings.Contains(lower, key) {
				t.Errorf("message on %s carries the personal field %s", msg.Subject(), key)
			}
		}
	}
}

func mustInstance(t *testing.T, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("data is not JSON: %v", err)
	}
	return v
}
