package taxcode

import (
	"errors"
	"strings"
	"testing"
)

// reasonOf returns the rejection reason, failing the test if err is not an
// ErrInvalid carrying one.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an *InvalidError", err)
	}
	return ie.Reason
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rssmra80a01h501u", "RSSMRA80A01H501U"},
		{"  RSSMRA80A01H501U\t\n", "RSSMRA80A01H501U"},
		{" 00743110157 ", "00743110157"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckPersonValid(t *testing.T) {
	tests := []struct{ name, code string }{
		{"public example", "RSSMRA80A01H501U"},
		{"public example born 1945", "RSSMRA45D25F205N"},
		{"another published example", "MRTMTT25D09F205Z"},
		{"omocode level 1", "RSSMRA80A01H50MM"},
		{"omocode level 2", "RSSMRA80A01H5LMX"},
		{"omocode level 7", "RSSMRAULALMHRLMD"},
		{"omocode level 1 of the 1945 example", "RSSMRA45D25F20RI"},
		{"omocode level 7 of the 1945 example", "RSSMRAQRDNRFNLRX"},
		{"omocodia out of order is still accepted", "RSSMRA80A0MH501M"},
		{"woman, day 01", "RSSMRA80A41H501Y"},
		{"woman, day 31", "RSSMRA80A71H501B"},
		{"day 31", "RSSMRA80A31H501X"},
		{"born abroad", "BNCLRA90T60Z404S"},
		{"provisional code", "00743110157"},
		{"provisional code 2", "12345678903"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPerson(tt.code); err != nil {
				t.Errorf("CheckPerson(%q) = %v, want nil", tt.code, err)
			}
		})
	}
}

func TestCheckPersonInvalid(t *testing.T) {
	tests := []struct{ code, reason string }{
		{"", reasonEmpty},
		{"rssmra80a01h501u", reasonNotNormalized},
		{" RSSMRA80A01H501U", reasonNotNormalized},
		{"RSSMRA80A01H501", reasonLength},
		{"RSSMR480A01H501U", reasonNameLetters},
		{"RSSMRAA0A01H501U", reasonYear},
		{"RSSMRA80F01H501U", reasonMonth},
		{"RSSMRA80A32H501C", reasonDay},
		{"RSSMRA80A011501U", reasonPlace},
		{"RSSMRA80A01H501A", reasonCheckChar},
		{"0074311015A", reasonNotDigits},
		{"00000000000", reasonAllZeros},
		{"00743110158", reasonCheckDigit},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			got := reasonOf(t, CheckPerson(tt.code))
			if got != tt.reason {
				t.Errorf("CheckPerson(%q) reason %q, want %q", tt.code, got, tt.reason)
			}
		})
	}
}

// TestCheckPersonDayBoundaries builds each code with a correct check
// character, so only the day decides.
func TestCheckPersonDayBoundaries(t *testing.T) {
	tests := []struct {
		day   string
		valid bool
	}{
		{"00", false}, {"01", true}, {"31", true}, {"32", false},
		{"40", false}, {"41", true}, {"71", true}, {"72", false},
		{"LM", true}, // 01 with omocodia
		{"LL", false},
		{"QL", false}, // 4 and 0: day 40
		{"PV", false}, // 3 and 9: day 39
		{"NU", true},  // 2 and 8: day 28
	}
	for _, tt := range tests {
		first15 := "RSSMRA80A" + tt.day + "H501"
		c, err := CheckChar(first15)
		if err != nil {
			t.Fatalf("CheckChar(%q): %v", first15, err)
		}
		code := first15 + string(c)
		err = CheckPerson(code)
		if tt.valid && err != nil {
			t.Errorf("day %s: CheckPerson = %v, want nil", tt.day, err)
		}
		if !tt.valid {
			if err == nil {
				t.Errorf("day %s: CheckPerson accepted it", tt.day)
			} else if r := reasonOf(t, err); r != reasonDay {
				t.Errorf("day %s: reason %q, want %q", tt.day, r, reasonDay)
			}
		}
	}
}

func TestCheckPersonMonths(t *testing.T) {
	for c := byte('A'); c <= 'Z'; c++ {
		first15 := "RSSMRA80" + string(c) + "01H501"
		cc, err := CheckChar(first15)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckPerson(first15 + string(cc))
		want := strings.IndexByte("ABCDEHLMPRST", c) >= 0
		if want != (err == nil) {
			t.Errorf("month letter %c: CheckPerson = %v, want valid=%v", c, err, want)
		}
	}
}

func TestCheckCompany(t *testing.T) {
	valid := []string{
		"00743110157",
		"12345678903",
		"RSSMRA80A01H501U", // sole trader
		"RSSMRA80A01H50MM", // sole trader with an omocode
	}
	for _, code := range valid {
		if err := CheckCompany(code); err != nil {
			t.Errorf("CheckCompany(%q) = %v, want nil", code, err)
		}
	}
	invalidCases := []struct{ code, reason string }{
		{"", reasonEmpty},
		{"00743110157 ", reasonNotNormalized},
		{"007431101570", reasonLength},
		{"0074311O157", reasonNotDigits},
		{"00000000000", reasonAllZeros},
		{"12345678901", reasonCheckDigit},
		{"RSSMRA80A01H501V", reasonCheckChar},
	}
	for _, tt := range invalidCases {
		if got := reasonOf(t, CheckCompany(tt.code)); got != tt.reason {
			t.Errorf("CheckCompany(%q) reason %q, want %q", tt.code, got, tt.reason)
		}
	}
}

// TestElevenDigitCheck pins the check digit on published values and on
// sums worked out by hand, so a wrong doubling rule cannot pass unnoticed.
func TestElevenDigitCheck(t *testing.T) {
	tests := []struct {
		first10 string
		want    int
	}{
		{"0074311015", 7}, // odd 0+7+3+1+1=12, even 0+8+2+0+1=11, 23 -> 7
		{"1234567890", 3}, // odd 1+3+5+7+9=25, even 4+8+3+7+0=22, 47 -> 3
		{"0000000000", 0},
		{"0000000001", 8}, // 1 doubled is 2 -> 8
		{"0000000005", 9}, // 5 doubled is 10, less 9 is 1 -> 9
		{"1000000000", 9},
	}
	for _, tt := range tests {
		if got := elevenDigitCheck(tt.first10); got != tt.want {
			t.Errorf("elevenDigitCheck(%q) = %d, want %d", tt.first10, got, tt.want)
		}
	}
}

func TestCheckChar(t *testing.T) {
	tests := []struct {
		first15 string
		want    byte
	}{
		{"RSSMRA80A01H501", 'U'},
		{"RSSMRA45D25F205", 'N'},
		{"RSSMRA80A01H50M", 'M'}, // 'U' (20) + odd weight of M (18) - that of 1 (0) = 38 = 12 mod 26
	}
	for _, tt := range tests {
		got, err := CheckChar(tt.first15)
		if err != nil || got != tt.want {
			t.Errorf("CheckChar(%q) = %q, %v; want %q", tt.first15, got, err, tt.want)
		}
	}
	for _, bad := range []struct{ in, reason string }{
		{"RSSMRA80A01H50", reasonLength},
		{"rssmra80a01h501", reasonCharacter},
		{"RSSMRA80A01H50-", reasonCharacter},
	} {
		_, err := CheckChar(bad.in)
		if got := reasonOf(t, err); got != bad.reason {
			t.Errorf("CheckChar(%q) reason %q, want %q", bad.in, got, bad.reason)
		}
	}
}

func TestOmocode(t *testing.T) {
	const base = "RSSMRA80A01H501U"
	want := []string{
		base,
		"RSSMRA80A01H50MM",
		"RSSMRA80A01H5LMX",
		"RSSMRA80A01HRLMS",
		"RSSMRA80A0MHRLMK",
		"RSSMRA80ALMHRLMV",
		"RSSMRA8LALMHRLMG",
		"RSSMRAULALMHRLMD",
	}
	for n, w := range want {
		got, err := Omocode(base, n)
		if err != nil || got != w {
			t.Errorf("Omocode(base, %d) = %q, %v; want %q", n, got, err, w)
		}
		if err := CheckPerson(got); err != nil {
			t.Errorf("level %d omocode %q rejected: %v", n, got, err)
		}
		// Any omocode leads back to the same base code.
		if back, err := Omocode(got, 0); err != nil || back != base {
			t.Errorf("Omocode(%q, 0) = %q, %v; want %q", got, back, err, base)
		}
	}
	for _, n := range []int{-1, 8} {
		if _, err := Omocode(base, n); err == nil {
			t.Errorf("Omocode(base, %d) accepted an out-of-range level", n)
		}
	}
	for _, code := range []string{"RSSMRA80A01H501A", "00743110157", ""} {
		if _, err := Omocode(code, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Omocode(%q, 1) = %v, want ErrInvalid", code, err)
		}
	}
}

// Error messages end up in logs: they must never carry the code.
func TestErrorsDoNotLeakTheCode(t *testing.T) {
	for _, code := range []string{"RSSMRA80A01H501A", "00743110158", "RSSMRA80F01H501U", "rssmra80a01h501u"} {
		for _, err := range []error{CheckPerson(code), CheckCompany(code)} {
			if err == nil {
				t.Fatalf("%q accepted", code)
			}
			if strings.Contains(strings.ToUpper(err.Error()), Normalize(code)) {
				t.Errorf("error %q contains the code", err)
			}
		}
	}
}
