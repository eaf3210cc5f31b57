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
