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
	"strings"
	"time"

	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/workerpath"
)

// MaxBody is the largest request body accepted (API.md: 1 MiB).
const MaxBody = 1 << 20

// Decode reads exactly one JSON value into v, refusing unknown fields at any
// depth and trailing data; every failure is a 400 with a precise code.
func Decode(body []byte, v any) error {
	if len(body) > MaxBody {
		return fault.New(fault.TooLarge, fault.CodeTooLarge, "request body is larger than %d bytes", MaxBody)
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
