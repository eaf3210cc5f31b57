package access_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/access"
)

// Tokens of the test file; the file stores their hashes.
const (
	tokRossi   = "pct_rossi"
	tokBianchi = "pct_bianchi"
	tokVerdi   = "pct_verdi"
)

func knownOffice(o string) bool {
	return slices.Contains([]string{"BO01", "BO02", "MO01", "RN03"}, o)
}

func testFile() string {
	return `{"principals": [
  {"name": "mrossi", "role": "operator", "offices": ["BO01", "BO02"], "token_sha256": "` + access.HashToken(tokRossi) + `"},
  {"name": "lbianchi", "role": "auditor", "offices": [], "token_sha256": "` + strings.ToUpper(access.HashToken(tokBianchi)) + `"},
  {"name": "gverdi", "role": "analyst", "token_sha256": "` + access.HashToken(tokVerdi) + `"}
]}`
}

func TestParseAndAuthenticate(t *testing.T) {
	d, err := access.ParsePrincipals([]byte(testFile()), knownOffice)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token string
		want  access.Principal
		err   error
	}{
		{tokRossi, access.Principal{Name: "mrossi", Role: access.RoleOperator, Offices: []string{"BO01", "BO02"}}, nil},
		{tokBianchi, access.Principal{Name: "lbianchi", Role: access.RoleAuditor}, nil},
		{tokVerdi, access.Principal{Name: "gverdi", Role: access.RoleAnalyst}, nil},
		{"", access.Principal{}, access.ErrUnauthenticated},
		{"pct_nobody", access.Principal{}, access.ErrUnauthenticated},
		{tokRossi + " ", access.Principal{}, access.ErrUnauthenticated},
		{strings.ToUpper(tokRossi), access.Principal{}, access.ErrUnauthenticated},
		// The hash itself is not a token.
		{access.HashToken(tokRossi), access.Principal{}, access.ErrUnauthenticated},
	}
	for _, tt := range tests {
		got, err := d.Authenticate(tt.token)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("Authenticate(%q) error = %v, want %v", tt.token, err, tt.err)
		}
		if got.Name != tt.want.Name || got.Role != tt.want.Role || !slices.Equal(got.Offices, tt.want.Offices) {
			t.Errorf("Authenticate(%q) = %+v, want %+v", tt.token, got, tt.want)
		}
	}

	// A caller editing what it got back must not widen anyone's scope.
	p, err := d.Authenticate(tokRossi)
	if err != nil {
		t.Fatal(err)
	}
	p.Offices[0] = "RN03"
	if again, _ := d.Authenticate(tokRossi); again.Offices[0] != "BO01" {
		t.Errorf("directory changed through a returned principal: %v", again.Offices)
	}

	names := []string{}
	for _, p := range d.Principals() {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"mrossi", "lbianchi", "gverdi"}) {
		t.Errorf("Principals() names = %v", names)
	}
}

func TestAuthenticateNilDirectory(t *testing.T) {
	var d *access.Directory
	if _, err := d.Authenticate(tokRossi); !errors.Is(err, access.ErrUnauthenticated) {
		t.Errorf("nil directory: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	h1, h2 := access.HashToken("a"), access.HashToken("b")
	entry := func(fields string) string { return `{"principals": [` + fields + `]}` }
	tests := []struct {
		name, file, wantErr string
	}{
		{"not json", `principals`, "invalid character"},
		{"empty", ``, "EOF"},
		{"unknown top-level field", `{"principals": [], "version": 1}`, `unknown field "version"`},
		{"unknown entry field", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1 + `", "token": "x"}`), `unknown field "token"`},
		{"wrong type", entry(`{"name": "a", "role": "admin", "offices": "BO01", "token_sha256": "` + h1 + `"}`), "cannot unmarshal"},
		{"trailing data", `{"principals": [{"name": "a", "role": "admin", "token_sha256": "` + h1 + `"}]} {}`, "data after"},
		{"no principals", `{"principals": []}`, "no principals"},
		{"missing principals", `{}`, "no principals"},
		{"missing name", entry(`{"role": "admin", "token_sha256": "` + h1 + `"}`), "missing name"},
		{"blank-padded name", entry(`{"name": " a", "role": "admin", "token_sha256": "` + h1 + `"}`), "blanks or control"},
		{"control char in name", entry(`{"name": "a\nb", "role": "admin", "token_sha256": "` + h1 + `"}`), "blanks or control"},
		{"unknown role", entry(`{"name": "a", "role": "root", "token_sha256": "` + h1 + `"}`), `unknown role "root"`},
		{"role case", entry(`{"name": "a", "role": "Admin", "token_sha256": "` + h1 + `"}`), `unknown role "Admin"`},
		{"missing role", entry(`{"name": "a", "token_sha256": "` + h1 + `"}`), `unknown role ""`},
		{"operator without offices", entry(`{"name": "a", "role": "operator", "token_sha256": "` + h1 + `"}`), "needs at least one office"},
		{"operator with empty offices", entry(`{"name": "a", "role": "operator", "offices": [], "token_sha256": "` + h1 + `"}`), "needs at least one office"},
		{"supervisor without offices", entry(`{"name": "a", "role": "supervisor", "offices": null, "token_sha256": "` + h1 + `"}`), "needs at least one office"},
		{"unknown office", entry(`{"name": "a", "role": "operator", "offices": ["ZZ01"], "token_sha256": "` + h1 + `"}`), `unknown office "ZZ01"`},
		{"unknown office of an auditor", entry(`{"name": "a", "role": "auditor", "offices": ["bo01"], "token_sha256": "` + h1 + `"}`), `unknown office "bo01"`},
		{"empty office", entry(`{"name": "a", "role": "operator", "offices": [""], "token_sha256": "` + h1 + `"}`), `unknown office ""`},
		{"office twice", entry(`{"name": "a", "role": "operator", "offices": ["BO01", "BO01"], "token_sha256": "` + h1 + `"}`), "listed twice"},
		{"missing hash", entry(`{"name": "a", "role": "admin"}`), "64 hex digits"},
		{"short hash", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1[:63] + `"}`), "64 hex digits"},
		{"long hash", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1 + `0"}`), "64 hex digits"},
		{"non-hex hash", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1[:63] + `g"}`), "64 hex digits"},
		{"clear token instead of hash", entry(`{"name": "a", "role": "admin", "token_sha256": "pct_secret"}`), "64 hex digits"},
		{"duplicate name", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1 + `"},
			{"name": "a", "role": "auditor", "token_sha256": "` + h2 + `"}`), `principals[1]: duplicate name "a"`},
		{"duplicate hash", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1 + `"},
			{"name": "b", "role": "auditor", "token_sha256": "` + h1 + `"}`), `principals[1]: token_sha256 already used by "a"`},
		{"duplicate hash in other case", entry(`{"name": "a", "role": "admin", "token_sha256": "` + h1 + `"},
			{"name": "b", "role": "auditor", "token_sha256": "` + strings.ToUpper(h1) + `"}`), "already used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := access.ParsePrincipals([]byte(tt.file), knownOffice)
			if err == nil {
				t.Fatalf("accepted: %+v", d.Principals())
			}
			if !errors.Is(err, access.ErrInvalidPrincipals) {
				t.Errorf("error %v does not wrap ErrInvalidPrincipals", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to mention %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), h1) {
				t.Errorf("error %q repeats a token hash", err)
			}
		})
	}
}

func TestParseNilOfficeCheck(t *testing.T) {
	file := `{"principals": [{"name": "a", "role": "operator", "offices": ["XX01"], "token_sha256": "` + access.HashToken("a") + `"}]}`
	if _, err := access.ParsePrincipals([]byte(file), nil); err != nil {
		t.Errorf("nil validOffice: %v", err)
	}
	if _, err := access.ParsePrincipals([]byte(file), knownOffice); err == nil {
		t.Error("unknown office accepted with a registry check")
	}
}

func TestLoadPrincipals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "principals.json")
	if err := os.WriteFile(path, []byte(testFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := access.LoadPrincipals(path, knownOffice)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := d.Authenticate(tokVerdi); err != nil || p.Name != "gverdi" {
		t.Errorf("Authenticate after load = %+v, %v", p, err)
	}

	if _, err := access.LoadPrincipals(filepath.Join(dir, "missing.json"), knownOffice); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"principals": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = access.LoadPrincipals(bad, knownOffice)
	if !errors.Is(err, access.ErrInvalidPrincipals) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v, want ErrInvalidPrincipals naming the path", err)
	}
}

func TestNewToken(t *testing.T) {
	a, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := access.NewToken()
	if a == b {
		t.Error("two tokens are equal")
	}
	if !strings.HasPrefix(a, "pct_") || len(a) != len("pct_")+64 {
		t.Errorf("token %q: want pct_ and 64 hex digits", a)
	}
	// Known SHA-256 of "abc", so the stored form matches what
	// `printf %s TOKEN | sha256sum` gives an administrator.
	if got := access.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}
