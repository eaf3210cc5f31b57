// Package natstest runs real, in-process NATS servers with JetStream for
// tests: one server, or a cluster of three, on free loopback ports with
// their stores in the test's temporary directory.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts one JetStream server with its store in dir (a new
// temporary directory when dir is empty). It syncs to disk on the server's
// default interval: tests need no durability across power loss, and fsync on
// every write would slow them down for nothing.
func Server(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
		SyncAlways: false}
	s := start(t, opts)
	t.Cleanup(s.Shutdown)
	return s
}

func start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("natstest: server not ready")
	}
	return s
}

// Connect returns a connection and a JetStream context, closed at cleanup.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// Cluster is three JetStream servers in one cluster.
type Cluster struct {
	Servers []*server.Server
	opts    []*server.Options
	t       testing.TB
}

// NewCluster starts a 3-node cluster on loopback.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	ports := freePorts(t, 3)
	routes := ""
	for i, p := range ports {
		if i > 0 {
			routes += ","
		}
		routes += fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	c := &Cluster{t: t}
	for i := range 3 {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1, JetStream: true,
			StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "percorso-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(routes),
		}
		c.opts = append(c.opts, opts)
	}
	for _, o := range c.opts {
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		go s.Start()
		c.Servers = append(c.Servers, s)
	}
	for i, s := range c.Servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("natstest: cluster node not ready")
		}
		c.opts[i].Port = s.Addr().(*net.TCPAddr).Port // keep the client port across restarts
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Shutdown()
		}
	})
	// Formed means a meta leader that sees every node online with its
	// JetStream stats: before that, placing an R3 stream fails with "no
	// suitable peers for placement".
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(c.Servers) {
				return c
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("natstest: cluster did not form")
	return nil
}

// URLs is a client URL list reaching every node.
func (c *Cluster) URLs() string {
	u := ""
	for i, s := range c.Servers {
		if i > 0 {
			u += ","
		}
		u += s.ClientURL()
	}
	return u
}

// Restart starts node i again on its old store and cluster port.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	o := c.opts[i].Clone()
	c.Servers[i] = start(c.t, o)
	c.t.Cleanup(c.Servers[i].Shutdown)
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
