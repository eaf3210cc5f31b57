package eventstore

import "fmt"

// Problem is one thing wrong with a path's chain.
type Problem struct {
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

// Report is the outcome of verifying one path.
type Report struct {
	PathID   string    `json:"path_id"`
	OK       bool      `json:"ok"`
	Events   int       `json:"events"`
	HeadHash string    `json:"head_hash"`
	Problems []Problem `json:"problems,omitempty"`
}

// Verify recomputes a path's chain from its events in stream order: each
// event's own hash, its link to the previous event's hash, and its
// back-pointer to the previous event's sequence. An altered event fails its
// hash; a missing or reordered one breaks a link.
func Verify(pathID string, events []*Envelope) Report {
	r := Report{PathID: pathID, OK: true, Events: len(events)}
	bad := func(e *Envelope, format string, args ...any) {
		r.OK = false
		r.Problems = append(r.Problems, Problem{Seq: e.Seq, EventID: e.ID, Reason: fmt.Sprintf(format, args...)})
	}
	var prevHash string
	var prevSeq uint64
	for i, e := range events {
		if e.PathID != pathID {
			bad(e, "event of path %s found in path %s", e.PathID, pathID)
		}
		if got := e.ComputeHash(); got != e.Hash {
			bad(e, "hash mismatch: content altered (stored %.12s…, computed %.12s…)", e.Hash, got)
		}
		if e.PrevHash != prevHash {
			if i == 0 {
				bad(e, "first event links to a previous hash: earlier events are missing")
			} else {
				bad(e, "previous-hash link broken: an event is missing, reordered or altered before it")
			}
		}
		if e.PrevSeq != prevSeq {
			bad(e, "back-pointer says the previous event is at %d, found %d", e.PrevSeq, prevSeq)
		}
		prevHash, prevSeq = e.Hash, e.Seq
	}
	r.HeadHash = prevHash
	return r
}

// StreamVerifier checks a whole stream in one pass, in sequence order: no
// sequence is missing (nothing can be deleted from a no-loss stream, so a
// gap is tampering or loss), and every path's chain holds, event by event.
// It keeps only each path's head, so it scales to the whole region.
type StreamVerifier struct {
	heads    map[string]head
	last     uint64
	Events   int
	Paths    int
	Problems []PathProblem
}

type head struct {
	seq  uint64
	hash string
}

// PathProblem is a Problem of a named path ("" for the stream itself).
type PathProblem struct {
	PathID string `json:"path_id,omitempty"`
	Problem
}

// NewStreamVerifier starts a verification at the stream's first sequence.
func NewStreamVerifier(firstSeq uint64) *StreamVerifier {
	return &StreamVerifier{heads: map[string]head{}, last: firstSeq - 1}
}

// Seq notes any stored message's sequence, event or not.
func (v *StreamVerifier) Seq(seq uint64) {
	if seq != v.last+1 {
		v.Problems = append(v.Problems, PathProblem{Problem: Problem{Seq: seq,
			Reason: fmt.Sprintf("stream sequence jumps from %d to %d: messages are missing", v.last, seq)}})
	}
	v.last = seq
}

// Event checks one event against its path's head.
func (v *StreamVerifier) Event(e *Envelope) {
	v.Events++
	h, seen := v.heads[e.PathID]
	if !seen {
		v.Paths++
	}
	bad := func(format string, args ...any) {
		v.Problems = append(v.Problems, PathProblem{PathID: e.PathID, Problem: Problem{Seq: e.Seq, EventID: e.ID, Reason: fmt.Sprintf(format, args...)}})
	}
	if got := e.ComputeHash(); got != e.Hash {
		bad("hash mismatch: content altered")
	}
	if e.PrevHash != h.hash {
		bad("previous-hash link broken: an event is missing, reordered or altered before it")
	}
	if e.PrevSeq != h.seq {
		bad("back-pointer says the previous event is at %d, found %d", e.PrevSeq, h.seq)
	}
	v.heads[e.PathID] = head{seq: e.Seq, hash: e.Hash}
}

// Last is the last sequence seen.
func (v *StreamVerifier) Last() uint64 { return v.last }

// Head is a path's last hash as verified.
func (v *StreamVerifier) Head(pathID string) string { return v.heads[pathID].hash }
