package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore"
)

func cli(t *testing.T, m *Main, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	full := append([]string{args[0], "--nats-url", m.NATSURL(), "--data-dir", m.Config.DataDir}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, full, &out, &errw)
	return out.String() + errw.String(), err
}

// TestCLIHistoryVerifyForgery: the auditors' CLI reads a worker's history,
// verifies the stream, and names exactly the path and event of a forged
// message published past the API.
func TestCLIHistoryVerifyForgery(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	tax := taxCode(t, 5)
	var ids []string
	for i := range 3 {
		_, b, _ := op.do("POST", "/v1/paths", takeInCharge(5+i, taxCode(t, 5+i), "a", "cig_deroga"))
		ids = append(ids, b["path_id"].(string))
		if st, body, _ := op.do("POST", "/v1/paths/"+ids[i]+"/sessions", `{"service":1,"delivered_at":"2010-02-02T09:00:00+01:00","minutes":20}`); st != 201 {
			t.Fatalf("session: %d %v", st, body)
		}
	}

	out, err := cli(t, m, "history", tax)
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	for _, want := range []string{"path " + ids[0], "TakenInCharge", "SessionDelivered", "service=1", tax} {
		if !strings.Contains(out, want) {
			t.Errorf("history output lacks %q:\n%s", want, out)
		}
	}
	if out, err := cli(t, m, "verify", "--all"); err != nil || !strings.Contains(out, "OK") || !strings.Contains(out, "6 events on 3 paths") {
		t.Fatalf("verify --all on a clean stream: %v\n%s", err, out)
	}

	// Forge: a message on path 1 that claims the right predecessor but
	// whose data was changed after hashing.
	nc, err := nats.Connect(m.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, _ := js.Stream(context.Background(), eventstore.StreamName)
	last, err := s.GetLastMsgForSubject(context.Background(), eventstore.EventSubject(ids[1]))
	if err != nil {
		t.Fatal(err)
	}
	forged := nats.NewMsg(last.Subject)
	for k, v := range last.Header {
		forged.Header[k] = v
	}
	// Drop what the server added on the way out, and the original
	// expectation, so only the data is forged.
	for _, h := range []string{jetstream.ExpectedLastSubjSeqHeader, "Nats-Sequence", "Nats-Stream", "Nats-Subject", "Nats-Time-Stamp"} {
		forged.Header.Del(h)
	}
	fid := command.NewUUID()
	forged.Header.Set(eventstore.HdrID, fid)
	forged.Header.Set(eventstore.HdrMsgID, fid)
	forged.Header.Set(eventstore.HdrPrevSeq, strconv.FormatUint(last.Sequence, 10))
	forged.Header.Set(eventstore.HdrPrevHash, last.Header.Get(eventstore.HdrHash))
	forged.Data = bytes.Replace(last.Data, []byte(`"credited_minutes":30`), []byte(`"credited_minutes":3000`), 1)
	ack, err := js.PublishMsg(context.Background(), forged)
	if err != nil {
		t.Fatal(err)
	}

	out, err = cli(t, m, "verify", "--all")
	if !errors.Is(err, errFound) {
		t.Fatalf("verify --all after forgery: err %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "path "+ids[1]) || !strings.Contains(lines[1], "seq "+strconv.FormatUint(ack.Sequence, 10)) ||
		!strings.Contains(lines[1], fid) || !strings.Contains(lines[1], "hash mismatch") {
		t.Errorf("report should name exactly path %s event %s at %d:\n%s", ids[1], fid, ack.Sequence, out)
	}
	if _, err := cli(t, m, "verify", ids[0]); err != nil {
		t.Errorf("an untouched path must still verify: %v", err)
	}
	if out, err := cli(t, m, "verify", ids[1]); !errors.Is(err, errFound) || !strings.Contains(out, "BROKEN") {
		t.Errorf("verify of the forged path: %v\n%s", err, out)
	}

	// Hash chains need no key: from a directory without master.key a path
	// id and --all verify; a tax code is refused with the reason.
	keyless := func(args ...string) (string, error) {
		var out, errw bytes.Buffer
		full := append([]string{args[0], "--nats-url", m.NATSURL(), "--data-dir", t.TempDir()}, args[1:]...)
		err := run(context.Background(), full, &out, &errw)
		return out.String() + errw.String(), err
	}
	if out, err := keyless("verify", ids[0]); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("verify by path id without the master key: %v\n%s", err, out)
	}
	if out, err := keyless("verify", "--all"); !errors.Is(err, errFound) || !strings.Contains(out, ids[1]) {
		t.Errorf("verify --all without the master key must still name the forged path: %v\n%s", err, out)
	}
	if _, err := keyless("verify", tax); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("verify by tax code without the master key: %v, want the key asked for", err)
	}
	if _, err := keyless("history", ids[0]); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("history without the master key: %v, want the key asked for", err)
	}

	// Erasure from the CLI: the history then shows [erased].
	out, err = cli(t, m, "erase", "--json", tax)
	var erased struct {
		Erased   bool              `json:"erased"`
		Versions map[string]uint64 `json:"versions"`
	}
	if err != nil || json.Unmarshal([]byte(out), &erased) != nil || !erased.Erased || len(erased.Versions) != 1 || erased.Versions[ids[0]] == 0 {
		t.Fatalf("erase --json: %v\n%s", err, out)
	}
	out, _ = cli(t, m, "history", "--json", ids[0])
	if strings.Contains(out, tax) || !strings.Contains(out, "[erased]") {
		t.Errorf("history after erasure:\n%s", out)
	}
}
