// Package query declares the read side as the edges see it: the views the
// APIs return and the port the read models implement. Views are eventually
// consistent: each carries the version (stream sequence) it reflects.
package query

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound: no such row.
var ErrNotFound = errors.New("query: not found")

// Reader is the read side the edges need.
type Reader interface {
	Path(ctx context.Context, pathID string) (*PathView, error)
	Ping(ctx context.Context) error
}

// Worker is the personal part of a path view; nil fields are unknown or erased.
type Worker struct {
	TaxCode          *string `json:"tax_code"`
	GivenName        *string `json:"given_name"`
	FamilyName       *string `json:"family_name"`
	BirthDate        *string `json:"birth_date,omitempty"`
	Disability       *bool   `json:"disability"`
	MediatorLanguage *string `json:"mediator_language,omitempty"`
	Erased           bool    `json:"erased"`
}

// Support of a path view.
type Support struct {
	Kind          string  `json:"kind"`
	AgreementCode *string `json:"agreement_code,omitempty"`
	From          string  `json:"from"`
	To            *string `json:"to,omitempty"`
}

// Pact of a path view.
type Pact struct {
	SignedAt time.Time `json:"signed_at"`
	DIDOn    string    `json:"did_on"`
}

// ServiceTally counts one service on a path.
type ServiceTally struct {
	Delivered       int `json:"delivered"`
	CreditedMinutes int `json:"credited_minutes"`
}

// PathView is the current state of a path as the API shows it.
type PathView struct {
	PathID               string                  `json:"path_id"`
	WorkerRef            string                  `json:"worker_ref"`
	Worker               *Worker                 `json:"worker,omitempty"`
	Category             string                  `json:"category"`
	Support              Support                 `json:"support"`
	Office               string                  `json:"office"`
	Province             string                  `json:"province"`
	Status               string                  `json:"status"`
	TakenAt              time.Time               `json:"taken_at"`
	ClosedAt             *time.Time              `json:"closed_at,omitempty"`
	CloseReason          *string                 `json:"close_reason,omitempty"`
	Pact                 *Pact                   `json:"pact"`
	Services             map[string]ServiceTally `json:"services"`
	CreditedMinutesTotal int                     `json:"credited_minutes_total"`
	UnjustifiedNoShows   int                     `json:"unjustified_no_shows"`
	JustifiedAbsences    int                     `json:"justified_absences"`
	Refusals             int                     `json:"refusals"`
	VerifiedAt           *time.Time              `json:"verified_at,omitempty"`
	VerificationOutcome  *string                 `json:"verification_outcome,omitempty"`
	Version              uint64                  `json:"version"`
}
