// Package audit serves auditors from the event stream itself: a path's full
// history, decoded (and decrypted when the reader may see personal data),
// the state it produced as of any time, and the recomputed hash chain.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// PathReader reads a path's stored events in order.
type PathReader interface {
	ReadPath(ctx context.Context, pathID string) ([]*eventstore.Envelope, error)
}

// PathCounter counts the messages on a path's subject, whatever their
// back-pointers say. A store that has it lets Verify find a message
// published past the API whose back-pointer skips real events: the chain
// it leaves is whole, but shorter than the subject.
type PathCounter interface {
	CountPath(ctx context.Context, pathID string) (uint64, error)
}

// Auditor implements query.Auditor.
type Auditor struct {
	store PathReader
	codec *eventstore.Codec
}

var _ query.Auditor = (*Auditor)(nil)

// New returns an Auditor.
func New(store PathReader, codec *eventstore.Codec) *Auditor {
	return &Auditor{store: store, codec: codec}
}

// Erased is what stands in for personal data once the worker's key is gone.
const Erased = "[erased]"

// History returns the path's events and, with AsOf, the state they produce.
func (a *Auditor) History(ctx context.Context, pathID string, opt query.HistoryOptions) (*query.History, error) {
	envs, err := a.store.ReadPath(ctx, pathID)
	if err != nil {
		return nil, err
	}
	if len(envs) == 0 {
		return nil, query.ErrNotFound
	}
	h := &query.History{PathID: pathID, Events: []query.HistoryEvent{}}
	p := &workerpath.Path{}
	var version uint64
	for _, e := range envs {
		if opt.AsOf != nil && e.Time.After(*opt.AsOf) {
			break
		}
		ev, err := a.codec.Decode(ctx, e.Type, e.SchemaVersion, e.Data, eventstore.DecodeOptions{SkipPersonal: !opt.Personal})
		if err != nil {
			return nil, err
		}
		p.Apply(ev)
		version = e.Seq
		data, err := render(ev, opt.Personal)
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, query.HistoryEvent{Seq: e.Seq, ID: e.ID, Type: e.Type, Time: e.Time.UTC(), Actor: e.Actor,
			Data: data, Hash: e.Hash, PrevHash: e.PrevHash})
	}
	if first, ok := decodeOffice(envs[0]); ok {
		h.Office = first
	}
	if opt.AsOf != nil && version != 0 {
		// Before its first event the path had no state at all.
		h.State = state(p, version)
	}
	return h, nil
}

// render is the event's data as shown to a reader: with personal data
// opened (or "[erased]") for those allowed, sealed otherwise.
func render(ev workerpath.Event, personal bool) (json.RawMessage, error) {
	if t, ok := ev.(*workerpath.TraineeshipActivated); ok && personal {
		type shown struct {
			*workerpath.TraineeshipActivated
			HostTaxCode string `json:"host_tax_code"`
		}
		host := t.HostTaxCode
		if t.HostErased {
			host = Erased
		}
		return json.Marshal(shown{TraineeshipActivated: t, HostTaxCode: host})
	}
	t, ok := ev.(*workerpath.TakenInCharge)
	if !ok || !personal {
		return json.Marshal(ev)
	}
	type shown struct {
		*workerpath.TakenInCharge
		Worker any `json:"worker"`
	}
	var w any = t.Worker
	if t.Worker.Erased {
		w = map[string]string{"tax_code": Erased, "given_name": Erased, "family_name": Erased, "birth_date": Erased,
			"disability": Erased, "mediator_language": Erased}
	}
	return json.Marshal(shown{TakenInCharge: t, Worker: w})
}

func decodeOffice(e *eventstore.Envelope) (string, bool) {
	var m struct {
		Office string `json:"office"`
	}
	if json.Unmarshal(e.Data, &m) != nil || m.Office == "" {
		return "", false
	}
	return m.Office, true
}

func state(p *workerpath.Path, version uint64) *query.PathState {
	s := &query.PathState{Status: p.Status, Category: p.Category, Office: p.Office, TakenAt: p.TakenAt,
		Services: map[string]query.ServiceTally{}, CreditedMinutesTotal: p.CreditedTotal(),
		UnjustifiedNoShows: p.Unjustified, JustifiedAbsences: p.Justified, Refusals: p.Refusals, Erased: p.Erased, Version: version}
	if p.Pact != nil {
		at := p.Pact.SignedAt
		s.PactSignedAt = &at
	}
	for code, n := range p.Delivered {
		s.Services[strconv.Itoa(code)] = query.ServiceTally{Delivered: n, CreditedMinutes: p.Credited[code]}
	}
	return s
}

// Verify recomputes the path's chain from the stream.
func (a *Auditor) Verify(ctx context.Context, pathID string) (*query.Verification, error) {
	// Counted before the chain is read: appends in between only lengthen
	// the chain. On a replicated stream the chain may come from a replica
	// a moment behind the count's leader, so a chain shorter than the count
	// is read again a few times before it is reported.
	var stored uint64
	var envs []*eventstore.Envelope
	counter, counts := a.store.(PathCounter)
	for try := 0; ; try++ {
		if counts {
			n, err := counter.CountPath(ctx, pathID)
			if err != nil {
				return nil, err
			}
			stored = n
		}
		var err error
		if envs, err = a.store.ReadPath(ctx, pathID); err != nil {
			return nil, err
		}
		if !counts || stored <= uint64(len(envs)) || try == 4 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try+1) * 25 * time.Millisecond):
		}
	}
	if len(envs) == 0 {
		return nil, query.ErrNotFound
	}
	r := eventstore.Verify(pathID, envs)
	v := &query.Verification{PathID: pathID, OK: r.OK, Events: r.Events, HeadHash: r.HeadHash}
	v.Office, _ = decodeOffice(envs[0])
	for _, p := range r.Problems {
		v.Problems = append(v.Problems, query.VerifyProblem{Seq: p.Seq, EventID: p.EventID, Reason: p.Reason})
	}
	if counts && stored > uint64(len(envs)) {
		head := envs[len(envs)-1]
		v.OK = false
		v.Problems = append(v.Problems, query.VerifyProblem{Seq: head.Seq, EventID: head.ID,
			Reason: fmt.Sprintf("the path's subject holds %d messages but the chain from its last one links %d: %d were stepped over by a back-pointer, as a message published past the API would (percorso verify --all names them)",
				stored, len(envs), stored-uint64(len(envs)))})
	}
	return v, nil
}
