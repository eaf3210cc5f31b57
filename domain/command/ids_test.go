package command_test

import (
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/command"
)

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := command.NewUUID()
		if !command.ValidUUID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewUUID() = %q, want a version-4 RFC 4122 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewUUID repeated %s", id)
		}
		seen[id] = true
	}
}

// NameUUID is RFC 4122 version 5, checked against the RFC's own namespace
// and a widely published vector, so other implementations can recompute ids.
func TestNameUUID(t *testing.T) {
	const dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	if got, want := command.NameUUID(dns, "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2"; got != want {
		t.Errorf("NameUUID(dns, www.example.com) = %s, want %s", got, want)
	}
	a := command.NameUUID(dns, "x")
	if a != command.NameUUID(dns, "x") {
		t.Error("NameUUID is not deterministic")
	}
	if !command.ValidUUID(a) || a[14] != '5' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Errorf("NameUUID = %s, want version 5", a)
	}
	if a == command.NameUUID(dns, "y") || a == command.NameUUID(command.NewUUID(), "x") {
		t.Error("different names or namespaces gave the same id")
	}
	// A namespace that is not a UUID falls back to percorso's own, never panics.
	if b := command.NameUUID("not a uuid", "x"); !command.ValidUUID(b) || b != command.NameUUID("also not", "x") {
		t.Errorf("fallback namespace: %s", b)
	}
}

func TestEventAndCommandIDs(t *testing.T) {
	cmd := command.CommandIDFor("mrossi", "key-1")
	if cmd != command.CommandIDFor("mrossi", "key-1") || !command.ValidUUID(cmd) {
		t.Errorf("CommandIDFor = %s", cmd)
	}
	for _, other := range []string{
		command.CommandIDFor("lbianchi", "key-1"),
		command.CommandIDFor("mrossi", "key-2"),
		command.CommandIDFor("mrossi\x00key", "-1"),
		command.CommandIDFor("mross", "ikey-1"),
	} {
		if other == cmd {
			t.Errorf("distinct (principal, key) pairs share the command id %s", cmd)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := command.EventID(cmd, i)
		if !command.ValidUUID(id) || seen[id] || id != command.EventID(cmd, i) {
			t.Fatalf("EventID(%d) = %s", i, id)
		}
		seen[id] = true
	}
	if command.EventID(cmd, 0) == command.EventID(command.NewUUID(), 0) {
		t.Error("two commands share an event id")
	}
}

func TestValidUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f":          true,
		"00000000-0000-0000-0000-000000000000":          true,
		"7F3C2A1E-5B8D-4C6F-9A0E-1D2B3C4D5E6F":          false,
		"7f3c2a1e5b8d4c6f9a0e1d2b3c4d5e6f":              false,
		"{7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f}":        false,
		"urn:uuid:7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f": false,
		"7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6":           false,
		"7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6f0":         false,
		"7f3c2a1e_5b8d_4c6f_9a0e_1d2b3c4d5e6f":          false,
		"7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e6g":          false,
		"7f3c2a1e-5b8d-4c6f-9a0e-1d2b3c4d5e.>":          false,
		"":                                              false,
	} {
		if got := command.ValidUUID(s); got != want {
			t.Errorf("ValidUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
