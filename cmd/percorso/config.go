package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/percorso/percorso/projections/pg"
)

// Roles of `percorso serve`: the command and query APIs and the projectors
// scale separately — APIs with the requests, projectors with the events —
// so an instance may run either or both.
const (
	RoleAll       = "all"
	RoleAPI       = "api"
	RoleProjector = "projector"
)

// Config is everything `percorso serve` is told, by flag or environment.
type Config struct {
	HTTPAddr   string
	DataDir    string
	NATSURL    string
	NATSListen string
	PGURL      string
	AuthFile   string
	Replicas   int
	// Role is RoleAll, RoleAPI or RoleProjector ("" is RoleAll).
	Role string
	// Partition is the share of the paths this instance's projector
	// applies (the zero value: all of them).
	Partition pg.Partition
}

// serves reports whether the instance runs the command and query APIs.
func (c Config) serves() bool { return c.Role != RoleProjector }

// projects reports whether the instance runs a projector.
func (c Config) projects() bool { return c.Role != RoleAPI }

type flagSpec struct {
	name, env, def, help string
	dst                  *string
}

// serveFlags lists every flag of `percorso serve` with its environment
// variable; docs/operations.md and the deployment tests read the same list.
func serveFlags(c *Config, replicas, role, partition *string) []flagSpec {
	return []flagSpec{
		{"http-addr", "PERCORSO_HTTP_ADDR", "127.0.0.1:8080", "HTTP address: the API, or for a projector /healthz, /readyz and /metrics", &c.HTTPAddr},
		{"data-dir", "PERCORSO_DATA_DIR", "./data", "embedded NATS store, embedded PostgreSQL, dev keys", &c.DataDir},
		{"nats-url", "PERCORSO_NATS_URL", "", "external NATS (cluster) URL, comma-separated; empty: embedded server", &c.NATSURL},
		{"nats-listen", "PERCORSO_NATS_LISTEN", "127.0.0.1:4250", "client address of the embedded NATS server (-1: any free port; off: in-process only)", &c.NATSListen},
		{"pg-url", "PERCORSO_PG_URL", "", "external PostgreSQL URL; empty: embedded PostgreSQL", &c.PGURL},
		{"auth-file", "PERCORSO_AUTH_FILE", "", "principals file; empty: dev principals written to the data dir and printed", &c.AuthFile},
		{"replicas", "PERCORSO_REPLICAS", "1", "stream replicas (3 on a cluster)", replicas},
		{"role", "PERCORSO_ROLE", RoleAll, "api (commands and queries), projector (read models) or all", role},
		{"partition", "PERCORSO_PARTITION", "0/1", "the projector's share of the paths, i/n: run n projectors, 0/n to n-1/n", partition},
	}
}

func parseServeFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	var replicas, role, partition string
	fs := flag.NewFlagSet("percorso serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range serveFlags(&c, &replicas, &role, &partition) {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		fs.StringVar(s.dst, s.name, def, s.help+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	n, err := strconv.Atoi(replicas)
	if err != nil || n < 1 || n > 5 {
		return c, fmt.Errorf("--replicas must be 1 to 5, not %q", replicas)
	}
	c.Replicas = n
	switch role {
	case RoleAll, RoleAPI, RoleProjector:
		c.Role = role
	default:
		return c, fmt.Errorf("--role must be api, projector or all, not %q", role)
	}
	if c.Partition, err = pg.ParsePartition(partition); err != nil {
		return c, fmt.Errorf("--partition: %w", err)
	}
	if c.Role == RoleAPI && c.Partition.Count > 1 {
		return c, fmt.Errorf("--partition %s: an api instance runs no projector", partition)
	}
	return c, nil
}
