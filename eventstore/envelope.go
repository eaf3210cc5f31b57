// Package eventstore defines how percorso's events look on the stream: the
// subject scheme, the CloudEvents binary-mode envelope, the per-path hash
// chain and the codec that seals personal data. It imports no NATS code, so
// the JetStream store (natsjs), the in-memory store (memstore), the
// projectors and the CLI all share one definition of the wire format.
package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stream and subjects.
const (
	StreamName        = "PERCORSO"
	EventSubjectRoot  = "percorso.events."
	WorkerSubjectRoot = "percorso.workers."
	EventsWildcard    = EventSubjectRoot + ">"
	WorkersWildcard   = WorkerSubjectRoot + ">"
	Source            = "/percorso"
	SpecVersion       = "1.0"
	ContentType       = "application/json"
)

// EventSubject is the literal subject of one path's events.
func EventSubject(pathID string) string { return EventSubjectRoot + pathID }

// WorkerSubject is the literal subject of one worker's index entries.
func WorkerSubject(workerRef string) string { return WorkerSubjectRoot + workerRef }

// PathOf returns the path id of an event subject.
func PathOf(subject string) (string, bool) {
	return strings.CutPrefix(subject, EventSubjectRoot)
}

// Headers. CloudEvents attributes in binary mode are lowercase ce-* headers;
// extension names follow the CloudEvents rule (lowercase alphanumerics, at
// most 20 characters). Other headers carry the Percorso- prefix.
const (
	HdrMsgID         = "Nats-Msg-Id"
	HdrSpecVersion   = "ce-specversion"
	HdrID            = "ce-id"
	HdrType          = "ce-type"
	HdrSource        = "ce-source"
	HdrSubject       = "ce-subject"
	HdrTime          = "ce-time"
	HdrDataSchema    = "ce-dataschema"
	HdrContentType   = "content-type"
	HdrActor         = "ce-actor"
	HdrCommandID     = "ce-commandid"
	HdrCorrelationID = "ce-correlationid"
	HdrSchemaVersion = "ce-schemaversion"
	HdrPrevSeq       = "ce-prevseq"
	HdrPrevHash      = "ce-prevhash"
	HdrHash          = "ce-hash"
	// HdrPrevInBatch marks an event whose previous event on the same path was
	// appended in the same atomic batch, right before it: its sequence was
	// not known when the batch was written, and it is this event's sequence
	// minus one (atomic batches are stored contiguously).
	HdrPrevInBatch = "Percorso-Prev-In-Batch"
	// HdrIndexStatus marks a worker-index entry (not an event).
	HdrIndexStatus = "Percorso-Index-Status"
)

// DataSchema is the $id of an event type's JSON Schema (docs/events).
// IndexType is the ce-type of a worker-index entry: not an event of a
// path, but a CloudEvent like them, so that a CloudEvents SDK reads every
// message of the stream.
const IndexType = "WorkerIndexUpdated"

// IndexHeaders are the headers of a worker-index entry of the command
// commandID: the CloudEvents attributes (ce-subject is the worker's
// pseudonym), its status, and its message id for deduplication.
func IndexHeaders(id, workerRef, status, commandID string, at time.Time) map[string]string {
	return map[string]string{
		HdrMsgID:       id,
		HdrSpecVersion: SpecVersion,
		HdrID:          id,
		HdrType:        IndexType,
		HdrSource:      Source,
		HdrSubject:     workerRef,
		HdrTime:        at.UTC().Format(time.RFC3339Nano),
		HdrDataSchema:  DataSchema(IndexType, SchemaVersion),
		HdrContentType: ContentType,
		HdrCommandID:   commandID,
		HdrIndexStatus: status,
	}
}

func DataSchema(eventType string, version int) string {
	return fmt.Sprintf("urn:percorso:events:%s:v%d", eventType, version)
}

// Envelope is one event as stored: its metadata and its data bytes.
type Envelope struct {
	Seq           uint64 // stream sequence (0 before it is stored)
	ID            string
	Type          string
	SchemaVersion int
	PathID        string
	Time          time.Time // when it was recorded
	Actor         string
	CommandID     string
	CorrelationID string
	PrevSeq       uint64 // sequence of the previous event of the path, 0 for the first
	PrevInBatch   bool   // PrevSeq is Seq-1, in the same atomic batch
	PrevHash      string // hash of the previous event of the path, "" for the first
	Hash          string
	Data          []byte
}

// ComputeHash is the SHA-256, in lowercase hex, of the event's canonical
// form: every field that gives the event its meaning, in a fixed order, each
// length-prefixed so no two different events share a form. The stream
// sequence is not part of it (unknown before the append); the back-pointer
// checks in Verify cover order and gaps.
func (e *Envelope) ComputeHash() string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
		h.Write([]byte{'\n'})
	}
	field("percorso-event-v1")
	field(e.ID)
	field(e.Type)
	field(strconv.Itoa(e.SchemaVersion))
	field(e.PathID)
	field(e.Time.UTC().Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.CommandID)
	field(e.CorrelationID)
	field(e.PrevHash)
	field(string(e.Data))
	return hex.EncodeToString(h.Sum(nil))
}

// Headers returns the envelope's headers as name -> value.
func (e *Envelope) Headers() map[string]string {
	h := map[string]string{
		HdrMsgID:         e.ID,
		HdrSpecVersion:   SpecVersion,
		HdrID:            e.ID,
		HdrType:          e.Type,
		HdrSource:        Source,
		HdrSubject:       e.PathID,
		HdrTime:          e.Time.UTC().Format(time.RFC3339Nano),
		HdrDataSchema:    DataSchema(e.Type, e.SchemaVersion),
		HdrContentType:   ContentType,
		HdrActor:         e.Actor,
		HdrCommandID:     e.CommandID,
		HdrCorrelationID: e.CorrelationID,
		HdrSchemaVersion: strconv.Itoa(e.SchemaVersion),
		HdrHash:          e.Hash,
	}
	if e.PrevHash != "" {
		h[HdrPrevHash] = e.PrevHash
	}
	if e.PrevInBatch {
		h[HdrPrevInBatch] = "1"
	} else if e.PrevSeq != 0 {
		h[HdrPrevSeq] = strconv.FormatUint(e.PrevSeq, 10)
	}
	return h
}

// FromHeaders rebuilds an envelope from a stored message.
func FromHeaders(seq uint64, subject string, get func(string) string, data []byte) (*Envelope, error) {
	pathID, ok := PathOf(subject)
	if !ok {
		return nil, fmt.Errorf("eventstore: seq %d: subject %q is not an event subject", seq, subject)
	}
	e := &Envelope{
		Seq: seq, ID: get(HdrID), Type: get(HdrType), PathID: pathID,
		Actor: get(HdrActor), CommandID: get(HdrCommandID), CorrelationID: get(HdrCorrelationID),
		PrevHash: get(HdrPrevHash), Hash: get(HdrHash), Data: data,
		PrevInBatch: get(HdrPrevInBatch) == "1",
	}
	if e.ID == "" || e.Type == "" {
		return nil, fmt.Errorf("eventstore: seq %d: missing ce-id or ce-type", seq)
	}
	if s := get(HdrSubject); s != pathID {
		return nil, fmt.Errorf("eventstore: seq %d: ce-subject %q does not match subject %q", seq, s, subject)
	}
	t, err := time.Parse(time.RFC3339Nano, get(HdrTime))
	if err != nil {
		return nil, fmt.Errorf("eventstore: seq %d: bad ce-time: %w", seq, err)
	}
	e.Time = t
	if e.SchemaVersion, err = strconv.Atoi(get(HdrSchemaVersion)); err != nil {
		return nil, fmt.Errorf("eventstore: seq %d: bad ce-schemaversion", seq)
	}
	if e.PrevInBatch {
		if seq < 2 {
			return nil, fmt.Errorf("eventstore: seq %d: in-batch back-pointer at the stream's start", seq)
		}
		e.PrevSeq = seq - 1
	} else if v := get(HdrPrevSeq); v != "" {
		if e.PrevSeq, err = strconv.ParseUint(v, 10, 64); err != nil || e.PrevSeq >= seq {
			return nil, fmt.Errorf("eventstore: seq %d: bad ce-prevseq %q", seq, v)
		}
	}
	return e, nil
}
