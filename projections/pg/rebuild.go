package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Rebuild is a fresh set of read models being filled beside the live one.
type Rebuild struct {
	live *pgxpool.Pool
	Next *pgxpool.Pool
	*Projector
}

// StartRebuild creates an empty, migrated schema for the new set. A
// leftover from an interrupted rebuild is dropped first.
func StartRebuild(ctx context.Context, live *pgxpool.Pool, url string) (*Rebuild, error) {
	if _, err := live.Exec(ctx, `DROP SCHEMA IF EXISTS `+rebuildSchema+` CASCADE`); err != nil {
		return nil, err
	}
	next, err := Connect(ctx, url, rebuildSchema)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, next); err != nil {
		next.Close()
		return nil, err
	}
	// Admins' skips of poison events hold for the replay too.
	if _, err := next.Exec(ctx, `INSERT INTO projection_poison SELECT * FROM `+LiveSchema+`.projection_poison WHERE skipped_at IS NOT NULL`); err != nil {
		next.Close()
		return nil, err
	}
	return &Rebuild{live: live, Next: next, Projector: NewProjector(next)}, nil
}

// Close releases the new set's pool (after Switch, or to abandon it).
func (r *Rebuild) Close() { r.Next.Close() }

// Counts of a set of read models, compared before the switch.
type Counts struct {
	Events     int64 `json:"events"`
	Paths      int64 `json:"paths"`
	Sessions   int64 `json:"sessions"`
	Checkpoint int64 `json:"checkpoint"`
}

func counts(ctx context.Context, q pgx.Tx, schema string) (Counts, error) {
	var c Counts
	s := pgx.Identifier{schema}.Sanitize()
	err := q.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+s+`.audit_events), (SELECT count(*) FROM `+s+`.paths),
		(SELECT count(*) FROM `+s+`.sessions), COALESCE((SELECT seq FROM `+s+`.projection_checkpoints WHERE name = $1), 0)`,
		ProjectorName).Scan(&c.Events, &c.Paths, &c.Sessions, &c.Checkpoint)
	return c, err
}

// ErrMismatch: the new set does not hold what the stream holds.
var ErrMismatch = errors.New("pg: rebuilt read models do not match the stream")

// Switch makes the new set live. It locks the live checkpoint (so the live
// projector pauses), lets catchUp apply to the new set every event up to the
// live checkpoint, checks the new set holds exactly streamEvents events up to
// there, carries over what is not derived from events (auditors' reads,
// poison records), and swaps the schemas — all in one transaction. The old
// set is dropped in it too.
func (r *Rebuild) Switch(ctx context.Context, catchUp func(ctx context.Context, upTo uint64) error, streamEvents func(ctx context.Context, upTo uint64) (int64, error)) (Counts, error) {
	var got Counts
	err := pgx.BeginFunc(ctx, r.live, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE `+LiveSchema+`.projection_checkpoints IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		live, err := counts(ctx, tx, LiveSchema)
		if err != nil {
			return err
		}
		if err := catchUp(ctx, uint64(live.Checkpoint)); err != nil {
			return err
		}
		if got, err = counts(ctx, tx, rebuildSchema); err != nil {
			return err
		}
		want, err := streamEvents(ctx, uint64(got.Checkpoint))
		if err != nil {
			return err
		}
		if got.Checkpoint < live.Checkpoint || got.Events != want {
			return fmt.Errorf("%w: %d events up to %d, the stream has %d (live set at %d)", ErrMismatch, got.Events, got.Checkpoint, want, live.Checkpoint)
		}
		for _, stmt := range []string{
			`INSERT INTO ` + rebuildSchema + `.audit_reads (at, principal, action, path_id) SELECT at, principal, action, path_id FROM ` + LiveSchema + `.audit_reads ORDER BY id`,
			`INSERT INTO ` + rebuildSchema + `.projection_poison SELECT * FROM ` + LiveSchema + `.projection_poison ON CONFLICT (name, seq) DO UPDATE
				SET skipped_at = EXCLUDED.skipped_at, skipped_by = EXCLUDED.skipped_by`,
			`ALTER SCHEMA ` + LiveSchema + ` RENAME TO ` + retiredSchema,
			`ALTER SCHEMA ` + rebuildSchema + ` RENAME TO ` + LiveSchema,
			`DROP SCHEMA ` + retiredSchema + ` CASCADE`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	return got, err
}
