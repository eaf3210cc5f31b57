package access_test

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/percorso/percorso/domain/access"
)

var (
	allRoles = []access.Role{access.RoleOperator, access.RoleSupervisor, access.RoleAuditor, access.RoleAnalyst, access.RoleAdmin}
	allActs  = []access.Action{access.ActCommand, access.ActErase, access.ActReadPath, access.ActReadHistory,
		access.ActReport, access.ActDeadlines, access.ActAdmin, access.ActCatalogue}
)

type decision struct {
	line    int
	p       access.Principal
	act     access.Action
	office  string
	allowed bool
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func readPolicy(t *testing.T) []decision {
	t.Helper()
	f, err := os.Open("testdata/policy.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []decision
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 5 || (fs[4] != "allow" && fs[4] != "deny") {
			t.Fatalf("policy.txt:%d: want role offices action office allow|deny, got %q", n, line)
		}
		var offices []string
		if o := dash(fs[1]); o != "" {
			offices = strings.Split(o, ",")
		}
		out = append(out, decision{
			line:    n,
			p:       access.Principal{Name: "t", Role: access.Role(fs[0]), Offices: offices},
			act:     access.Action(fs[2]),
			office:  dash(fs[3]),
			allowed: fs[4] == "allow",
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPolicy(t *testing.T) {
	for _, d := range readPolicy(t) {
		err := d.p.Authorize(d.act, d.office)
		switch {
		case d.allowed && err != nil:
			t.Errorf("policy.txt:%d: %s %v %s %q: want allowed, got %v", d.line, d.p.Role, d.p.Offices, d.act, d.office, err)
		case !d.allowed && err == nil:
			t.Errorf("policy.txt:%d: %s %v %s %q: want forbidden, got allowed", d.line, d.p.Role, d.p.Offices, d.act, d.office)
		case !d.allowed && !errors.Is(err, access.ErrForbidden):
			t.Errorf("policy.txt:%d: error %v does not wrap ErrForbidden", d.line, err)
		}
	}
}

// TestPolicyComplete keeps the table honest: a new role or action must come
// with its decisions for an own office, another office and region-wide.
func TestPolicyComplete(t *testing.T) {
	type key struct {
		role   access.Role
		act    access.Action
		office string
	}
	seen := map[key]bool{}
	for _, d := range readPolicy(t) {
		base := d.p.Role == access.RoleOperator || d.p.Role == access.RoleSupervisor
		if (base && slices.Equal(d.p.Offices, []string{"BO01"})) || (!base && d.p.Offices == nil) {
			seen[key{d.p.Role, d.act, d.office}] = true
		}
	}
	for _, r := range allRoles {
		for _, a := range allActs {
			for _, o := range []string{"BO01", "MO01", ""} {
				if !seen[key{r, a, o}] {
					t.Errorf("policy.txt has no decision for %s %s office %q", r, a, o)
				}
			}
		}
	}
}

func TestRoleTraits(t *testing.T) {
	tests := []struct {
		p                  access.Principal
		personal, suppress bool
		audited            bool
		scope              []string
	}{
		{access.Principal{Role: access.RoleOperator, Offices: []string{"BO01"}}, true, false, false, []string{"BO01"}},
		{access.Principal{Role: access.RoleSupervisor, Offices: []string{"BO01", "BO02"}}, true, false, false, []string{"BO01", "BO02"}},
		{access.Principal{Role: access.RoleAuditor}, true, false, true, nil},
		{access.Principal{Role: access.RoleAuditor, Offices: []string{"MO01"}}, true, false, true, []string{"MO01"}},
		{access.Principal{Role: access.RoleAnalyst}, false, true, false, nil},
		{access.Principal{Role: access.RoleAdmin}, true, false, false, nil},
		{access.Principal{Role: access.RoleOperator}, true, false, false, []string{}},
		{access.Principal{Role: "clerk"}, false, true, false, []string{}},
	}
	for _, tt := range tests {
		p := tt.p
		if got := p.SeesPersonalData(); got != tt.personal {
			t.Errorf("%s %v: SeesPersonalData = %v, want %v", p.Role, p.Offices, got, tt.personal)
		}
		if got := p.SuppressSmallCells(); got != tt.suppress {
			t.Errorf("%s %v: SuppressSmallCells = %v, want %v", p.Role, p.Offices, got, tt.suppress)
		}
		if got := p.ReadsAudited(); got != tt.audited {
			t.Errorf("%s %v: ReadsAudited = %v, want %v", p.Role, p.Offices, got, tt.audited)
		}
		got := p.OfficeScope()
		if (got == nil) != (tt.scope == nil) || !slices.Equal(got, tt.scope) {
			t.Errorf("%s %v: OfficeScope = %#v, want %#v", p.Role, p.Offices, got, tt.scope)
		}
		if len(got) > 0 {
			got[0] = "XX99"
			if p.Offices[0] == "XX99" {
				t.Errorf("%s: OfficeScope shares the principal's slice", p.Role)
			}
		}
	}
}

func TestValid(t *testing.T) {
	for _, r := range allRoles {
		if !r.Valid() {
			t.Errorf("%s.Valid() = false", r)
		}
	}
	for _, a := range allActs {
		if !a.Valid() {
			t.Errorf("%s.Valid() = false", a)
		}
	}
	if access.Role("Admin").Valid() || access.Role("").Valid() {
		t.Error("roles are case-sensitive and non-empty")
	}
	if access.Action("").Valid() {
		t.Error("empty action is valid")
	}
}
