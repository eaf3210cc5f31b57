package privacy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// sealedPrefix versions the wire form: sealed values sit in events forever,
// so a future format must be recognisable next to this one.
const sealedPrefix = "v1."

// Sealer encrypts personal fields under the worker's data key.
type Sealer struct {
	ks KeyStore
	ps *Pseudonymizer
}

// NewSealer returns a Sealer whose keys live in ks and whose pseudonyms derive
// from master.
func NewSealer(master []byte, ks KeyStore) (*Sealer, error) {
	if ks == nil {
		return nil, fmt.Errorf("privacy: nil key store")
	}
	ps, err := NewPseudonymizer(master)
	if err != nil {
		return nil, err
	}
	return &Sealer{ks: ks, ps: ps}, nil
}

// Pseudonym names the worker with this tax code; see Pseudonymizer.
func (s *Sealer) Pseudonym(taxCode string) string {
	return s.ps.Pseudonym(taxCode)
}

// Seal encrypts plaintext for the worker ref, creating their data key on first
// use, and returns "v1." + base64url(nonce || ciphertext). The ref is bound as
// additional data, so a value copied onto another worker's event fails to
// open. After Erase it returns ErrErased: nothing new is stored for an erased
// person.
func (s *Sealer) Seal(ctx context.Context, ref string, plaintext []byte) (string, error) {
	key, err := s.ks.DataKey(ctx, ref, true)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(key)
	clear(key)
	if err != nil {
		return "", err
	}
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("privacy: nonce: %w", err)
	}
	buf = aead.Seal(buf, buf[:nonceSize], plaintext, []byte(ref))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a value from Seal. It returns ErrErased once the worker was
// erased, ErrMalformed for input Seal cannot have produced, and ErrTampered
// when authentication fails.
func (s *Sealer) Open(ctx context.Context, ref, sealed string) ([]byte, error) {
	body, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: missing %q prefix", ErrMalformed, sealedPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrMalformed)
	}
	if len(raw) < nonceSize+16 {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	key, err := s.ks.DataKey(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, raw[:nonceSize], raw[nonceSize:], []byte(ref))
	if err != nil {
		return nil, ErrTampered
	}
	return plain, nil
}

// Erase destroys the worker's data key: every value ever sealed for them
// becomes unreadable, while the events that carry those values stay intact.
func (s *Sealer) Erase(ctx context.Context, ref string) error {
	return s.ks.Destroy(ctx, ref)
}
