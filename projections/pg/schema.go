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
