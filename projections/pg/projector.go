package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// ProjectorName names the read-model projection's checkpoint.
const ProjectorName = "read_models"

// Item is one event to project: its envelope and decoded domain event.
type Item struct {
	Env   *eventstore.Envelope
	Event workerpath.Event
}

// Projector applies events to the read models.
type Projector struct {
	pool *pgxpool.Pool
	name string
}

// NewProjector returns a projector writing through pool.
func NewProjector(pool *pgxpool.Pool) *Projector { return &Projector{pool: pool, name: ProjectorName} }

// Checkpoint is the stream sequence of the last applied event (0: none).
func (p *Projector) Checkpoint(ctx context.Context) (uint64, error) {
	var seq int64
	err := p.pool.QueryRow(ctx, `SELECT seq FROM projection_checkpoints WHERE name = $1`, p.name).Scan(&seq)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	return uint64(seq), err
}

// Apply applies a batch in one transaction together with the checkpoint.
// Events at or below the checkpoint are skipped, so a redelivered batch
// changes nothing: each event takes effect exactly once.
func (p *Projector) Apply(ctx context.Context, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	err := p.apply(ctx, items)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && permanent(pgErr.Code) {
		// Find the one event the database refuses: alone, it is poison.
		if len(items) == 1 {
			return &PoisonError{Seq: items[0].Env.Seq, Err: err}
		}
		for _, it := range items {
			if err := p.Apply(ctx, []Item{it}); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// permanent: SQLSTATE classes no retry can fix (data exceptions, integrity
// violations, syntax or access rule violations).
func permanent(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") || strings.HasPrefix(code, "42")
}

func (p *Projector) apply(ctx context.Context, items []Item) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var cp int64
		err := tx.QueryRow(ctx, `SELECT seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, p.name).Scan(&cp)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		b := &pgx.Batch{}
		last := uint64(cp)
		for _, it := range items {
			if it.Env.Seq <= last {
				continue
			}
			if err := queue(b, it); err != nil {
				return err
			}
			last = it.Env.Seq
		}
		if last == uint64(cp) {
			return nil
		}
		b.Queue(`INSERT INTO projection_checkpoints (name, seq, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()`, p.name, int64(last))
		return tx.SendBatch(ctx, b).Close()
	})
}

// PoisonError marks an event that cannot be applied (as opposed to a
// database that is away for a while).
type PoisonError struct {
	Seq uint64
	Err error
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("event %d cannot be applied: %v", e.Seq, e.Err)
}
func (e *PoisonError) Unwrap() error { return e.Err }

func queue(b *pgx.Batch, it Item) error {
	env := it.Env
	seq := int64(env.Seq)
	b.Queue(`INSERT INTO audit_events (seq, event_id, path_id, type, schema_version, recorded_at, actor, command_id, correlation_id, hash, prev_hash, data)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		seq, env.ID, env.PathID, env.Type, env.SchemaVersion, env.Time, env.Actor, env.CommandID, env.CorrelationID, env.Hash, env.PrevHash, string(env.Data))
	switch e := it.Event.(type) {
	case *workerpath.TakenInCharge:
		w := e.Worker
		var birth any
		if !w.BirthDate.IsZero() {
			birth = w.BirthDate.Time()
		}
		var to any
		if !e.Support.To.IsZero() {
			to = e.Support.To.Time()
		}
		var tax, given, family, lang any
		var disability any
		if !w.Erased {
			tax, given, family, lang, disability = w.TaxCode, w.GivenName, w.FamilyName, nullIfEmpty(w.MediatorLanguage), w.Disability
		}
		b.Queue(`INSERT INTO paths (path_id, worker_ref, tax_code, given_name, family_name, birth_date, disability, mediator_language, erased,
			category, support_kind, agreement_code, support_from, support_to, office, province, status, taken_at, version)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,'open',$17,$18)`,
			e.PathID, e.WorkerRef, tax, given, family, birth, disability, lang, w.Erased,
			e.Category, e.Support.Kind, nullIfEmpty(e.Support.AgreementCode), e.Support.From.Time(), to, e.Office, province(e.Office), e.TakenAt, seq)
	case *workerpath.SessionDelivered:
		var group any
		if e.GroupID != "" {
			group = e.GroupID
		}
		b.Queue(`INSERT INTO sessions (event_id, seq, path_id, session_id, service, delivered_at, office, province, category, worker_ref, operator,
			standard_minutes, credited_minutes, actual_minutes, mediator_present, group_id, group_size, outside_group_range, justification,
			outside_support, traineeship_id, catalogue_version)
			SELECT $1,$2,$3,$4,$5,$6,p.office,p.province,p.category,p.worker_ref,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18
			FROM paths p WHERE p.path_id = $3`,
			env.ID, seq, e.PathID, nullIfEmpty(e.SessionID), e.Service, e.DeliveredAt, e.Operator, e.StandardMinutes, e.CreditedMinutes,
			e.ActualMinutes, e.MediatorPresent, group, nullIfZero(e.GroupSize), e.OutsideGroupRange, nullIfEmpty(e.Justification),
			e.OutsideSupport, nullIfEmpty(e.TraineeshipID), e.CatalogueVersion)
		key := strconv.Itoa(e.Service)
		b.Queue(`UPDATE paths SET services = jsonb_set(services, ARRAY[$2::text], jsonb_build_object(
				'delivered', COALESCE((services->$2->>'delivered')::int, 0) + 1,
				'credited_minutes', COALESCE((services->$2->>'credited_minutes')::int, 0) + $3::int)),
			credited_minutes_total = credited_minutes_total + $3::int, version = $4 WHERE path_id = $1`,
			e.PathID, key, e.CreditedMinutes, seq)
	case *workerpath.PactSigned:
		b.Queue(`UPDATE paths SET pact_signed_at = $2, did_on = $3, version = $4 WHERE path_id = $1`, e.PathID, e.SignedAt, e.DIDOn.Time(), seq)
	case *workerpath.TraineeshipActivated:
		b.Queue(`UPDATE paths SET version = $2 WHERE path_id = $1`, e.PathID, seq)
	case *workerpath.PathVerified:
		b.Queue(`UPDATE paths SET verified_at = $2, verification_outcome = $3, version = $4 WHERE path_id = $1`, e.PathID, e.VerifiedAt, e.Outcome, seq)
	case *workerpath.NoShowRecorded:
		if e.Justified {
			b.Queue(`UPDATE paths SET justified_absences = justified_absences + 1, version = $2 WHERE path_id = $1`, e.PathID, seq)
		} else {
			b.Queue(`UPDATE paths SET unjustified_no_shows = $2, version = $3 WHERE path_id = $1`, e.PathID, e.Unjustified, seq)
		}
	case *workerpath.RefusalReported:
		b.Queue(`UPDATE paths SET refusals = refusals + 1, version = $2 WHERE path_id = $1`, e.PathID, seq)
	case *workerpath.PathClosed:
		b.Queue(`UPDATE paths SET status = 'closed', closed_at = $2, close_reason = $3, version = $4 WHERE path_id = $1`, e.PathID, e.ClosedAt, e.Reason, seq)
	case *workerpath.PersonalDataErased:
		b.Queue(`UPDATE paths SET tax_code = NULL, given_name = NULL, family_name = NULL, birth_date = NULL, disability = NULL,
			mediator_language = NULL, erased = true, version = $2 WHERE path_id = $1`, e.PathID, seq)
	default:
		return &PoisonError{Seq: env.Seq, Err: fmt.Errorf("no projection for event type %T", it.Event)}
	}
	return nil
}

func province(code string) string {
	if o, ok := office.Lookup(code); ok {
		return o.Province
	}
	return ""
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}
