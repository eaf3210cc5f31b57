// Package embeddedpg runs a private PostgreSQL for "percorso serve" when no
// --pg-url is given, so a single machine (a small office, a demo, a
// developer's laptop) gets working read models with no database to install
// and configure beyond the distribution's PostgreSQL package.
//
// It does not ship PostgreSQL: it builds a cluster under <dataDir>/postgres
// with the machine's own server binaries, starts it with pg_ctl and stops it
// with a fast shutdown. The server is deliberately kept apart from anything
// else on the machine: it listens on 127.0.0.1 only, on a port of its own
// (never the system cluster's 5432), with its unix socket inside its own
// directory. Past one machine, percorso is pointed at a managed PostgreSQL
// with --pg-url and this package is not used.
//
// Layout of <dataDir>/postgres:
//
//	data/          the cluster (PGDATA)
//	data.initdb/   a cluster being created, renamed to data/ when complete
//	log            server log, kept out of percorso's own log
//	port           the TCP port chosen at first start
//	percorso.lock  held while a percorso process owns the server
//	.s.PGSQL.*     unix socket, when the path fits
//
// and <dataDir>/postgres.password, the superuser's password (0600, percorso's
// own), since any local user can reach a loopback port.
package embeddedpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// superuser is created by initdb, with a random password kept in the
	// data directory: the server listens on loopback, which every local
	// user can reach, so it trusts nobody (scram-sha-256).
	superuser = "percorso"
	database  = "percorso"

	// maxSocketPath is sizeof(sockaddr_un.sun_path) minus the trailing NUL.
	maxSocketPath = 107
)

// settings are appended to postgresql.conf at initialisation: a small server
// for one percorso process, durable on every commit because events already
// acknowledged to operators must not vanish from the read models' checkpoint.
const settings = `
# percorso embedded server
listen_addresses = '127.0.0.1'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 64MB
# Read models hold personal data: keep statement text and key values
# (DETAIL lines of constraint errors) out of the server log.
log_error_verbosity = terse
log_min_error_statement = panic
`

// Server is a running embedded PostgreSQL owned by this process.
type Server struct {
	dir      string // <dataDir>/postgres
	pgdata   string
	pwFile   string // <dataDir>/postgres.password
	password string
	port     int
	bins     binaries
	who      runAs
	lock     *os.File

	mu      sync.Mutex
	stopped bool
}

// Start creates the cluster on first use, starts the server and makes sure
// the percorso database exists. It returns an error wrapping ErrNoBinaries
// when PostgreSQL is not installed. A server left running by a percorso that
// died without stopping it is shut down and started again, so it always runs
// with the settings and port chosen here.
func Start(ctx context.Context, dataDir string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	s := &Server{dir: filepath.Join(dataDir, "postgres"), pwFile: filepath.Join(dataDir, "postgres.password")}
	s.pgdata = filepath.Join(s.dir, "data")

	existing := readPGVersion(s.pgdata)
	if s.bins, err = findBinaries(ctx, existing); err != nil {
		return nil, err
	}
	if s.who, err = chooseRunAs(s.dir); err != nil {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	if err := prepareClusterDir(dataDir, s.dir, s.who, log); err != nil {
		return nil, fmt.Errorf("embedded postgres: %w", err)
	}
	if err := s.acquireLock(); err != nil {
		return nil, err
	}
	if err := s.start(ctx, existing, log); err != nil {
		s.lock.Close()
		return nil, fmt.Errorf("embedded postgres in %s: %w", s.dir, err)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, existing string, log *slog.Logger) error {
	version, err := s.output(ctx, s.bins.pgCtl, "--version")
	if err != nil {
		return err
	}
	major := majorOf(version)
	switch {
	case existing == "":
		if err := s.initdb(ctx); err != nil {
			return err
		}
	case major != existing:
		return fmt.Errorf("cluster was created by PostgreSQL %s but %s is version %s: install PostgreSQL %s or upgrade the cluster with pg_upgrade", existing, s.bins.pgCtl, major, existing)
	}

	running, err := s.running(ctx)
	if err != nil {
		return err
	}
	if running {
		// Only a previous percorso can have started it (we hold the lock), and
		// that one is gone: restart so the server runs on the port and with
		// the options chosen below rather than whatever it was given then.
		log.Warn("restarting embedded PostgreSQL left running by a previous percorso", "dir", s.dir)
		if err := s.run(ctx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "fast", "-w"); err != nil {
			return err
		}
	}

	portFile := filepath.Join(s.dir, "port")
	if s.port, err = choosePort(portFile); err != nil {
		return err
	}
	if err := s.pgCtlStart(ctx); err != nil {
		// Someone may have taken the port between our check and the bind.
		if portFree(s.port) {
			return err
		}
		if s.port, err = newPort(portFile); err != nil {
			return err
		}
		if err := s.pgCtlStart(ctx); err != nil {
			return err
		}
	}
	if err := s.lockDown(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.run(stopCtx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "fast", "-w")
		return err
	}
	if err := s.createDatabase(ctx); err != nil {
		// Do not leave a server behind that the caller cannot stop.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.run(stopCtx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "fast", "-w")
		return err
	}
	log.Info("embedded PostgreSQL ready", "port", s.port, "dir", s.dir, "version", major, "user", s.who.name)
	return nil
}

// URL is a pgx connection URL for the percorso database, with the
// superuser's password: keep it out of logs.
func (s *Server) URL() string { return s.urlOf(database) }

// urlOf is the superuser's URL of one database of the server.
func (s *Server) urlOf(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down with a fast shutdown: open transactions are
// rolled back, clients disconnected, and everything committed is already on
// disk. It gives up when ctx ends; the shutdown, once signalled, still
// completes in the background. Stopping a stopped server is a no-op.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	err := s.run(ctx, s.bins.pgCtl, "stop", "-D", s.pgdata, "-m", "fast", "-w")
	if err != nil && ctx.Err() == nil {
		// Already gone (killed by someone else) counts as stopped.
		if running, serr := s.running(ctx); serr == nil && !running {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("embedded postgres: stop: %w", err)
	}
	s.stopped = true
	return s.lock.Close()
}

// acquireLock stops two percorso processes from managing one cluster: the
// second would find the first one's server "left running" and restart it.
// The kernel drops the lock when the holder dies, however it dies.
func (s *Server) acquireLock() error {
	f, err := os.OpenFile(filepath.Join(s.dir, "percorso.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("embedded postgres: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("embedded postgres: %s is in use by another percorso process", s.dir)
		}
		return fmt.Errorf("embedded postgres: lock %s: %w", s.dir, err)
	}
	s.lock = f
	return nil
}

// initdb builds the cluster beside its final place and moves it there only
// once complete, so an interrupted first start leaves nothing that a later
// start would mistake for a usable cluster.
func (s *Server) initdb(ctx context.Context) error {
	building := s.pgdata + ".initdb"
	if err := os.RemoveAll(building); err != nil {
		return err
	}
	// Password authentication: see superuser. The C locale keeps sorting
	// and indexes identical on every machine and immune to glibc collation
	// changes.
	pw, _, err := s.loadOrCreatePassword()
	if err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "initdb.password")
	if err := os.WriteFile(pwfile, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if s.who.cred != nil {
		if err := os.Chown(pwfile, int(s.who.cred.Uid), int(s.who.cred.Gid)); err != nil {
			return err
		}
	}
	if err := s.run(ctx, s.bins.initdb, "-D", building, "-A", "scram-sha-256", "--pwfile", pwfile, "-U", superuser, "--encoding=UTF8", "--locale=C"); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(building, "postgresql.conf"), os.O_APPEND, settings); err != nil {
		return err
	}
	if err := os.Rename(building, s.pgdata); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// writeSynced writes text to an existing file (flag: os.O_APPEND or
// os.O_TRUNC), keeping its owner and mode, and syncs it.
func writeSynced(path string, flag int, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flag, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Server) pgCtlStart(ctx context.Context) error {
	// A socket path longer than sun_path makes postgres refuse to start, and
	// deep data directories are common; TCP alone is then enough.
	socketDir := s.dir
	if len(filepath.Join(s.dir, ".s.PGSQL.65535")) > maxSocketPath {
		socketDir = ""
	}
	// pg_ctl hands -o to /bin/sh, hence the quoting.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, shellQuote(socketDir))
	return s.run(ctx, s.bins.pgCtl, "start", "-w", "-D", s.pgdata, "-l", filepath.Join(s.dir, "log"), "-o", opts)
}

// running asks pg_ctl, which also recognises a postmaster.pid left by a crash
// as not running.
func (s *Server) running(ctx context.Context) (bool, error) {
	err := s.command(ctx, s.bins.pgCtl, "status", "-D", s.pgdata).Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return false, nil
	default:
		return false, fmt.Errorf("pg_ctl status: %w", err)
	}
}

func (s *Server) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.urlOf("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", database, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", database, err)
	}
	return nil
}

// command prepares a PostgreSQL program to run as the chosen user, from the
// cluster directory (the unprivileged user may not be able to enter our
// working directory), in its own process group so that a Ctrl-C meant for
// percorso reaches the server only through Stop.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.who.cred}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	_, err := s.output(ctx, name, args...)
	return err
}

// output runs a program and, on failure, condenses what it printed into the
// error. The server log is never copied into errors: it may quote data.
func (s *Server) output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := s.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		what := filepath.Base(name)
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			what += " " + args[0]
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		msg := fmt.Errorf("%s: %w", what, err)
		if tail := lastLines(string(out), 3); tail != "" {
			msg = fmt.Errorf("%w: %s", msg, tail)
		}
		if what == "pg_ctl start" {
			msg = fmt.Errorf("%w (server log: %s)", msg, filepath.Join(s.dir, "log"))
		}
		return "", msg
	}
	return string(out), nil
}

// childEnv drops PG* variables (PGDATA, PGPORT, PGOPTIONS...) meant for the
// user's other clusters, and fixes the message language so errors read the
// same everywhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_ALL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func readPGVersion(pgdata string) string {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func lastLines(out string, n int) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RunningURL is the URL of the embedded PostgreSQL that a `percorso serve`
// on dataDir runs, for the admin tools that connect to it directly.
func RunningURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "port"))
	if err != nil {
		return "", fmt.Errorf("no embedded PostgreSQL under %s (give --pg-url): %w", dataDir, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("embedded PostgreSQL port file: %w", err)
	}
	pw, err := os.ReadFile(filepath.Join(dataDir, "postgres.password"))
	if err != nil {
		return "", fmt.Errorf("embedded PostgreSQL password: %w", err)
	}
	s := &Server{port: port, password: strings.TrimSpace(string(pw))}
	return s.URL(), nil
}

// loadOrCreatePassword returns the superuser's password, creating it
// (random, in a 0600 file of the data directory) the first time, and says
// whether it was made just now. The file is synced, and so is its
// directory: a cluster that asks for a password and a password file lost
// in a crash would lock percorso out of its own read models.
func (s *Server) loadOrCreatePassword() (pw string, created bool, err error) {
	if b, err := os.ReadFile(s.pwFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		s.password = strings.TrimSpace(string(b))
		return s.password, false, nil
	} else if err != nil && !os.IsNotExist(err) {
		return "", false, err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	pw = hex.EncodeToString(buf)
	tmp := s.pwFile + ".tmp"
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		return "", false, err
	}
	if err := writeSynced(tmp, os.O_TRUNC, pw+"\n"); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, s.pwFile); err != nil {
		return "", false, err
	}
	if err := syncDir(filepath.Dir(s.pwFile)); err != nil {
		return "", false, err
	}
	s.password = pw
	return pw, true, nil
}

// lockDown makes sure the running server asks for the password: the
// superuser has it, and pg_hba.conf trusts nobody. Clusters created by
// earlier releases trusted loopback connections; they are brought in line
// at their next start (every step is idempotent, so an interrupted one is
// finished by the start after).
func (s *Server) lockDown(ctx context.Context) error {
	pw, created, err := s.loadOrCreatePassword()
	if err != nil {
		return fmt.Errorf("password: %w", err)
	}
	hbaPath := filepath.Join(s.pgdata, "pg_hba.conf")
	hba, err := os.ReadFile(hbaPath)
	if err != nil {
		return err
	}
	lines := strings.Split(string(hba), "\n")
	trusting := false
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] == "trust" {
			lines[i] = strings.TrimSuffix(strings.TrimRight(l, " \t"), "trust") + "scram-sha-256"
			trusting = true
		}
	}
	if !trusting {
		if created {
			// The cluster asks for a password nobody has any more.
			os.Remove(s.pwFile)
			return fmt.Errorf("the cluster asks for a password but %s was missing: restore it from a backup of the data directory (or, to reset it, set the method of pg_hba.conf's lines in %s back to trust and start again)", s.pwFile, s.pgdata)
		}
		return nil
	}
	conn, err := pgx.Connect(ctx, s.urlOf("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The password is hex: safe to quote as a literal (ALTER ROLE takes no
	// parameters).
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{superuser}.Sanitize()+" PASSWORD '"+pw+"'"); err != nil {
		return fmt.Errorf("set the superuser's password: %w", err)
	}
	if err := writeSynced(hbaPath, os.O_TRUNC, strings.Join(lines, "\n")); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload pg_hba.conf: %w", err)
	}
	return nil
}
