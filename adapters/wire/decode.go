// Package wire is what the HTTP and NATS edges share: the JSON bodies of
// API.md, their strict decoding, the dispatch of a named command to the use
// cases, and the one table mapping errors to statuses. Sharing it is how the
// same input gets the same result and the same error code on both transports.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/workerpath"
)

// MaxBody is the largest request body accepted (API.md: 1 MiB).
const MaxBody = 1 << 20

// Decode reads exactly one JSON object into v, refusing unknown fields at
// any depth, names in another case than API.md's, a field given twice, a
// required boolean left out, and trailing data; every failure is a 400
// with a precise code and the field's dotted path.
func Decode(body []byte, v any) error {
	if len(body) > MaxBody {
		return fault.New(fault.TooLarge, fault.CodeTooLarge, "request body is larger than %d bytes", MaxBody)
	}
	if !utf8.Valid(body) {
		// encoding/json would replace the bytes with U+FFFD: a name
		// silently altered. JSON is UTF-8 (RFC 8259).
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body is not valid UTF-8")
	}
	if err := checkShape(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body has data after the JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body is truncated JSON")
	case errors.As(err, &syn):
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body must be a JSON object")
		}
		return &fault.Error{Kind: fault.Invalid, Code: fault.CodeInvalidField, Field: field,
			Message: fmt.Sprintf("%s must be %s, not %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &fault.Error{Kind: fault.Invalid, Code: fault.CodeUnknownField, Field: name, Message: fmt.Sprintf("unknown field %q", name)}
	}
	return fault.New(fault.Invalid, fault.CodeMalformedJSON, "malformed JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a number"
}

// Time is an RFC 3339 time given as a JSON string.
func parseTime(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fault.Rulef(fault.CodeInvalidDate, "%s is required", field).OnField(field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fault.Rulef(fault.CodeInvalidDate, "%s must be an RFC 3339 time such as 2010-03-15T09:30:00+01:00", field).OnField(field)
	}
	return t, nil
}

func parseDate(s, field string, required bool) (workerpath.Date, error) {
	if s == "" {
		if required {
			return workerpath.Date{}, fault.Rulef(fault.CodeInvalidDate, "%s is required", field).OnField(field)
		}
		return workerpath.Date{}, nil
	}
	d, err := workerpath.ParseDate(s)
	if err != nil {
		return workerpath.Date{}, fault.Rulef(fault.CodeInvalidDate, "%s must be a date YYYY-MM-DD", field).OnField(field)
	}
	return d, nil
}

// checkShape walks the JSON value beside the Go type it is decoded into.
// encoding/json alone matches names case-insensitively, lets the last of
// two equal names win, and cannot tell false from absent; API.md's names
// are exact, and a boolean it requires (marked `wire:"required"`) must be
// given. Syntax and type errors are left to the decoder, which says them
// precisely.
func checkShape(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body must be a JSON object")
	}
	err = walkValue(dec, tok, t, "", 0)
	if errors.Is(err, errSyntax) {
		return nil
	}
	return err
}

// errSyntax stops the walk at malformed JSON, which the decoder reports.
var errSyntax = errors.New("syntax")

// maxDepth bounds the nesting of a body: API.md's go three levels deep,
// and a body of a million brackets must not cost a million stack frames.
const maxDepth = 32

func walkValue(dec *json.Decoder, tok json.Token, t reflect.Type, path string, depth int) error {
	if depth > maxDepth {
		return fault.New(fault.Invalid, fault.CodeMalformedJSON, "request body is nested more than %d levels deep", maxDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errSyntax
			}
			if err := walkValue(dec, tok, elem, path, depth+1); err != nil {
				return err
			}
		}
	case '{':
		fields := jsonFields(t)
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errSyntax
			}
			name, _ := tok.(string)
			at := name
			if path != "" {
				at = path + "." + name
			}
			if seen[name] {
				return &fault.Error{Kind: fault.Invalid, Code: fault.CodeMalformedJSON, Field: at, Message: fmt.Sprintf("field %q is given twice", at)}
			}
			seen[name] = true
			var ft reflect.Type
			required := false
			switch {
			case t != nil && t.Kind() == reflect.Map:
				ft = t.Elem()
			case fields != nil:
				f, ok := fields[name]
				if !ok {
					return &fault.Error{Kind: fault.Invalid, Code: fault.CodeUnknownField, Field: at, Message: fmt.Sprintf("unknown field %q", at)}
				}
				ft, required = f.Type, f.Tag.Get("wire") == "required"
			}
			if tok, err = dec.Token(); err != nil {
				return errSyntax
			}
			if required && tok == nil {
				return requiredError(at)
			}
			if err := walkValue(dec, tok, ft, at, depth+1); err != nil {
				return err
			}
		}
		for name, f := range fields {
			if f.Tag.Get("wire") == "required" && !seen[name] {
				at := name
				if path != "" {
					at = path + "." + name
				}
				return requiredError(at)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errSyntax
	}
	return nil
}

func requiredError(field string) error {
	return &fault.Error{Kind: fault.Invalid, Code: fault.CodeInvalidField, Field: field, Message: fmt.Sprintf("%s is required (true or false)", field)}
}

// jsonFields maps the exact JSON names of a struct's fields to them; nil
// for a type that is not a struct (its shape is the decoder's to check).
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}
