// Package fault is percorso's error vocabulary. Every failure a user can
// cause or observe is an *Error with a Kind (which the edges map to an HTTP
// status or a NATS service error, each in one table) and a Code, the stable
// snake_case name of API.md. Codes are a wire contract: add, never rename.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the transports.
type Kind int

const (
	Internal         Kind = iota // a fault of ours: 500, never caused by input
	Invalid                      // malformed input: 400
	Rule                         // a rule of the domain refused the command: 422
	NotFound                     // 404
	Conflict                     // 409: the thing already exists
	Precondition                 // 412: If-Match did not hold
	Unauthenticated              // 401
	Forbidden                    // 403
	TooLarge                     // 413
	Timeout                      // 504: a bounded wait ran out
	Unavailable                  // 503: a dependency is down
	TooMany                      // 429
	MethodNotAllowed             // 405: the route exists, not with this method
)

// Codes of API.md, plus the ones users needed since. Append only.
const (
	CodeMalformedJSON        = "malformed_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidField         = "invalid_field"
	CodeInvalidTaxCode       = "invalid_tax_code"
	CodeSupportMismatch      = "support_mismatch"
	CodeRepeatLimitReached   = "repeat_limit_reached"
	CodeServiceNotAllowed    = "service_not_allowed"
	CodeVerificationNotDue   = "verification_not_due"
	CodeGroupSizeOutOfRange  = "group_size_out_of_range"
	CodePathClosed           = "path_closed"
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeInvalidDate          = "invalid_date"
	CodeInvalidMinutes       = "invalid_minutes"
	CodeUnknownOffice        = "unknown_office"
	CodeUnknownService       = "unknown_service"
	CodePactAlreadySigned    = "pact_already_signed"
	CodePactNotAllowed       = "pact_not_allowed"
	CodeWorkerErased         = "worker_erased"
	CodePathNotFound         = "path_not_found"
	CodeWorkerNotFound       = "worker_not_found"
	CodeNotFound             = "not_found"
	CodePathExists           = "path_exists"
	CodeWorkerHasOpenPath    = "worker_has_open_path"
	CodeVersionMismatch      = "version_mismatch"
	CodeTooLarge             = "request_too_large"
	CodeUnauthenticated      = "unauthenticated"
	CodeForbidden            = "forbidden"
	CodeTimeout              = "timeout"
	CodeUnavailable          = "unavailable"
	CodeTooManyRequests      = "too_many_requests"
	CodeInternal             = "internal"
	CodeConflict             = "conflict"
	CodeMethodNotAllowed     = "method_not_allowed"
)

// Error is a failure with a stable code.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string // the offending input field, JSON path style, if any
	Err     error  // an underlying cause, never shown to users
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches errors of the same code, so errors.Is(err, fault.New(...)) and
// sentinel comparisons both read naturally.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New builds an error of the given kind and code.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// OnField returns a copy of e naming the offending field.
func (e *Error) OnField(field string) *Error {
	c := *e
	c.Field = field
	return &c
}

// Rulef is a 422 with the given code.
func Rulef(code, format string, args ...any) *Error {
	return New(Rule, code, format, args...)
}

// Invalidf is a 400 on a field.
func Invalidf(field, format string, args ...any) *Error {
	e := New(Invalid, CodeInvalidField, format, args...)
	e.Field = field
	return e
}

// Wrap turns an unexpected error into an internal one, keeping the cause for
// logs while users see only a generic message.
func Wrap(err error, msg string) *Error {
	return &Error{Kind: Internal, Code: CodeInternal, Message: msg, Err: err}
}

// As returns err as an *Error; anything else becomes an internal error.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(err, "internal error")
}

// CodeOf returns the code of err, or "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	return As(err).Code
}
