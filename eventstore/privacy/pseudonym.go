package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// PseudonymLen is the length of a pseudonym: 16 bytes in lowercase hex.
const PseudonymLen = 32

// Pseudonymizer names workers without revealing who they are. The same tax
// code always yields the same pseudonym under the same master key.
type Pseudonymizer struct {
	key  []byte
	pool sync.Pool
}

// NewPseudonymizer derives the pseudonym key from the master key.
func NewPseudonymizer(master []byte) (*Pseudonymizer, error) {
	key, err := deriveKey(master, infoPseudonym)
	if err != nil {
		return nil, err
	}
	p := &Pseudonymizer{key: key}
	p.pool.New = func() any { return hmac.New(sha256.New, p.key) }
	return p, nil
}

// Pseudonym returns lowercase hex of the first 16 bytes of
// HMAC-SHA256(pseudonym key, taxCode). The tax code is used exactly as given:
// callers pass the validated canonical form, or one person gets two names.
func (p *Pseudonymizer) Pseudonym(taxCode string) string {
	m := p.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(taxCode))
	var sum [sha256.Size]byte
	out := m.Sum(sum[:0])
	p.pool.Put(m)
	return hex.EncodeToString(out[:PseudonymLen/2])
}
