package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
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
}

type flagSpec struct {
	name, env, def, help string
	dst                  *string
}

func parseServeFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	var replicas string
	specs := []flagSpec{
		{"http-addr", "PERCORSO_HTTP_ADDR", "127.0.0.1:8080", "HTTP API address", &c.HTTPAddr},
		{"data-dir", "PERCORSO_DATA_DIR", "./data", "embedded NATS store, embedded PostgreSQL, dev keys", &c.DataDir},
		{"nats-url", "PERCORSO_NATS_URL", "", "external NATS (cluster) URL; empty: embedded server", &c.NATSURL},
		{"nats-listen", "PERCORSO_NATS_LISTEN", "127.0.0.1:4250", "client address of the embedded NATS server (-1: any free port; off: in-process only)", &c.NATSListen},
		{"pg-url", "PERCORSO_PG_URL", "", "external PostgreSQL URL; empty: embedded PostgreSQL", &c.PGURL},
		{"auth-file", "PERCORSO_AUTH_FILE", "", "principals file; empty: dev principals written to the data dir and printed", &c.AuthFile},
		{"replicas", "PERCORSO_REPLICAS", "1", "stream replicas (3 on a cluster)", &replicas},
	}
	fs := flag.NewFlagSet("percorso serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range specs {
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
	return c, nil
}
