package query

import (
	"context"
	"encoding/json"
	"time"
)

// HistoryEvent is one event of a path as an auditor sees it.
type HistoryEvent struct {
	Seq      uint64          `json:"seq"`
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Data     json.RawMessage `json:"data"`
	Hash     string          `json:"hash"`
	PrevHash string          `json:"prev_hash"`
}

// PathState is the state a path's events produce, as of a point in time.
type PathState struct {
	Status               string                  `json:"status"`
	Category             string                  `json:"category"`
	Office               string                  `json:"office"`
	TakenAt              time.Time               `json:"taken_at"`
	PactSignedAt         *time.Time              `json:"pact_signed_at,omitempty"`
	Services             map[string]ServiceTally `json:"services"`
	CreditedMinutesTotal int                     `json:"credited_minutes_total"`
	UnjustifiedNoShows   int                     `json:"unjustified_no_shows"`
	JustifiedAbsences    int                     `json:"justified_absences"`
	Refusals             int                     `json:"refusals"`
	Erased               bool                    `json:"erased"`
	Version              uint64                  `json:"version"`
}

// History is a path's events from the stream, and with as_of the state
// they produce.
type History struct {
	PathID string         `json:"path_id"`
	Office string         `json:"-"`
	Events []HistoryEvent `json:"events"`
	State  *PathState     `json:"state,omitempty"`
}

// VerifyProblem is one broken link of a chain.
type VerifyProblem struct {
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

// Verification is the outcome of recomputing a path's chain.
type Verification struct {
	PathID   string          `json:"path_id"`
	OK       bool            `json:"ok"`
	Events   int             `json:"events"`
	HeadHash string          `json:"head_hash"`
	Problems []VerifyProblem `json:"problems,omitempty"`
	Office   string          `json:"-"`
}

// HistoryOptions choose what a history shows.
type HistoryOptions struct {
	AsOf     *time.Time
	Personal bool // decrypt personal data (else it stays sealed)
}

// Auditor reads a path's history from the event stream, not from the read
// models, and verifies its chain.
type Auditor interface {
	History(ctx context.Context, pathID string, opt HistoryOptions) (*History, error)
	Verify(ctx context.Context, pathID string) (*Verification, error)
}

// AuditRead is one recorded read by an auditor.
type AuditRead struct {
	At        time.Time `json:"at"`
	Principal string    `json:"principal"`
	Action    string    `json:"action"`
	PathID    string    `json:"path_id"`
}

// ReadLog records auditors' reads outside the event stream.
type ReadLog interface {
	RecordRead(ctx context.Context, r AuditRead) error
	Reads(ctx context.Context, principal string, limit int) ([]AuditRead, error)
}

// Poison is an event a projection could not apply.
type Poison struct {
	Projection string     `json:"projection"`
	Seq        uint64     `json:"seq"`
	Error      string     `json:"error"`
	RecordedAt time.Time  `json:"recorded_at"`
	SkippedAt  *time.Time `json:"skipped_at,omitempty"`
	SkippedBy  string     `json:"skipped_by,omitempty"`
}

// Projections is the admin's view of the projectors.
type Projections interface {
	Poisoned(ctx context.Context) ([]Poison, error)
	Skip(ctx context.Context, seq uint64, by string) error
}
