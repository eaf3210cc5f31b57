package eventstore_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/eventstore"
)

const pathID = "5f2b8c1a-3d4e-4f60-9a7b-8c9d0e1f2a3b"

// chain builds a path of n events as the stores write them, interleaved
// with other paths' events (sequences step by 3) and with every third event
// in the same batch as its predecessor.
func chain(n int) []*eventstore.Envelope {
	var out []*eventstore.Envelope
	var prevHash string
	var prevSeq uint64
	seq := uint64(5)
	for i := range n {
		e := &eventstore.Envelope{
			Seq: seq, ID: fmt.Sprintf("00000000-0000-5000-8000-%012d", i), Type: "SessionDelivered", SchemaVersion: 1,
			PathID: pathID, Time: time.Date(2025, 3, 10, 9, 0, i, 0, time.UTC), Actor: "op.bianchi",
			CommandID: fmt.Sprintf("c-%d", i/2), CorrelationID: "corr", PrevSeq: prevSeq, PrevHash: prevHash,
			Data: fmt.Appendf(nil, `{"path_id":%q,"service":3,"actual_minutes":%d}`, pathID, 60+i),
		}
		if i%3 == 2 {
			e.Seq, e.PrevInBatch = prevSeq+1, true
		}
		e.Hash = e.ComputeHash()
		out = append(out, e)
		prevHash, prevSeq = e.Hash, e.Seq
		seq = e.Seq + 3
	}
	return out
}

func TestVerifyIntactChain(t *testing.T) {
	for _, n := range []int{0, 1, 2, 50} {
		envs := chain(n)
		r := eventstore.Verify(pathID, envs)
		if !r.OK || r.Events != n || len(r.Problems) != 0 || r.PathID != pathID {
			t.Fatalf("%d events: %+v", n, r)
		}
		if n > 0 && r.HeadHash != envs[n-1].Hash {
			t.Fatalf("%d events: head hash %s, want the last event's", n, r.HeadHash)
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(envs []*eventstore.Envelope) []*eventstore.Envelope
		// at: the sequences (of the original chain's events, by index) the
		// problems must be reported at, in order.
		at     []int
		reason string
	}{
		{"data altered", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			e[4].Data = []byte(strings.Replace(string(e[4].Data), `"actual_minutes":64`, `"actual_minutes":640`, 1))
			return e
		}, []int{4}, "hash mismatch"},
		{"actor altered", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			e[7].Actor = "op.rossi"
			return e
		}, []int{7}, "hash mismatch"},
		{"data altered and rehashed", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			e[4].Data = []byte(`{}`)
			e[4].Hash = e[4].ComputeHash()
			return e
		}, []int{5}, "previous-hash link broken"},
		{"event missing from the middle", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			return slices.Delete(e, 4, 5)
		}, []int{5, 5}, ""},
		{"first event missing", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			return e[1:]
		}, []int{1, 1}, ""},
		{"last event missing (undetectable without the head)", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			return e[:len(e)-1]
		}, nil, ""},
		{"two events swapped", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			e[3], e[4] = e[4], e[3]
			return e
		}, []int{4, 4, 3, 3, 5, 5}, ""},
		{"an event of another path", func(e []*eventstore.Envelope) []*eventstore.Envelope {
			e[6].PathID = "5f2b8c1a-3d4e-4f60-9a7b-000000000000"
			return e
		}, []int{6, 6}, "found in path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := chain(10)
			seqOf := map[int]uint64{}
			for i, e := range orig {
				seqOf[i] = e.Seq
			}
			envs := c.tamper(slices.Clone(orig))
			r := eventstore.Verify(pathID, envs)
			if r.OK != (len(c.at) == 0) {
				t.Fatalf("OK is %v with problems %+v", r.OK, r.Problems)
			}
			var got, want []uint64
			for _, p := range r.Problems {
				got = append(got, p.Seq)
			}
			for _, i := range c.at {
				want = append(want, seqOf[i])
			}
			if !slices.Equal(got, want) {
				t.Fatalf("problems at %v, want at %v: %+v", got, want, r.Problems)
			}
			if c.reason != "" && !strings.Contains(r.Problems[0].Reason, c.reason) {
				t.Fatalf("reason %q, want it to say %q", r.Problems[0].Reason, c.reason)
			}
			for _, p := range r.Problems {
				if p.EventID == "" {
					t.Fatalf("problem %+v does not name the event", p)
				}
			}
		})
	}
}

// stored is one message of a stream: an event, or (env nil) a
// worker-index entry.
type stored struct {
	seq uint64
	env *eventstore.Envelope
}

// streamOf lays out n messages from sequence 1: events of two paths in
// turn, every third message a worker-index entry.
func streamOf(n int) []stored {
	paths := []string{pathID, "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}
	heads := map[string]*eventstore.Envelope{}
	var out []stored
	for seq := uint64(1); len(out) < n; seq++ {
		if seq%3 == 0 {
			out = append(out, stored{seq: seq})
			continue
		}
		p := paths[seq%2]
		e := &eventstore.Envelope{Seq: seq, ID: fmt.Sprintf("00000000-0000-5000-8000-%012d", seq), Type: "SessionDelivered",
			SchemaVersion: 1, PathID: p, Time: time.Date(2025, 3, 10, 9, 0, int(seq), 0, time.UTC), Actor: "op.bianchi",
			CommandID: fmt.Sprintf("c-%d", seq), Data: fmt.Appendf(nil, `{"path_id":%q,"service":3}`, p)}
		if h := heads[p]; h != nil {
			e.PrevSeq, e.PrevHash = h.Seq, h.Hash
		}
		e.Hash = e.ComputeHash()
		heads[p] = e
		out = append(out, stored{seq: seq, env: e})
	}
	return out
}

func TestStreamVerifier(t *testing.T) {
	type want struct {
		seq    uint64
		path   bool // a path's problem, not the stream's
		reason string
	}
	cases := []struct {
		name   string
		tamper func(msgs []stored) []stored
		want   []want
	}{
		{"intact", func(m []stored) []stored { return m }, nil},
		{"index entry missing", func(m []stored) []stored {
			return slices.Delete(m, 5, 6) // seq 6
		}, []want{{7, false, "jumps from 5 to 7"}}},
		{"event missing", func(m []stored) []stored {
			return slices.Delete(m, 6, 7) // seq 7, of a path that goes on at 11
		}, []want{{8, false, "jumps from 6 to 8"}, {11, true, "previous-hash link"}, {11, true, "back-pointer"}}},
		{"data altered", func(m []stored) []stored {
			m[9].env.Data = []byte(`{}`) // seq 10
			return m
		}, []want{{10, true, "hash mismatch"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := c.tamper(streamOf(30))
			v := eventstore.NewStreamVerifier(1)
			events := 0
			for _, m := range msgs {
				v.Seq(m.seq)
				if m.env != nil {
					v.Event(m.env)
					events++
				}
			}
			if v.Events != events || v.Paths != 2 || v.Last() != msgs[len(msgs)-1].seq {
				t.Fatalf("%d events on %d paths up to %d, want %d on 2 up to %d", v.Events, v.Paths, v.Last(), events, msgs[len(msgs)-1].seq)
			}
			if len(v.Problems) != len(c.want) {
				t.Fatalf("problems %+v, want %d", v.Problems, len(c.want))
			}
			for i, w := range c.want {
				p := v.Problems[i]
				if p.Seq != w.seq || (p.PathID != "") != w.path || !strings.Contains(p.Reason, w.reason) {
					t.Errorf("problem %d is %+v, want seq %d, path %v, reason with %q", i, p, w.seq, w.path, w.reason)
				}
			}
		})
	}
}
