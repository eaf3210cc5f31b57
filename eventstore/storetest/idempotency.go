package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
)

// RunIdempotency checks a command-record store: unknown commands read as
// nil, the first answer recorded is the one every retry gets, and a record
// comes back whole, the offices a replay is authorized by included.
func RunIdempotency(t *testing.T, newIdempotency func(t *testing.T) command.Idempotency) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	i := newIdempotency(t)
	first := command.NewUUID()
	if r, err := i.Get(ctx, first); r != nil || err != nil {
		t.Fatalf("unknown command: %+v, %v; want nil, nil", r, err)
	}
	answer := func(group string) command.Record {
		return command.Record{Digest: "sha256:4f1c", Result: command.Result{
			GroupID: group, Versions: map[string]uint64{"a": 17, "b": 18}, Offices: []string{"BO01", "MO02"}}}
	}
	want := answer("g-1")
	rec := answer("g-1")
	if err := i.Put(ctx, first, rec); err != nil {
		t.Fatal(err)
	}
	// The caller's copy changing afterwards does not change the record.
	rec.Result.Versions["a"] = 99
	rec.Result.Offices[0] = "PR01"
	if err := i.Put(ctx, first, answer("g-2")); err != nil {
		t.Fatalf("a second answer for the same command: %v, want it ignored", err)
	}
	got, err := i.Get(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("got %+v, want the first answer %+v", got, want)
	}
	other := command.NewUUID()
	single := command.Record{Digest: "d", Result: command.Result{PathID: command.NewUUID(), Version: 3, Offices: []string{"FE01"}}}
	if err := i.Put(ctx, other, single); err != nil {
		t.Fatal(err)
	}
	if got, err := i.Get(ctx, other); err != nil || got == nil || !reflect.DeepEqual(*got, single) {
		t.Fatalf("second command: got %+v, %v; want %+v", got, err, single)
	}
}
