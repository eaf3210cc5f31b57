// Package pgtest gives tests a real, throwaway PostgreSQL database.
//
// Read models are SQL; only a real server shows whether migrations, upserts
// and checkpoints behave, so tests get one instead of a fake. Each call to New
// creates a fresh database on a shared server and drops it when the test
// ends, so packages and tests running in parallel never see each other's
// rows, and a run leaves nothing behind.
//
// The server is the one named by PERCORSO_TEST_PG_URL (an admin URL: its user
// must be allowed to create databases), else the machine's local cluster on
// 127.0.0.1:5432 as user postgres, then as root. Without a server the test
// fails rather than skips: a suite that silently skips its database tests
// would report green while testing nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points tests at a specific server.
const EnvURL = "PERCORSO_TEST_PG_URL"

// Prefix starts the name of every database New creates, so leftovers from
// an interrupted run are easy to spot and drop.
const Prefix = "percorso_test_"

var defaultURLs = []string{
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"postgres://root@127.0.0.1:5432/postgres?sslmode=disable",
}

// admin remembers the first server that answered, so a package with many
// tests probes the candidates once.
var admin struct {
	mu  sync.Mutex
	url string
}

// New creates an empty database for t and returns its URL. The database is
// dropped, with any connections still open to it, when t and its subtests
// finish. It calls t.Fatalf when no server can be reached.
func New(t testing.TB) string {
	t.Helper()
	adminURL := adminURL(t)

	name := Prefix + randomSuffix(t)
	ident := pgx.Identifier{name}.Sanitize()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(adminURL), err)
	}
	defer conn.Close(ctx)
	// template0 with an explicit encoding and C locale: the same collation
	// the embedded server uses, and a template nobody can be connected to,
	// which CREATE DATABASE would otherwise refuse under parallel tests.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err) // adminURL already parsed once
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func adminURL(t testing.TB) string {
	t.Helper()
	admin.mu.Lock()
	defer admin.mu.Unlock()
	if admin.url != "" {
		return admin.url
	}

	candidates := defaultURLs
	if env := os.Getenv(EnvURL); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			t.Fatalf("pgtest: %s must be a postgres:// URL of a user allowed to create databases", EnvURL)
		}
		candidates = []string{env}
	}

	var failures []string
	for _, c := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ping(ctx, c)
		cancel()
		if err == nil {
			admin.url = c
			return c
		}
		failures = append(failures, fmt.Sprintf("%s: %v", redact(c), err))
	}
	t.Fatalf("pgtest: no PostgreSQL server to create test databases on (%s). "+
		"Start the local cluster with `pg_ctlcluster --skip-systemctl-redirect 15 main start` "+
		"(see `pg_lsclusters` for the version), or set %s to the URL of a user allowed to create databases.",
		strings.Join(failures, "; "), EnvURL)
	return ""
}

func ping(ctx context.Context, u string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var canCreate bool
	if err := conn.QueryRow(ctx, "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&canCreate); err != nil {
		return err
	}
	if !canCreate {
		return errors.New("user may not create databases")
	}
	return nil
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return hex.EncodeToString(b)
}

// redact keeps passwords of PERCORSO_TEST_PG_URL out of test output.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Queryer is what Dump reads through (a pool or a connection).
type Queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Dump renders the read models that events determine (paths, sessions,
// audit events), row by row in a fixed order, so that two sets — say, one
// that survived crashes and a fresh replay — can be compared exactly.
func Dump(t testing.TB, db Queryer) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT coalesce(json_agg(p ORDER BY path_id), '[]') FROM paths p`,
		`SELECT coalesce(json_agg(s ORDER BY seq), '[]') FROM sessions s`,
		`SELECT coalesce(json_agg(a ORDER BY seq), '[]') FROM audit_events a`,
		// The indexes too: a rebuild builds some of them at the end.
		`SELECT coalesce(json_agg(indexname || ': ' || regexp_replace(indexdef, ' ON \S+ ', ' ON ') ORDER BY indexname), '[]')
			FROM pg_indexes WHERE schemaname = current_schema()`,
	} {
		var s string
		if err := db.QueryRow(context.Background(), q).Scan(&s); err != nil {
			t.Fatalf("pgtest: %s: %v", q, err)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}
