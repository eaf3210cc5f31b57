package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/eventstore"
)

// TestSizing measures what docs/operations.md sizes from: the bytes one
// stored event takes in the stream (headers included), and the bytes one
// row of each read-model table takes in PostgreSQL, indexes included. The
// bounds only catch a change that would invalidate the figures there; the
// figures themselves are logged (go test -v -run TestSizing).
func TestSizing(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	const paths, perPath = 40, 10
	var ids []string
	for i := range paths {
		st, b, _ := op.do("POST", "/v1/paths", takeInCharge(i, taxCode(t, i), "c", "cig_deroga"))
		if st != http.StatusCreated {
			t.Fatalf("take in charge: %d %v", st, b)
		}
		ids = append(ids, b["path_id"].(string))
	}
	for i := range paths * perPath {
		op.do("POST", "/v1/paths/"+ids[i%paths]+"/sessions",
			fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-%02dT09:00:00+01:00","minutes":30}`, []int{3, 9, 10, 12}[i%4], 1+i%28))
	}
	waitCaughtUp(t, m)
	ctx := context.Background()

	// One stored SessionDelivered: subject, headers and data as the server
	// keeps them.
	stream, err := m.js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := m.pool.QueryRow(ctx, `SELECT max(seq) FROM sessions`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, uint64(seq))
	if err != nil {
		t.Fatal(err)
	}
	hdr := 0
	for k, vs := range msg.Header {
		for _, v := range vs {
			hdr += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := info.State
	perMsg := float64(st.Bytes) / float64(st.Msgs)
	t.Logf("SessionDelivered: subject %d B, headers %d B (%d headers), data %d B, total %d B",
		len(msg.Subject), hdr, len(msg.Header), len(msg.Data), len(msg.Subject)+hdr+len(msg.Data))
	t.Logf("stream: %d messages (events and worker index), %d bytes, %.0f B/message as stored; %d subjects",
		st.Msgs, st.Bytes, perMsg, st.NumSubjects)
	if total := len(msg.Subject) + hdr + len(msg.Data); total < 300 || total > 3000 {
		t.Errorf("a stored SessionDelivered takes %d B: update the sizing in docs/operations.md", total)
	}

	var events int64
	if err := m.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"paths", "sessions", "audit_events"} {
		var rows, bytes int64
		if err := m.pool.QueryRow(ctx, `SELECT count(*), pg_total_relation_size($1::regclass) FROM `+table, table).Scan(&rows, &bytes); err != nil {
			t.Fatal(err)
		}
		per := bytes / max(rows, 1)
		t.Logf("%s: %d rows, %d bytes with indexes and TOAST, %d B/row", table, rows, bytes, per)
		if rows == 0 || per > 16<<10 {
			t.Errorf("%s: %d B/row over %d rows: update the sizing in docs/operations.md", table, per, rows)
		}
	}
	t.Logf("%d events in all", events)
}
