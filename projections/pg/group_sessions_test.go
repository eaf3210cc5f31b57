package pg_test

import (
	"context"
	"testing"

	"github.com/percorso/percorso/domain/workerpath"
)

// Every group session of the generated workload appears once in
// group_sessions with all its participants, its size and its flag.
func TestGroupSessionsView(t *testing.T) {
	f := setup(t)
	want := map[string][3]any{} // group id -> participants, size, outside range
	for _, it := range f.items {
		sd, ok := it.Event.(*workerpath.SessionDelivered)
		if !ok || sd.GroupID == "" {
			continue
		}
		w := want[sd.GroupID]
		n, _ := w[0].(int)
		want[sd.GroupID] = [3]any{n + 1, sd.GroupSize, sd.OutsideGroupRange}
	}
	if len(want) < 3 {
		t.Fatalf("the workload has %d groups: too few to test", len(want))
	}
	rows, err := f.pool.Query(context.Background(), `SELECT group_id::text, participants, group_size, outside_group_range FROM group_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var id string
		var participants int64
		var size int
		var outside bool
		if err := rows.Scan(&id, &participants, &size, &outside); err != nil {
			t.Fatal(err)
		}
		got++
		w, ok := want[id]
		if !ok || w[0] != int(participants) || w[1] != size || w[2] != outside {
			t.Errorf("group %s: %d participants, size %d, outside %v; want %v", id, participants, size, outside, w)
		}
	}
	if got != len(want) {
		t.Errorf("%d groups in the view, want %d", got, len(want))
	}
}
