package pg

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/query"
)

// ReadLog records auditors' reads.
type ReadLog struct{ pool *pgxpool.Pool }

var _ query.ReadLog = (*ReadLog)(nil)

// NewReadLog returns a ReadLog.
func NewReadLog(pool *pgxpool.Pool) *ReadLog { return &ReadLog{pool: pool} }

// RecordRead stores one read.
func (l *ReadLog) RecordRead(ctx context.Context, r query.AuditRead) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO audit_reads (at, principal, action, path_id) VALUES ($1, $2, $3, $4)`,
		r.At, r.Principal, r.Action, r.PathID)
	return err
}

// Reads lists the most recent reads, of one principal or of all ("").
func (l *ReadLog) Reads(ctx context.Context, principal string, limit int) ([]query.AuditRead, error) {
	rows, err := l.pool.Query(ctx, `SELECT at, principal, action, path_id::text FROM audit_reads
		WHERE $1 = '' OR principal = $1 ORDER BY id DESC LIMIT $2`, principal, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.AuditRead, error) {
		var r query.AuditRead
		err := row.Scan(&r.At, &r.Principal, &r.Action, &r.PathID)
		r.At = r.At.UTC()
		return r, err
	})
}
