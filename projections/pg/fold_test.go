package pg

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/percorso/percorso/projections/pgtest"
)

// The bulk writes name their columns in Go (pathRow's JSON names, the COPY
// column lists, the upsert's SET list); the migrations define them in SQL.
// A migration that adds, drops or reorders a column of paths, sessions or
// audit_events must change the Go side with it, or rows would be written
// with the column missing (NULL, or its default lost).
func TestBulkWritesNameEveryColumn(t *testing.T) {
	ctx := context.Background()
	pool, err := Connect(ctx, pgtest.New(t), LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	columns := func(table string) []string {
		rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, LiveSchema, table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	jsonNames := func(v any) []string {
		var out []string
		for f := range reflect.TypeOf(v).Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, name)
		}
		return out
	}

	paths := columns("paths")
	if got := jsonNames(pathRow{}); !slices.Equal(got, paths) {
		t.Errorf("pathRow names %v,\nthe paths table has %v", got, paths)
	}
	var set []string
	for part := range strings.SplitSeq(pathsUpdate, ", ") {
		col, _, _ := strings.Cut(part, " = ")
		set = append(set, col)
	}
	if !slices.Equal(set, paths[1:]) || paths[0] != "path_id" {
		t.Errorf("the upsert sets %v, want every column of paths but its key: %v", set, paths[1:])
	}
	var selected []string
	for part := range strings.SplitSeq(pathsSelect, ",") {
		col, _, _ := strings.Cut(strings.TrimSpace(part), "::")
		selected = append(selected, col)
	}
	if !slices.Equal(selected, paths) {
		t.Errorf("a paths row is read as %v, the table has %v", selected, paths)
	}
	if got := columns("sessions"); !slices.Equal(sessionColumns, got) || !slices.Equal(jsonNames(sessionRow{}), got) {
		t.Errorf("sessions are copied as %v (rows named %v), the table has %v", sessionColumns, jsonNames(sessionRow{}), got)
	}
	if got := columns("audit_events"); !slices.Equal(auditColumns, got) || !slices.Equal(jsonNames(auditRow{}), got) {
		t.Errorf("audit rows are copied as %v (rows named %v), the table has %v", auditColumns, jsonNames(auditRow{}), got)
	}
}
