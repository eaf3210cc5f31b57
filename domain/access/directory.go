package access

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode"
)

// File is the principals file (--auth-file).
type File struct {
	Principals []FileEntry `json:"principals"`
}

// FileEntry is one principal as stored: the principal and the hex SHA-256
// of its bearer token, never the token itself.
type FileEntry struct {
	Principal
	TokenSHA256 string `json:"token_sha256"`
}

// Directory holds the principals of a file and finds the one a token
// belongs to. It is immutable once built and safe for concurrent use.
type Directory struct {
	entries []entry
}

type entry struct {
	principal Principal
	hash      [sha256.Size]byte
}

// tokenPrefix marks percorso tokens so that secret scanners and people can
// recognise one in a log or a paste.
const tokenPrefix = "pct_"

// NewToken returns a fresh bearer token: 32 random bytes in hex after the
// pct_ prefix.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("access: new token: %w", err)
	}
	return tokenPrefix + hex.EncodeToString(b[:]), nil
}

// HashToken returns the value a principals file stores for token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// LoadPrincipals reads and parses the principals file at path.
func LoadPrincipals(path string, validOffice func(string) bool) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("access: read principals: %w", err)
	}
	d, err := ParsePrincipals(data, validOffice)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ParsePrincipals parses a principals file. validOffice says whether an
// office code exists; nil accepts any non-empty code. The whole file is
// rejected on the first bad entry: a half-loaded directory would lock out
// or, worse, mis-scope someone without anybody noticing.
func ParsePrincipals(data []byte, validOffice func(string) bool) (*Directory, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPrincipals, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the principals object", ErrInvalidPrincipals)
	}
	if len(f.Principals) == 0 {
		return nil, fmt.Errorf("%w: no principals", ErrInvalidPrincipals)
	}
	d := &Directory{entries: make([]entry, 0, len(f.Principals))}
	names := make(map[string]bool, len(f.Principals))
	hashes := make(map[[sha256.Size]byte]string, len(f.Principals))
	for i, fe := range f.Principals {
		e, err := parseEntry(fe, validOffice)
		if err != nil {
			return nil, fmt.Errorf("%w: principals[%d]: %w", ErrInvalidPrincipals, i, err)
		}
		if names[e.principal.Name] {
			return nil, fmt.Errorf("%w: principals[%d]: duplicate name %q", ErrInvalidPrincipals, i, e.principal.Name)
		}
		names[e.principal.Name] = true
		if other, ok := hashes[e.hash]; ok {
			return nil, fmt.Errorf("%w: principals[%d]: token_sha256 already used by %q", ErrInvalidPrincipals, i, other)
		}
		hashes[e.hash] = e.principal.Name
		d.entries = append(d.entries, e)
	}
	return d, nil
}

func parseEntry(fe FileEntry, validOffice func(string) bool) (entry, error) {
	p := fe.Principal
	if err := checkName(p.Name); err != nil {
		return entry{}, err
	}
	if !p.Role.Valid() {
		return entry{}, fmt.Errorf("%q: unknown role %q", p.Name, p.Role)
	}
	if p.Role.officeBound() && len(p.Offices) == 0 {
		return entry{}, fmt.Errorf("%q: role %s needs at least one office", p.Name, p.Role)
	}
	for j, o := range p.Offices {
		if o == "" || (validOffice != nil && !validOffice(o)) {
			return entry{}, fmt.Errorf("%q: unknown office %q", p.Name, o)
		}
		if slices.Contains(p.Offices[:j], o) {
			return entry{}, fmt.Errorf("%q: office %s listed twice", p.Name, o)
		}
	}
	if len(fe.TokenSHA256) != hex.EncodedLen(sha256.Size) {
		return entry{}, fmt.Errorf("%q: token_sha256 must be %d hex digits", p.Name, hex.EncodedLen(sha256.Size))
	}
	var e entry
	if _, err := hex.Decode(e.hash[:], []byte(fe.TokenSHA256)); err != nil {
		return entry{}, fmt.Errorf("%q: token_sha256 must be %d hex digits", p.Name, hex.EncodedLen(sha256.Size))
	}
	if len(p.Offices) == 0 {
		p.Offices = nil
	} else {
		p.Offices = slices.Clone(p.Offices)
	}
	e.principal = p
	return e, nil
}

// checkName keeps names usable as the actor of events and in log lines:
// no blanks at the edges, no control characters.
func checkName(name string) error {
	if name == "" {
		return errors.New("missing name")
	}
	if strings.TrimSpace(name) != name || strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("name %q has surrounding blanks or control characters", name)
	}
	return nil
}

// Authenticate returns the principal holding token, or ErrUnauthenticated.
// The hash of token is compared with every stored hash in constant time and
// without stopping at a match, so the response time says nothing about
// which principal, or whether any, matched.
func (d *Directory) Authenticate(token string) (Principal, error) {
	if token == "" || d == nil {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(token))
	found, matched := 0, 0
	for i := range d.entries {
		eq := subtle.ConstantTimeCompare(h[:], d.entries[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
		matched |= eq
	}
	if matched != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return d.entries[found].principal.clone(), nil
}

// Principals lists the principals of the directory, without their hashes,
// in file order.
func (d *Directory) Principals() []Principal {
	out := make([]Principal, len(d.entries))
	for i, e := range d.entries {
		out[i] = e.principal.clone()
	}
	return out
}

// clone keeps callers from editing the directory's office lists through a
// returned Principal.
func (p Principal) clone() Principal {
	p.Offices = slices.Clone(p.Offices)
	return p
}
