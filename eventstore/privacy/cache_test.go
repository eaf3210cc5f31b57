package privacy

import (
	"bytes"
	"testing"
	"time"
)

func TestKeyCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	k := func(b byte) []byte { return bytes.Repeat([]byte{b}, DataKeySize) }

	type step struct {
		op      string // put, erase, get, tick
		ref     string
		key     []byte
		tick    time.Duration
		wantHit bool
		wantErs bool
		wantKey []byte
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{"hit after put", 2, []step{
			{op: "put", ref: "a", key: k(1)},
			{op: "get", ref: "a", wantHit: true, wantKey: k(1)},
		}},
		{"least recently used goes first", 2, []step{
			{op: "put", ref: "a", key: k(1)},
			{op: "put", ref: "b", key: k(2)},
			{op: "get", ref: "a", wantHit: true, wantKey: k(1)},
			{op: "put", ref: "c", key: k(3)},
			{op: "get", ref: "b"},
			{op: "get", ref: "a", wantHit: true, wantKey: k(1)},
			{op: "get", ref: "c", wantHit: true, wantKey: k(3)},
		}},
		{"live keys expire", 2, []step{
			{op: "put", ref: "a", key: k(1)},
			{op: "tick", tick: time.Minute - time.Nanosecond},
			{op: "get", ref: "a", wantHit: true, wantKey: k(1)},
			{op: "tick", tick: time.Nanosecond},
			{op: "get", ref: "a"},
		}},
		{"erasure replaces a key and never expires", 2, []step{
			{op: "put", ref: "a", key: k(1)},
			{op: "erase", ref: "a"},
			{op: "tick", tick: 1000 * time.Hour},
			{op: "get", ref: "a", wantHit: true, wantErs: true},
		}},
		{"a late put cannot revive an erased key", 2, []step{
			{op: "erase", ref: "a"},
			{op: "put", ref: "a", key: k(1)},
			{op: "get", ref: "a", wantHit: true, wantErs: true},
		}},
		{"size zero disables", 0, []step{
			{op: "put", ref: "a", key: k(1)},
			{op: "erase", ref: "b"},
			{op: "get", ref: "a"},
			{op: "get", ref: "b"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newKeyCache(tt.max, time.Minute, clock)
			for i, st := range tt.steps {
				switch st.op {
				case "put":
					c.putKey(st.ref, st.key)
				case "erase":
					c.putErased(st.ref)
				case "tick":
					now = now.Add(st.tick)
				case "get":
					key, erased, hit := c.get(st.ref)
					if hit != st.wantHit || erased != st.wantErs || !bytes.Equal(key, st.wantKey) {
						t.Fatalf("step %d get(%s) = %x, erased=%v, hit=%v; want %x, %v, %v",
							i, st.ref, key, erased, hit, st.wantKey, st.wantErs, st.wantHit)
					}
				}
				if tt.max > 0 && c.len() > tt.max {
					t.Fatalf("step %d: cache holds %d entries, max %d", i, c.len(), tt.max)
				}
			}
		})
	}
}

func TestKeyCacheHandsOutCopies(t *testing.T) {
	c := newKeyCache(4, time.Minute, time.Now)
	key := bytes.Repeat([]byte{7}, DataKeySize)
	c.putKey("a", key)
	clear(key) // the caller wipes its copy
	got, _, _ := c.get("a")
	clear(got)
	again, _, _ := c.get("a")
	if !bytes.Equal(again, bytes.Repeat([]byte{7}, DataKeySize)) {
		t.Fatal("cache shares memory with its callers")
	}
}
