package pg

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pgtest"
)

// migrated is a fresh database with the read models' schema.
func migrated(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := Connect(ctx, pgtest.New(t), LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// The bulk writes name their columns in Go (pathRow's JSON names, the COPY
// column lists, the upsert's SET list); the migrations define them in SQL.
// A migration that adds, drops or reorders a column of paths, sessions or
// audit_events must change the Go side with it, or rows would be written
// with the column missing (NULL, or its default lost).
func TestBulkWritesNameEveryColumn(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
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
	if !slices.Equal(pathsWritten, paths) {
		t.Errorf("the upsert writes %v, the paths table has %v", pathsWritten, paths)
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

// During a rolling update the projectors of the release before write into
// read models a newer release has migrated. A column it added, with a
// default, keeps the default in the rows the older projectors write.
func TestOlderProjectorKeepsNewColumnsDefaults(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	if _, err := pool.Exec(ctx, `ALTER TABLE paths ADD COLUMN flagged boolean NOT NULL DEFAULT false`); err != nil {
		t.Fatal(err)
	}
	taken, meta := testPath()
	path := meta.PathID
	refusal := &workerpath.RefusalReported{Meta: meta, Kind: workerpath.RefusalConvocation, At: testAt}
	items := []Item{testItem(t, 1, taken), testItem(t, 2, refusal)}
	if err := NewProjector(pool).Apply(ctx, items[:1]); err != nil {
		t.Fatalf("inserting a path: %v", err)
	}
	if err := NewProjector(pool).Apply(ctx, items[1:]); err != nil {
		t.Fatalf("updating a path: %v", err)
	}
	var flagged bool
	var refusals int
	if err := pool.QueryRow(ctx, `SELECT flagged, refusals FROM paths WHERE path_id = $1`, path).Scan(&flagged, &refusals); err != nil {
		t.Fatal(err)
	}
	if flagged || refusals != 1 {
		t.Errorf("flagged %v, refusals %d; want the column's default (false) and 1", flagged, refusals)
	}
}

// A read model the database's set-up has lost (a table renamed away, a
// privilege revoked) fails every event alike: the projector retries, and
// blames no event as poison; once mended, the batch applies.
func TestSetUpFaultsAreNotPoison(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	taken, _ := testPath()
	items := []Item{testItem(t, 1, taken)}
	if _, err := pool.Exec(ctx, `ALTER TABLE audit_events RENAME TO audit_events_away`); err != nil {
		t.Fatal(err)
	}
	p := NewProjector(pool)
	err := p.Apply(ctx, items)
	var poison *PoisonError
	if err == nil || errors.As(err, &poison) {
		t.Fatalf("applying without audit_events: %v, want an error that is not poison", err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE audit_events_away RENAME TO audit_events`); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, items); err != nil {
		t.Fatalf("applying once mended: %v", err)
	}
}

// A session whose numbers do not fit their columns — a service outside
// the catalogue, minutes past an integer — is poison, not written wrapped
// nor retried forever; the events before it take effect.
func TestSessionOutOfRangeIsPoison(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	for i, bad := range []func(*workerpath.SessionDelivered){
		func(s *workerpath.SessionDelivered) { s.Service = 70000 },
		func(s *workerpath.SessionDelivered) { s.Service = 0 },
		func(s *workerpath.SessionDelivered) { s.ActualMinutes = 1 << 40 },
		func(s *workerpath.SessionDelivered) { s.CreditedMinutes = -1 },
	} {
		taken, meta := testPath()
		s := &workerpath.SessionDelivered{Meta: meta, Service: 3, DeliveredAt: testAt, StandardMinutes: 60, CreditedMinutes: 60, ActualMinutes: 60}
		bad(s)
		first := uint64(2*i + 1)
		err := NewProjector(pool).Apply(ctx, []Item{testItem(t, first, taken), testItem(t, first+1, s)})
		var poison *PoisonError
		if !errors.As(err, &poison) || poison.Seq != first+1 {
			t.Errorf("case %d: %v, want event %d as poison", i, err, first+1)
		}
	}
	var paths int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM paths`).Scan(&paths); err != nil {
		t.Fatal(err)
	}
	if paths != 4 {
		t.Errorf("%d paths taken in charge, want the 4 before each poison", paths)
	}
}

// testAt is when the fold tests' events happen and are recorded.
var testAt = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// testPath is a new path's first event and the meta of its next ones.
func testPath() (*workerpath.TakenInCharge, workerpath.Meta) {
	meta := workerpath.Meta{PathID: uuid.NewString(), Office: "BO01", Operator: "op", RecordedAt: testAt}
	return &workerpath.TakenInCharge{Meta: meta, WorkerRef: "w1", Category: "a", TakenAt: testAt,
		Worker:  workerpath.Person{TaxCode: "RSSMRA80A01H501U", GivenName: "Mario", FamilyName: "Rossi"},
		Support: workerpath.Support{Kind: workerpath.SupportCIG, From: workerpath.DateOf(testAt)}}, meta
}

// testItem is an event as the runner hands it to the projector.
func testItem(t *testing.T, seq uint64, ev workerpath.Event) Item {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return Item{Env: &eventstore.Envelope{Seq: seq, ID: uuid.NewString(), Type: ev.EventType(), SchemaVersion: 1,
		PathID: ev.Header().PathID, Time: testAt, Actor: "op", CommandID: "c",
		CorrelationID: "c", Hash: "h", Data: data}, Event: ev}
}

// An event the fold refuses (here a second TakenInCharge of a path) is
// poison alone: the batch's events before it take effect, the checkpoint
// stops just before it, and nothing after it is applied.
func TestPoisonInBatchKeepsTheEventsBefore(t *testing.T) {
	ctx := context.Background()
	pool := migrated(t)
	taken, meta := testPath()
	path := meta.PathID
	refusal := &workerpath.RefusalReported{Meta: meta, Kind: workerpath.RefusalConvocation, At: testAt}
	p := NewProjector(pool)
	err := p.Apply(ctx, []Item{testItem(t, 1, taken), testItem(t, 2, refusal), testItem(t, 3, taken), testItem(t, 4, refusal)})
	var poison *PoisonError
	if !errors.As(err, &poison) || poison.Seq != 3 {
		t.Fatalf("applying the batch: %v, want event 3 as poison", err)
	}
	var refusals, events int
	var cp int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT refusals FROM paths WHERE path_id = $1), (SELECT count(*) FROM audit_events),
		(SELECT seq FROM projection_checkpoints WHERE name = $2)`, path, ProjectorName).Scan(&refusals, &events, &cp); err != nil {
		t.Fatal(err)
	}
	if refusals != 1 || events != 2 || cp != 2 {
		t.Errorf("after the poison: %d refusals, %d audit rows, checkpoint %d; want 1, 2, 2", refusals, events, cp)
	}
}
