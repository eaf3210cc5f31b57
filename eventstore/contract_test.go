package eventstore_test

// The data of every event, and the stream itself, are a published contract:
// analytics teams validate what they read against docs/events/*.schema.json
// and generate consumers from docs/asyncapi.yaml. These tests tie those
// documents to the code that writes the stream, so a renamed field, a new
// header or a new event type cannot ship with stale documents.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/privacy"
)

var (
	docsDir   = filepath.Join("..", "docs")
	eventsDir = filepath.Join(docsDir, "events")
	goldenDir = filepath.Join("..", "domain", "workerpath", "testdata", "golden")
)

const draft202012 = "https://json-schema.org/draft/2020-12/schema"

func schemaFile(eventType string) string {
	return filepath.Join(eventsDir, eventType+".schema.json")
}

// readJSON decodes a file the way the schema library wants instances:
// numbers as json.Number, so 12 and 12.5 stay apart.
func readJSON(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, b)
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// compileEventSchemas compiles every event schema with format assertion on
// (in 2020-12 "format" is only an annotation unless asked for): a date of
// 2011-02-30 or a session id that is not a UUID must fail.
func compileEventSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, typ := range workerpath.EventTypes {
		path, err := filepath.Abs(schemaFile(typ))
		if err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(path)
		if err != nil {
			t.Fatalf("%s does not compile: %v", typ, err)
		}
		out[typ] = sch
	}
	return out
}

// TestEventSchemasCoverEveryEventType: one schema file per event type and no
// other, each with the $id that ce-dataschema carries.
func TestEventSchemasCoverEveryEventType(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(filepath.Base(f), ".schema.json"))
	}
	want := append(slices.Clone(workerpath.EventTypes), eventstore.IndexType)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("schema files %v, event types %v", got, want)
	}
	compileEventSchemas(t)
	for _, typ := range want {
		doc := readJSON(t, schemaFile(typ)).(map[string]any)
		if id, want := doc["$id"], eventstore.DataSchema(typ, eventstore.SchemaVersion); id != want {
			t.Errorf("%s: $id %v, want %s (what ce-dataschema carries)", typ, id, want)
		}
		if doc["$schema"] != draft202012 {
			t.Errorf("%s: $schema %v, want %s", typ, doc["$schema"], draft202012)
		}
		if doc["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false", typ)
		}
		if s, _ := doc["description"].(string); len(s) < 80 {
			t.Errorf("%s: the schema needs a description that explains the event", typ)
		}
	}
}

// goField is one JSON field of a Go event type.
type goField struct {
	optional bool
	nested   map[string]goField // for a struct encoded as an object
}

var textMarshaler = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()

// jsonFields lists the JSON fields encoding/json writes for a struct type,
// with embedded structs flattened; omitempty and omitzero fields are
// optional, "-" fields are never written.
func jsonFields(typ reflect.Type) map[string]goField {
	out := map[string]goField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		gf := goField{optional: strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() && !f.Type.Implements(textMarshaler) && !reflect.PointerTo(f.Type).Implements(textMarshaler) {
			gf.nested = jsonFields(f.Type)
		}
		out[name] = gf
	}
	return out
}

// compareFields checks a schema object against the Go fields: the same
// properties, required exactly where encoding/json always writes the field.
func compareFields(t *testing.T, where string, schema map[string]any, fields map[string]goField) {
	t.Helper()
	props, _ := schema["properties"].(map[string]any)
	var required []string
	for _, r := range schema["required"].([]any) {
		required = append(required, r.(string))
	}
	for name, f := range fields {
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: field %q is written by Go but not in the schema", where, name)
			continue
		}
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("%s.%s: no description", where, name)
		}
		if req := slices.Contains(required, name); req == f.optional {
			t.Errorf("%s.%s: required=%t in the schema, but the Go field is optional=%t", where, name, req, f.optional)
		}
		if f.nested != nil {
			if p["additionalProperties"] != false {
				t.Errorf("%s.%s: additionalProperties must be false", where, name)
			}
			compareFields(t, where+"."+name, p, f.nested)
		}
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s: schema property %q is not a field of the Go type", where, name)
		}
	}
}

// TestEventSchemasMatchGoTypes: the schemas describe exactly what
// encoding/json writes for the domain's event types.
func TestEventSchemasMatchGoTypes(t *testing.T) {
	for _, typ := range workerpath.EventTypes {
		e, ok := workerpath.NewEvent(typ)
		if !ok {
			t.Fatalf("NewEvent does not know %s", typ)
		}
		doc := readJSON(t, schemaFile(typ)).(map[string]any)
		compareFields(t, typ, doc, jsonFields(reflect.TypeOf(e).Elem()))
	}
}

// portableKeywords mean the same in JSON Schema draft-07 (the AsyncAPI
// default schema format) and 2020-12, so that AsyncAPI tools and 2020-12
// validators read the schemas alike.
var portableKeywords = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true, "examples": true,
	"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true,
	"enum": true, "const": true, "pattern": true, "format": true, "minLength": true, "maxLength": true,
	"minimum": true, "maximum": true, "allOf": true, "anyOf": true, "oneOf": true, "not": true,
	"if": true, "then": true, "else": true,
}

func checkKeywords(t *testing.T, where string, s any) {
	t.Helper()
	m, ok := s.(map[string]any)
	if !ok {
		return
	}
	for k, v := range m {
		if !portableKeywords[k] {
			t.Errorf("%s: keyword %q is not portable between draft-07 and 2020-12", where, k)
		}
		switch k {
		case "properties":
			for name, sub := range v.(map[string]any) {
				checkKeywords(t, where+"."+name, sub)
			}
		case "allOf", "anyOf", "oneOf":
			for _, sub := range v.([]any) {
				checkKeywords(t, where+"/"+k, sub)
			}
		case "if", "then", "else", "not", "items", "additionalProperties":
			checkKeywords(t, where+"/"+k, v)
		}
	}
}

func TestEventSchemasArePortable(t *testing.T) {
	for _, typ := range workerpath.EventTypes {
		checkKeywords(t, typ, readJSON(t, schemaFile(typ)))
	}
}

// TestEventSchemaExamplesValidate: the examples shown to readers are valid.
func TestEventSchemaExamplesValidate(t *testing.T) {
	schemas := compileEventSchemas(t)
	for _, typ := range workerpath.EventTypes {
		doc := readJSON(t, schemaFile(typ)).(map[string]any)
		examples, _ := doc["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("%s: no example", typ)
		}
		for i, ex := range examples {
			if err := schemas[typ].Validate(ex); err != nil {
				t.Errorf("%s example %d: %v", typ, i, err)
			}
		}
	}
}

// sealingCodec seals and pseudonymises as the real store does, with a fixed
// master key and an in-memory key store.
type sealingCodec struct {
	sealer *privacy.Sealer
	codec  *eventstore.Codec
}

func newSealingCodec(t *testing.T) sealingCodec {
	t.Helper()
	master := bytes.Repeat([]byte{0x5a}, 32)
	s, err := privacy.NewSealer(master, privacy.NewMemoryKeyStore())
	if err != nil {
		t.Fatal(err)
	}
	return sealingCodec{sealer: s, codec: eventstore.NewCodec(s, nil)}
}

// encode returns the stream data of an event. The golden files pin the
// domain's JSON, in which the worker's pseudonym and sealed data are opaque
// placeholders (the domain cannot compute them); the store fills them from
// the worker's tax code before sealing, and so does this.
func (s sealingCodec) encode(t *testing.T, e workerpath.Event, worker workerpath.Person) []byte {
	t.Helper()
	switch e := e.(type) {
	case *workerpath.TakenInCharge:
		e.WorkerRef = s.sealer.Pseudonym(worker.TaxCode)
		e.Worker = worker
	case *workerpath.PersonalDataErased:
		e.WorkerRef = s.sealer.Pseudonym(worker.TaxCode)
	}
	data, err := s.codec.Encode(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var testWorker = workerpath.Person{
	TaxCode: "RSSMRA80A01H501U", GivenName: "Mario", FamilyName: "Rossi",
	BirthDate: workerpath.MustDate("1980-01-01"), Disability: true, MediatorLanguage: "ar",
}

// goldenData returns the stream data of every event type: the golden values
// of domain/workerpath, encoded by the real codec.
func goldenData(t *testing.T) map[string][]byte {
	t.Helper()
	s := newSealingCodec(t)
	out := map[string][]byte{}
	for _, typ := range workerpath.EventTypes {
		b, err := os.ReadFile(filepath.Join(goldenDir, typ+".json"))
		if err != nil {
			t.Fatalf("golden %s: %v", typ, err)
		}
		e, _ := workerpath.NewEvent(typ)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(e); err != nil {
			t.Fatalf("golden %s: %v", typ, err)
		}
		out[typ] = s.encode(t, e, testWorker)
	}
	return out
}

// TestGoldenEventsValidate: what the codec writes for every golden event is
// valid against its schema, and the personal data are nowhere in it.
func TestGoldenEventsValidate(t *testing.T) {
	schemas := compileEventSchemas(t)
	for typ, data := range goldenData(t) {
		if err := schemas[typ].Validate(decodeJSON(t, data)); err != nil {
			t.Errorf("%s does not validate: %v\n%s", typ, err, data)
		}
		for _, secret := range []string{testWorker.TaxCode, testWorker.GivenName, testWorker.FamilyName, "1980-01-01", `"tax_code"`, `"disability"`} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s data contains %s in clear", typ, secret)
			}
		}
	}
}

// TestSchemasRejectBrokenEvents: the schemas are strict enough to catch what
// a consumer must not silently accept.
func TestSchemasRejectBrokenEvents(t *testing.T) {
	schemas := compileEventSchemas(t)
	data := goldenData(t)
	cases := []struct {
		name, typ string
		change    func(m map[string]any)
	}{
		{"missing required field", workerpath.TypeSessionDelivered, func(m map[string]any) { delete(m, "credited_minutes") }},
		{"missing recorded_at", workerpath.TypePathClosed, func(m map[string]any) { delete(m, "recorded_at") }},
		{"extra field", workerpath.TypeSessionDelivered, func(m map[string]any) { m["colour"] = "red" }},
		{"service 13", workerpath.TypeSessionDelivered, func(m map[string]any) { m["service"] = json.Number("13") }},
		{"service 0", workerpath.TypeSessionDelivered, func(m map[string]any) { m["service"] = json.Number("0") }},
		{"fractional minutes", workerpath.TypeSessionDelivered, func(m map[string]any) { m["actual_minutes"] = json.Number("12.5") }},
		{"minutes over a day", workerpath.TypeSessionDelivered, func(m map[string]any) { m["actual_minutes"] = json.Number("1441") }},
		{"service as a string", workerpath.TypeSessionDelivered, func(m map[string]any) { m["service"] = "4" }},
		{"group id not a UUID", workerpath.TypeSessionDelivered, func(m map[string]any) { m["group_id"] = "group-1" }},
		{"uppercase path id", workerpath.TypePactSigned, func(m map[string]any) { m["path_id"] = strings.ToUpper(m["path_id"].(string)) }},
		{"impossible date", workerpath.TypePactSigned, func(m map[string]any) { m["did_on"] = "2011-02-30" }},
		{"time without zone", workerpath.TypePathClosed, func(m map[string]any) { m["closed_at"] = "2011-06-29T16:00:00" }},
		{"unknown close reason", workerpath.TypePathClosed, func(m map[string]any) { m["reason"] = "retired" }},
		{"unknown outcome", workerpath.TypePathVerified, func(m map[string]any) { m["outcome"] = "maybe" }},
		{"unknown refusal kind", workerpath.TypeRefusalReported, func(m map[string]any) { m["kind"] = "training" }},
		{"unknown no-show kind", workerpath.TypeNoShowRecorded, func(m map[string]any) { m["kind"] = "third" }},
		{"second no-show not reported", workerpath.TypeNoShowRecorded, func(m map[string]any) { m["report_to_inps"] = false }},
		{"category f", workerpath.TypeTakenInCharge, func(m map[string]any) { m["category"] = "f" }},
		{"support of another category", workerpath.TypeTakenInCharge, func(m map[string]any) { m["category"] = "d" }},
		{"unknown support kind", workerpath.TypeTakenInCharge, func(m map[string]any) { m["support"].(map[string]any)["kind"] = "naspi" }},
		{"extra support field", workerpath.TypeTakenInCharge, func(m map[string]any) { m["support"].(map[string]any)["amount"] = json.Number("900") }},
		{"worker in clear", workerpath.TypeTakenInCharge, func(m map[string]any) {
			m["worker"] = map[string]any{"tax_code": testWorker.TaxCode, "given_name": "Mario", "family_name": "Rossi"}
		}},
		{"tax code as pseudonym", workerpath.TypeTakenInCharge, func(m map[string]any) { m["worker_ref"] = testWorker.TaxCode }},
		{"unsealed worker", workerpath.TypeTakenInCharge, func(m map[string]any) { m["worker_sealed"] = `{"tax_code":"RSSMRA80A01H501U"}` }},
		{"erasure without pseudonym", workerpath.TypePersonalDataErased, func(m map[string]any) { delete(m, "worker_ref") }},
		{"bad host tax code", workerpath.TypeTraineeshipActivated, func(m map[string]any) { m["host_tax_code"] = "0074311015" }},
		{"bad office", workerpath.TypeTraineeshipActivated, func(m map[string]any) { m["office"] = "Bologna" }},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen[c.typ] = true
			m := decodeJSON(t, data[c.typ]).(map[string]any)
			if err := schemas[c.typ].Validate(m); err != nil {
				t.Fatalf("the unbroken %s does not validate: %v", c.typ, err)
			}
			c.change(m)
			if err := schemas[c.typ].Validate(m); err == nil {
				b, _ := json.Marshal(m)
				t.Errorf("%s accepted a broken event: %s", c.typ, b)
			}
		})
	}
	for _, typ := range workerpath.EventTypes {
		if !seen[typ] {
			t.Errorf("no broken case for %s", typ)
		}
	}
}

// asyncAPI reads docs/asyncapi.yaml with a YAML parser and returns it as
// JSON values, the form the schema compiler takes.
func asyncAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docsDir, "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("asyncapi.yaml is not YAML: %v", err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("asyncapi.yaml has no JSON form: %v", err)
	}
	return decodeJSON(t, j).(map[string]any)
}

// yamlAt follows a path of keys and returns what is there, failing if absent.
func yamlAt(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("asyncapi: %s is not an object", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("asyncapi: %s is missing", strings.Join(keys[:i+1], "."))
		}
	}
	return v
}

// localRef resolves a local reference "#/a/b" in doc.
func localRef(t *testing.T, doc any, ref string) any {
	t.Helper()
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		t.Fatalf("asyncapi: %q is not a local reference", ref)
	}
	return yamlAt(t, doc, strings.Split(p, "/")...)
}

// checkRefs walks the document: every local $ref points at something, and
// every file $ref at a file beside the document.
func checkRefs(t *testing.T, doc, v any) int {
	t.Helper()
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if k == "$ref" {
				ref := sub.(string)
				n++
				if strings.HasPrefix(ref, "#/") {
					localRef(t, doc, ref)
				} else if _, err := os.Stat(filepath.Join(docsDir, ref)); err != nil {
					t.Errorf("asyncapi: $ref %s: %v", ref, err)
				}
				continue
			}
			n += checkRefs(t, doc, sub)
		}
	case []any:
		for _, sub := range v {
			n += checkRefs(t, doc, sub)
		}
	}
	return n
}

// sampleEnvelopes are an event of each shape the store writes: a path's
// first event, a later one, and one after another of the same batch.
func sampleEnvelopes() []*eventstore.Envelope {
	base := eventstore.Envelope{
		ID: "4dff3ef0-1ca8-552e-9b32-19c16bc8a52e", Type: workerpath.TypeSessionDelivered, SchemaVersion: eventstore.SchemaVersion,
		PathID: "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f", Time: time.Date(2011, 3, 10, 12, 31, 0, 123456789, time.UTC),
		Actor: "mrossi", CommandID: "80b4c55c-ec01-4af1-8aae-1acba29d4ef8", CorrelationID: "80b4c55c-ec01-4af1-8aae-1acba29d4ef8",
		Data: []byte(`{}`),
	}
	first, later, inBatch := base, base, base
	first.Type = workerpath.TypeTakenInCharge
	later.PrevSeq, later.PrevHash = 41, strings.Repeat("ab", 32)
	inBatch.PrevInBatch, inBatch.PrevHash = true, strings.Repeat("cd", 32)
	out := []*eventstore.Envelope{&first, &later, &inBatch}
	for _, e := range out {
		e.Hash = e.ComputeHash()
	}
	return out
}

// TestAsyncAPIDescribesTheStream: the AsyncAPI document parses as YAML, is
// AsyncAPI 3.0.0, names the subjects the store writes, has one message per
// event type with the right schema, and its header schema accepts exactly
// the headers the envelope writes.
func TestAsyncAPIDescribesTheStream(t *testing.T) {
	doc := asyncAPI(t)
	if v := yamlAt(t, doc, "asyncapi"); v != "3.0.0" {
		t.Errorf("asyncapi: %v, want 3.0.0", v)
	}
	if n := checkRefs(t, doc, doc); n < 3*len(workerpath.EventTypes) {
		t.Errorf("only %d references", n)
	}
	if h, p := yamlAt(t, doc, "servers", "embedded", "host"), yamlAt(t, doc, "servers", "embedded", "protocol"); h != "127.0.0.1:4250" || p != "nats" {
		t.Errorf("embedded server %v %v", p, h)
	}
	for _, c := range []struct{ channel, address, param string }{
		{"pathEvents", eventstore.EventSubjectRoot + "{path_id}", "path_id"},
		{"workerIndex", eventstore.WorkerSubjectRoot + "{worker_ref}", "worker_ref"},
	} {
		if a := yamlAt(t, doc, "channels", c.channel, "address"); a != c.address {
			t.Errorf("channel %s address %v, want %s", c.channel, a, c.address)
		}
		yamlAt(t, doc, "channels", c.channel, "parameters", c.param, "description")
	}
	if d := yamlAt(t, doc, "channels", "workerIndex", "description").(string); !strings.Contains(d, "INTERNAL") || !strings.Contains(d, "filter") {
		t.Errorf("the worker index must be described as internal, to filter out: %s", d)
	}

	channelMsgs := yamlAt(t, doc, "channels", "pathEvents", "messages").(map[string]any)
	if len(channelMsgs) != len(workerpath.EventTypes) {
		t.Errorf("pathEvents has %d messages, want %d", len(channelMsgs), len(workerpath.EventTypes))
	}
	op := yamlAt(t, doc, "operations", "receivePathEvents").(map[string]any)
	if op["action"] != "receive" || yamlAt(t, op, "channel", "$ref") != "#/channels/pathEvents" {
		t.Errorf("receivePathEvents: %v", op)
	}
	var opMsgs []string
	for _, m := range yamlAt(t, op, "messages").([]any) {
		opMsgs = append(opMsgs, yamlAt(t, m, "$ref").(string))
	}

	c := jsonschema.NewCompiler()
	c.AssertFormat()
	base, err := filepath.Abs(filepath.Join(docsDir, "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base = "file://" + filepath.ToSlash(base)
	if err := c.AddResource(base, doc); err != nil {
		t.Fatal(err)
	}
	for _, typ := range workerpath.EventTypes {
		t.Run(typ, func(t *testing.T) {
			if ref := yamlAt(t, channelMsgs, typ, "$ref"); ref != "#/components/messages/"+typ {
				t.Errorf("channel message %s: $ref %v", typ, ref)
			}
			if !slices.Contains(opMsgs, "#/channels/pathEvents/messages/"+typ) {
				t.Errorf("receivePathEvents does not list %s", typ)
			}
			msg := yamlAt(t, doc, "components", "messages", typ)
			if yamlAt(t, msg, "name") != typ || yamlAt(t, msg, "contentType") != eventstore.ContentType {
				t.Errorf("message %s: name %v contentType %v", typ, yamlAt(t, msg, "name"), yamlAt(t, msg, "contentType"))
			}
			if ref := yamlAt(t, msg, "payload", "$ref"); ref != "./events/"+typ+".schema.json" {
				t.Errorf("payload $ref %v", ref)
			}
			// The payload reference leads to the schema whose $id is the
			// message's ce-dataschema.
			payload, err := c.Compile(base + "#/components/messages/" + typ + "/payload")
			if err != nil {
				t.Fatalf("payload: %v", err)
			}
			if want := eventstore.DataSchema(typ, eventstore.SchemaVersion); payload.Ref == nil || payload.Ref.ID != want {
				t.Errorf("payload resolves to %s, want %s", payload.Location, want)
			}
			headers, err := c.Compile(base + "#/components/messages/" + typ + "/headers")
			if err != nil {
				t.Fatalf("headers: %v", err)
			}
			for _, env := range sampleEnvelopes() {
				env.Type = typ
				if err := headers.Validate(stringMap(env.Headers())); err != nil {
					t.Errorf("headers of a %s written by the envelope are rejected: %v", typ, err)
				}
				other := stringMap(env.Headers())
				other[eventstore.HdrType] = "SomethingElse"
				if headers.Validate(other) == nil {
					t.Errorf("%s headers accept another ce-type", typ)
				}
			}
		})
	}

	// Every header the envelope can write is declared, and the required
	// ones are those it always writes.
	props := yamlAt(t, doc, "components", "schemas", "EventHeaders", "properties").(map[string]any)
	always := map[string]int{}
	envs := sampleEnvelopes()
	for _, env := range envs {
		for k := range env.Headers() {
			always[k]++
			if _, ok := props[k]; !ok {
				t.Errorf("header %s is written but not declared in EventHeaders", k)
			}
		}
	}
	var required, want []string
	for _, r := range yamlAt(t, doc, "components", "schemas", "EventHeaders", "required").([]any) {
		required = append(required, r.(string))
	}
	for k, n := range always {
		if n == len(envs) {
			want = append(want, k)
		}
	}
	slices.Sort(required)
	slices.Sort(want)
	if !slices.Equal(required, want) {
		t.Errorf("EventHeaders required %v, the envelope always writes %v", required, want)
	}
	for _, h := range []string{eventstore.HdrPrevSeq, eventstore.HdrPrevHash, eventstore.HdrPrevInBatch} {
		if _, ok := props[h]; !ok {
			t.Errorf("header %s is not declared", h)
		}
	}
	if s := yamlAt(t, doc, "components", "schemas", "WorkerIndexHeaders", "properties", eventstore.HdrIndexStatus); s == nil {
		t.Errorf("%s is not declared", eventstore.HdrIndexStatus)
	}
}

func stringMap(h map[string]string) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}
