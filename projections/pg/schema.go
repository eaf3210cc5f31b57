package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The read models live in their own schema. A rebuild fills a second one
// while the first keeps serving, then swaps their names in one transaction:
// queries name tables without a schema and find whichever set is live.
const (
	LiveSchema    = "percorso_rm"
	rebuildSchema = "percorso_rm_next"
	retiredSchema = "percorso_rm_old"
)

// Connect opens a pool whose unqualified table names resolve in schema,
// creating the schema if needed.
func Connect(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	return connect(ctx, url, schema, nil)
}

func connect(ctx context.Context, url, schema string, params map[string]string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	// Statements are described, not prepared: a rebuild swaps the tables
	// under the same names, and a prepared plan would keep the old ones.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// ReaderRole is the PostgreSQL role of the API instances in a
// least-privilege deployment (deploy/postgres/bootstrap.sql).
const ReaderRole = "percorso_reader"

// GrantReader gives the API role, where it exists, reading on the pool's
// schema and exactly the writes the API makes: auditors' reads and admins'
// skips of poison events. Default privileges (bootstrap.sql) cover reading
// tables created later; the per-table writes are granted by whoever
// creates the tables: a projector when it migrates, a rebuild on its new
// set before switching it in. Owners starting together take turns:
// concurrent grants on one table fail with "tuple concurrently updated".
func GrantReader(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('percorso grants'))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = '`+ReaderRole+`') THEN
		EXECUTE format('GRANT USAGE ON SCHEMA %I TO `+ReaderRole+`', current_schema());
		EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO `+ReaderRole+`', current_schema());
		GRANT INSERT ON audit_reads TO `+ReaderRole+`;
		GRANT USAGE ON SEQUENCE audit_reads_id_seq TO `+ReaderRole+`;
		GRANT UPDATE (skipped_at, skipped_by) ON projection_poison TO `+ReaderRole+`;
	END IF;
END $$`)
		return err
	})
}
