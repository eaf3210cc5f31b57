// Package taxcode checks the Italian tax codes an employment office records:
// a worker's codice fiscale and the tax code of the employer hosting a
// traineeship.
//
// The check is syntactic plus the check character. It exists to catch typing
// errors at the counter, where they happen, before a wrong code becomes part
// of a worker's permanent history; it does not ask the tax agency whether a
// code was ever issued. Where the agency itself is lenient it is lenient too:
// omocodia letters are accepted in any of the seven digit positions, because
// refusing a code the agency did issue would hold up a worker's benefit.
//
// Errors never contain the code: a tax code is personal data and error
// messages end up in logs.
package taxcode

import (
	"errors"
	"strings"
)

// ErrInvalid is wrapped by every error that rejects a tax code, so the edges
// map all of them to a single wire code whatever the reason.
var ErrInvalid = errors.New("invalid tax code")

// InvalidError says why a code was rejected. The reason is meant for the
// operator who typed the code and therefore never quotes the code itself.
type InvalidError struct {
	Reason string
}

func (e *InvalidError) Error() string { return ErrInvalid.Error() + ": " + e.Reason }

// Unwrap lets callers test errors.Is(err, ErrInvalid) without caring about
// the reason.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Reasons are kept short and free of personal data; each names one rule.
const (
	reasonEmpty         = "empty"
	reasonNotNormalized = "not normalized (surrounding spaces or lowercase)"
	reasonLength        = "wrong length"
	reasonCharacter     = "invalid character"
	reasonNameLetters   = "bad surname or name letters"
	reasonYear          = "bad year"
	reasonMonth         = "bad month"
	reasonDay           = "bad day"
	reasonPlace         = "bad place code"
	reasonCheckChar     = "wrong check character"
	reasonNotDigits     = "not all digits"
	reasonAllZeros      = "all zeros"
	reasonCheckDigit    = "wrong check digit"
)

func invalid(reason string) error { return &InvalidError{Reason: reason} }

// Normalize puts a code as typed into the form the checks expect. Checks do
// not normalize on their own: the normalized form is what gets stored, so the
// caller must normalize once and keep the result.
func Normalize(s string) string {
	return strings.ToUpper(strings.TrimSpace(s))
}

// precheck rejects what no tax code can be, giving the operator the most
// useful reason first: a stray space or lowercase letter is not a length
// problem.
func precheck(code string) error {
	if code == "" {
		return invalid(reasonEmpty)
	}
	if Normalize(code) != code {
		return invalid(reasonNotNormalized)
	}
	return nil
}
