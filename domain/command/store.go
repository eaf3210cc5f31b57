// Package command holds percorso's use cases: load -> decide -> append,
// re-decided on fresh state when a concurrent writer got there first, and
// idempotent by command id. It declares the ports it needs (Store,
// Idempotency, Vault); eventstore implements them.
package command

import (
	"context"
	"errors"

	"github.com/percorso/percorso/domain/workerpath"
)

// ErrConflict is returned by Store.Append when an expectation did not hold:
// someone else appended to one of the paths (or the worker index) first.
var ErrConflict = errors.New("command: concurrent append")

// Recorded is an event as stored, with what the command layer needs to know
// about it.
type Recorded struct {
	Seq       uint64
	CommandID string
	Event     workerpath.Event
}

// History is a path's events in order. Version is the stream sequence of its
// last event (0: the path does not exist).
//
// A store may start a long path from a snapshot: Base is then the state of
// the path before Events, and BaseCommands the commands (id -> sequence of
// their last event) folded into it that a retry could still be asking about.
type History struct {
	PathID       string
	Events       []Recorded
	Version      uint64
	Base         *workerpath.Path
	BaseCommands map[string]uint64
}

// State rebuilds the path's state from its base and events.
func (h *History) State() *workerpath.Path {
	p := &workerpath.Path{}
	if h.Base != nil {
		p = h.Base.Clone()
	}
	for _, r := range h.Events {
		p.Apply(r.Event)
	}
	return p
}

// Write appends events to one path, if it is still at Expected.
type Write struct {
	PathID   string
	Expected uint64
	Events   []workerpath.Event
}

// IndexEntry moves the per-worker index along, if it is still at Expected.
type IndexEntry struct {
	WorkerRef string
	Expected  uint64
	PathID    string
	Status    string // IndexOpen, IndexClosed or IndexErased
}

// Index statuses.
const (
	IndexOpen   = "open"
	IndexClosed = "closed"
	IndexErased = "erased"
)

// WorkerIndex is what the index knows of one worker.
type WorkerIndex struct {
	Seq      uint64   // sequence of the last entry, 0 if none
	OpenPath string   // the open path, if any
	Paths    []string // every path of the worker, oldest first
	Erased   bool
}

// Meta travels with every appended event.
type Meta struct {
	CommandID     string
	Actor         string
	CorrelationID string
}

// Store is the event store as the use cases need it.
type Store interface {
	// Load returns a path's history; an unknown path has Version 0. With
	// fresh, any cached copy is bypassed.
	Load(ctx context.Context, pathID string, fresh bool) (*History, error)
	// Append writes all or nothing. Event i of the whole call has id
	// EventID(meta.CommandID, i). It returns each path's new version.
	Append(ctx context.Context, meta Meta, writes []Write, index *IndexEntry) (map[string]uint64, error)
	// Worker reads the per-worker index.
	Worker(ctx context.Context, workerRef string) (WorkerIndex, error)
}

// Idempotency remembers each keyed command's request digest and result far
// beyond the stream's deduplication window.
type Idempotency interface {
	Get(ctx context.Context, commandID string) (*Record, error) // nil, nil when unknown
	Put(ctx context.Context, commandID string, rec Record) error
}

// Record is a remembered command.
type Record struct {
	Digest string `json:"digest"`
	Result Result `json:"result"`
}

// Vault turns tax codes into pseudonyms and destroys a worker's key.
type Vault interface {
	Pseudonym(taxCode string) string
	Erase(ctx context.Context, workerRef string) error
}
