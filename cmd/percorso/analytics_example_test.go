package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/percorso/percorso/domain/access"
)

// TestAnalyticsExampleMatchesAPI: the example consumer of docs/examples,
// built and run as an analytics team would, computes from the stream alone
// the same monthly activity report the API serves from PostgreSQL.
func TestAnalyticsExampleMatchesAPI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "analytics")
	if out, err := exec.Command("go", "build", "-o", bin, "../../docs/examples/analytics").CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}
	m := startMain(t)
	op := client{t, m.HTTPURL(), token(t, m, access.RoleOperator)}
	var paths []string
	for i := range 8 {
		cat, sup := []string{"a", "b", "c", "d"}[i%4], "cig_deroga"
		if cat == "d" {
			sup = "mobilita_deroga"
		}
		_, b, _ := op.do("POST", "/v1/paths", takeInCharge(20+i, taxCode(t, 20+i), cat, sup))
		paths = append(paths, b["path_id"].(string))
	}
	version := 0.0
	for i, p := range paths {
		for j, svc := range []int{1, 3, 9, 5} {
			if (i+j)%3 == 0 {
				continue
			}
			body := fmt.Sprintf(`{"service":%d,"delivered_at":"2010-%02d-1%dT10:00:00+01:00","minutes":%d}`, svc, 2+j, i, 20+i*j)
			st, b, _ := op.do("POST", "/v1/paths/"+p+"/sessions", body)
			if st != 201 {
				t.Fatalf("session: %d %v", st, b)
			}
			version = max(version, b["version"].(float64))
		}
	}
	group := fmt.Sprintf(`{"service":4,"delivered_at":"2010-06-01T09:00:00+02:00","minutes":230,"participants":["%s","%s","%s","%s","%s","%s"]}`,
		paths[0], paths[1], paths[2], paths[3], paths[4], paths[5])
	if st, b, _ := op.do("POST", "/v1/group-sessions", group); st != 201 {
		t.Fatalf("group: %d %v", st, b)
	}
	_, _, _ = op.do("GET", fmt.Sprintf("/v1/paths/%s?min_version=%d", paths[0], int(version)), "")
	waitCaughtUp(t, m)

	out, err := exec.Command(bin, "--nats-url", m.NATSURL(), "--from", "2010-01-01", "--to", "2010-12-31").Output()
	if err != nil {
		t.Fatalf("running the example: %v", err)
	}
	var fromStream struct{ Rows []map[string]any }
	if err := json.Unmarshal(out, &fromStream); err != nil {
		t.Fatalf("example output: %v\n%s", err, out)
	}
	admin := client{t, m.HTTPURL(), token(t, m, access.RoleAdmin)}
	st, fromAPI, _ := admin.do("GET", "/v1/reports/activity?from=2010-01-01&to=2010-12-31&group_by=month,office,category,service", "")
	if st != 200 {
		t.Fatalf("activity report: %d %v", st, fromAPI)
	}
	canon := func(rows []any) []string {
		var out []string
		for _, r := range rows {
			b, _ := json.Marshal(r) // map keys are sorted: field order does not matter
			out = append(out, string(b))
		}
		sort.Strings(out)
		return out
	}
	var streamRows []any
	for _, r := range fromStream.Rows {
		streamRows = append(streamRows, r)
	}
	got, want := canon(streamRows), canon(fromAPI["rows"].([]any))
	if len(got) < 10 {
		t.Fatalf("too few cells to compare: %d", len(got))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("example report differs from the API's:\nexample: %v\napi:     %v", got, want)
	}
}
