package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
)

// The OpenAPI document is the contract clients generate code from, so these
// tests hold it to what the server does: every registered route and only
// those, the wire bodies field by field, every error code, and real
// responses checked by a third-party validator.

// oasSpec is the document parsed once, as a model for the validator and as
// plain JSON for the structural checks.
type oasSpec struct {
	doc   libopenapi.Document
	model *v3.Document
	v     validator.Validator
	raw   map[string]any
}

var oasLoad = sync.OnceValues(func() (*oasSpec, error) {
	data := httpapi.OpenAPIDocument()
	doc, err := libopenapi.NewDocument(data)
	if err != nil {
		return nil, err
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &oasSpec{doc: doc, model: &m.Model, v: v}
	if err := json.Unmarshal(data, &s.raw); err != nil {
		return nil, err
	}
	return s, nil
})

func oasGet(t *testing.T) *oasSpec {
	t.Helper()
	s, err := oasLoad()
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	return s
}

func oasErrors[E error](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %v", e)
	}
	return b.String()
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	s := oasGet(t)
	if got := s.raw["openapi"]; got != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", got)
	}
	cases := []struct {
		name   string
		mutate func(map[string]any)
		valid  bool
	}{
		{"as shipped", func(map[string]any) {}, true},
		// Controls: the validator must be able to say no, or the first
		// case proves nothing.
		{"without info", func(d map[string]any) { delete(d, "info") }, false},
		{"with a response that is not an object", func(d map[string]any) {
			d["paths"].(map[string]any)["/healthz"].(map[string]any)["get"].(map[string]any)["responses"] = map[string]any{"200": 5}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(httpapi.OpenAPIDocument(), &d); err != nil {
				t.Fatal(err)
			}
			tc.mutate(d)
			data, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := libopenapi.NewDocument(data)
			if err != nil {
				t.Fatal(err)
			}
			v, errs := validator.NewValidator(doc)
			if len(errs) > 0 {
				if tc.valid {
					t.Fatalf("building the validator: %v", errors.Join(errs...))
				}
				return
			}
			ok, verrs := v.ValidateDocument()
			if ok != tc.valid {
				t.Fatalf("valid = %v, want %v:%s", ok, tc.valid, oasErrors(verrs))
			}
		})
	}
}

// TestOpenAPIRefsResolve walks every $ref: a dangling one is invisible to
// clients until their generator fails on it.
func TestOpenAPIRefsResolve(t *testing.T) {
	s := oasGet(t)
	used := map[string]bool{}
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				used[r] = true
				if _, err := oasPointer(s.raw, r); err != nil {
					t.Errorf("%s: $ref %s: %v", where, r, err)
				}
			}
			for k, e := range v {
				walk(where+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(where+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", s.raw)
	// Unused components are dead text that drifts from the code unseen.
	comps := s.raw["components"].(map[string]any)
	for kind, m := range comps {
		if kind == "securitySchemes" {
			continue
		}
		for name := range m.(map[string]any) {
			if r := "#/components/" + kind + "/" + name; !used[r] {
				t.Errorf("%s is never referenced", r)
			}
		}
	}
}

func oasPointer(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, errors.New("only local references are used")
	}
	var cur any = doc
	for _, part := range strings.Split(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not an object", part)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("no %q", part)
		}
	}
	return cur, nil
}

// oasServerRoutes reads the route patterns the package registers, from its
// source: net/http.ServeMux cannot list them. Every string literal given to
// <x>.mux.HandleFunc or <x>.mux.Handle counts, in whichever file it is, so a
// route added anywhere in the package is seen.
func oasServerRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var routes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			if recv, ok := sel.X.(*ast.SelectorExpr); !ok || recv.Sel.Name != "mux" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route pattern that is not a string literal cannot be checked against the document", fset.Position(call.Pos()))
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			routes = append(routes, p)
			return true
		})
	}
	return routes
}

// oasRouteKey turns a ServeMux pattern into "METHOD /path" as the document
// spells it; ok is false for the catch-all.
func oasRouteKey(pattern string) (key string, ok bool, err error) {
	method, path, found := strings.Cut(pattern, " ")
	if !found {
		if pattern == "/" {
			return "", false, nil
		}
		return "", false, errors.New("no method: document it, or give it one")
	}
	path = strings.TrimSuffix(path, "{$}")
	path = strings.ReplaceAll(path, "...}", "}")
	if !strings.HasPrefix(path, "/") {
		return "", false, errors.New("host-specific patterns are not documented")
	}
	return method + " " + path, true, nil
}

var oasMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func oasRoutes(s *oasSpec) map[string]map[string]any {
	out := map[string]map[string]any{}
	for path, item := range s.raw["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			if slices.Contains(oasMethods, m) {
				out[strings.ToUpper(m)+" "+path] = op.(map[string]any)
			}
		}
	}
	return out
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	s := oasGet(t)
	documented := oasRoutes(s)
	registered := map[string]bool{}
	for _, p := range oasServerRoutes(t) {
		key, ok, err := oasRouteKey(p)
		if err != nil {
			t.Errorf("route %q: %v", p, err)
			continue
		}
		if ok {
			registered[key] = true
		}
	}
	// The parser must have found the routes API.md fixes, or an empty
	// result would pass vacuously.
	for _, must := range []string{"POST /v1/paths", "GET /v1/paths/{path_id}", "GET /healthz", "GET /openapi.json"} {
		if !registered[must] {
			t.Errorf("route %s not found in the package source: is the parser still looking at the right calls?", must)
		}
	}
	for key := range registered {
		if documented[key] == nil {
			t.Errorf("%s is served but not in openapi.json", key)
		}
	}
	for key := range documented {
		if !registered[key] {
			t.Errorf("%s is in openapi.json but not served", key)
		}
	}
}

func TestOpenAPIRouteKey(t *testing.T) {
	cases := []struct {
		pattern, key string
		ok, err      bool
	}{
		{"GET /v1/paths/{path_id}", "GET /v1/paths/{path_id}", true, false},
		{"GET /files/{name...}", "GET /files/{name}", true, false},
		{"GET /v1/{$}", "GET /v1/", true, false},
		{"/", "", false, false},
		{"/v1/paths", "", false, true},
		{"GET example.org/x", "", false, true},
	}
	for _, tc := range cases {
		key, ok, err := oasRouteKey(tc.pattern)
		if key != tc.key || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("routeKey(%q) = %q, %v, %v; want %q, %v, error %v", tc.pattern, key, ok, err, tc.key, tc.ok, tc.err)
		}
	}
}

// TestOpenAPIOperationConventions checks what every client relies on
// without reading each operation: public routes need no token, protected
// ones say how authentication fails, bodies say how decoding fails, and
// every error has the shared body.
func TestOpenAPIOperationConventions(t *testing.T) {
	s := oasGet(t)
	public := []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"}
	statuses := map[string]bool{}
	ids := map[string]string{}
	for key, op := range oasRoutes(s) {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", key)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %s", key, other, id)
		}
		ids[id] = key
		responses := op["responses"].(map[string]any)
		for code := range responses {
			statuses[code] = true
		}
		sec, hasSec := op["security"].([]any)
		isPublic := hasSec && len(sec) == 0
		if isPublic != slices.Contains(public, key) {
			t.Errorf("%s: public = %v, want %v", key, isPublic, !isPublic)
		}
		want := []string{"500", "401", "429"}
		if isPublic {
			want = nil
		}
		if _, ok := op["requestBody"]; ok {
			want = append(want, "400", "413", "422")
		}
		for _, code := range want {
			if responses[code] == nil {
				t.Errorf("%s: no %s response", key, code)
			}
		}
		for code, r := range responses {
			if code[0] != '4' && code[0] != '5' || key == "GET /readyz" {
				continue
			}
			ref, _ := r.(map[string]any)["$ref"].(string)
			resolved, err := oasPointer(s.raw, ref)
			if err != nil {
				t.Errorf("%s %s: error responses are shared components: %v", key, code, err)
				continue
			}
			schema, _ := oasPointer(resolved.(map[string]any), "#/content/application~1json/schema/$ref")
			if schema != "#/components/schemas/Error" {
				t.Errorf("%s %s: body is %v, want the Error schema", key, code, schema)
			}
		}
	}
	// Every status an error can map to is documented somewhere.
	for k := fault.Kind(0); k <= fault.TooMany; k++ {
		if code := strconv.Itoa(wire.Status(k)); !statuses[code] {
			t.Errorf("status %s (fault kind %d) appears in no operation", code, k)
		}
	}
}

// oasFaultCodes reads the Code* constants of domain/fault from its source: they
// are untyped string constants, which reflection cannot list.
func oasFaultCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "..", "domain", "fault", "fault.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("fault.%s is not a string literal", n.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				codes = append(codes, v)
			}
		}
	}
	sort.Strings(codes)
	return codes
}

func TestOpenAPIErrorCodesAreTheFaultCodes(t *testing.T) {
	s := oasGet(t)
	codes := oasFaultCodes(t)
	if len(codes) < 30 || !slices.Contains(codes, fault.CodeVersionMismatch) {
		t.Fatalf("read only %d codes from domain/fault: %v", len(codes), codes)
	}
	enum, err := oasPointer(s.raw, "#/components/schemas/ErrorCode/enum")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, c := range enum.([]any) {
		documented = append(documented, c.(string))
	}
	sort.Strings(documented)
	if !slices.Equal(documented, codes) {
		t.Errorf("ErrorCode enum = %v\nfault codes    = %v", documented, codes)
	}
}

// oasShape compares a Go type's JSON encoding with a schema, property by
// property: the same names, required exactly when the field is not
// omitempty, and compatible types. skip names properties the document
// leaves out on purpose, as dotted paths from the root ("rows[].reason").
type oasShape struct {
	t    *testing.T
	doc  map[string]any
	skip map[string]bool
}

var (
	oasTimeType = reflect.TypeFor[time.Time]()
	oasRawType  = reflect.TypeFor[json.RawMessage]()
)

// resolve follows $ref and takes the non-null branch of a nullable anyOf.
func (c *oasShape) resolve(where string, s map[string]any) map[string]any {
	for {
		if r, ok := s["$ref"].(string); ok {
			v, err := oasPointer(c.doc, r)
			if err != nil {
				c.t.Fatalf("%s: %v", where, err)
			}
			s = v.(map[string]any)
			continue
		}
		if alts, ok := s["anyOf"].([]any); ok {
			var branches []map[string]any
			for _, b := range alts {
				b := b.(map[string]any)
				if b["type"] != "null" {
					branches = append(branches, b)
				}
			}
			if len(branches) == 1 {
				s = branches[0]
				continue
			}
		}
		return s
	}
}

func oasTypes(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, e.(string))
		}
		return out
	}
	if _, ok := s["enum"]; ok {
		return nil // an enum constrains the value itself
	}
	return nil
}

type oasField struct {
	name      string
	omitempty bool
	typ       reflect.Type
}

func oasFields(t reflect.Type) []oasField {
	var out []oasField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			out = append(out, oasFields(et)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, oasField{name: name, omitempty: strings.Contains(opts, "omitempty"), typ: f.Type})
	}
	return out
}

func (c *oasShape) check(where string, typ reflect.Type, s map[string]any) {
	s = c.resolve(where, s)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	types := oasTypes(s)
	expect := func(want string) {
		if len(types) > 0 && !slices.Contains(types, want) {
			c.t.Errorf("%s: Go %s, schema type %v", where, typ, types)
		}
	}
	switch {
	case typ == oasTimeType:
		expect("string")
		return
	case typ == oasRawType:
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		expect("object")
		props, _ := s["properties"].(map[string]any)
		var required []string
		if r, ok := s["required"].([]any); ok {
			for _, e := range r {
				required = append(required, e.(string))
			}
		}
		seen := map[string]bool{}
		for _, f := range oasFields(typ) {
			path := strings.TrimPrefix(where+"."+f.name, ".")
			if c.skip[path] {
				continue
			}
			seen[f.name] = true
			p, ok := props[f.name].(map[string]any)
			if !ok {
				c.t.Errorf("%s: field %s (Go %s) is not in the document", where, f.name, typ)
				continue
			}
			if req := slices.Contains(required, f.name); req == f.omitempty {
				c.t.Errorf("%s.%s: required = %v, but the Go field has omitempty = %v", where, f.name, req, f.omitempty)
			}
			c.check(path, f.typ, p)
		}
		for name := range props {
			if !seen[name] && !c.skip[strings.TrimPrefix(where+"."+name, ".")] {
				c.t.Errorf("%s: property %s is documented but Go %s has no such field", where, name, typ)
			}
		}
	case reflect.Slice, reflect.Array:
		expect("array")
		if items, ok := s["items"].(map[string]any); ok {
			c.check(where+"[]", typ.Elem(), items)
		}
	case reflect.Map:
		expect("object")
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			c.check(where+"{}", typ.Elem(), ap)
		}
	case reflect.String:
		expect("string")
	case reflect.Bool:
		expect("boolean")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		expect("integer")
	default:
		c.t.Errorf("%s: no rule for Go %s", where, typ)
	}
}

func oasRequestSchema(t *testing.T, s *oasSpec, key string) map[string]any {
	t.Helper()
	op := oasRoutes(s)[key]
	if op == nil {
		t.Fatalf("%s is not documented", key)
	}
	v, err := oasPointer(op, "#/requestBody/content/application~1json/schema")
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v.(map[string]any)
}

func oasResponseSchema(t *testing.T, s *oasSpec, key, status string) map[string]any {
	t.Helper()
	op := oasRoutes(s)[key]
	if op == nil {
		t.Fatalf("%s is not documented", key)
	}
	r, err := oasPointer(op, "#/responses/"+status)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	r = (&oasShape{t: t, doc: s.raw}).resolve(key, r.(map[string]any))
	v, err := oasPointer(r.(map[string]any), "#/content/application~1json/schema")
	if err != nil {
		t.Fatalf("%s %s: %v", key, status, err)
	}
	return v.(map[string]any)
}

// oasCommandBodies pairs each command route with the body wire decodes; the
// path parameters are in the URL, so a body field of the same name is not
// accepted over HTTP and is not documented.
var oasCommandBodies = []struct {
	route string
	body  any
}{
	{"POST /v1/paths", wire.TakeInChargeBody{}},
	{"POST /v1/paths/{path_id}/sessions", wire.DeliverSessionBody{}},
	{"POST /v1/group-sessions", wire.GroupSessionBody{}},
	{"POST /v1/paths/{path_id}/pact", wire.SignPactBody{}},
	{"POST /v1/paths/{path_id}/traineeships", wire.TraineeshipBody{}},
	{"POST /v1/paths/{path_id}/verification", wire.VerifyBody{}},
	{"POST /v1/paths/{path_id}/no-shows", wire.NoShowBody{}},
	{"POST /v1/paths/{path_id}/refusals", wire.RefusalBody{}},
	{"POST /v1/paths/{path_id}/close", wire.CloseBody{}},
	{"POST /v1/workers/{tax_code}/erasure", wire.EraseBody{}},
}

func oasURLParams(route string) map[string]bool {
	out := map[string]bool{}
	for _, part := range strings.Split(route, "/") {
		if strings.HasPrefix(part, "{") {
			out[strings.Trim(part, "{}")] = true
		}
	}
	return out
}

func TestOpenAPIRequestBodiesMatchWire(t *testing.T) {
	s := oasGet(t)
	posts := 0
	for _, op := range oasRoutes(s) {
		if _, ok := op["requestBody"]; ok {
			posts++
		}
	}
	if posts != len(oasCommandBodies) {
		t.Errorf("%d operations take a body, %d command bodies are checked", posts, len(oasCommandBodies))
	}
	for _, cb := range oasCommandBodies {
		t.Run(cb.route, func(t *testing.T) {
			schema := oasRequestSchema(t, s, cb.route)
			(&oasShape{t: t, doc: s.raw, skip: oasURLParams(cb.route)}).check("", reflect.TypeOf(cb.body), schema)
		})
	}
}

// TestOpenAPIRequestBodiesAreClosed sends each command's documented example
// through the validator, then the same example with a field too many at
// each depth: API.md refuses unknown fields anywhere, and the document must
// say so. The examples must also pass the server's own strict decoder.
func TestOpenAPIRequestBodiesAreClosed(t *testing.T) {
	s := oasGet(t)
	for _, cb := range oasCommandBodies {
		t.Run(cb.route, func(t *testing.T) {
			schema := (&oasShape{t: t, doc: s.raw}).resolve(cb.route, oasRequestSchema(t, s, cb.route))
			examples, _ := schema["examples"].([]any)
			if len(examples) == 0 {
				t.Fatalf("%s: the body schema has no example", cb.route)
			}
			example, err := json.Marshal(examples[0])
			if err != nil {
				t.Fatal(err)
			}
			into := reflect.New(reflect.TypeOf(cb.body)).Interface()
			if err := wire.Decode(example, into); err != nil {
				t.Errorf("the example is refused by wire.Decode: %v", err)
			}
			method, path, _ := strings.Cut(cb.route, " ")
			path = strings.NewReplacer("{path_id}", "0f6d2a8e-3b1c-4c4e-9a57-2d8b1e6f4a90", "{tax_code}", "RSSMRA80A01H501U").Replace(path)
			send := func(body []byte) (bool, string) {
				req := httptest.NewRequest(method, path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer tok-operator")
				ok, errs := s.v.ValidateHttpRequestSync(req)
				return ok, oasErrors(errs)
			}
			if ok, errs := send(example); !ok {
				t.Errorf("the example does not validate:%s", errs)
			}
			for _, at := range oasObjectPaths(examples[0], "") {
				bad := oasInjectField(examples[0], at)
				body, _ := json.Marshal(bad)
				if ok, _ := send(body); ok {
					t.Errorf("an unknown field at %q validates: additionalProperties is not false there", at)
				}
			}
		})
	}
}

// oasObjectPaths lists the JSON objects in v, as dotted paths ("" is the root).
func oasObjectPaths(v any, at string) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := []string{at}
	for k, e := range m {
		out = append(out, oasObjectPaths(e, strings.TrimPrefix(at+"."+k, "."))...)
	}
	return out
}

// oasInjectField returns a deep copy of v with an unknown field in the object
// at path.
func oasInjectField(v any, path string) any {
	data, _ := json.Marshal(v)
	var cp map[string]any
	json.Unmarshal(data, &cp)
	obj := cp
	if path != "" {
		for _, k := range strings.Split(path, ".") {
			obj = obj[k].(map[string]any)
		}
	}
	obj["not_in_the_contract"] = true
	return cp
}

// TestOpenAPIResponseShapesMatchGo compares the documented bodies with the Go
// types the handlers encode.
func TestOpenAPIResponseShapesMatchGo(t *testing.T) {
	s := oasGet(t)
	allGroupKeys := []string{query.KeyOffice, query.KeyProvince, query.KeyCategory, query.KeyService, query.KeyMonth, query.KeyReason, query.KeySupportKind}
	// Each grouped report documents the grouping keys it accepts; the Go
	// row type carries them all.
	groupSkip := func(keys []string) map[string]bool {
		skip := map[string]bool{}
		for _, k := range allGroupKeys {
			if !slices.Contains(keys, k) {
				skip["rows[]."+k] = true
			}
		}
		return skip
	}
	cases := []struct {
		route, status string
		typ           reflect.Type
		skip          map[string]bool
	}{
		{"GET /v1/paths/{path_id}", "200", reflect.TypeFor[query.PathView](), nil},
		{"GET /v1/paths", "200", reflect.TypeFor[struct {
			Paths []query.PathSummary `json:"paths"`
			Next  *string             `json:"next"`
		}](), nil},
		{"GET /v1/paths/{path_id}/history", "200", reflect.TypeFor[query.History](), nil},
		{"GET /v1/paths/{path_id}/verify", "200", reflect.TypeFor[query.Verification](), nil},
		{"GET /v1/reports/activity", "200", reflect.TypeFor[struct {
			Rows []query.ActivityRow `json:"rows"`
		}](), groupSkip(query.ActivityKeys)},
		{"GET /v1/reports/intake", "200", reflect.TypeFor[struct {
			Rows []query.IntakeRow `json:"rows"`
		}](), groupSkip(query.IntakeKeys)},
		{"GET /v1/reports/closures", "200", reflect.TypeFor[struct {
			Rows []query.ClosureRow `json:"rows"`
		}](), groupSkip(query.ClosureKeys)},
		{"GET /v1/reports/inps", "200", reflect.TypeFor[struct {
			Rows []query.INPSRow `json:"rows"`
		}](), groupSkip(query.INPSKeys)},
		{"GET /v1/reports/compliance", "200", reflect.TypeFor[struct {
			Rows   []query.ComplianceRow `json:"rows"`
			Totals map[string]int        `json:"totals"`
		}](), nil},
		{"GET /v1/reports/deadlines", "200", reflect.TypeFor[struct {
			Office *string `json:"office"`
			*query.Deadlines
		}](), nil},
		{"GET /v1/audit/reads", "200", reflect.TypeFor[struct {
			Reads []query.AuditRead `json:"reads"`
		}](), nil},
		{"GET /v1/admin/projections/poison", "200", reflect.TypeFor[struct {
			Poison []query.Poison `json:"poison"`
		}](), nil},
		{"GET /v1/catalogue/services", "200", reflect.TypeFor[struct {
			CatalogueVersion string               `json:"catalogue_version"`
			Services         []workerpath.Service `json:"services"`
		}](), nil},
		{"GET /v1/catalogue/offices", "200", reflect.TypeFor[struct {
			Offices   []office.Office   `json:"offices"`
			Provinces []office.Province `json:"provinces"`
		}](), nil},
		{"POST /v1/paths", "400", reflect.TypeFor[wire.ErrorBody](), nil},
	}
	for _, tc := range cases {
		t.Run(tc.route, func(t *testing.T) {
			(&oasShape{t: t, doc: s.raw, skip: tc.skip}).check("", tc.typ, oasResponseSchema(t, s, tc.route, tc.status))
		})
	}
}

// TestOpenAPIEncodedValuesValidate checks values as the handlers encode them
// against their schemas, formats included: command results (whose fields are
// all omitempty in Go, so the shape check cannot tell which ones a command
// sets) and the path view that GET /v1/paths/{path_id} serves.
func TestOpenAPIEncodedValuesValidate(t *testing.T) {
	s := oasGet(t)
	sv := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	id, id2 := "0f6d2a8e-3b1c-4c4e-9a57-2d8b1e6f4a90", "1a7e3b9f-4c2d-4d5f-8b68-3e9c2f7a5b01"
	str := func(s string) *string { return &s }
	taken := time.Date(2010, 3, 15, 8, 30, 0, 0, time.UTC)
	full := query.PathView{
		PathID: id, WorkerRef: "w_3f2a", Category: "d", Office: "MO02", Province: "MO", Status: "closed", TakenAt: taken,
		Worker:  &query.Worker{TaxCode: str("RSSMRA80A01H501U"), GivenName: str("Mario"), FamilyName: str("Rossi"), BirthDate: str("1980-01-01"), Disability: new(bool), MediatorLanguage: str("ar")},
		Support: query.Support{Kind: "mobilita_deroga", AgreementCode: str("ER-2009-0042"), From: "2010-03-01", To: str("2010-12-31")},
		Pact:    &query.Pact{SignedAt: taken, DIDOn: "2010-03-15"}, Services: map[string]query.ServiceTally{"2": {Delivered: 1, CreditedMinutes: 30}, "12": {Delivered: 1, CreditedMinutes: 60}},
		CreditedMinutesTotal: 90, UnjustifiedNoShows: 1, JustifiedAbsences: 1, Refusals: 1,
		ClosedAt: &taken, CloseReason: str("reemployed"), VerifiedAt: &taken, VerificationOutcome: str("achieved"), Version: 9,
	}
	erased := query.PathView{
		PathID: id, WorkerRef: "w_3f2a", Category: "a", Office: "BO01", Province: "BO", Status: "open", TakenAt: taken,
		Worker:  &query.Worker{Erased: true},
		Support: query.Support{Kind: "cig_deroga", From: "2010-03-01"}, Services: map[string]query.ServiceTally{}, Version: 2,
	}
	cases := []struct {
		name, schema string
		value        any
		valid        bool
	}{
		{"take_in_charge result", "CommandResult", command.Result{PathID: id, Version: 1, Offices: []string{"BO01"}}, true},
		{"group result", "GroupResult", command.Result{GroupID: id, Versions: map[string]uint64{id: 4, id2: 7}}, true},
		{"erasure result", "ErasureResult", command.Result{Versions: map[string]uint64{id: 12}}, true},
		{"path view, everything set", "PathView", full, true},
		{"path view, erased worker", "PathView", erased, true},
		{"error body", "Error", wire.Body(fault.Invalidf("pact.did_on", "pact.did_on must be a date")), true},
		// Controls: what the schemas must refuse.
		{"group result as a command result", "CommandResult", command.Result{GroupID: id, Versions: map[string]uint64{id: 4}}, false},
		{"command result without a version", "CommandResult", map[string]any{"path_id": id}, false},
		{"path view with a bad status", "PathView", func() query.PathView { v := erased; v.Status = "paused"; return v }(), false},
		{"path view with service 13", "PathView", func() query.PathView {
			v := erased
			v.Services = map[string]query.ServiceTally{"13": {Delivered: 1}}
			return v
		}(), false},
		{"an error code that does not exist", "Error", wire.ErrorBody{Error: wire.ErrorDetail{Code: "oops", Message: "x"}}, false},
		{"an uppercase path id", "CommandResult", command.Result{PathID: strings.ToUpper(id), Version: 1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy := s.model.Components.Schemas.GetOrZero(tc.schema)
			if proxy == nil {
				t.Fatalf("no schema %s", tc.schema)
			}
			data, err := json.Marshal(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			ok, errs := sv.ValidateSchemaBytes(proxy.Schema(), data)
			if ok != tc.valid {
				t.Errorf("%s against %s: valid = %v, want %v:%s", data, tc.schema, ok, tc.valid, oasErrors(errs))
			}
		})
	}
}

// Principals of every role, for the live tests.
var oasTokens = map[access.Role]string{
	access.RoleOperator:   "tok-operator",
	access.RoleSupervisor: "tok-supervisor",
	access.RoleAuditor:    "tok-auditor",
	access.RoleAnalyst:    "tok-analyst",
	access.RoleAdmin:      "tok-admin",
}

func oasServer(t *testing.T, checks ...httpapi.Check) *httpapi.Server {
	t.Helper()
	var f access.File
	for role, tok := range oasTokens {
		p := access.Principal{Name: string(role) + "1", Role: role}
		if role == access.RoleOperator || role == access.RoleSupervisor {
			p.Offices = []string{"BO01"}
		}
		f.Principals = append(f.Principals, access.FileEntry{Principal: p, TokenSHA256: access.HashToken(tok)})
	}
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := access.ParsePrincipals(data, func(code string) bool { _, ok := office.Lookup(code); return ok })
	if err != nil {
		t.Fatal(err)
	}
	// No command handler, reader, auditor or projections: every request
	// below is answered before the server needs one (authentication,
	// authorization, decoding, parameters), or by the "not available"
	// branch of a handler whose dependency is absent.
	return httpapi.New(nil, nil, dir, nil, slog.New(slog.DiscardHandler), checks...)
}

func TestOpenAPIServedWithoutToken(t *testing.T) {
	srv := httptest.NewServer(oasServer(t))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Equal(body, httpapi.OpenAPIDocument()) {
		t.Error("the served document is not the embedded one")
	}
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/openapi.json"] == nil {
		t.Errorf("served document: openapi %q, %d paths, err %v", doc.OpenAPI, len(doc.Paths), err)
	}
}

// TestOpenAPIDescribesLiveResponses sends real requests to the server and
// validates each response (status, content type, headers, body) against the
// document with libopenapi-validator.
func TestOpenAPIDescribesLiveResponses(t *testing.T) {
	s := oasGet(t)
	ok := httpapi.Check{Name: "nats", Fn: func(context.Context) error { return nil }}
	down := httpapi.Check{Name: "postgres", Fn: func(context.Context) error { return errors.New("connection refused") }}
	id := "0f6d2a8e-3b1c-4c4e-9a57-2d8b1e6f4a90"
	takeInCharge := `{"worker":{"tax_code":"RSSMRA80A01H501U","given_name":"Mario","family_name":"Rossi","disability":false},` +
		`"category":"a","support":{"kind":"cig_deroga","from":"2010-03-01"},"office":"BO01","taken_at":"2010-03-15T09:30:00+01:00"}`
	cases := []struct {
		name         string
		checks       []httpapi.Check
		method, path string
		role         access.Role // "" sends no token
		header       map[string]string
		body         string
		status       int
		code         string // the error code, for error responses
	}{
		{name: "liveness", method: "GET", path: "/healthz", status: 200},
		{name: "ready", checks: []httpapi.Check{ok}, method: "GET", path: "/readyz", status: 200},
		{name: "not ready", checks: []httpapi.Check{ok, down}, method: "GET", path: "/readyz", status: 503},
		{name: "metrics", method: "GET", path: "/metrics", status: 200},
		{name: "this document", method: "GET", path: "/openapi.json", status: 200},
		{name: "services", method: "GET", path: "/v1/catalogue/services", role: access.RoleAnalyst, status: 200},
		{name: "offices", method: "GET", path: "/v1/catalogue/offices", role: access.RoleOperator, status: 200},
		{name: "no token", method: "POST", path: "/v1/paths", body: takeInCharge, status: 401, code: fault.CodeUnauthenticated},
		{name: "unknown token", method: "GET", path: "/v1/catalogue/offices", header: map[string]string{"Authorization": "Bearer nope"}, status: 401, code: fault.CodeUnauthenticated},
		{name: "unknown field", method: "POST", path: "/v1/paths", role: access.RoleOperator, body: `{"nickname":"x"}`, status: 400, code: fault.CodeUnknownField},
		{name: "malformed JSON", method: "POST", path: "/v1/paths/" + id + "/close", role: access.RoleOperator, body: `{"closed_at":`, status: 400, code: fault.CodeMalformedJSON},
		{name: "bad If-Match", method: "POST", path: "/v1/paths/" + id + "/pact", role: access.RoleOperator, header: map[string]string{"If-Match": "soon"},
			body: `{"signed_at":"2010-03-15T10:30:00+01:00","did_on":"2010-03-15"}`, status: 400, code: fault.CodeInvalidField},
		{name: "a date that is not a date", method: "POST", path: "/v1/paths/" + id + "/refusals", role: access.RoleOperator,
			body: `{"kind":"path","at":"yesterday"}`, status: 422, code: fault.CodeInvalidDate},
		{name: "supervisors send no commands", method: "POST", path: "/v1/paths", role: access.RoleSupervisor, body: takeInCharge, status: 403, code: fault.CodeForbidden},
		{name: "erasure is for admins", method: "POST", path: "/v1/workers/RSSMRA80A01H501U/erasure", role: access.RoleOperator, status: 403, code: fault.CodeForbidden},
		{name: "too large", method: "POST", path: "/v1/group-sessions", role: access.RoleOperator, body: `{"justification":"` + strings.Repeat("x", wire.MaxBody) + `"}`, status: 413, code: fault.CodeTooLarge},
		{name: "analysts read no path", method: "GET", path: "/v1/paths/" + id, role: access.RoleAnalyst, status: 403, code: fault.CodeForbidden},
		{name: "no such path", method: "GET", path: "/v1/paths/not-a-path", role: access.RoleOperator, status: 404, code: fault.CodePathNotFound},
		{name: "bad min_version", method: "GET", path: "/v1/paths/" + id + "?min_version=soon", role: access.RoleOperator, status: 400, code: fault.CodeInvalidField},
		{name: "listing without read models", method: "GET", path: "/v1/paths?status=open&limit=10", role: access.RoleOperator, status: 503, code: fault.CodeUnavailable},
		{name: "listing with an unknown parameter", method: "GET", path: "/v1/paths?colour=red", role: access.RoleOperator, status: 400, code: fault.CodeUnknownField},
		{name: "listing another office", method: "GET", path: "/v1/paths?office=MO01", role: access.RoleOperator, status: 403, code: fault.CodeForbidden},
		{name: "history without an auditor", method: "GET", path: "/v1/paths/" + id + "/history", role: access.RoleAuditor, status: 503, code: fault.CodeUnavailable},
		{name: "history with a bad as_of", method: "GET", path: "/v1/paths/" + id + "/history?as_of=yesterday", role: access.RoleAuditor, status: 422, code: fault.CodeInvalidDate},
		{name: "verify without an auditor", method: "GET", path: "/v1/paths/" + id + "/verify", role: access.RoleAdmin, status: 503, code: fault.CodeUnavailable},
		{name: "activity by an unknown key", method: "GET", path: "/v1/reports/activity?group_by=colour", role: access.RoleAnalyst, status: 400, code: fault.CodeInvalidField},
		{name: "activity with a bad date", method: "GET", path: "/v1/reports/activity?from=2010-13-01", role: access.RoleAnalyst, status: 422, code: fault.CodeInvalidDate},
		{name: "intake for an unknown office", method: "GET", path: "/v1/reports/intake?office=ZZ99", role: access.RoleAdmin, status: 422, code: fault.CodeUnknownOffice},
		{name: "closures without read models", method: "GET", path: "/v1/reports/closures?group_by=reason,month", role: access.RoleAnalyst, status: 503, code: fault.CodeUnavailable},
		{name: "inps with a repeated parameter", method: "GET", path: "/v1/reports/inps?from=2010-01-01&from=2010-02-01", role: access.RoleAnalyst, status: 400, code: fault.CodeInvalidField},
		{name: "compliance by an unknown kind", method: "GET", path: "/v1/reports/compliance?kind=late", role: access.RoleSupervisor, status: 400, code: fault.CodeInvalidField},
		{name: "deadlines without an office", method: "GET", path: "/v1/reports/deadlines", role: access.RoleOperator, status: 400, code: fault.CodeInvalidField},
		{name: "deadlines for analysts", method: "GET", path: "/v1/reports/deadlines?office=BO01", role: access.RoleAnalyst, status: 403, code: fault.CodeForbidden},
		{name: "audit reads for operators", method: "GET", path: "/v1/audit/reads", role: access.RoleOperator, status: 403, code: fault.CodeForbidden},
		{name: "audit reads with a bad limit", method: "GET", path: "/v1/audit/reads?limit=0", role: access.RoleAdmin, status: 400, code: fault.CodeInvalidField},
		{name: "poison without projections", method: "GET", path: "/v1/admin/projections/poison", role: access.RoleAdmin, status: 503, code: fault.CodeUnavailable},
		{name: "skip for operators", method: "POST", path: "/v1/admin/projections/poison/12/skip", role: access.RoleOperator, status: 403, code: fault.CodeForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := oasServer(t, tc.checks...)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.role != "" {
				req.Header.Set("Authorization", "Bearer "+oasTokens[tc.role])
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			resp := rec.Result()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.code != "" {
				var e wire.ErrorBody
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tc.code {
					t.Fatalf("error code %q (%v), want %q: %s", e.Error.Code, err, tc.code, body)
				}
			}
			oasValidateResponse(t, s, req, resp, body)
		})
	}
}

// A URL the API has, with a method it does not take, is a 405 naming the
// methods it takes; a URL it does not have stays a 404.
func TestMethodNotAllowed(t *testing.T) {
	h := oasServer(t)
	id := "7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f"
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"DELETE", "/v1/paths", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/paths/" + id, 405, "GET, HEAD"},
		{"GET", "/v1/paths/" + id + "/sessions", 405, "POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/v1/nothing", 404, ""},
		{"GET", "/v1/paths/" + id + "/nothing", 404, ""},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set("Authorization", "Bearer "+oasTokens[access.RoleAdmin])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e wire.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		want := fault.CodeNotFound
		if c.status == 405 {
			want = fault.CodeMethodNotAllowed
		}
		if rec.Code != c.status || rec.Header().Get("Allow") != c.allow || e.Error.Code != want {
			t.Errorf("%s %s: %d, Allow %q, code %q; want %d, %q, %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), e.Error.Code, c.status, c.allow, want)
		}
	}
}

func oasValidateResponse(t *testing.T, s *oasSpec, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	// The validator reads the request's body again for nothing it needs here.
	req.Body = http.NoBody
	ok, errs := s.v.ValidateHttpResponse(req, resp)
	if !ok {
		t.Errorf("%s %s -> %d does not match the document:%s\nbody: %.300s", req.Method, req.URL, resp.StatusCode, oasErrors(errs), body)
	}
}

// TestOpenAPIValidatorCatchesDrift is the control for the live test: a
// response the document does not describe must fail validation.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	s := oasGet(t)
	cases := []struct {
		name   string
		path   string
		status int
		ctype  string
		body   string
	}{
		{"an undocumented status", "/healthz", http.StatusTeapot, "application/json", `{"status":"ok"}`},
		{"a body of another shape", "/healthz", 200, "application/json", `{"status":"fine"}`},
		{"an error without a code", "/v1/catalogue/offices", 401, "application/json", `{"error":{"message":"who are you"}}`},
		{"an undocumented content type", "/v1/catalogue/offices", 200, "text/html", `<p>offices</p>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {tc.ctype}}, Body: io.NopCloser(strings.NewReader(tc.body))}
			if ok, _ := s.v.ValidateHttpResponse(req, resp); ok {
				t.Error("validates, want a failure")
			}
		})
	}
}

// TestOpenAPIUnknownRouteError checks the catch-all's body, which no
// operation documents, against the shared Error schema.
func TestOpenAPIUnknownRouteError(t *testing.T) {
	s := oasGet(t)
	rec := httptest.NewRecorder()
	oasServer(t).ServeHTTP(rec, httptest.NewRequest("DELETE", "/v1/nowhere", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
	sv := schema_validation.NewSchemaValidator()
	if ok, errs := sv.ValidateSchemaBytes(s.model.Components.Schemas.GetOrZero("Error").Schema(), rec.Body.Bytes()); !ok {
		t.Errorf("%s:%s", rec.Body, oasErrors(errs))
	}
	var e wire.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != fault.CodeNotFound {
		t.Errorf("code %q, err %v", e.Error.Code, err)
	}
}

// TestOpenAPITooManyFailedAuthentications drives the limiter to its 429 and
// checks that response against the document.
func TestOpenAPITooManyFailedAuthentications(t *testing.T) {
	s := oasGet(t)
	h := oasServer(t)
	for i := 0; ; i++ {
		req := httptest.NewRequest("GET", "/v1/catalogue/services", nil)
		req.RemoteAddr = "198.51.100.7:4000"
		req.Header.Set("Authorization", "Bearer guess-"+strconv.Itoa(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		resp := rec.Result()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusTooManyRequests {
			oasValidateResponse(t, s, req, resp, body)
			return
		}
		if resp.StatusCode != http.StatusUnauthorized || i > 100 {
			t.Fatalf("attempt %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
}
