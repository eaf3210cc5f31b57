package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/percorso/percorso/domain/workerpath"
)

// A batch is applied in bulk: its events are folded in memory into the rows
// they produce — one audit row per event, one sessions row per session, and
// one paths row per path however many of its events the batch holds — and
// the rows are written with one statement per table: audit rows and
// sessions with a binary COPY, paths with one upsert taking the batch's
// rows as a JSON array (json_populate_recordset). A batch of any size costs
// the same few round trips, and a path touched by ten events of a batch is
// written once, not ten times.

// pathRow is a paths row, named as its columns, written with
// json_populate_recordset. Dates are "YYYY-MM-DD" strings;
// times are truncated to microseconds, as PostgreSQL keeps them.
type pathRow struct {
	PathID               string                  `json:"path_id"`
	WorkerRef            string                  `json:"worker_ref"`
	TaxCode              *string                 `json:"tax_code"`
	GivenName            *string                 `json:"given_name"`
	FamilyName           *string                 `json:"family_name"`
	BirthDate            *string                 `json:"birth_date"`
	Disability           *bool                   `json:"disability"`
	MediatorLanguage     *string                 `json:"mediator_language"`
	Erased               bool                    `json:"erased"`
	Category             string                  `json:"category"`
	SupportKind          string                  `json:"support_kind"`
	AgreementCode        *string                 `json:"agreement_code"`
	SupportFrom          string                  `json:"support_from"`
	SupportTo            *string                 `json:"support_to"`
	Office               string                  `json:"office"`
	Province             string                  `json:"province"`
	Status               string                  `json:"status"`
	TakenAt              time.Time               `json:"taken_at"`
	ClosedAt             *time.Time              `json:"closed_at"`
	CloseReason          *string                 `json:"close_reason"`
	PactSignedAt         *time.Time              `json:"pact_signed_at"`
	DIDOn                *string                 `json:"did_on"`
	UnjustifiedNoShows   int                     `json:"unjustified_no_shows"`
	JustifiedAbsences    int                     `json:"justified_absences"`
	Refusals             int                     `json:"refusals"`
	VerifiedAt           *time.Time              `json:"verified_at"`
	VerificationOutcome  *string                 `json:"verification_outcome"`
	Services             map[string]serviceTotal `json:"services"`
	CreditedMinutesTotal int                     `json:"credited_minutes_total"`
	Version              int64                   `json:"version"`
}

// serviceTotal is one service's entry in paths.services.
type serviceTotal struct {
	Delivered       int `json:"delivered"`
	CreditedMinutes int `json:"credited_minutes"`
}

// sessionRow is a sessions row.
type sessionRow struct {
	EventID           pgtype.UUID `json:"event_id"`
	Seq               int64       `json:"seq"`
	PathID            pgtype.UUID `json:"path_id"`
	SessionID         *string     `json:"session_id"`
	Service           int         `json:"service"`
	DeliveredAt       time.Time   `json:"delivered_at"`
	Office            string      `json:"office"`
	Province          string      `json:"province"`
	Category          string      `json:"category"`
	WorkerRef         string      `json:"worker_ref"`
	Operator          string      `json:"operator"`
	StandardMinutes   int         `json:"standard_minutes"`
	CreditedMinutes   int         `json:"credited_minutes"`
	ActualMinutes     int         `json:"actual_minutes"`
	MediatorPresent   bool        `json:"mediator_present"`
	GroupID           pgtype.UUID `json:"group_id"` // not Valid: NULL
	GroupSize         *int        `json:"group_size"`
	OutsideGroupRange bool        `json:"outside_group_range"`
	Justification     *string     `json:"justification"`
	OutsideSupport    bool        `json:"outside_support"`
	TraineeshipID     *string     `json:"traineeship_id"`
	CatalogueVersion  string      `json:"catalogue_version"`
}

// auditRow is an audit_events row: the event as stored, data still sealed.
type auditRow struct {
	Seq           int64           `json:"seq"`
	EventID       pgtype.UUID     `json:"event_id"`
	PathID        pgtype.UUID     `json:"path_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Actor         string          `json:"actor"`
	CommandID     string          `json:"command_id"`
	CorrelationID string          `json:"correlation_id"`
	Hash          string          `json:"hash"`
	PrevHash      string          `json:"prev_hash"`
	Data          json.RawMessage `json:"data"`
}

// fold is a batch's rows being built.
type fold struct {
	paths    map[string]*pathRow   // the paths whose rows the batch changes, as they stand now
	static   map[string]pathStatic // what a session row copies from its path, for the batch's other paths
	order    []string              // paths to write, in first-touched order
	dirty    map[string]bool
	sessions []sessionRow
	audit    []auditRow
	// deferTotals: sessions leave their path's row alone (its services,
	// credited minutes and version are computed at the end: Rebuild.Finish).
	deferTotals bool
}

// pathStatic is what a path's sessions copy from it: set when it is taken
// in charge, never changed, so it may be kept in memory as long as wanted.
type pathStatic struct {
	Office, Province, Category, WorkerRef string
}

// staticCache keeps the pathStatic of paths a projector has seen.
type staticCache struct {
	mu sync.Mutex
	m  map[string]pathStatic
}

// maxStatic bounds the cache (some 100 bytes an entry); when full it
// starts over.
const maxStatic = 1 << 18

func (c *staticCache) get(id string) (pathStatic, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[id]
	return st, ok
}

func (c *staticCache) put(m map[string]pathStatic) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(m) > maxStatic {
		c.m = make(map[string]pathStatic, len(m))
	}
	for id, st := range m {
		c.m[id] = st
	}
}

func (r *pathRow) static() pathStatic {
	return pathStatic{Office: r.Office, Province: r.Province, Category: r.Category, WorkerRef: r.WorkerRef}
}

// batchState is what applying a batch starts from.
type batchState struct {
	checkpoints map[string]uint64     // every checkpoint of the projection, this projector's own locked
	applied     map[uint64]bool       // events audit_events already holds
	paths       map[string]*pathRow   // rows of the paths the batch changes
	static      map[string]pathStatic // other paths a session of the batch belongs to
}

// readState reads, in one round trip, what applying a batch starts from:
// the projection's checkpoints (this projector's own locked against another
// projector of the same name), which of the batch's events audit_events already holds (applied by
// another layout of partitions: each applied event has its row there,
// written in the same transaction as its other effects), the rows of the
// paths the batch changes and, with deferTotals, what the sessions of
// other paths copy from them (from the cache when it has them).
func readState(ctx context.Context, tx pgx.Tx, name string, items []Item, deferTotals bool, cache *staticCache) (batchState, error) {
	st := batchState{applied: map[uint64]bool{}, paths: map[string]*pathRow{}, static: map[string]pathStatic{}}
	var seqs []int64
	var rows, statics []string
	seen := map[string]bool{}
	for _, it := range items {
		if it.Event == nil {
			continue
		}
		seqs = append(seqs, int64(it.Env.Seq))
		if _, session := it.Event.(*workerpath.SessionDelivered); !session || !deferTotals {
			if !seen[it.Env.PathID] {
				seen[it.Env.PathID] = true
				rows = append(rows, it.Env.PathID)
			}
		}
	}
	if deferTotals {
		for _, it := range items {
			id := it.Env.PathID
			if _, session := it.Event.(*workerpath.SessionDelivered); !session || seen[id] {
				continue
			}
			seen[id] = true
			if ps, ok := cache.get(id); ok {
				st.static[id] = ps
			} else {
				statics = append(statics, id)
			}
		}
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name)
	// The other layouts' checkpoints in the same snapshot as the rows: how
	// far another layout has applied every path holds for these rows, even
	// right after a rebuild switched in a set with checkpoints of its own.
	st.checkpoints = map[string]uint64{}
	b.Queue(`SELECT name, seq FROM projection_checkpoints WHERE name = $1 OR starts_with(name, $1 || '/')`, ProjectorName).Query(func(rs pgx.Rows) error {
		var name string
		var seq int64
		_, err := pgx.ForEachRow(rs, []any{&name, &seq}, func() error { st.checkpoints[name] = uint64(seq); return nil })
		return err
	})
	if len(seqs) > 0 {
		b.Queue(`SELECT seq FROM audit_events WHERE seq = ANY($1)`, seqs).Query(func(rs pgx.Rows) error {
			var seq int64
			_, err := pgx.ForEachRow(rs, []any{&seq}, func() error { st.applied[uint64(seq)] = true; return nil })
			return err
		})
	}
	if len(rows) > 0 {
		b.Queue(`SELECT `+pathsSelect+` FROM paths WHERE path_id = ANY($1::uuid[])`, rows).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				r := &pathRow{}
				if err := r.scan(rs); err != nil {
					return err
				}
				st.paths[r.PathID] = r
			}
			return rs.Err()
		})
	}
	if len(statics) > 0 {
		b.Queue(`SELECT path_id::text, office, province, category, worker_ref FROM paths WHERE path_id = ANY($1::uuid[])`, statics).Query(func(rs pgx.Rows) error {
			var id string
			var ps pathStatic
			_, err := pgx.ForEachRow(rs, []any{&id, &ps.Office, &ps.Province, &ps.Category, &ps.WorkerRef}, func() error {
				st.static[id] = ps
				return nil
			})
			return err
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return batchState{}, err
	}
	return st, nil
}

// pathsSelect reads a paths row as pathRow.scan takes it: dates, keys and
// services as text.
const pathsSelect = `path_id::text, worker_ref, tax_code, given_name, family_name, birth_date::text, disability,
	mediator_language, erased, category, support_kind, agreement_code, support_from::text, support_to::text, office, province,
	status, taken_at, closed_at, close_reason, pact_signed_at, did_on::text, unjustified_no_shows, justified_absences, refusals,
	verified_at, verification_outcome, services::text, credited_minutes_total, version`

func (r *pathRow) scan(rows pgx.Rows) error {
	var services string
	var noShows, absences, refusals, credited int32
	if err := rows.Scan(&r.PathID, &r.WorkerRef, &r.TaxCode, &r.GivenName, &r.FamilyName, &r.BirthDate, &r.Disability,
		&r.MediatorLanguage, &r.Erased, &r.Category, &r.SupportKind, &r.AgreementCode, &r.SupportFrom, &r.SupportTo, &r.Office,
		&r.Province, &r.Status, &r.TakenAt, &r.ClosedAt, &r.CloseReason, &r.PactSignedAt, &r.DIDOn, &noShows, &absences,
		&refusals, &r.VerifiedAt, &r.VerificationOutcome, &services, &credited, &r.Version); err != nil {
		return err
	}
	r.UnjustifiedNoShows, r.JustifiedAbsences, r.Refusals, r.CreditedMinutesTotal = int(noShows), int(absences), int(refusals), int(credited)
	if err := json.Unmarshal([]byte(services), &r.Services); err != nil {
		return fmt.Errorf("paths row %s: services: %w", r.PathID, err)
	}
	return nil
}

func (f *fold) touch(r *pathRow, seq uint64) {
	r.Version = int64(seq)
	if !f.dirty[r.PathID] {
		f.dirty[r.PathID] = true
		f.order = append(f.order, r.PathID)
	}
}

// add folds one event into the batch's rows. An event of a path the read
// models do not hold changes nothing but its audit row, as an UPDATE of no
// row would; a second TakenInCharge of a path is poison.
func (f *fold) add(it Item) error {
	env := it.Env
	seq := env.Seq
	eventID, err := binaryUUID(seq, "event id", env.ID)
	if err != nil {
		return err
	}
	pathID, err := binaryUUID(seq, "path id", env.PathID)
	if err != nil {
		return err
	}
	f.audit = append(f.audit, auditRow{
		Seq: int64(seq), EventID: eventID, PathID: pathID, Type: env.Type, SchemaVersion: env.SchemaVersion,
		RecordedAt: micro(env.Time), Actor: env.Actor, CommandID: env.CommandID, CorrelationID: env.CorrelationID,
		Hash: env.Hash, PrevHash: env.PrevHash, Data: json.RawMessage(env.Data),
	})
	if e, ok := it.Event.(*workerpath.TakenInCharge); ok {
		if f.paths[e.PathID] != nil {
			return &PoisonError{Seq: seq, Err: fmt.Errorf("path %s is already taken in charge", e.PathID)}
		}
		r := takenRow(e)
		f.paths[e.PathID] = r
		f.touch(r, seq)
		return nil
	}
	r := f.paths[env.PathID]
	switch e := it.Event.(type) {
	case *workerpath.SessionDelivered:
		ps, ok := f.static[env.PathID]
		if r != nil {
			ps, ok = r.static(), true
		}
		if !ok {
			return nil
		}
		sessionPath, err := binaryUUID(seq, "path id", e.PathID)
		if err != nil {
			return err
		}
		if err := sessionInRange(seq, e); err != nil {
			return err
		}
		var group pgtype.UUID
		if e.GroupID != "" {
			if group, err = binaryUUID(seq, "group id", e.GroupID); err != nil {
				return err
			}
		}
		s := sessionRow{
			EventID: eventID, Seq: int64(seq), PathID: sessionPath, SessionID: textOrNull(e.SessionID), Service: e.Service,
			DeliveredAt: micro(e.DeliveredAt), Office: ps.Office, Province: ps.Province, Category: ps.Category, WorkerRef: ps.WorkerRef,
			Operator: e.Operator, StandardMinutes: e.StandardMinutes, CreditedMinutes: e.CreditedMinutes, ActualMinutes: e.ActualMinutes,
			MediatorPresent: e.MediatorPresent, GroupID: group, OutsideGroupRange: e.OutsideGroupRange,
			Justification: textOrNull(e.Justification), OutsideSupport: e.OutsideSupport, TraineeshipID: textOrNull(e.TraineeshipID),
			CatalogueVersion: e.CatalogueVersion,
		}
		if e.GroupSize != 0 {
			s.GroupSize = &e.GroupSize
		}
		f.sessions = append(f.sessions, s)
		if f.deferTotals || r == nil {
			return nil
		}
		if r.Services == nil {
			r.Services = map[string]serviceTotal{}
		}
		key := strconv.Itoa(e.Service)
		t := r.Services[key]
		t.Delivered++
		t.CreditedMinutes += e.CreditedMinutes
		r.Services[key] = t
		r.CreditedMinutesTotal += e.CreditedMinutes
	case *workerpath.PactSigned:
		if r == nil {
			return nil
		}
		r.PactSignedAt, r.DIDOn = microPtr(e.SignedAt), dateOrNull(e.DIDOn)
	case *workerpath.TraineeshipActivated:
	case *workerpath.PathVerified:
		if r == nil {
			return nil
		}
		r.VerifiedAt, r.VerificationOutcome = microPtr(e.VerifiedAt), &e.Outcome
	case *workerpath.NoShowRecorded:
		if r == nil {
			return nil
		}
		if e.Justified {
			r.JustifiedAbsences++
		} else {
			r.UnjustifiedNoShows = e.Unjustified
		}
	case *workerpath.RefusalReported:
		if r == nil {
			return nil
		}
		r.Refusals++
	case *workerpath.PathClosed:
		if r == nil {
			return nil
		}
		r.Status, r.ClosedAt, r.CloseReason = "closed", microPtr(e.ClosedAt), &e.Reason
	case *workerpath.PersonalDataErased:
		if r == nil {
			return nil
		}
		r.TaxCode, r.GivenName, r.FamilyName, r.BirthDate, r.Disability, r.MediatorLanguage = nil, nil, nil, nil, nil, nil
		r.Erased = true
	default:
		return &PoisonError{Seq: seq, Err: fmt.Errorf("no projection for event type %T", it.Event)}
	}
	if r != nil {
		f.touch(r, seq)
	}
	return nil
}

func takenRow(e *workerpath.TakenInCharge) *pathRow {
	w := e.Worker
	r := &pathRow{
		PathID: e.PathID, WorkerRef: e.WorkerRef, Erased: w.Erased, Category: e.Category, SupportKind: e.Support.Kind,
		AgreementCode: textOrNull(e.Support.AgreementCode), SupportFrom: e.Support.From.String(), SupportTo: dateOrNull(e.Support.To),
		Office: e.Office, Province: province(e.Office), Status: "open", TakenAt: micro(e.TakenAt), Services: map[string]serviceTotal{},
	}
	if !w.Erased {
		disability := w.Disability
		r.TaxCode, r.GivenName, r.FamilyName = &w.TaxCode, &w.GivenName, &w.FamilyName
		r.BirthDate, r.Disability, r.MediatorLanguage = dateOrNull(w.BirthDate), &disability, textOrNull(w.MediatorLanguage)
	}
	return r
}

// write copies the audit rows and sessions in (binary COPY), and queues
// the paths rows on b, inserted or replaced whole.
func (f *fold) write(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if len(f.audit) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, auditColumns, pgx.CopyFromSlice(len(f.audit), func(i int) ([]any, error) {
			a := &f.audit[i]
			return []any{a.Seq, a.EventID, a.PathID, a.Type, a.SchemaVersion, a.RecordedAt, a.Actor, a.CommandID,
				a.CorrelationID, a.Hash, a.PrevHash, a.Data}, nil
		})); err != nil {
			return err
		}
	}
	if len(f.sessions) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sessions"}, sessionColumns, pgx.CopyFromSlice(len(f.sessions), func(i int) ([]any, error) {
			s := &f.sessions[i]
			return []any{s.EventID, s.Seq, s.PathID, s.SessionID, int16(s.Service), s.DeliveredAt, s.Office, s.Province, s.Category,
				s.WorkerRef, s.Operator, s.StandardMinutes, s.CreditedMinutes, s.ActualMinutes, s.MediatorPresent, s.GroupID,
				s.GroupSize, s.OutsideGroupRange, s.Justification, s.OutsideSupport, s.TraineeshipID, s.CatalogueVersion}, nil
		})); err != nil {
			return err
		}
	}
	if len(f.order) > 0 {
		rows := make([]*pathRow, len(f.order))
		for i, id := range f.order {
			rows[i] = f.paths[id]
		}
		paths, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		b.Queue(pathsUpsert, string(paths))
	}
	return nil
}

var (
	auditColumns = []string{"seq", "event_id", "path_id", "type", "schema_version", "recorded_at", "actor", "command_id",
		"correlation_id", "hash", "prev_hash", "data"}
	sessionColumns = []string{"event_id", "seq", "path_id", "session_id", "service", "delivered_at", "office", "province",
		"category", "worker_ref", "operator", "standard_minutes", "credited_minutes", "actual_minutes", "mediator_present",
		"group_id", "group_size", "outside_group_range", "justification", "outside_support", "traineeship_id", "catalogue_version"}
)

// pathsWritten are the columns the projector writes to paths, its key
// first. They are named, not taken from the table: a column a newer
// release adds (with a default) keeps its default when a projector of the
// release before writes the row during a rolling update.
var pathsWritten = []string{"path_id", "worker_ref", "tax_code", "given_name", "family_name", "birth_date", "disability",
	"mediator_language", "erased", "category", "support_kind", "agreement_code", "support_from", "support_to", "office",
	"province", "status", "taken_at", "closed_at", "close_reason", "pact_signed_at", "did_on", "unjustified_no_shows",
	"justified_absences", "refusals", "verified_at", "verification_outcome", "services", "credited_minutes_total", "version"}

// pathsUpsert writes a batch's paths rows, given as a JSON array of
// pathRow: an existing row has every column but its key replaced.
var pathsUpsert = func() string {
	cols := strings.Join(pathsWritten, ", ")
	set := make([]string, 0, len(pathsWritten)-1)
	for _, c := range pathsWritten[1:] {
		set = append(set, c+" = EXCLUDED."+c)
	}
	return `INSERT INTO paths (` + cols + `) SELECT ` + cols + ` FROM json_populate_recordset(NULL::paths, $1::json)
		ON CONFLICT (path_id) DO UPDATE SET ` + strings.Join(set, ", ")
}()

// binaryUUID is an id as COPY takes it, in binary. Ids are parsed here, so
// that one that is not a uuid is poison, where the database would only see
// a COPY the client aborted (and retried forever).
func binaryUUID(seq uint64, what, s string) (pgtype.UUID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return pgtype.UUID{}, &PoisonError{Seq: seq, Err: fmt.Errorf("%s %q is not a uuid", what, s)}
	}
	return pgtype.UUID{Bytes: u, Valid: true}, nil
}

// sessionInRange checks the numbers of a session against the columns
// they go to: a service outside the catalogue or minutes past an integer
// column are poison, where the binary COPY would wrap the first and the
// client abort the second (and retry it forever).
func sessionInRange(seq uint64, e *workerpath.SessionDelivered) error {
	if _, ok := workerpath.LookupService(e.Service); !ok {
		return &PoisonError{Seq: seq, Err: fmt.Errorf("service %d is not in the catalogue", e.Service)}
	}
	for _, n := range []int{e.StandardMinutes, e.CreditedMinutes, e.ActualMinutes, e.GroupSize} {
		if n < 0 || n > math.MaxInt32 {
			return &PoisonError{Seq: seq, Err: fmt.Errorf("a session's minutes or group size %d are out of range", n)}
		}
	}
	return nil
}

// micro is t as PostgreSQL stores it: to the microsecond, truncated as pgx
// truncates a binary timestamp.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func microPtr(t time.Time) *time.Time {
	m := micro(t)
	return &m
}

func textOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func dateOrNull(d workerpath.Date) *string {
	if d.IsZero() {
		return nil
	}
	s := d.String()
	return &s
}
