package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/fault"
)

// Decode's refusals, as data: the body, and the code and field it gets.
func TestDecodeRefuses(t *testing.T) {
	worker := `"tax_code":"RSSMRA80A01H501U","given_name":"Mario","family_name":"Rossi"`
	for _, c := range []struct {
		name, body, code, field string
	}{
		{"empty", ``, fault.CodeMalformedJSON, ""},
		{"null", `null`, fault.CodeMalformedJSON, ""},
		{"array", `[{"service":1}]`, fault.CodeMalformedJSON, ""},
		{"string", `"service"`, fault.CodeMalformedJSON, ""},
		{"truncated", `{"service":1,`, fault.CodeMalformedJSON, ""},
		{"trailing data", `{"service":1} {}`, fault.CodeMalformedJSON, ""},
		{"nested too deeply", `{"pact":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, fault.CodeMalformedJSON, ""},
		{"invalid UTF-8", "{\"justification\":\"gruppo\xff\xfe\"}", fault.CodeMalformedJSON, ""},
		{"unknown field", `{"colour":"red"}`, fault.CodeUnknownField, "colour"},
		{"name in another case", `{"Service":1}`, fault.CodeUnknownField, "Service"},
		{"nested unknown field", `{"pact":{"signed_at":"x","x":1}}`, fault.CodeUnknownField, "pact.x"},
		{"nested name in another case", `{"pact":{"Signed_At":"x"}}`, fault.CodeUnknownField, "pact.Signed_At"},
		{"given twice", `{"service":1,"service":2}`, fault.CodeMalformedJSON, "service"},
		{"nested given twice", `{"pact":{"did_on":"a","did_on":"b"}}`, fault.CodeMalformedJSON, "pact.did_on"},
		{"wrong type", `{"service":"one"}`, fault.CodeInvalidField, "service"},
		{"nested wrong type", `{"pact":{"did_on":3}}`, fault.CodeInvalidField, "pact.did_on"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b DeliverSessionBody
			expectRefusal(t, Decode([]byte(c.body), &b), c.code, c.field)
		})
	}
	for _, c := range []struct {
		name, body, code, field string
	}{
		{"required boolean left out", `{"worker":{` + worker + `}}`, fault.CodeInvalidField, "worker.disability"},
		{"required boolean null", `{"worker":{` + worker + `,"disability":null}}`, fault.CodeInvalidField, "worker.disability"},
		{"worker in another case", `{"Worker":{` + worker + `,"disability":true}}`, fault.CodeUnknownField, "Worker"},
		{"everything right", `{"worker":{` + worker + `,"disability":false},"category":"a"}`, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b TakeInChargeBody
			expectRefusal(t, Decode([]byte(c.body), &b), c.code, c.field)
		})
	}
	var n NoShowBody
	expectRefusal(t, Decode([]byte(`{"appointment_at":"2010-01-01T09:00:00Z"}`), &n), fault.CodeInvalidField, "justified")
}

func expectRefusal(t *testing.T, err error, code, field string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var fe *fault.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want %s", err, code)
	}
	if fe.Code != code || fe.Field != field || fe.Kind != fault.Invalid {
		t.Errorf("got %s on %q (kind %d): %s; want %s on %q", fe.Code, fe.Field, fe.Kind, fe.Message, code, field)
	}
}
