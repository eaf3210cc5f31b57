package pg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// migratedAt is the live read models' schema, migrated, in the database
// at url.
func migratedAt(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Connect(context.Background(), url, pg.LiveSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// owned is what a partition's runner hands its projector: the partition's
// events, and the others' as bare positions.
func owned(items []pg.Item, part pg.Partition) []pg.Item {
	out := make([]pg.Item, len(items))
	for i, it := range items {
		out[i] = it
		if !part.Owns(it.Env.PathID) {
			out[i].Event = nil
		}
	}
	return out
}

// TestSwitchUnderProjectorBehindAnotherLayout: a projector of the whole
// stream starts behind a layout of two partitions, so it would resume
// from their checkpoints; before its first batch a rebuild switches in
// read models holding fewer events. How far the other layout had got
// holds no more: the projector fills the switched-in set from its own
// checkpoint, not from the partitions' of the set before.
func TestSwitchUnderProjectorBehindAnotherLayout(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	pool := migratedAt(t, url)
	items := workload(3)
	ahead, switched := len(items)*2/3, len(items)/3
	for _, part := range []pg.Partition{{Index: 0, Count: 2}, {Index: 1, Count: 2}} {
		if err := pg.NewPartitionProjector(pool, part).Apply(ctx, owned(items[:ahead], part)); err != nil {
			t.Fatal(err)
		}
	}
	whole := pg.NewProjector(pool)
	if cp, err := whole.Checkpoint(ctx); err != nil || cp != uint64(ahead) {
		t.Fatalf("the whole stream's projector resumes from %d (%v), want the partitions' %d", cp, err, ahead)
	}

	rb, err := pg.StartRebuild(ctx, pool, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if err := rb.Projector.Apply(ctx, items[:switched]); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Switch(ctx,
		func(context.Context, uint64) error { return nil },
		func(_ context.Context, upTo uint64) (int64, error) { return int64(upTo), nil }); err != nil {
		t.Fatalf("switch: %v", err)
	}
	if err := whole.Apply(ctx, items[switched:]); err != nil {
		t.Fatal(err)
	}

	want := migratedAt(t, pgtest.New(t))
	if err := pg.NewProjector(want).Apply(ctx, items); err != nil {
		t.Fatal(err)
	}
	if got, exp := pgtest.Dump(t, pool), pgtest.Dump(t, want); got != exp {
		t.Fatal("the switched-in read models were filled from the other layout's checkpoints, not their own")
	}
}
