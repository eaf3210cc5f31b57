package command

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
)

// Identifiers are UUIDs in canonical lowercase form. Name-based (version 5)
// UUIDs make retries deterministic: the same command id always yields the
// same event ids, path id and session ids, so a retried append is recognised
// instead of duplicated.

// namespace is the UUID namespace of percorso's name-based identifiers.
var namespace = mustParseUUID("3c1f0b8e-6a2d-4f5e-9b7a-2d4c8e1f0a6b")

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return format(b)
}

// NameUUID returns the version-5 UUID of name in the given namespace UUID.
func NameUUID(space, name string) string {
	ns, err := parseUUID(space)
	if err != nil {
		ns = namespace
	}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return format(b)
}

// EventID is the id of the i-th event appended by a command; it is also the
// message's Nats-Msg-Id and ce-id.
func EventID(commandID string, i int) string {
	return NameUUID(commandID, "event/"+strconv.Itoa(i))
}

// CommandIDFor names a command by its idempotency key, per principal: two
// principals using the same key are two commands.
func CommandIDFor(principal, key string) string {
	return NameUUID(format(namespace), principal+"\x00"+key)
}

// ValidUUID reports whether s is a UUID in canonical lowercase form.
func ValidUUID(s string) bool {
	_, err := parseUUID(s)
	return err == nil
}

type errBadUUID struct{}

func (errBadUUID) Error() string { return "not a canonical UUID" }

func parseUUID(s string) ([16]byte, error) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, errBadUUID{}
	}
	hexs := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	for _, c := range hexs {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return b, errBadUUID{}
		}
	}
	if _, err := hex.Decode(b[:], []byte(hexs)); err != nil {
		return b, errBadUUID{}
	}
	return b, nil
}

func mustParseUUID(s string) [16]byte {
	b, err := parseUUID(s)
	if err != nil {
		panic(err)
	}
	return b
}

func format(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
