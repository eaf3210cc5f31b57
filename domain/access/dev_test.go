package access_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/access"
)

func TestGenerateDev(t *testing.T) {
	file, tokens, err := access.GenerateDev([]string{"BO01", "MO01"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if strings.Contains(string(file), tok.Token) {
			t.Fatalf("file contains the clear token of %s", tok.Name)
		}
	}
	d, err := access.ParsePrincipals(file, knownOffice)
	if err != nil {
		t.Fatalf("generated file does not parse: %v\n%s", err, file)
	}
	want := []struct {
		name    string
		role    access.Role
		offices []string
	}{
		{"dev-operator", access.RoleOperator, []string{"BO01"}},
		{"dev-supervisor", access.RoleSupervisor, []string{"BO01"}},
		{"dev-auditor", access.RoleAuditor, nil},
		{"dev-analyst", access.RoleAnalyst, nil},
		{"dev-admin", access.RoleAdmin, nil},
	}
	if len(tokens) != len(want) {
		t.Fatalf("got %d tokens, want %d", len(tokens), len(want))
	}
	for i, w := range want {
		tok := tokens[i]
		if tok.Name != w.name || tok.Role != w.role {
			t.Errorf("tokens[%d] = %s/%s, want %s/%s", i, tok.Name, tok.Role, w.name, w.role)
		}
		if !strings.HasPrefix(tok.Token, "pct_") || len(tok.Token) != 68 {
			t.Errorf("%s token %q: want pct_ and 64 hex digits", tok.Name, tok.Token)
		}
		p, err := d.Authenticate(tok.Token)
		if err != nil {
			t.Errorf("%s token does not authenticate: %v", w.name, err)
			continue
		}
		if p.Name != w.name || p.Role != w.role || !slices.Equal(p.Offices, w.offices) {
			t.Errorf("%s token authenticates as %+v, want %s %s %v", w.name, p, w.name, w.role, w.offices)
		}
	}

	_, again, err := access.GenerateDev([]string{"BO01"})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Token == tokens[0].Token {
		t.Error("two runs produced the same token")
	}
	if _, err := d.Authenticate(again[0].Token); err == nil {
		t.Error("another run's token authenticates against this file")
	}
}

func TestGenerateDevNeedsOffice(t *testing.T) {
	for _, offices := range [][]string{nil, {}, {""}} {
		if _, _, err := access.GenerateDev(offices); err == nil {
			t.Errorf("GenerateDev(%q) succeeded", offices)
		}
	}
}
