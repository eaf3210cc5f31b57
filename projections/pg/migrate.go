// Package pg holds percorso's PostgreSQL read models: the schema (embedded,
// versioned migrations), the projector that applies events to it in
// batches with its checkpoint in the same transaction, and the queries the
// APIs serve from it.
package pg

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the embedded migrations not yet applied, in order, with
// goose: each in its own transaction, recorded in goose_db_version of the
// pool's schema, under a session lock so instances starting together do
// not race.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("pg: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("pg: migrating: %w", err)
	}
	return nil
}
