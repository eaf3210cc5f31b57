package workerpath_test

import (
	"testing"

	wp "github.com/percorso/percorso/domain/workerpath"
)

// The catalogue of Allegato 3: standard minutes are what the region and the
// European Social Fund pay for, so each number is pinned here.
var wantCatalogue = []struct {
	code     int
	minutes  int
	repeat   wp.Repeat
	max      int
	group    bool
	disabled int // credited for a worker with a disability: standard x 1.2
}{
	{1, 30, wp.Repeatable, 0, false, 36},
	{2, 30, wp.OncePerPath, 1, false, 36},
	{3, 60, wp.Repeatable, 0, false, 72},
	{4, 240, wp.Repeatable, 0, true, 288},
	{5, 90, wp.AtMostThree, 3, false, 108},
	{6, 300, wp.AtMostThree, 3, true, 360},
	{7, 720, wp.OncePerTraineeship, 0, false, 864},
	{8, 1200, wp.Repeatable, 0, false, 1440},
	{9, 60, wp.Repeatable, 0, false, 72},
	{10, 300, wp.Repeatable, 0, false, 360},
	{11, 30, wp.OncePerPath, 1, false, 36},
	{12, 60, wp.Repeatable, 0, false, 72},
}

func TestCatalogue(t *testing.T) {
	all := wp.Services()
	if len(all) != 12 || len(wantCatalogue) != 12 {
		t.Fatalf("catalogue has %d services, want 12", len(all))
	}
	for i, w := range wantCatalogue {
		s := all[i]
		if s.Code != w.code {
			t.Errorf("service %d has code %d: the catalogue must be in code order", i+1, s.Code)
		}
		if s.StandardMinutes != w.minutes || s.Repeat != w.repeat || s.MaxDeliveries != w.max || s.Group != w.group {
			t.Errorf("service %02d = %+v, want %d min, %s, max %d, group %v", w.code, s, w.minutes, w.repeat, w.max, w.group)
		}
		if s.LabelIT == "" || s.LabelEN == "" {
			t.Errorf("service %02d has no label", w.code)
		}
		if s.Group && (s.GroupMin != 6 || s.GroupMax != 15) {
			t.Errorf("group service %02d: range %d–%d, want 6–15", w.code, s.GroupMin, s.GroupMax)
		}
		if !s.Group && (s.GroupMin != 0 || s.GroupMax != 0) {
			t.Errorf("individual service %02d has a group range", w.code)
		}
		got, ok := wp.LookupService(w.code)
		if !ok || got != s {
			t.Errorf("LookupService(%d) = %+v, %v", w.code, got, ok)
		}
		if c := wp.CreditedMinutes(s, false); c != w.minutes {
			t.Errorf("service %02d credits %d without a disability, want %d", w.code, c, w.minutes)
		}
		if c := wp.CreditedMinutes(s, true); c != w.disabled || c*10 != w.minutes*12 {
			t.Errorf("service %02d credits %d with a disability, want %d (x1.2)", w.code, c, w.disabled)
		}
	}
	for _, code := range []int{-1, 0, 13, 100} {
		if s, ok := wp.LookupService(code); ok {
			t.Errorf("LookupService(%d) = %+v", code, s)
		}
	}
	// The named codes the rules use point at the right services.
	named := map[int]int{wp.SvcAccess: 2, wp.SvcIndividual: 3, wp.SvcGroup: 4, wp.SvcCounselling: 5, wp.SvcWorkshop: 6,
		wp.SvcTraineeship: 7, wp.SvcPlacement: 8, wp.SvcMobilityList: 11, wp.SvcVerification: 12}
	for got, want := range named {
		if got != want {
			t.Errorf("named service code %d, want %d", got, want)
		}
	}
	if wp.CatalogueVersion == "" {
		t.Error("the catalogue has no version")
	}
}

// Services hands out a copy: a caller cannot change what the rules read.
func TestServicesIsACopy(t *testing.T) {
	all := wp.Services()
	all[4].MaxDeliveries = 99
	all[0].StandardMinutes = 1
	if s, _ := wp.LookupService(5); s.MaxDeliveries != 3 {
		t.Errorf("changing the copy changed service 5: %+v", s)
	}
	if s := wp.Services()[0]; s.StandardMinutes != 30 {
		t.Errorf("changing the copy changed service 1: %+v", s)
	}
}
