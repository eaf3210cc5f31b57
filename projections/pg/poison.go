package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/percorso/percorso/domain/query"
)

// RecordPoison keeps the event that stopped the projection, once.
func (p *Projector) RecordPoison(ctx context.Context, seq uint64, cause error) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO projection_poison (name, seq, error) VALUES ($1, $2, $3)
		ON CONFLICT (name, seq) DO NOTHING`, p.name, int64(seq), cause.Error())
	return err
}

// Skipped reports whether an admin allowed the projection past seq. A skip
// holds for every layout of partitions: an event belongs to one partition
// of each, so the skip an admin gave it under one layout — say the live
// partitions', carried over into a rebuild, which replays the whole stream
// as one — is the projection's decision on that event.
func (p *Projector) Skipped(ctx context.Context, seq uint64) (bool, error) {
	var skipped bool
	err := p.pool.QueryRow(ctx, `SELECT COALESCE(bool_or(skipped_at IS NOT NULL), false) FROM projection_poison
		WHERE (name = $1 OR starts_with(name, $1 || '/')) AND seq = $2`, ProjectorName, int64(seq)).Scan(&skipped)
	return skipped, err
}

// Poisoned lists the recorded poison events.
func (p *Projector) Poisoned(ctx context.Context) ([]query.Poison, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, seq, error, recorded_at, skipped_at, COALESCE(skipped_by, '')
		FROM projection_poison ORDER BY recorded_at`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Poison, error) {
		var x query.Poison
		var seq int64
		err := row.Scan(&x.Projection, &seq, &x.Error, &x.RecordedAt, &x.SkippedAt, &x.SkippedBy)
		x.Seq = uint64(seq)
		return x, err
	})
}

// Skip lets the projection go past a recorded poison event: the event is
// marked skipped, by whom and when. The projection, which is waiting on it,
// then moves its checkpoint past it (Pass). Only recorded, unskipped poison
// events can be skipped.
func (p *Projector) Skip(ctx context.Context, seq uint64, by string) error {
	tag, err := p.pool.Exec(ctx, `UPDATE projection_poison SET skipped_at = now(), skipped_by = $3
		WHERE name = $1 AND seq = $2 AND skipped_at IS NULL`, p.name, int64(seq), by)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return query.ErrNotFound
	}
	return nil
}

// Pass moves the checkpoint past a skipped event.
func (p *Projector) Pass(ctx context.Context, seq uint64) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, seq, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (name) DO UPDATE SET seq = GREATEST(projection_checkpoints.seq, EXCLUDED.seq), updated_at = now()`, p.name, int64(seq))
	return err
}
