package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"
)

var pseudonymForm = regexp.MustCompile(`^[0-9a-f]{32}$`)

// The pseudonym is a wire contract: analytics joins on it and NATS subjects
// carry it. These values were computed once and must never change for the
// same master key and tax code. They were cross-checked against an
// independent HKDF (RFC 5869) and HMAC-SHA256 implementation.
func TestPseudonymGolden(t *testing.T) {
	p, err := NewPseudonymizer(testMaster)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ taxCode, want string }{
		{"RSSMRA80A01H501U", "d03d0f7820d8647f320800cd893300ba"},
		{"RSSMRA45D25F205N", "ef49e2a344f6ea81934899a6f61fe619"},
		{"12345678901", "6a76899c4272b4642fba455621225952"},
	}
	for _, tt := range tests {
		got := p.Pseudonym(tt.taxCode)
		if got != tt.want {
			t.Errorf("Pseudonym(%s) = %s, want %s", tt.taxCode, got, tt.want)
		}
		if !pseudonymForm.MatchString(got) || !validRef(got) {
			t.Errorf("Pseudonym(%s) = %q is not 32 lowercase hex characters", tt.taxCode, got)
		}
	}
}

func TestPseudonymProperties(t *testing.T) {
	p1, err := NewPseudonymizer(testMaster)
	if err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), testMaster...)
	other[0] ^= 0xff
	p2, err := NewPseudonymizer(other)
	if err != nil {
		t.Fatal(err)
	}
	const cf = "RSSMRA80A01H501U"
	tests := []struct {
		name   string
		a, b   string
		sameAs bool
	}{
		{"stable", p1.Pseudonym(cf), p1.Pseudonym(cf), true},
		{"stable across instances", p1.Pseudonym(cf), mustPseudonymizer(t).Pseudonym(cf), true},
		{"different people", p1.Pseudonym(cf), p1.Pseudonym("RSSMRA45D25F205N"), false},
		{"tax code used as given", p1.Pseudonym(cf), p1.Pseudonym("rssmra80a01h501u"), false},
		{"different master key", p1.Pseudonym(cf), p2.Pseudonym(cf), false},
		{"HMAC-SHA256 under the pseudonym key", p1.Pseudonym(cf), hkdfPseudonym(t, infoPseudonym, cf), true},
		{"not the key-encryption label", p1.Pseudonym(cf), hkdfPseudonym(t, infoKeyEncryption, cf), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.a == tt.b) != tt.sameAs {
				t.Fatalf("%s vs %s: same=%v, want %v", tt.a, tt.b, tt.a == tt.b, tt.sameAs)
			}
		})
	}
}

func mustPseudonymizer(t *testing.T) *Pseudonymizer {
	p, err := NewPseudonymizer(testMaster)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hkdfPseudonym recomputes a pseudonym from first principles under the given
// HKDF label.
func hkdfPseudonym(t *testing.T, info, taxCode string) string {
	k, err := deriveKey(testMaster, info)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(taxCode))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
