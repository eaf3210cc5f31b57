package pg

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/query"
)

// Reader answers queries from the read models.
type Reader struct{ pool *pgxpool.Pool }

// NewReader returns a Reader.
func NewReader(pool *pgxpool.Pool) *Reader { return &Reader{pool: pool} }

const pathColumns = `path_id::text, worker_ref, tax_code, given_name, family_name, to_char(birth_date, 'YYYY-MM-DD'), disability,
	mediator_language, erased, category, support_kind, agreement_code, to_char(support_from, 'YYYY-MM-DD'), to_char(support_to, 'YYYY-MM-DD'),
	office, province, status, taken_at, closed_at, close_reason, pact_signed_at, to_char(did_on, 'YYYY-MM-DD'),
	unjustified_no_shows, justified_absences, refusals, verified_at, verification_outcome, services, credited_minutes_total, version`

func scanPath(row pgx.Row) (*query.PathView, error) {
	v := &query.PathView{Worker: &query.Worker{}}
	var pactAt *time.Time
	var didOn *string
	var services []byte
	var version int64
	w := v.Worker
	err := row.Scan(&v.PathID, &v.WorkerRef, &w.TaxCode, &w.GivenName, &w.FamilyName, &w.BirthDate, &w.Disability,
		&w.MediatorLanguage, &w.Erased, &v.Category, &v.Support.Kind, &v.Support.AgreementCode, &v.Support.From, &v.Support.To,
		&v.Office, &v.Province, &v.Status, &v.TakenAt, &v.ClosedAt, &v.CloseReason, &pactAt, &didOn,
		&v.UnjustifiedNoShows, &v.JustifiedAbsences, &v.Refusals, &v.VerifiedAt, &v.VerificationOutcome, &services,
		&v.CreditedMinutesTotal, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, query.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	v.Version = uint64(version)
	if pactAt != nil {
		v.Pact = &query.Pact{SignedAt: pactAt.UTC(), DIDOn: deref(didOn)}
	}
	v.TakenAt = v.TakenAt.UTC()
	if err := json.Unmarshal(services, &v.Services); err != nil {
		return nil, err
	}
	return v, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Path returns a path's current state.
func (r *Reader) Path(ctx context.Context, pathID string) (*query.PathView, error) {
	return scanPath(r.pool.QueryRow(ctx, `SELECT `+pathColumns+` FROM paths WHERE path_id = $1`, pathID))
}

// Ping checks the database.
func (r *Reader) Ping(ctx context.Context) error { return r.pool.Ping(ctx) }

var _ query.Reader = (*Reader)(nil)
