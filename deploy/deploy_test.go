package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
)

// natsDir copies deploy/nats into a temporary directory, with a stand-in
// accounts.conf when the real one is not there (it is written separately),
// and sets every $VARIABLE the configuration references, so that the test
// reads what an operator deploys.
func natsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("nats/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no NATS configuration in deploy/nats: %v", err)
	}
	for _, v := range natsVariables(t) {
		if _, ok := os.LookupEnv(v); !ok {
			t.Setenv(v, "test-"+strings.ToLower(v))
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts.conf")); os.IsNotExist(err) {
		t.Log("deploy/nats/accounts.conf is missing: testing with a stand-in")
		standIn := `accounts {
  PERCORSO { jetstream: enabled, users: [{user: percorso, password: standin}] }
  SYS { users: [{user: sys, password: standin}] }
}
system_account: SYS
`
		if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), []byte(standIn), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// natsVariables lists the environment variables the NATS configuration
// reads: unquoted values such as `password: $NAME`, outside comments.
func natsVariables(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("nats/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`[:=]\s*\$([A-Za-z_][A-Za-z0-9_]*)`)
	seen := map[string]bool{}
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
				if !seen[m[1]] {
					seen[m[1]] = true
					vars = append(vars, m[1])
				}
			}
		}
	}
	return vars
}

// TestNATSClusterConfig loads each node's configuration with the server's
// own parser, checks they make one 3-node JetStream cluster, and starts
// them — on loopback ports, with temporary stores — until the JetStream
// meta group has elected a leader that sees all three.
func TestNATSClusterConfig(t *testing.T) {
	dir := natsDir(t)
	var opts []*server.Options
	for i := 1; i <= 3; i++ {
		o, err := server.ProcessConfigFile(filepath.Join(dir, fmt.Sprintf("cluster-%d.conf", i)))
		if err != nil {
			t.Fatalf("cluster-%d.conf: %v", i, err)
		}
		opts = append(opts, o)
	}
	names := map[string]bool{}
	for i, o := range opts {
		switch {
		case o.ServerName != fmt.Sprintf("nats-%d", i+1):
			t.Errorf("node %d is named %q", i+1, o.ServerName)
		case !o.JetStream || o.StoreDir == "" || o.JetStreamMaxStore <= 0:
			t.Errorf("%s: JetStream %t, store %q, max file store %d", o.ServerName, o.JetStream, o.StoreDir, o.JetStreamMaxStore)
		case o.Cluster.Name != "percorso" || o.Cluster.Port != 6222 || len(o.Routes) != 3:
			t.Errorf("%s: cluster %q port %d with %d routes", o.ServerName, o.Cluster.Name, o.Cluster.Port, len(o.Routes))
		case o.Port != 4222 || o.HTTPPort != 8222:
			t.Errorf("%s: client port %d, monitoring port %d", o.ServerName, o.Port, o.HTTPPort)
		case len(o.Accounts) == 0 || o.SystemAccount == "":
			t.Errorf("%s: accounts.conf gave %d accounts, system account %q", o.ServerName, len(o.Accounts), o.SystemAccount)
		}
		names[o.ServerName] = true
		routes := map[string]bool{}
		for _, r := range o.Routes {
			routes[r.Hostname()] = true
		}
		for j := 1; j <= 3; j++ {
			if !routes[fmt.Sprintf("nats-%d", j)] {
				t.Errorf("%s has no route to nats-%d: %v", o.ServerName, j, o.Routes)
			}
		}
	}
	if len(names) != 3 {
		t.Fatalf("node names are not unique: %v", names)
	}

	// The same options on loopback: the cluster forms, with JetStream, in
	// an account of accounts.conf.
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i, o := range opts {
		o.Host, o.Port, o.HTTPPort = "127.0.0.1", -1, 0
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", ports[i]
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		o.StoreDir = t.TempDir()
		o.NoLog, o.NoSigs = true, true
		o.LameDuckDuration, o.LameDuckGracePeriod = 0, 0
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("%s: %v", o.ServerName, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("%s did not start", s.Name())
		}
	}
	formed := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !formed; time.Sleep(50 * time.Millisecond) {
		for _, s := range servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == 3 {
				formed = true
			}
		}
	}
	if !formed {
		t.Fatal("the three nodes did not form a JetStream cluster")
	}
	withJS := 0
	for name := range opts[0].Accounts {
		if acc, err := servers[0].LookupAccount(opts[0].Accounts[name].Name); err == nil && acc.JetStreamEnabled() {
			withJS++
		}
	}
	if withJS == 0 {
		t.Error("no account of accounts.conf has JetStream: percorso could not store its events")
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestNATSChartValues: the values for the official NATS chart make the
// same cluster as deploy/nats — three JetStream nodes, on disk, with the
// same accounts file included.
func TestNATSChartValues(t *testing.T) {
	b, err := os.ReadFile("k8s/nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool           `yaml:"enabled"`
				Replicas int            `yaml:"replicas"`
				Merge    map[string]any `yaml:"merge"`
			} `yaml:"cluster"`
			JetStream struct {
				Enabled   bool `yaml:"enabled"`
				FileStore struct {
					Enabled *bool `yaml:"enabled"`
					PVC     struct {
						Size string `yaml:"size"`
					} `yaml:"pvc"`
				} `yaml:"fileStore"`
			} `yaml:"jetstream"`
			Merge map[string]any `yaml:"merge"`
		} `yaml:"config"`
		ConfigMap struct {
			Merge struct {
				Data map[string]any `yaml:"data"`
			} `yaml:"merge"`
		} `yaml:"configMap"`
		Container struct {
			Env map[string]any `yaml:"env"`
		} `yaml:"container"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("nats-values.yaml: %v", err)
	}
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || c.Cluster.Merge["name"] != "percorso" {
		t.Errorf("cluster: enabled %t, %d replicas, name %v", c.Cluster.Enabled, c.Cluster.Replicas, c.Cluster.Merge["name"])
	}
	if !c.JetStream.Enabled || (c.JetStream.FileStore.Enabled != nil && !*c.JetStream.FileStore.Enabled) || c.JetStream.FileStore.PVC.Size == "" {
		t.Errorf("JetStream must be enabled on persistent volumes: %+v", c.JetStream)
	}
	if c.Merge["$include"] != "accounts.conf" {
		t.Errorf("the chart's configuration must include accounts.conf, as deploy/nats does: %v", c.Merge)
	}
	if _, ok := v.ConfigMap.Merge.Data["accounts.conf"]; !ok {
		t.Error("accounts.conf must be placed in the chart's config map, beside nats.conf")
	}
	for _, name := range natsVariables(t) {
		if _, ok := v.Container.Env[name]; !ok {
			t.Errorf("the NATS configuration reads $%s, which the chart's container does not set", name)
		}
	}
}

// TestDockerfile: the image builds the module's binary with the Go the
// module asks for.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	from := regexp.MustCompile(`(?m)^FROM golang:(\d+\.\d+)`).FindSubmatch(df)
	if goVer == nil || from == nil || string(goVer[1]) != string(from[1]) {
		t.Errorf("the image builds with Go %s, go.mod asks for %s", from, goVer)
	}
	if !strings.Contains(string(df), "./cmd/percorso") {
		t.Error("the image does not build ./cmd/percorso")
	}
	if _, err := os.Stat("../cmd/percorso/main.go"); err != nil {
		t.Error(err)
	}
	if !regexp.MustCompile(`(?m)^USER `).Match(df) {
		t.Error("the image must not run as root")
	}
}
