package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/projections/pg"
	"github.com/percorso/percorso/projections/pgtest"
)

// The PostgreSQL roles of deploy/postgres/bootstrap.sql.
const (
	writerRole = "percorso_writer"
)

// bootstrapDB runs the deployment's bootstrap SQL on a test database, twice:
// operators rerun it, so it must be idempotent.
func bootstrapDB(t *testing.T, dbURL string) {
	t.Helper()
	sql, err := os.ReadFile("../../deploy/postgres/bootstrap.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var canCreateRoles bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&canCreateRoles); err != nil {
		t.Fatal(err)
	}
	if !canCreateRoles {
		t.Fatalf("the test database's user may not create roles: point %s at an administrator", pgtest.EnvURL)
	}
	for range 2 {
		if _, err := conn.Exec(ctx, string(sql)); err != nil {
			t.Fatalf("bootstrap.sql: %v", err)
		}
	}
}

// asRole is dbURL acting as one of the bootstrap roles: the test's
// administrator connects and takes the role (SET ROLE at connection), so
// every privilege check is the role's own, whatever the server's password
// set-up.
func asRole(t *testing.T, dbURL, role string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("role", role)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestBootstrapGrants: on a database bootstrapped with deploy/postgres,
// the writer (a projector) creates and fills the read models, and the
// reader (an API) reads them and writes only what the API records:
// auditors' reads and admins' poison skips — also on a set of read models a
// rebuild creates later.
func TestBootstrapGrants(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.New(t)
	bootstrapDB(t, dbURL)
	// Projectors start together: each migrates and grants, in turn.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			p, err := openReadModels(ctx, asRole(t, dbURL, writerRole), true)
			if err == nil {
				p.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("the writer cannot create the read models: %v", err)
		}
	}
	writer, err := openReadModels(ctx, asRole(t, dbURL, writerRole), true)
	if err != nil {
		t.Fatalf("the writer cannot create the read models: %v", err)
	}
	defer writer.Close()
	reader, err := openReadModels(ctx, asRole(t, dbURL, readerRole), false)
	if err != nil {
		t.Fatalf("the reader cannot connect: %v", err)
	}
	defer reader.Close()
	if _, err := writer.Exec(ctx, `INSERT INTO projection_poison (name, seq, error) VALUES ('read_models', 7, 'test')`); err != nil {
		t.Fatal(err)
	}
	// A rebuild's next set, created by the writer after the bootstrap.
	rb, err := pg.StartRebuild(ctx, writer, asRole(t, dbURL, writerRole))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	if _, err := rb.Next.Exec(ctx, `INSERT INTO projection_poison (name, seq, error) VALUES ('read_models', 8, 'test')`); err != nil {
		t.Fatal(err)
	}

	insertPath := func(id string) string {
		return `INSERT INTO paths (path_id, worker_ref, category, support_kind, support_from, office, province, status, taken_at, version)
			VALUES ('` + id + `', 'w', 'a', 'cig_deroga', '2010-01-04', 'BO01', 'BO', 'open', now(), 1)`
	}
	type who int
	const (
		asWriter who = iota
		asReader
	)
	for _, c := range []struct {
		who     who
		sql     string
		allowed bool
	}{
		{asWriter, insertPath("00000000-0000-4000-8000-000000000001"), true},
		{asWriter, `UPDATE paths SET refusals = 1`, true},
		{asReader, `SELECT count(*) FROM paths`, true},
		{asReader, `SELECT count(*) FROM sessions JOIN audit_events USING (seq)`, true},
		{asReader, `SELECT count(*) FROM no_shows`, true},
		{asReader, `SELECT count(*) FROM projection_checkpoints`, true},
		{asReader, `INSERT INTO audit_reads (at, principal, action, path_id) VALUES (now(), 'aud', 'path', '00000000-0000-4000-8000-000000000001')`, true},
		{asReader, `UPDATE projection_poison SET skipped_at = now(), skipped_by = 'admin' WHERE seq = 7`, true},
		{asReader, `SELECT count(*) FROM percorso_rm_next.paths`, true},
		// What the API writes, granted on the rebuilt set before it is
		// switched in, so that no restart is needed after a rebuild.
		{asReader, `INSERT INTO percorso_rm_next.audit_reads (at, principal, action, path_id) VALUES (now(), 'aud', 'path', '00000000-0000-4000-8000-000000000001')`, true},
		{asReader, `UPDATE percorso_rm_next.projection_poison SET skipped_at = now(), skipped_by = 'admin' WHERE seq = 8`, true},
		{asReader, `UPDATE percorso_rm_next.projection_poison SET error = 'rewritten'`, false},
		{asReader, insertPath("00000000-0000-4000-8000-000000000002"), false},
		{asReader, `UPDATE paths SET status = 'closed'`, false},
		{asReader, `DELETE FROM audit_events`, false},
		{asReader, `INSERT INTO projection_checkpoints (name, seq) VALUES ('read_models', 99)`, false},
		{asReader, `UPDATE projection_poison SET error = 'rewritten'`, false},
		{asReader, `DELETE FROM audit_reads`, false},
		{asReader, `CREATE TABLE sneaky (x int)`, false},
		{asReader, `CREATE SCHEMA sneaky`, false},
		{asReader, `INSERT INTO percorso_rm_next.paths (path_id, worker_ref, category, support_kind, support_from, office, province, status, taken_at, version)
			VALUES ('00000000-0000-4000-8000-000000000003', 'w', 'a', 'cig_deroga', '2010-01-04', 'BO01', 'BO', 'open', now(), 1)`, false},
	} {
		pool := writer
		if c.who == asReader {
			pool = reader
		}
		_, err := pool.Exec(ctx, c.sql)
		var pgErr *pgconn.PgError
		denied := errors.As(err, &pgErr) && pgErr.Code == "42501"
		if err != nil && !denied {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if denied == c.allowed {
			t.Errorf("role %d: %s: allowed %t, want %t", c.who, c.sql, !denied, c.allowed)
		}
	}
}

// TestServeRoleFlags: --role and --partition, by flag or environment.
func TestServeRoleFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		role string
		part string
		err  string
	}{
		{args: nil, role: RoleAll, part: "0/1"},
		{args: []string{"--role", "api"}, role: RoleAPI, part: "0/1"},
		{args: []string{"--role", "projector", "--partition", "1/2"}, role: RoleProjector, part: "1/2"},
		{env: map[string]string{"PERCORSO_ROLE": "projector", "PERCORSO_PARTITION": "2/3"}, role: RoleProjector, part: "2/3"},
		{args: []string{"--partition", "0/4"}, env: map[string]string{"PERCORSO_PARTITION": "2/3"}, role: RoleAll, part: "0/4"},
		{args: []string{"--role", "worker"}, err: "--role"},
		{args: []string{"--role", "projector", "--partition", "2/2"}, err: "--partition"},
		{args: []string{"--role", "api", "--partition", "0/2"}, err: "runs no projector"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for _, s := range serveFlags(&Config{}, new(string), new(string), new(string)) {
				if v, ok := c.env[s.env]; ok {
					t.Setenv(s.env, v)
				} else if _, set := os.LookupEnv(s.env); set {
					t.Setenv(s.env, "")
					os.Unsetenv(s.env)
				}
			}
			cfg, err := parseServeFlags(c.args, io.Discard)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one about %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Role != c.role || cfg.Partition.String() != c.part {
				t.Errorf("role %q partition %s, want %q %s", cfg.Role, cfg.Partition, c.role, c.part)
			}
		})
	}
}

// startRole starts one instance of a deployment on external NATS and
// PostgreSQL.
func startRole(t *testing.T, cfg Config) *Main {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	m := NewMain(cfg, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("starting %s %s: %v", cfg.Role, cfg.Partition, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// post sends a command without failing the test: during a node loss some
// commands fail, and the test only counts them.
func post(base, token, path, body string) int {
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// streamLeader is the cluster node leading the event stream.
func streamLeader(t *testing.T, c *natstest.Cluster) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range c.Servers {
			if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, eventstore.StreamName) {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the event stream has no leader")
	return -1
}

// TestClusterDeployment is the deployment in miniature: three NATS nodes,
// two API instances and two projector partitions sharing one PostgreSQL
// with least-privilege roles. Operators work through both APIs while the
// node leading the event stream is killed; the read models the partitions
// built end equal to a fresh replay of the stream.
func TestClusterDeployment(t *testing.T) {
	c := natstest.NewCluster(t)
	dbURL := pgtest.New(t)
	bootstrapDB(t, dbURL)
	shared := t.TempDir() // the master key and principals every instance is given
	base := Config{DataDir: shared, NATSURL: c.URLs(), Replicas: 3}
	role := func(r string, part pg.Partition, pgRole string) Config {
		cfg := base
		cfg.Role, cfg.Partition, cfg.PGURL = r, part, asRole(t, dbURL, pgRole)
		return cfg
	}
	apis := []*Main{startRole(t, role(RoleAPI, pg.Partition{}, readerRole))}
	projs := []*Main{
		startRole(t, role(RoleProjector, pg.Partition{Index: 0, Count: 2}, writerRole)),
		startRole(t, role(RoleProjector, pg.Partition{Index: 1, Count: 2}, writerRole)),
	}
	apis = append(apis, startRole(t, role(RoleAPI, pg.Partition{}, readerRole)))
	opToken := token(t, apis[0], access.RoleOperator)

	var paths []string
	for i := range 12 {
		api := apis[i%2]
		st, b, _ := client{t, api.HTTPURL(), opToken}.do("POST", "/v1/paths", takeInCharge(i, taxCode(t, i), "c", "cig_deroga"))
		if st != http.StatusCreated {
			t.Fatalf("take in charge through API %d: %d %v", i%2, st, b)
		}
		paths = append(paths, b["path_id"].(string))
	}

	var before, after atomic.Int64
	var killed atomic.Bool
	var wg sync.WaitGroup
	for w, api := range apis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 90 {
				p := paths[(i*5+w)%len(paths)]
				st := post(api.HTTPURL(), opToken, "/v1/paths/"+p+"/sessions",
					fmt.Sprintf(`{"service":%d,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":30}`, []int{1, 3, 9, 10}[i%4]))
				if st == http.StatusCreated {
					if killed.Load() {
						after.Add(1)
					} else {
						before.Add(1)
					}
				}
			}
		}()
	}
	for before.Load() < 40 {
		time.Sleep(5 * time.Millisecond)
	}
	dead := streamLeader(t, c)
	c.Servers[dead].Shutdown()
	killed.Store(true)
	wg.Wait()
	t.Logf("sessions recorded: %d before and %d after node %d, the stream leader, was killed", before.Load(), after.Load(), dead)
	if after.Load() == 0 {
		t.Fatal("no command succeeded after the node was killed")
	}

	// Both partitions reach the end of the stream: its last event, as the
	// surviving nodes have it (a consumer lost with the killed node reports
	// no lag until it notices and is recreated).
	str, err := projs[0].js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	lastEvent, err := str.GetLastMsgForSubject(context.Background(), eventstore.EventsWildcard)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		a, b := projs[0].runner, projs[1].runner
		if a.Running() && b.Running() && a.Lag() == 0 && b.Lag() == 0 && a.Applied() == b.Applied() && a.Applied() >= lastEvent.Sequence {
			time.Sleep(100 * time.Millisecond) // a last batch may be committing
			if a.Lag() == 0 && b.Lag() == 0 && a.Applied() == b.Applied() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions did not catch up with event %d: applied %d/%d, lag %d/%d", lastEvent.Sequence, a.Applied(), b.Applied(), a.Lag(), b.Lag())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, want := pgtest.Dump(t, projs[0].pool), pgtest.Dump(t, replay(t, projs[0])); got != want {
		t.Fatalf("read models of two partitions after a node loss differ from a fresh replay (%d vs %d bytes)", len(got), len(want))
	}
	for i, p := range projs {
		if n := p.runner.Projected(); n == 0 {
			t.Errorf("partition %d applied no events", i)
		}
	}

	// Both APIs read from the shared read models, as the reader role, and
	// record an auditor's read.
	aud := client{t, apis[1].HTTPURL(), token(t, apis[1], access.RoleAuditor)}
	if st, v, _ := aud.do("GET", "/v1/paths/"+paths[0]+"?min_version=1", ""); st != 200 || v["path_id"] != paths[0] {
		t.Errorf("auditor read through the second API: %d %v", st, v)
	}
	var reads int
	if err := projs[0].pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_reads`).Scan(&reads); err != nil || reads == 0 {
		t.Errorf("the auditor's read was not recorded: %d %v", reads, err)
	}
	// A projector serves its probes and its partition's gauges.
	pc := client{t, projs[1].HTTPURL(), ""}
	if st, body, _ := pc.do("GET", "/readyz", ""); st != 200 {
		t.Errorf("projector readyz: %d %v", st, body)
	}
	resp, err := http.Get(projs[1].HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"percorso_projection_partition_index 1\n", "percorso_projection_partition_count 2\n", "percorso_projection_lag_events 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("projector metrics lack %q:\n%s", want, metrics)
		}
	}
	if st, _, _ := pc.do("POST", "/v1/paths", "{}"); st != http.StatusNotFound && st != http.StatusMethodNotAllowed {
		t.Errorf("a projector instance answered a command: %d", st)
	}
}

// knownEnv is every environment variable percorso reads at `serve`: a
// deployment setting any other PERCORSO_ variable has a typo.
func knownEnv() map[string]bool {
	known := map[string]bool{"PERCORSO_MASTER_KEY": true}
	for _, s := range serveFlags(&Config{}, new(string), new(string), new(string)) {
		known[s.env] = true
	}
	return known
}

// serveAs parses a deployment's command line and environment for `percorso
// serve` exactly as the binary would, in a subtest (the environment is set
// for it alone).
func serveAs(t *testing.T, name string, args []string, env map[string]string) (cfg Config, ok bool) {
	t.Helper()
	ok = t.Run(name, func(t *testing.T) {
		known := knownEnv()
		for k := range known {
			if _, set := os.LookupEnv(k); set {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
		for k, v := range env {
			if strings.HasPrefix(k, "PERCORSO_") && !known[k] {
				t.Errorf("unknown variable %s", k)
			}
			t.Setenv(k, v)
		}
		if len(args) == 0 || args[0] != "serve" {
			t.Fatalf("command %q is not `percorso serve`", args)
		}
		var err error
		if cfg, err = parseServeFlags(args[1:], io.Discard); err != nil {
			t.Fatalf("percorso %s: %v", strings.Join(args, " "), err)
		}
		if env["PERCORSO_MASTER_KEY"] == "" {
			t.Error("no PERCORSO_MASTER_KEY: each instance would make its own key and not read the others' data")
		}
	})
	return cfg, ok
}

// checkLayout: two or more APIs, and projectors covering every partition
// of one layout exactly once, all on a replicated stream.
func checkLayout(t *testing.T, cfgs map[string]Config) {
	t.Helper()
	apis, parts := 0, map[string]int{}
	count := 0
	for name, c := range cfgs {
		if c.Replicas != 3 {
			t.Errorf("%s: %d stream replicas on a 3-node cluster", name, c.Replicas)
		}
		switch c.Role {
		case RoleAPI:
			apis++
		case RoleProjector:
			parts[c.Partition.String()]++
			if count != 0 && c.Partition.Count != count {
				t.Errorf("%s: partition %s, the others are of %d", name, c.Partition, count)
			}
			count = c.Partition.Count
		default:
			t.Errorf("%s: role %q in a scaled-out deployment", name, c.Role)
		}
	}
	if apis < 2 {
		t.Errorf("%d API instances, want 2", apis)
	}
	if count < 2 || len(parts) != count {
		t.Errorf("projector partitions %v do not cover 0/%d..%d/%d once each", parts, count, count-1, count)
	}
	for p, n := range parts {
		if n != 1 {
			t.Errorf("partition %s runs %d times", p, n)
		}
	}
}

// TestComposeFile: deploy/docker-compose.yml starts the three NATS nodes
// on the cluster configuration, PostgreSQL with the bootstrap, and
// percorso instances whose commands and environment `percorso serve`
// accepts: two APIs as the reader role, two projector partitions as the
// writer.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			DependsOn map[string]any `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	natsMinor := moduleMinor(t, "github.com/nats-io/nats-server/v2")
	cfgs := map[string]Config{}
	for name, s := range doc.Services {
		switch {
		case strings.HasPrefix(s.Image, "nats:"):
			if !strings.HasPrefix(strings.TrimPrefix(s.Image, "nats:"), natsMinor) {
				t.Errorf("%s runs %s; the configuration is tested with nats-server %s", name, s.Image, natsMinor)
			}
			if len(s.Command) != 2 || s.Command[0] != "-c" {
				t.Errorf("%s: command %q", name, s.Command)
				continue
			}
			conf := "../../deploy/nats/" + strings.TrimPrefix(s.Command[1], "/etc/nats/")
			if _, err := os.Stat(conf); err != nil || !slices.Contains(s.Volumes, "./nats:/etc/nats:ro") {
				t.Errorf("%s: configuration %s not mounted from deploy/nats (%v)", name, s.Command[1], err)
			}
			for _, v := range deployNATSVariables(t) {
				if _, ok := s.Environment[v]; !ok {
					t.Errorf("%s: the NATS configuration reads $%s, which the service does not set", name, v)
				}
			}
		case strings.HasPrefix(s.Image, "postgres:"):
			if !slices.Contains(s.Volumes, "./postgres/bootstrap.sql:/docker-entrypoint-initdb.d/10-bootstrap.sql:ro") {
				t.Errorf("%s does not run the bootstrap: %v", name, s.Volumes)
			}
		case strings.HasPrefix(s.Image, "percorso"):
			cfg, ok := serveAs(t, name, s.Command, s.Environment)
			if !ok {
				continue
			}
			cfgs[name] = cfg
			pgUser := map[string]string{RoleAPI: readerRole, RoleProjector: writerRole}[cfg.Role]
			if !strings.HasPrefix(cfg.PGURL, "postgres://"+pgUser+":") {
				t.Errorf("%s (%s) connects to PostgreSQL as %q, want %s", name, cfg.Role, cfg.PGURL, pgUser)
			}
			_, port, _ := strings.Cut(cfg.HTTPAddr, ":")
			if !slices.Contains(s.Healthcheck.Test, "http://127.0.0.1:"+port+"/readyz") {
				t.Errorf("%s: health check %q does not ask /readyz on port %s", name, s.Healthcheck.Test, port)
			}
			for _, dep := range []string{"nats-1", "nats-2", "nats-3", "postgres"} {
				if _, ok := s.DependsOn[dep]; !ok {
					t.Errorf("%s does not wait for %s", name, dep)
				}
			}
		default:
			t.Errorf("unexpected service %s (%s)", name, s.Image)
		}
	}
	for i := 1; i <= 3; i++ {
		if _, ok := doc.Services[fmt.Sprintf("nats-%d", i)]; !ok {
			t.Errorf("no service nats-%d", i)
		}
	}
	checkLayout(t, cfgs)
}

// TestKubernetesManifests: the Deployments of deploy/k8s run `percorso
// serve` as the binary accepts it, with probes on its HTTP port, the APIs
// as the reader role and one Deployment per projector partition as the
// writer.
func TestKubernetesManifests(t *testing.T) {
	f, err := os.Open("../../deploy/k8s/percorso.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					Containers []struct {
						Args  []string `yaml:"args"`
						Ports []struct {
							Name          string `yaml:"name"`
							ContainerPort int    `yaml:"containerPort"`
						} `yaml:"ports"`
						Env []struct {
							Name      string `yaml:"name"`
							Value     string `yaml:"value"`
							ValueFrom struct {
								SecretKeyRef struct {
									Key string `yaml:"key"`
								} `yaml:"secretKeyRef"`
							} `yaml:"valueFrom"`
						} `yaml:"env"`
						ReadinessProbe probe `yaml:"readinessProbe"`
						LivenessProbe  probe `yaml:"livenessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(f)
	cfgs := map[string]Config{}
	deployments := 0
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("percorso.yaml: %v", err)
		}
		if o.Kind != "Deployment" {
			continue
		}
		deployments++
		if len(o.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s: %d containers", o.Metadata.Name, len(o.Spec.Template.Spec.Containers))
			continue
		}
		c := o.Spec.Template.Spec.Containers[0]
		env := map[string]string{}
		secrets := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
			if k := e.ValueFrom.SecretKeyRef.Key; k != "" {
				env[e.Name] = "from-secret-" + k
				secrets[e.Name] = k
			}
		}
		cfg, ok := serveAs(t, o.Metadata.Name, c.Args, env)
		if !ok {
			continue
		}
		cfgs[o.Metadata.Name] = cfg
		wantPG := map[string]string{RoleAPI: "pg-reader-url", RoleProjector: "pg-writer-url"}[cfg.Role]
		if secrets["PERCORSO_PG_URL"] != wantPG {
			t.Errorf("%s (%s) takes PERCORSO_PG_URL from %q, want %s", o.Metadata.Name, cfg.Role, secrets["PERCORSO_PG_URL"], wantPG)
		}
		if cfg.Role == RoleProjector && o.Spec.Replicas != 1 {
			t.Errorf("%s: %d replicas of one partition", o.Metadata.Name, o.Spec.Replicas)
		}
		_, port, _ := strings.Cut(cfg.HTTPAddr, ":")
		if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port {
			t.Errorf("%s: container ports %v, percorso listens on %s", o.Metadata.Name, c.Ports, port)
		}
		for path, p := range map[string]probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
			if p.HTTPGet.Path != path || (fmt.Sprint(p.HTTPGet.Port) != port && (len(c.Ports) == 0 || p.HTTPGet.Port != c.Ports[0].Name)) {
				t.Errorf("%s: probe %v, want %s on port %s", o.Metadata.Name, p.HTTPGet, path, port)
			}
		}
	}
	if deployments == 0 {
		t.Fatal("no Deployments in percorso.yaml")
	}
	// Two API pods come from one Deployment's replicas.
	for name, c := range cfgs {
		if c.Role == RoleAPI {
			cfgs[name+"#2"] = c
		}
	}
	checkLayout(t, cfgs)
}

// deployNATSVariables lists the environment variables deploy/nats reads: unquoted
// values such as `password: $NAME`, outside comments.
func deployNATSVariables(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../deploy/nats/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/nats: %v", err)
	}
	ref := regexp.MustCompile(`[:=]\s*\$([A-Za-z_][A-Za-z0-9_]*)`)
	var vars []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range ref.FindAllStringSubmatch(line, -1) {
				if !slices.Contains(vars, m[1]) {
					vars = append(vars, m[1])
				}
			}
		}
	}
	return vars
}

// moduleMinor is the major.minor version of a module this one requires.
func moduleMinor(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == module {
			v := strings.Split(strings.TrimPrefix(f[1], "v"), ".")
			return v[0] + "." + v[1]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

// TestOperationsDocListsEveryFlag: docs/operations.md documents every flag
// and environment variable of `percorso serve`.
func TestOperationsDocListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range serveFlags(&Config{}, new(string), new(string), new(string)) {
		for _, want := range []string{"`--" + s.name + "`", "`" + s.env + "`"} {
			if !strings.Contains(string(doc), want) {
				t.Errorf("docs/operations.md does not document %s", want)
			}
		}
	}
	if !strings.Contains(string(doc), "`PERCORSO_MASTER_KEY`") || !strings.Contains(string(doc), "master.key") {
		t.Error("docs/operations.md does not document the master key")
	}
}
