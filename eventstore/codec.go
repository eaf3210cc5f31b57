package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/percorso/percorso/domain/workerpath"
)

// SchemaVersion is the current schema version of every event type. When an
// event's data changes shape, its version goes up and an Upcaster turns the
// stored older versions into the current one on read.
const SchemaVersion = 1

// Sealer encrypts a worker's personal data under the worker's own key
// (eventstore/privacy implements it).
type Sealer interface {
	Seal(ctx context.Context, ref string, plaintext []byte) (string, error)
	Open(ctx context.Context, ref, sealed string) ([]byte, error)
}

// ErrErased is what Sealer.Open returns once the worker's key is destroyed;
// the codec then decodes the event with the worker marked erased.
var ErrErased = errors.New("eventstore: personal data erased")

// OpenError: the personal data could not be opened for a reason other than
// erasure (the key store unreachable, or a damaged value). Readers retry it
// rather than treat the event as unreadable.
type OpenError struct{ Err error }

func (e *OpenError) Error() string { return "eventstore: opening personal data: " + e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Upcaster rewrites the data of (type, version) into version+1.
type Upcaster func(data []byte) ([]byte, error)

// Codec turns domain events into stream data and back.
type Codec struct {
	sealer    Sealer
	upcasters map[string]map[int]Upcaster
	// isErased recognises the sealer's "key destroyed" error.
	isErased func(error) bool
}

// NewCodec returns a codec sealing personal data with s. isErased reports
// whether an Open error means the key was destroyed.
func NewCodec(s Sealer, isErased func(error) bool) *Codec {
	return &Codec{sealer: s, upcasters: map[string]map[int]Upcaster{}, isErased: isErased}
}

// RegisterUpcaster installs the step from version `from` to from+1 of an event type.
func (c *Codec) RegisterUpcaster(eventType string, from int, u Upcaster) {
	if c.upcasters[eventType] == nil {
		c.upcasters[eventType] = map[int]Upcaster{}
	}
	c.upcasters[eventType][from] = u
}

// Encode returns the stream data of an event, sealing personal data.
func (c *Codec) Encode(ctx context.Context, e workerpath.Event) ([]byte, error) {
	if t, ok := e.(*workerpath.TakenInCharge); ok {
		clear, err := json.Marshal(t.Worker)
		if err != nil {
			return nil, err
		}
		sealed, err := c.sealer.Seal(ctx, t.WorkerRef, clear)
		if err != nil {
			return nil, fmt.Errorf("eventstore: sealing personal data: %w", err)
		}
		cp := *t
		cp.WorkerSealed = sealed
		return json.Marshal(&cp)
	}
	if t, ok := e.(*workerpath.TraineeshipActivated); ok {
		if t.WorkerRef == "" {
			return nil, errors.New("eventstore: a traineeship without its worker's pseudonym cannot seal its host's tax code")
		}
		sealed, err := c.sealer.Seal(ctx, t.WorkerRef, []byte(t.HostTaxCode))
		if err != nil {
			return nil, fmt.Errorf("eventstore: sealing the host's tax code: %w", err)
		}
		cp := *t
		cp.HostSealed = sealed
		return json.Marshal(&cp)
	}
	return json.Marshal(e)
}

// HoldsPersonal reports whether an event type carries sealed personal data
// (the worker's, or a sole trader host's tax code), which Decode opens
// unless told to skip it.
func HoldsPersonal(e workerpath.Event) bool {
	switch e.(type) {
	case *workerpath.TakenInCharge, *workerpath.TraineeshipActivated:
		return true
	}
	return false
}

// DecodeOptions choose how much of an event to decode.
type DecodeOptions struct {
	// SkipPersonal leaves the worker's personal data sealed, for readers
	// that have no business with it (and to spare the decryption).
	SkipPersonal bool
}

// Decode returns the domain event of stored data, upcast to the current
// schema version and with personal data opened (or marked erased).
func (c *Codec) Decode(ctx context.Context, eventType string, version int, data []byte, opt DecodeOptions) (workerpath.Event, error) {
	for v := version; v < SchemaVersion; v++ {
		u, ok := c.upcasters[eventType][v]
		if !ok {
			return nil, fmt.Errorf("eventstore: no upcaster for %s v%d", eventType, v)
		}
		var err error
		if data, err = u(data); err != nil {
			return nil, fmt.Errorf("eventstore: upcasting %s v%d: %w", eventType, v, err)
		}
	}
	if version > SchemaVersion {
		return nil, fmt.Errorf("eventstore: %s v%d is newer than this build (v%d)", eventType, version, SchemaVersion)
	}
	e, ok := workerpath.NewEvent(eventType)
	if !ok {
		return nil, fmt.Errorf("eventstore: unknown event type %q", eventType)
	}
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("eventstore: decoding %s: %w", eventType, err)
	}
	if t, ok := e.(*workerpath.TraineeshipActivated); ok && !opt.SkipPersonal {
		if err := c.openHost(ctx, t, data); err != nil {
			return nil, err
		}
	}
	if t, ok := e.(*workerpath.TakenInCharge); ok && !opt.SkipPersonal {
		clear, err := c.sealer.Open(ctx, t.WorkerRef, t.WorkerSealed)
		switch {
		case err != nil && c.isErased != nil && c.isErased(err):
			t.Worker = workerpath.Person{Erased: true}
		case err != nil:
			return nil, &OpenError{Err: err}
		default:
			if err := json.Unmarshal(clear, &t.Worker); err != nil {
				return nil, fmt.Errorf("eventstore: decoding personal data: %w", err)
			}
		}
	}
	return e, nil
}

// openHost opens a traineeship's host tax code. Events recorded before it
// was sealed hold it in clear, as host_tax_code.
func (c *Codec) openHost(ctx context.Context, t *workerpath.TraineeshipActivated, data []byte) error {
	if t.HostSealed == "" {
		var legacy struct {
			HostTaxCode string `json:"host_tax_code"`
		}
		if err := json.Unmarshal(data, &legacy); err != nil {
			return fmt.Errorf("eventstore: decoding TraineeshipActivated: %w", err)
		}
		t.HostTaxCode = legacy.HostTaxCode
		return nil
	}
	clear, err := c.sealer.Open(ctx, t.WorkerRef, t.HostSealed)
	switch {
	case err != nil && c.isErased != nil && c.isErased(err):
		t.HostErased = true
	case err != nil:
		return &OpenError{Err: err}
	default:
		t.HostTaxCode = string(clear)
	}
	return nil
}

// SealPerson seals a worker's personal data, as Encode does for
// TakenInCharge; stores use it for state they keep beside the stream
// (snapshots), which must hold no personal data in clear either.
func (c *Codec) SealPerson(ctx context.Context, ref string, p workerpath.Person) (string, error) {
	clear, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return c.sealer.Seal(ctx, ref, clear)
}

// OpenPerson opens what SealPerson sealed; after erasure the person comes
// back marked erased.
func (c *Codec) OpenPerson(ctx context.Context, ref, sealed string) (workerpath.Person, error) {
	clear, err := c.sealer.Open(ctx, ref, sealed)
	if err != nil {
		if c.isErased != nil && c.isErased(err) {
			return workerpath.Person{Erased: true}, nil
		}
		return workerpath.Person{}, &OpenError{Err: err}
	}
	var p workerpath.Person
	err = json.Unmarshal(clear, &p)
	return p, err
}
