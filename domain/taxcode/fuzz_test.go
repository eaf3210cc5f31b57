package taxcode

import (
	"errors"
	"strings"
	"testing"
)

// The seed corpus lives in testdata/fuzz/<FuzzName>/ and runs with every
// plain `go test`, so the invariants below are checked on valid, omocode,
// provisional and malformed codes even when nobody is fuzzing.

func FuzzCheckPerson(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckPerson(s)
		checkErrorShape(t, s, err)
		if err != nil {
			return
		}
		if Normalize(s) != s {
			t.Fatalf("accepted a code that is not normalized")
		}
		switch len(s) {
		case 16:
			checkValidPersonal(t, s)
		case 11:
			checkValidElevenDigits(t, s, CheckPerson)
		default:
			t.Fatalf("accepted a code of length %d", len(s))
		}
	})
}

func FuzzCheckCompany(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckCompany(s)
		checkErrorShape(t, s, err)
		// A sole trader's code is a personal code: both checks must agree.
		if len(s) == 16 && (err == nil) != (CheckPerson(s) == nil) {
			t.Fatalf("CheckCompany = %v but CheckPerson = %v", err, CheckPerson(s))
		}
		if err != nil {
			return
		}
		switch len(s) {
		case 11:
			checkValidElevenDigits(t, s, CheckCompany)
		case 16:
			checkValidPersonal(t, s)
		default:
			t.Fatalf("accepted a code of length %d", len(s))
		}
	})
}

// checkErrorShape holds for any input: rejections wrap ErrInvalid with a
// reason, and the message never repeats the input.
func checkErrorShape(t *testing.T, s string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ie *InvalidError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &ie) || ie.Reason == "" {
		t.Fatalf("rejection %v is not an InvalidError with a reason", err)
	}
	// Reasons hold no digits, so any input with a digit that shows up in
	// the message was copied there.
	if strings.ContainsAny(s, "0123456789") && strings.Contains(err.Error(), s) {
		t.Fatalf("error message repeats the input")
	}
}

// checkValidPersonal: every omocode of a valid code is valid and maps back
// to the same base code, and any other check character is refused.
func checkValidPersonal(t *testing.T, s string) {
	t.Helper()
	c, err := CheckChar(s[:15])
	if err != nil || c != s[15] {
		t.Fatalf("CheckChar disagrees with CheckPerson: %q, %v", c, err)
	}
	base, err := Omocode(s, 0)
	if err != nil {
		t.Fatalf("Omocode level 0 of a valid code: %v", err)
	}
	for n := 0; n <= 7; n++ {
		o, err := Omocode(s, n)
		if err != nil {
			t.Fatalf("Omocode level %d of a valid code: %v", n, err)
		}
		if err := CheckPerson(o); err != nil {
			t.Fatalf("level %d omocode rejected: %v", n, err)
		}
		if back, err := Omocode(o, 0); err != nil || back != base {
			t.Fatalf("level %d omocode does not map back to its base code", n)
		}
	}
	for l := byte('A'); l <= 'Z'; l++ {
		if l == s[15] {
			continue
		}
		err := CheckPerson(s[:15] + string(l))
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Reason != reasonCheckChar {
			t.Fatalf("changed check character: got %v, want %q", err, reasonCheckChar)
		}
	}
}

// checkValidElevenDigits: the Luhn-style check digit catches every
// single-digit error.
func checkValidElevenDigits(t *testing.T, s string, check func(string) error) {
	t.Helper()
	b := []byte(s)
	for i := range b {
		orig := b[i]
		if !isDigit(orig) {
			t.Fatalf("accepted an 11-character code with a non-digit")
		}
		for d := byte('0'); d <= '9'; d++ {
			if d == orig {
				continue
			}
			b[i] = d
			if check(string(b)) == nil {
				t.Fatalf("changing digit %d still passes", i+1)
			}
		}
		b[i] = orig
	}
}
