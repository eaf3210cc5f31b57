package office

import (
	"encoding/json"
	"regexp"
	"testing"
)

func TestRegistrySize(t *testing.T) {
	if n := len(All()); n != 40 {
		t.Fatalf("len(All()) = %d, want 40", n)
	}
}

func TestCountsPerProvince(t *testing.T) {
	want := map[string]int{"PC": 3, "PR": 4, "RE": 6, "MO": 6, "BO": 7, "FE": 5, "RA": 3, "FC": 3, "RN": 3}
	got := map[string]int{}
	for _, o := range All() {
		got[o.Province]++
	}
	if len(got) != len(want) {
		t.Errorf("%d provinces have offices, want %d", len(got), len(want))
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("province %s has %d offices, want %d", p, got[p], n)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []Office{
		{"PC01", "Piacenza", "PC", "Piacenza"},
		{"PC03", "Fiorenzuola d'Arda", "PC", "Piacenza"},
		{"PR04", "Borgo Val di Taro", "PR", "Parma"},
		{"RE06", "Castelnovo ne' Monti", "RE", "Reggio Emilia"},
		{"MO01", "Modena", "MO", "Modena"},
		{"MO02", "Carpi", "MO", "Modena"},
		{"BO01", "Bologna", "BO", "Bologna"},
		{"BO02", "Imola", "BO", "Bologna"},
		{"BO07", "Porretta Terme", "BO", "Bologna"},
		{"FE05", "Copparo", "FE", "Ferrara"},
		{"RA03", "Faenza", "RA", "Ravenna"},
		{"FC01", "Forlì", "FC", "Forlì-Cesena"},
		{"RN03", "Novafeltria", "RN", "Rimini"},
	}
	for _, want := range tests {
		got, ok := Lookup(want.Code)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", want.Code, got, ok, want)
		}
	}
}

func TestLookupRefusesUnknownCodes(t *testing.T) {
	for _, code := range []string{"", "bo01", "Bo01", " BO01", "BO01 ", "BO1", "BO001", "BO00", "BO08", "PC04", "RN04", "XX01", "Bologna"} {
		if o, ok := Lookup(code); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", code, o)
		}
	}
}

func TestCodesAreWellFormedAndUnique(t *testing.T) {
	names := map[string]string{}
	for _, p := range Provinces() {
		names[p.Code] = p.Name
	}
	shape := regexp.MustCompile(`^[A-Z]{2}[0-9]{2}$`)
	seen := map[string]bool{}
	for _, o := range All() {
		if !shape.MatchString(o.Code) || o.Code[:2] != o.Province {
			t.Errorf("office %+v: code does not match its province", o)
		}
		if seen[o.Code] {
			t.Errorf("duplicate code %s", o.Code)
		}
		seen[o.Code] = true
		if names[o.Province] != o.ProvinceName || o.ProvinceName == "" {
			t.Errorf("office %s: province name %q, registry says %q", o.Code, o.ProvinceName, names[o.Province])
		}
		if o.Name == "" {
			t.Errorf("office %s has no name", o.Code)
		}
	}
}

func TestRegistryOrder(t *testing.T) {
	all := All()
	if all[0].Code != "PC01" || all[len(all)-1].Code != "RN03" {
		t.Errorf("registry runs %s..%s, want PC01..RN03", all[0].Code, all[len(all)-1].Code)
	}
	want := []Province{
		{"PC", "Piacenza"}, {"PR", "Parma"}, {"RE", "Reggio Emilia"}, {"MO", "Modena"}, {"BO", "Bologna"},
		{"FE", "Ferrara"}, {"RA", "Ravenna"}, {"FC", "Forlì-Cesena"}, {"RN", "Rimini"},
	}
	got := Provinces()
	if len(got) != len(want) {
		t.Fatalf("Provinces() has %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Provinces()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAllAndProvincesReturnCopies(t *testing.T) {
	a := All()
	a[0].Name = "changed"
	if o, _ := Lookup("PC01"); o.Name != "Piacenza" || All()[0].Name != "Piacenza" {
		t.Error("changing the slice from All() changed the registry")
	}
	p := Provinces()
	p[0].Name = "changed"
	if Provinces()[0].Name != "Piacenza" {
		t.Error("changing the slice from Provinces() changed the registry")
	}
}

// The JSON shape is served by the catalogue endpoint; clients depend on it.
func TestJSON(t *testing.T) {
	o, _ := Lookup("FC01")
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"FC01","name":"Forlì","province":"FC","province_name":"Forlì-Cesena"}`
	if string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
}
