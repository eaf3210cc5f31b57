package access_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/access"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// TestLimiterScript runs failure scripts against a limiter of 3 failures a
// minute: each step is an offset from t0, a call and the expected answer.
func TestLimiterScript(t *testing.T) {
	type step struct {
		at   time.Duration
		call string // "fail": Allow, "check": Blocked
		key  string
		want bool // Allow: allowed; Blocked: blocked
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"budget then refusal", []step{
			{0, "check", "a", false},
			{0, "fail", "a", true},
			{time.Second, "fail", "a", true},
			{2 * time.Second, "fail", "a", true},
			{2 * time.Second, "check", "a", true},
			{3 * time.Second, "fail", "a", false},
			{4 * time.Second, "fail", "a", false},
		}},
		{"keys are independent", []step{
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", false},
			{0, "check", "b", false},
			{0, "fail", "b", true},
		}},
		{"refills a failure every 20s", []step{
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{19 * time.Second, "check", "a", true},
			{19 * time.Second, "fail", "a", false},
			{20 * time.Second, "check", "a", false},
			{20 * time.Second, "fail", "a", true},
			{21 * time.Second, "fail", "a", false},
		}},
		{"refused attempts do not extend the block", []step{
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{10 * time.Second, "fail", "a", false},
			{15 * time.Second, "fail", "a", false},
			{20 * time.Second, "fail", "a", true},
		}},
		{"a quiet minute restores the whole budget", []step{
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", true},
			{0, "fail", "a", false},
			{time.Minute, "fail", "a", true},
			{time.Minute, "fail", "a", true},
			{time.Minute, "fail", "a", true},
			{time.Minute, "fail", "a", false},
		}},
		{"a blocked key stays blocked across a rotation", []step{
			{0, "fail", "x", true},
			{50 * time.Second, "fail", "a", true},
			{50 * time.Second, "fail", "a", true},
			{50 * time.Second, "fail", "a", true},
			{61 * time.Second, "check", "x", false}, // rotates
			{61 * time.Second, "check", "a", true},
			{2*time.Minute + 5*time.Second, "check", "a", false},
		}},
		{"clock going backwards refills nothing", []step{
			{time.Minute, "fail", "a", true},
			{time.Minute, "fail", "a", true},
			{time.Minute, "fail", "a", true},
			{0, "fail", "a", false},
			{0, "check", "a", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := access.NewLimiter(3)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var got bool
				if s.call == "fail" {
					got = l.Allow(s.key, now)
				} else {
					got = l.Blocked(s.key, now)
				}
				if got != s.want {
					t.Fatalf("step %d (%s %s at +%v) = %v, want %v", i, s.call, s.key, s.at, got, s.want)
				}
			}
		})
	}
}

func TestLimiterBelowOne(t *testing.T) {
	l := access.NewLimiter(0)
	if !l.Allow("a", t0) || l.Allow("a", t0) {
		t.Error("perMinute 0 should behave as 1")
	}
}

func TestLimiterBounded(t *testing.T) {
	l := access.NewLimiter(2, access.WithMaxKeys(100))
	for i := range 10_000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0.Add(time.Duration(i)*time.Millisecond))
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d keys the limiter holds %d", i+1, n)
		}
	}
	// Keys that stopped failing are dropped once they would be full again.
	if n := l.Len(); n == 0 {
		t.Fatal("limiter holds nothing right after failures")
	}
	l.Blocked("probe", t0.Add(time.Hour))
	if n := l.Len(); n != 0 {
		t.Errorf("an hour later the limiter still holds %d keys", n)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := access.NewLimiter(50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if l.Allow("a", t0) {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d failures allowed at one instant, want 50", allowed)
	}
}
