// Package workerpath is a worker's path through the employment services: the
// aggregate, its events, the catalogue and every rule of the regional
// standard (Allegato 3). It is plain Go: command methods check the rules
// against the state and return new events without changing anything; Apply
// folds an event into the state and never fails.
//
// One rule spans aggregates: a worker has at most one open path. The path
// cannot see other paths, so the command layer keeps a per-worker index (a
// stream subject named by the worker's pseudonym, see domain/command) and
// appends the index entry atomically with TakenInCharge and PathClosed, under
// its own optimistic-concurrency check. Two operators opening a path for the
// same worker at once race on that subject: exactly one wins.
package workerpath

import "time"

// Status of a path.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Path is the state of one worker's path, rebuilt from its events.
type Path struct {
	ID        string
	WorkerRef string
	Worker    Person
	Category  string
	Support   Support
	Office    string
	TakenAt   time.Time
	Status    string
	ClosedAt  time.Time
	Reason    string
	Erased    bool

	Pact         *PactSigned
	Delivered    map[int]int // delivered sessions by service code
	Credited     map[int]int // credited minutes by service code
	Traineeships map[string]bool
	Unjustified  int // unjustified no-shows
	Justified    int // justified absences
	Refusals     int
	Verified     *PathVerified
	Events       int
}

// Clone returns a copy that shares nothing mutable with p (events it
// points to are never changed).
func (p *Path) Clone() *Path {
	c := *p
	c.Delivered = cloneMap(p.Delivered)
	c.Credited = cloneMap(p.Credited)
	c.Traineeships = cloneMap(p.Traineeships)
	return &c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Exists reports whether the path was taken in charge.
func (p *Path) Exists() bool { return p != nil && p.Status != "" }

// Rebuild folds a path's history into its state.
func Rebuild(history []Event) *Path {
	p := &Path{}
	for _, e := range history {
		p.Apply(e)
	}
	return p
}

// Apply folds one event into the state.
func (p *Path) Apply(e Event) {
	p.Events++
	// The maps are made on first use, not by TakenInCharge alone: a history
	// that does not start with it (a trimmed or damaged stream) must still
	// fold without a panic, as Apply never fails.
	if p.Delivered == nil {
		p.Delivered, p.Credited, p.Traineeships = map[int]int{}, map[int]int{}, map[string]bool{}
	}
	switch e := e.(type) {
	case *TakenInCharge:
		p.ID = e.PathID
		p.WorkerRef = e.WorkerRef
		p.Worker = e.Worker
		p.Category = e.Category
		p.Support = e.Support
		p.Office = e.Office
		p.TakenAt = e.TakenAt
		p.Status = StatusOpen
	case *SessionDelivered:
		p.Delivered[e.Service]++
		p.Credited[e.Service] += e.CreditedMinutes
	case *PactSigned:
		p.Pact = e
	case *TraineeshipActivated:
		p.Traineeships[e.TraineeshipID] = true
	case *PathVerified:
		p.Verified = e
	case *NoShowRecorded:
		if e.Justified {
			p.Justified++
		} else {
			p.Unjustified = e.Unjustified
		}
	case *RefusalReported:
		p.Refusals++
	case *PathClosed:
		p.Status = StatusClosed
		p.ClosedAt = e.ClosedAt
		p.Reason = e.Reason
	case *PersonalDataErased:
		p.Erased = true
		p.Worker = Person{Erased: true}
	}
}

// CreditedTotal is the sum of credited minutes over all services.
func (p *Path) CreditedTotal() int {
	n := 0
	for _, m := range p.Credited {
		n += m
	}
	return n
}
