package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/adapters/ui"
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

// Run starts every component of the instance's role and returns once it is
// serving: the API (role api), the projector and its probes (role
// projector), or both (role all).
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Config.Role == "" {
		m.Config.Role = RoleAll
	}
	cfg := m.Config
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := m.startNATS(ctx); err != nil {
		return err
	}
	// The APIs write the stream, so they provision it; a projector alone
	// waits for it (its runner retries), unless the NATS server is its own.
	var stream jetstream.Stream
	if cfg.serves() || cfg.NATSURL == "" {
		if stream, err = natsjs.Provision(ctx, m.js, cfg.Replicas); err != nil {
			return err
		}
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
	var store *natsjs.Store
	var handler *command.Handler
	if cfg.serves() {
		snaps, err := natsjs.SnapshotStore(ctx, m.js, cfg.Replicas)
		if err != nil {
			return err
		}
		store = natsjs.New(m.js, stream, codec, natsjs.WithSnapshots(snaps, snapshotEvery))
		idem, err := natsjs.NewIdempotency(ctx, m.js, cfg.Replicas)
		if err != nil {
			return err
		}
		handler = command.New(store, idem, sealer)
	}
	if err := m.startPostgres(ctx); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	checks := []httpapi.Check{
		{Name: "nats", Fn: func(context.Context) error {
			if !m.nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}},
		{Name: "postgres", Fn: func(ctx context.Context) error { return m.pool.Ping(ctx) }},
	}
	if cfg.projects() {
		m.runner = projections.NewRunner(m.js, codec, pg.NewPartitionProjector(m.pool, cfg.Partition), m.Log)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runner.Run(runCtx)
		}()
		checks = append(checks, httpapi.Check{Name: "projector", Fn: m.projectorReady})
	}

	var h http.Handler
	var metrics *httpapi.Metrics
	if cfg.serves() {
		dir, err := m.principals()
		if err != nil {
			return err
		}
		if m.cmds, err = natsapi.New(m.nc, handler, dir, m.Log); err != nil {
			return fmt.Errorf("nats command service: %w", err)
		}
		// Read-your-writes: an instance with its own projector is woken by
		// its commits; one without polls the read models.
		var proj httpapi.Projection
		if m.runner != nil {
			proj = m.runner
		}
		api := httpapi.New(handler, pg.NewReader(m.pool), dir, proj, m.Log, checks...)
		api.WithAudit(audit.New(store, codec), pg.NewReadLog(m.pool)).WithProjections(pg.NewAdmin(m.pool))
		api.WithUI(ui.New(pg.NewReader(m.pool), dir, m.Log, ui.WithAudit(audit.New(store, codec), pg.NewReadLog(m.pool))))
		h, metrics = api, api.Metrics()
		m.cmds.Observe(metrics.Command)
	} else {
		metrics = httpapi.NewMetrics()
		h = probes(checks, metrics)
	}
	if m.runner != nil {
		m.projectionGauges(runCtx, metrics)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	m.httpAddr = ln.Addr().String()
	m.http = httpapi.HTTPServer(m.httpAddr, h)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", "err", err)
		}
	}()
	if cfg.projects() {
		m.Log.Info("percorso started", "role", cfg.Role, "partition", cfg.Partition.String(), "http", m.httpAddr)
	} else {
		m.Log.Info("percorso started", "role", cfg.Role, "http", m.httpAddr)
	}
	m.banner()
	return nil
}

// projectorReady: the projector consumes, is not stopped on a poison
// event, and is close enough to the stream's end for reads to be fresh.
func (m *Main) projectorReady(context.Context) error {
	part := m.runner.Partition()
	if p := m.runner.Poisoned(); p != nil {
		return fmt.Errorf("partition %s stopped at event %d", part, p.Seq)
	}
	if !m.runner.Running() {
		return fmt.Errorf("partition %s not running", part)
	}
	if lag := m.runner.Lag(); lag > readyLag {
		return fmt.Errorf("partition %s lagging %d events behind the stream", part, lag)
	}
	return nil
}

// probes is the HTTP surface of a projector-only instance: liveness,
// readiness and metrics, with the same answers as the API's.
// maxPayload is the NATS messages' size limit percorso's servers are
// given: a 1 MiB body and room for its headers.
const maxPayload = 2 << 20

func probes(checks []httpapi.Check, metrics *httpapi.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, out := http.StatusOK, map[string]string{}
		for _, c := range checks {
			out[c.Name] = "ok"
			if err := c.Fn(ctx); err != nil {
				status, out[c.Name] = http.StatusServiceUnavailable, err.Error()
			}
		}
		writeProbe(w, status, map[string]any{"ready": status == http.StatusOK, "checks": out})
	})
	mux.Handle("GET /metrics", metrics)
	return mux
}

func writeProbe(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// throughputWindow is how often the projection's throughput gauge is
// recomputed: short enough to show a stall within a scrape or two.
const throughputWindow = 5 * time.Second

// projectionGauges exposes the projector's progress: where it is, how far
// behind, how fast, and which partition it is — one process runs one
// partition, so the scrape target tells partitions apart.
func (m *Main) projectionGauges(ctx context.Context, metrics *httpapi.Metrics) {
	r := m.runner
	var rate atomic.Uint64 // float64 bits
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(throughputWindow)
		defer t.Stop()
		prev, at := r.Projected(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n := r.Projected()
				rate.Store(math.Float64bits(float64(n-prev) / now.Sub(at).Seconds()))
				prev, at = n, now
			}
		}
	}()
	metrics.Gauge("percorso_projection_applied_sequence", func() float64 { return float64(r.Applied()) })
	metrics.Gauge("percorso_projection_lag_events", func() float64 { return float64(r.Lag()) })
	metrics.Gauge("percorso_projection_poisoned", func() float64 {
		if r.Poisoned() != nil {
			return 1
		}
		return 0
	})
	metrics.Gauge("percorso_projection_events_applied", func() float64 { return float64(r.Projected()) })
	metrics.Gauge("percorso_projection_events_read", func() float64 { return float64(r.Delivered()) })
	metrics.Gauge("percorso_projection_events_per_second", func() float64 { return math.Float64frombits(rate.Load()) })
	metrics.Gauge("percorso_projection_partition_index", func() float64 { return float64(r.Partition().Index) })
	metrics.Gauge("percorso_projection_partition_count", func() float64 { return float64(max(r.Partition().Count, 1)) })
}

func (m *Main) startNATS(ctx context.Context) error {
	cfg := m.Config
	if cfg.NATSURL != "" {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("percorso"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("nats %s: %w", redactURL(cfg.NATSURL), err)
		}
		m.nc, m.natsURL = nc, cfg.NATSURL
	} else {
		opts := &server.Options{
			ServerName: "percorso", JetStream: true, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			NoSigs: true, NoLog: true,
			// One node: every write is fsynced before it is acknowledged, so
			// a power loss cannot take an acknowledged event.
			SyncAlways: true,
			// A command body may be 1 MiB (API.md) plus its headers; past
			// that percorso answers 413, as over HTTP, instead of the
			// client failing before sending.
			MaxPayload: maxPayload,
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
	own := m.Config.projects()
	if url == "" {
		s, err := embeddedpg.Start(ctx, m.Config.DataDir, m.Log)
		if err != nil {
			return err
		}
		m.pgServer = s
		url = s.URL()
		own = true
	}
	pool, err := openReadModels(ctx, url, own)
	if err != nil {
		return err
	}
	m.pool = pool
	return nil
}

// readerRole is the PostgreSQL role of the API instances in a
// least-privilege deployment (deploy/postgres/bootstrap.sql).
const readerRole = pg.ReaderRole

// openReadModels connects to the live read models. Their owner — a
// projector, or an instance with its own database — creates, migrates them
// and grants the API role what the API writes: auditors' reads and admins'
// skips of poison events. An API instance only connects: in a
// least-privilege deployment it may not create anything.
func openReadModels(ctx context.Context, url string, own bool) (*pgxpool.Pool, error) {
	var pool *pgxpool.Pool
	var err error
	if own {
		// Two owners starting together on a fresh database race to create
		// the schema; the loser finds it there on a second try.
		for range 3 {
			pool, err = pg.Connect(ctx, url, pg.LiveSchema)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
				break
			}
		}
	} else {
		var cfg *pgxpool.Config
		if cfg, err = pgxpool.ParseConfig(url); err == nil {
			// As pg.Connect does, bar the schema's creation.
			cfg.ConnConfig.RuntimeParams["search_path"] = pg.LiveSchema
			cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
			pool, err = pgxpool.NewWithConfig(ctx, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if own {
		if err := pg.Migrate(ctx, pool); err != nil {
			pool.Close()
			return nil, fmt.Errorf("migrating read models: %w", err)
		}
		if err := pg.GrantReader(ctx, pool); err != nil {
			pool.Close()
			return nil, fmt.Errorf("granting %s: %w", readerRole, err)
		}
	}
	return pool, nil
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
	switch m.Config.Role {
	case RoleProjector:
		fmt.Fprintf(m.out, "percorso is projecting partition %s of the paths; health and metrics at %s\n", m.Config.Partition, m.HTTPURL())
	case RoleAPI:
		fmt.Fprintf(m.out, "percorso is serving the API at %s (no projector here)\n", m.HTTPURL())
	default:
		fmt.Fprintf(m.out, "percorso is serving the API at %s\n", m.HTTPURL())
	}
	if m.natsURL != "" {
		fmt.Fprintf(m.out, "NATS: %s (stream %s; commands on %s<name>, see nats micro info %s)\n",
			redactURL(m.natsURL), eventstore.StreamName, natsapi.SubjectPrefix, natsapi.ServiceName)
	}
	if len(m.Tokens) > 0 {
		fmt.Fprintf(m.out, "Development principals (office BO01; tokens also in %s):\n", filepath.Join(m.Config.DataDir, "dev-tokens.txt"))
		for _, t := range m.Tokens {
			fmt.Fprintf(m.out, "  %-10s %s\n", t.Role, t.Token)
		}
	}
}

// redactURL hides the passwords of a comma-separated list of NATS URLs.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
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
