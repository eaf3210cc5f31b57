package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Rebuild is a fresh set of read models being filled beside the live one.
// Nobody reads it until it is switched in, so it is filled the fast way:
// commits that do not wait for the disk, only the indexes that keys and
// uniqueness need, and sessions that leave their path's row alone; Finish
// completes the rest in bulk once the replay has caught up.
type Rebuild struct {
	live *pgxpool.Pool
	Next *pgxpool.Pool
	*Projector
	deferred []string // definitions of the indexes left out while replaying
}

// StartRebuild creates an empty, migrated schema for the new set. A
// leftover from an interrupted rebuild is dropped first.
func StartRebuild(ctx context.Context, live *pgxpool.Pool, url string) (*Rebuild, error) {
	if _, err := live.Exec(ctx, `DROP SCHEMA IF EXISTS `+rebuildSchema+` CASCADE`); err != nil {
		return nil, err
	}
	// A crash of a rebuild loses nothing: the next one starts over from
	// the stream. So the new set's commits do not wait for the disk; the
	// switch commits through the live pool, durably, and its WAL flush
	// carries every commit before it.
	next, err := connect(ctx, url, rebuildSchema, map[string]string{"synchronous_commit": "off"})
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, next); err != nil {
		next.Close()
		return nil, err
	}
	// Indexes are built once at the end rather than kept up to date row by
	// row; those behind constraints (keys, uniqueness) stay: the projector
	// relies on them.
	rows, err := next.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = $1
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
		ORDER BY indexname`, rebuildSchema)
	if err != nil {
		next.Close()
		return nil, err
	}
	var names, deferred []string
	var name, def string
	if _, err := pgx.ForEachRow(rows, []any{&name, &def}, func() error {
		names, deferred = append(names, name), append(deferred, def)
		return nil
	}); err != nil {
		next.Close()
		return nil, err
	}
	for _, n := range names {
		if _, err := next.Exec(ctx, `DROP INDEX `+pgx.Identifier{rebuildSchema, n}.Sanitize()); err != nil {
			next.Close()
			return nil, err
		}
	}
	// The API role may use the new set the moment it is switched in.
	if err := GrantReader(ctx, next); err != nil {
		next.Close()
		return nil, fmt.Errorf("granting %s on the new read models: %w", ReaderRole, err)
	}
	// Admins' skips of poison events hold for the replay too.
	if _, err := next.Exec(ctx, `INSERT INTO projection_poison SELECT * FROM `+LiveSchema+`.projection_poison WHERE skipped_at IS NOT NULL`); err != nil {
		next.Close()
		return nil, err
	}
	proj := NewProjector(next)
	proj.deferTotals = true
	return &Rebuild{live: live, Next: next, Projector: proj, deferred: deferred}, nil
}

// Finish completes what the replay left for the end, once the new set has
// caught up: each path's session totals and version, then the indexes.
// Batches applied afterwards keep them up to date as the live set does.
func (r *Rebuild) Finish(ctx context.Context) error {
	if err := r.finishTotals(ctx); err != nil {
		return err
	}
	return r.BuildIndexes(ctx)
}

// finishTotals computes, for every path, what sessions add to its row
// while the replay defers it: services delivered and credited minutes by
// service, the total, and the version (the sequence of its last event).
func (p *Projector) finishTotals(ctx context.Context) error {
	p.applying.Lock()
	defer p.applying.Unlock()
	p.mu.Lock()
	deferred := p.deferTotals
	p.mu.Unlock()
	if !deferred {
		return nil
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			`WITH s AS (SELECT path_id, service, count(*) AS delivered, sum(credited_minutes) AS credited
					FROM sessions GROUP BY path_id, service),
				t AS (SELECT path_id, jsonb_object_agg(service::text, jsonb_build_object('delivered', delivered, 'credited_minutes', credited)) AS services,
					sum(credited) AS total FROM s GROUP BY path_id)
			UPDATE paths p SET services = t.services, credited_minutes_total = t.total FROM t WHERE p.path_id = t.path_id`,
			`UPDATE paths p SET version = v.seq FROM (SELECT path_id, max(seq) AS seq FROM audit_events GROUP BY path_id) v
			WHERE p.path_id = v.path_id AND p.version <> v.seq`,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("completing the paths' session totals: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.deferTotals = false
	p.mu.Unlock()
	return nil
}

// BuildIndexes creates the indexes left out while replaying, once the new
// set has caught up, two at a time; writes to it wait meanwhile.
func (r *Rebuild) BuildIndexes(ctx context.Context) error {
	defs := r.deferred
	if len(defs) == 0 {
		return nil
	}
	work := make(chan string, len(defs))
	for _, def := range defs {
		work <- def
	}
	close(work)
	errs := make(chan error, indexBuilders)
	for range indexBuilders {
		go func() {
			errs <- r.Next.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
				if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '256MB'`); err != nil {
					return err
				}
				defer conn.Exec(context.WithoutCancel(ctx), `RESET maintenance_work_mem`)
				for def := range work {
					// A builder that failed leaves the others' indexes built:
					// a second attempt skips them.
					def = strings.Replace(def, "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
					def = strings.Replace(def, "CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ", 1)
					if _, err := conn.Exec(ctx, def); err != nil {
						return fmt.Errorf("building index: %w", err)
					}
				}
				return nil
			})
		}()
	}
	var err error
	for range indexBuilders {
		err = errors.Join(err, <-errs)
	}
	if err == nil {
		r.deferred = nil
	}
	return err
}

// indexBuilders is how many indexes are built at once.
const indexBuilders = 2

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

// Switch makes the new set live. It finishes the new set if that is not
// done yet (Finish), then locks the live checkpoint (so the live
// projector pauses), lets catchUp apply to the new set every event up to the
// live checkpoint, checks the new set holds exactly streamEvents events up to
// there, carries over what is not derived from events (auditors' reads,
// poison records), and swaps the schemas — all in one transaction. The old
// set is dropped in it too.
func (r *Rebuild) Switch(ctx context.Context, catchUp func(ctx context.Context, upTo uint64) error, streamEvents func(ctx context.Context, upTo uint64) (int64, error)) (Counts, error) {
	if err := r.Finish(ctx); err != nil {
		return Counts{}, err
	}
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
		// Events an admin skipped as poison have no row; the stream has them.
		var skipped int64
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT p.seq) FROM `+rebuildSchema+`.projection_poison p
			WHERE p.skipped_at IS NOT NULL AND p.seq <= $1
			AND NOT EXISTS (SELECT 1 FROM `+rebuildSchema+`.audit_events a WHERE a.seq = p.seq)`, got.Checkpoint).Scan(&skipped); err != nil {
			return err
		}
		if got.Checkpoint < live.Checkpoint || got.Events+skipped != want {
			return fmt.Errorf("%w: %d events up to %d (and %d skipped), the stream has %d (live set at %d)", ErrMismatch, got.Events, got.Checkpoint, skipped, want, live.Checkpoint)
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
