package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/cmd/percorso/internal/embeddedpg"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/audit"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/privacy"
	"github.com/percorso/percorso/projections"
	"github.com/percorso/percorso/projections/pg"
)

// snapshotEvery is how many events a path's snapshot may fall behind: paths
// rarely grow past a few dozen events, so only long ones get snapshots.
const snapshotEvery = 50

// readyLag is how far behind the stream the read models may be while the
// instance still reports ready.
const readyLag = 10000

// Main is a running percorso: `percorso serve` and the end-to-end tests
// start the same thing.
type Main struct {
	Config Config
	Log    *slog.Logger
	out    io.Writer

	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	pgServer *embeddedpg.Server
	pool     *pgxpool.Pool
	pgURL    string
	codec    *eventstore.Codec
	runner   *projections.Runner
	cmds     *natsapi.Service
	http     *http.Server
	httpAddr string
	natsURL  string
	Tokens   []access.DevToken

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// NewMain returns an unstarted Main; out receives the start-up banner.
func NewMain(cfg Config, out io.Writer) *Main {
	return &Main{Config: cfg, out: out, Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

// HTTPURL is the base URL of the running API.
func (m *Main) HTTPURL() string { return "http://" + m.httpAddr }

// NATSURL is the client URL of the NATS in use ("" when in-process only).
func (m *Main) NATSURL() string { return m.natsURL }

// Run starts every component and returns once the API is serving.
func (m *Main) Run(ctx context.Context) (err error) {
	cfg := m.Config
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := m.startNATS(ctx); err != nil {
		return err
	}
	stream, err := natsjs.Provision(ctx, m.js, cfg.Replicas)
	if err != nil {
		return err
	}
	master, err := m.masterKey()
	if err != nil {
		return err
	}
	keys, err := privacy.NewJetStreamKeyStore(ctx, m.js, master, privacy.WithReplicas(cfg.Replicas))
	if err != nil {
		return err
	}
	sealer, err := privacy.NewSealer(master, keys)
	if err != nil {
		return err
	}
	codec := eventstore.NewCodec(sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	m.codec = codec
	snaps, err := natsjs.SnapshotStore(ctx, m.js, cfg.Replicas)
	if err != nil {
		return err
	}
	store := natsjs.New(m.js, stream, codec, natsjs.WithSnapshots(snaps, snapshotEvery))
	idem, err := natsjs.NewIdempotency(ctx, m.js, cfg.Replicas)
	if err != nil {
		return err
	}
	handler := command.New(store, idem, sealer)

	if err := m.startPostgres(ctx); err != nil {
		return err
	}
	if err := pg.Migrate(ctx, m.pool); err != nil {
		return fmt.Errorf("migrating read models: %w", err)
	}
	dir, err := m.principals()
	if err != nil {
		return err
	}
	if m.cmds, err = natsapi.New(m.nc, handler, dir, m.Log); err != nil {
		return fmt.Errorf("nats command service: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	projector := pg.NewProjector(m.pool)
	m.runner = projections.NewRunner(m.js, codec, projector, m.Log)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.runner.Run(runCtx)
	}()

	api := httpapi.New(handler, pg.NewReader(m.pool), dir, m.runner, m.Log,
		httpapi.Check{Name: "nats", Fn: func(context.Context) error {
			if !m.nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}},
		httpapi.Check{Name: "postgres", Fn: func(ctx context.Context) error { return m.pool.Ping(ctx) }},
		httpapi.Check{Name: "projector", Fn: func(context.Context) error {
			if p := m.runner.Poisoned(); p != nil {
				return fmt.Errorf("stopped at event %d", p.Seq)
			}
			if !m.runner.Running() {
				return errors.New("not running")
			}
			if lag := m.runner.Lag(); lag > readyLag {
				return fmt.Errorf("lagging %d events behind the stream", lag)
			}
			return nil
		}},
	)
	api.WithAudit(audit.New(store, codec), pg.NewReadLog(m.pool)).WithProjections(projector)
	api.Metrics().Gauge("percorso_projection_applied_sequence", func() float64 { return float64(m.runner.Applied()) })
	api.Metrics().Gauge("percorso_projection_lag_events", func() float64 { return float64(m.runner.Lag()) })
	api.Metrics().Gauge("percorso_projection_poisoned", func() float64 {
		if m.runner.Poisoned() != nil {
			return 1
		}
		return 0
	})
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	m.httpAddr = ln.Addr().String()
	m.http = httpapi.HTTPServer(m.httpAddr, api)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", "err", err)
		}
	}()
	m.banner()
	return nil
}

func (m *Main) startNATS(ctx context.Context) error {
	cfg := m.Config
	if cfg.NATSURL != "" {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("percorso"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("nats %s: %w", cfg.NATSURL, err)
		}
		m.nc, m.natsURL = nc, cfg.NATSURL
	} else {
		opts := &server.Options{
			ServerName: "percorso", JetStream: true, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			NoSigs: true, NoLog: true,
			// One node: every write is fsynced before it is acknowledged, so
			// a power loss cannot take an acknowledged event.
			SyncAlways: true,
		}
		switch cfg.NATSListen {
		case "off":
			opts.DontListen = true
		case "-1":
			opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		default:
			host, port, err := net.SplitHostPort(cfg.NATSListen)
			if err != nil {
				return fmt.Errorf("--nats-listen %q: %w", cfg.NATSListen, err)
			}
			p, err := strconv.Atoi(port)
			if err != nil {
				return fmt.Errorf("--nats-listen %q: bad port", cfg.NATSListen)
			}
			opts.Host, opts.Port = host, p
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			ns.Shutdown()
			return fmt.Errorf("embedded nats did not start (is %s in use?)", cfg.NATSListen)
		}
		m.ns = ns
		if !opts.DontListen {
			m.natsURL = ns.ClientURL()
		}
		nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("percorso"))
		if err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
		m.nc = nc
	}
	js, err := jetstream.New(m.nc)
	if err != nil {
		return err
	}
	m.js = js
	return nil
}

func (m *Main) startPostgres(ctx context.Context) error {
	url := m.Config.PGURL
	defer func() { m.pgURL = url }()
	if url == "" {
		s, err := embeddedpg.Start(ctx, m.Config.DataDir, m.Log)
		if err != nil {
			return err
		}
		m.pgServer = s
		url = s.URL()
	}
	pool, err := pg.Connect(ctx, url, pg.LiveSchema)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("postgres: %w", err)
	}
	m.pool = pool
	return nil
}

// masterKey protects the workers' data keys: PERCORSO_MASTER_KEY, else a
// key file in the data dir, created on first start.
func (m *Main) masterKey() ([]byte, error) {
	if v := os.Getenv("PERCORSO_MASTER_KEY"); v != "" {
		return privacy.MasterKeyFromEnv(v)
	}
	path := filepath.Join(m.Config.DataDir, "master.key")
	key, created, err := privacy.LoadOrCreateMasterKey(path)
	if created {
		m.Log.Warn("created a new master key: back it up, without it personal data cannot be read", "path", path)
	}
	return key, err
}

// principals loads --auth-file, or in dev mode makes one principal per role
// and prints their tokens.
func (m *Main) principals() (*access.Directory, error) {
	valid := func(code string) bool { _, ok := office.Lookup(code); return ok }
	if m.Config.AuthFile != "" {
		return access.LoadPrincipals(m.Config.AuthFile, valid)
	}
	pfile := filepath.Join(m.Config.DataDir, "principals.json")
	tfile := filepath.Join(m.Config.DataDir, "dev-tokens.txt")
	if _, err := os.Stat(pfile); errors.Is(err, os.ErrNotExist) {
		file, tokens, err := access.GenerateDev([]string{"BO01"})
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, t := range tokens {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", t.Role, t.Name, t.Token)
		}
		if err := os.WriteFile(tfile, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(pfile, file, 0o600); err != nil {
			return nil, err
		}
	}
	if b, err := os.ReadFile(tfile); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Split(line, "\t")
			if len(f) == 3 {
				m.Tokens = append(m.Tokens, access.DevToken{Role: access.Role(f[0]), Name: f[1], Token: f[2]})
			}
		}
	}
	return access.LoadPrincipals(pfile, valid)
}

func (m *Main) banner() {
	fmt.Fprintf(m.out, "percorso is serving the API at %s\n", m.HTTPURL())
	if m.natsURL != "" {
		fmt.Fprintf(m.out, "NATS: %s (stream %s; commands on %s<name>, see nats micro info %s)\n",
			m.natsURL, eventstore.StreamName, natsapi.SubjectPrefix, natsapi.ServiceName)
	}
	if len(m.Tokens) > 0 {
		fmt.Fprintf(m.out, "Development principals (office BO01; tokens also in %s):\n", filepath.Join(m.Config.DataDir, "dev-tokens.txt"))
		for _, t := range m.Tokens {
			fmt.Fprintf(m.out, "  %-10s %s\n", t.Role, t.Token)
		}
	}
}

// Close stops everything in reverse order, bounded in time.
func (m *Main) Close() error {
	m.closed.Do(func() {
		if m.cmds != nil {
			if err := m.cmds.Stop(); err != nil {
				m.Log.Error("stopping the NATS command service", "err", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		if m.http != nil {
			if err := m.http.Shutdown(ctx); err != nil {
				m.http.Close()
			}
		}
		if m.cancel != nil {
			m.cancel()
		}
		done := make(chan struct{})
		go func() { m.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		if m.pool != nil {
			m.pool.Close()
		}
		if m.nc != nil {
			m.nc.Drain()
			m.nc.Close()
		}
		if m.ns != nil {
			m.ns.Shutdown()
			m.ns.WaitForShutdown()
		}
		if m.pgServer != nil {
			if err := m.pgServer.Stop(ctx); err != nil {
				m.Log.Error("stopping embedded postgres", "err", err)
			}
		}
	})
	return nil
}
