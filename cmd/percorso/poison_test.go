package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
)

// TestPoisonEventStopsUntilSkipped: an event the projector cannot apply
// stops the read models (not ready, recorded, nothing after it applied)
// until an admin skips it by its sequence; then everything after it lands.
func TestPoisonEventStopsUntilSkipped(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}

	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	id := command.NewUUID()
	bad := nats.NewMsg(eventstore.EventSubject(id))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": command.NewUUID(), "ce-type": "SomethingUnknown",
		"ce-source": "/percorso", "ce-subject": id, "ce-time": time.Now().UTC().Format(time.RFC3339Nano), "ce-schemaversion": "1"} {
		bad.Header.Set(k, v)
	}
	bad.Data = []byte(`{}`)
	ack, err := js.PublishMsg(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}

	_, b, _ := op.do("POST", "/v1/paths", takeInCharge(9, taxCode(t, 9), "a", "cig_deroga"))
	p := "/v1/paths/" + b["path_id"].(string)
	if st, body, _ := op.do("GET", p+"?min_version=1", ""); st != 504 {
		t.Fatalf("a path after the poison event must not be visible: %d %v", st, body)
	}
	if st, body, _ := op.do("GET", "/readyz", ""); st != 503 {
		t.Errorf("readyz with a poisoned projection: %d %v", st, body)
	}
	var list []any
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(list) == 0; time.Sleep(50 * time.Millisecond) {
		_, body, _ := admin.do("GET", "/v1/admin/projections/poison", "")
		list, _ = body["poison"].([]any)
	}
	if len(list) != 1 || list[0].(map[string]any)["seq"] != float64(ack.Sequence) {
		t.Fatalf("recorded poison = %v, want seq %d", list, ack.Sequence)
	}
	if st, _, _ := op.do("POST", fmt.Sprintf("/v1/admin/projections/poison/%d/skip", ack.Sequence), ""); st != 403 {
		t.Errorf("an operator skipping: %d", st)
	}
	if st, body, _ := admin.do("POST", fmt.Sprintf("/v1/admin/projections/poison/%d/skip", ack.Sequence+1), ""); st != 404 {
		t.Errorf("skipping a sequence that is not poison: %d %v", st, body)
	}
	if st, body, _ := admin.do("POST", fmt.Sprintf("/v1/admin/projections/poison/%d/skip", ack.Sequence), ""); st != 200 {
		t.Fatalf("skip: %d %v", st, body)
	}
	if st, body, _ := op.do("GET", p+"?min_version=1", ""); st != 200 {
		t.Fatalf("after the skip the path must land: %d %v", st, body)
	}
	_, body, _ := admin.do("GET", "/v1/admin/projections/poison", "")
	if rec := body["poison"].([]any)[0].(map[string]any); rec["skipped_by"] != "dev-admin" {
		t.Errorf("skip not on record: %v", rec)
	}
}
