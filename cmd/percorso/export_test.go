package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/percorso/percorso/domain/access"
)

func TestExport(t *testing.T) {
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	tax := taxCode(t, 11)
	_, b, _ := op.do("POST", "/v1/paths", takeInCharge(11, tax, "a", "cig_deroga"))
	p := b["path_id"].(string)
	for _, at := range []string{"2010-03-01", "2010-04-01", "2010-05-01"} {
		if st, body, _ := op.do("POST", "/v1/paths/"+p+"/sessions", `{"service":1,"delivered_at":"`+at+`T09:00:00+01:00","minutes":20}`); st != 201 {
			t.Fatalf("session: %d %v", st, body)
		}
	}
	_, v, _ := op.do("GET", "/v1/paths/"+p+"?min_version=5", "")
	if v["version"] != 5.0 {
		t.Fatalf("read model not caught up: %v", v)
	}
	today := time.Now().UTC().Format(time.DateOnly)

	out, err := cli(t, m, "export", "--from", today, "--to", today, "events")
	if err != nil {
		t.Fatalf("export events: %v\n%s", err, out)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue // the progress lines
		}
		types = append(types, e["type"].(string))
		if e["path_id"] != p || e["hash"] == "" {
			t.Errorf("exported event %v", e)
		}
	}
	if strings.Join(types, ",") != "TakenInCharge,SessionDelivered,SessionDelivered,SessionDelivered" {
		t.Errorf("exported events = %v", types)
	}
	if strings.Contains(out, tax) {
		t.Error("the events export shows a tax code in clear")
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "sessions.csv")
	if out, err := cli(t, m, "export", "--pg-url", m.pgURL, "--from", "2010-03-15", "--to", "2010-05-01", "--format", "csv", "--out", file, "sessions"); err != nil {
		t.Fatalf("export sessions: %v\n%s", err, out)
	}
	f, _ := os.Open(file)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 3 || recs[0][0] != "seq" {
		t.Errorf("sessions csv (header + the April and May sessions): %v %v", err, recs)
	}
	if _, err := cli(t, m, "export", "--pg-url", m.pgURL, "--from", "2010-01-01", "--to", "2010-12-31", "--out", file, "sessions"); err == nil {
		t.Error("an existing file was overwritten")
	}
	if _, err := cli(t, m, "export", "--pg-url", m.pgURL, "--from", "2010-01-01", "--to", "2010-12-31", "--out", "../../escape.jsonl", "paths"); err == nil {
		t.Error("an output path leaving the working directory was accepted")
	}

	out, err = cli(t, m, "export", "--pg-url", m.pgURL, "--from", "2010-01-01", "--to", "2010-12-31", "paths")
	if err != nil || !strings.Contains(out, p) || strings.Contains(out, tax) {
		t.Errorf("paths export without personal data: %v\n%s", err, out)
	}
	out, err = cli(t, m, "export", "--pg-url", m.pgURL, "--from", "2010-01-01", "--to", "2010-12-31", "--personal", "paths")
	if err != nil || !strings.Contains(out, tax) {
		t.Errorf("paths export with --personal: %v\n%s", err, out)
	}
	if _, err := cli(t, m, "export", "--from", "2010-02-30", "--to", "2010-12-31", "events"); err == nil {
		t.Error("an invalid date was accepted")
	}
}
