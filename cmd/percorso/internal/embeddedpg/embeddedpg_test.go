package embeddedpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startServer(t *testing.T, dataDir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, dataDir, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A failing test must not leave a postgres behind holding the directory.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	return s
}

func stopServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func connect(t *testing.T, s *Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func portOf(t *testing.T, s *Server) int {
	t.Helper()
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestStartServesLoopbackOnly checks the isolation promises: loopback only,
// a port other than the system cluster's, the percorso database, durable
// settings, and, as root, an unprivileged owner.
func TestStartServesLoopbackOnly(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	conn := connect(t, s)

	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Path != "/percorso" || u.User.Username() != "percorso" {
		t.Errorf("URL = %s, want percorso@127.0.0.1/percorso", s.URL())
	}
	// Any local user reaches a loopback port: without the password,
	// nobody gets in, whichever user name they try.
	pw, hasPassword := u.User.Password()
	if !hasPassword || len(pw) < 32 {
		t.Errorf("URL carries no strong password")
	}
	for _, user := range []string{"percorso", "postgres"} {
		bare := fmt.Sprintf("postgres://%s@127.0.0.1:%d/percorso?sslmode=disable", user, portOf(t, s))
		if c, err := pgx.Connect(t.Context(), bare); err == nil {
			c.Close(t.Context())
			t.Errorf("%s connected without a password", user)
		}
		wrong := fmt.Sprintf("postgres://%s:guess@127.0.0.1:%d/percorso?sslmode=disable", user, portOf(t, s))
		if c, err := pgx.Connect(t.Context(), wrong); err == nil {
			c.Close(t.Context())
			t.Errorf("%s connected with a wrong password", user)
		}
	}
	if st, err := os.Stat(filepath.Join(dataDir, "postgres.password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v, %v; want mode 0600", st, err)
	}
	if portOf(t, s) == systemPort {
		t.Errorf("embedded server took the system port %d", systemPort)
	}

	for _, c := range []struct{ query, want string }{
		{"SELECT current_database()", "percorso"},
		{"SHOW listen_addresses", "127.0.0.1"},
		{"SHOW port", strconv.Itoa(portOf(t, s))},
		{"SHOW unix_socket_directories", filepath.Join(dataDir, "postgres")},
		{"SHOW fsync", "on"},
		{"SHOW synchronous_commit", "on"},
		{"SHOW server_encoding", "UTF8"},
		{"SHOW lc_collate", "C"},
		{"SHOW log_error_verbosity", "terse"},
	} {
		var got string
		if err := conn.QueryRow(t.Context(), c.query).Scan(&got); err != nil {
			t.Errorf("%s: %v", c.query, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s = %q, want %q", c.query, got, c.want)
		}
	}

	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(dataDir, "postgres", "data"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Errorf("running as root, the cluster is owned by root; want an unprivileged user")
		}
	}
}

// TestTrustingClusterLockedDown: a cluster an earlier release created
// trusted every loopback connection and kept no password. Its next start
// gives the superuser a password and makes pg_hba.conf ask for it.
func TestTrustingClusterLockedDown(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	conn := connect(t, s)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	stopServer(t, s)

	hbaPath := filepath.Join(dataDir, "postgres", "data", "pg_hba.conf")
	hba, err := os.ReadFile(hbaPath)
	if err != nil {
		t.Fatal(err)
	}
	trusting := strings.ReplaceAll(string(hba), "scram-sha-256", "trust")
	if trusting == string(hba) {
		t.Fatal("pg_hba.conf names no scram-sha-256 method to turn back into trust")
	}
	if err := os.WriteFile(hbaPath, []byte(trusting), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dataDir, "postgres.password")); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, dataDir)
	var n int
	if err := connect(t, s).QueryRow(t.Context(), "SELECT n FROM kept").Scan(&n); err != nil || n != 7 {
		t.Fatalf("data after the lock-down: %d, %v", n, err)
	}
	bare := fmt.Sprintf("postgres://percorso@127.0.0.1:%d/percorso?sslmode=disable", portOf(t, s))
	if c, err := pgx.Connect(t.Context(), bare); err == nil {
		c.Close(t.Context())
		t.Error("the once-trusting cluster still lets a connection in without a password")
	}
	hba, _ = os.ReadFile(hbaPath)
	for line := range strings.Lines(string(hba)) {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[len(f)-1] == "trust" {
			t.Errorf("pg_hba.conf still trusts: %s", line)
		}
	}
}

// TestLostPasswordFileSaysSo: a cluster that asks for a password, and a
// data directory that lost the password file, is refused with the way out
// rather than with an authentication error.
func TestLostPasswordFileSaysSo(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	stopServer(t, startServer(t, dataDir))
	if err := os.Remove(filepath.Join(dataDir, "postgres.password")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, dataDir, nil)
	if err == nil {
		s.Stop(context.Background())
		t.Fatal("started without the password the cluster asks for")
	}
	if !strings.Contains(err.Error(), "postgres.password was missing") {
		t.Errorf("error %q does not say the password file is missing", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres.password")); !os.IsNotExist(err) {
		t.Errorf("a new password file was left behind for a cluster that does not know it: %v", err)
	}
}

// TestRestartKeepsData walks one cluster through the restarts a deployment
// sees: a clean stop, a start with the persisted port taken by someone else,
// and a percorso killed without stopping its server.
func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()

	s := startServer(t, dataDir)
	firstPort := portOf(t, s)
	conn := connect(t, s)
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	stopServer(t, s)

	steps := []struct {
		name     string
		before   func(t *testing.T)
		samePort bool
	}{
		{name: "after clean stop", samePort: true},
		{
			name: "persisted port taken",
			before: func(t *testing.T) {
				l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(firstPort)))
				if err != nil {
					t.Fatalf("occupy port %d: %v", firstPort, err)
				}
				t.Cleanup(func() { l.Close() })
			},
		},
		{
			name: "previous percorso killed",
			before: func(t *testing.T) {
				// What the kernel does when a percorso dies by SIGKILL: its
				// lock goes away, its postgres keeps running.
				s := startServer(t, dataDir)
				s.lock.Close()
				s.stopped = true
			},
		},
	}
	for _, step := range steps {
		if step.before != nil {
			step.before(t)
		}
		s := startServer(t, dataDir)
		conn := connect(t, s)
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT n FROM kept").Scan(&n); err != nil || n != 42 {
			t.Fatalf("%s: SELECT n FROM kept = %d, %v; want 42", step.name, n, err)
		}
		if got := portOf(t, s); (got == firstPort) != step.samePort {
			t.Errorf("%s: port %d, first port %d, want same=%v", step.name, got, firstPort, step.samePort)
		}
		conn.Close(t.Context())
		stopServer(t, s)
	}
}

func TestSecondProcessRefused(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	startServer(t, dataDir)

	// flock locks belong to open files, so a second open in this process
	// contends like another process would.
	_, err := Start(t.Context(), dataDir, nil)
	if err == nil || !strings.Contains(err.Error(), "in use by another percorso") {
		t.Fatalf("second Start = %v, want in-use error", err)
	}
}

// TestLongPathFallsBackToTCP uses a directory too deep for a unix socket,
// where postgres would refuse to start if asked for one.
func TestLongPathFallsBackToTCP(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	s := startServer(t, dataDir)
	conn := connect(t, s)
	var dirs string
	if err := conn.QueryRow(t.Context(), "SHOW unix_socket_directories").Scan(&dirs); err != nil {
		t.Fatal(err)
	}
	if dirs != "" {
		t.Errorf("unix_socket_directories = %q, want empty for a %d-byte path", dirs, len(dataDir))
	}
}

func TestMissingBinaries(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		name  string
		setup func(t *testing.T)
		want  []string
	}{
		{
			name:  "PERCORSO_PG_BIN is searched strictly",
			setup: func(t *testing.T) { t.Setenv(binEnv, empty) },
			want:  []string{binEnv + "=" + empty},
		},
		{
			name: "nothing installed",
			setup: func(t *testing.T) {
				t.Setenv(binEnv, "")
				t.Setenv("PATH", empty)
				old := debianRoot
				debianRoot = empty
				t.Cleanup(func() { debianRoot = old })
			},
			want: []string{`"sudo apt-get install postgresql"`, binEnv},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.setup(t)
			dataDir := t.TempDir()
			_, err := Start(t.Context(), dataDir, nil)
			if !errors.Is(err, ErrNoBinaries) {
				t.Fatalf("Start = %v, want ErrNoBinaries", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %s", msg, w)
				}
			}
			if _, err := os.Stat(filepath.Join(dataDir, "postgres")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed lookup created the cluster directory (stat: %v)", err)
			}
		})
	}
}

func TestBinariesIn(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]os.FileMode
		ok    bool
	}{
		{"server installed", map[string]os.FileMode{"initdb": 0o755, "pg_ctl": 0o755, "postgres": 0o755}, true},
		{"client only", map[string]os.FileMode{"pg_config": 0o755, "psql": 0o755}, false},
		{"postgres missing", map[string]os.FileMode{"initdb": 0o755, "pg_ctl": 0o755}, false},
		{"not executable", map[string]os.FileMode{"initdb": 0o644, "pg_ctl": 0o755, "postgres": 0o755}, false},
		{"empty", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, mode := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
					t.Fatal(err)
				}
			}
			b, ok := binariesIn(dir, true)
			if ok != c.ok {
				t.Fatalf("binariesIn = %v, want %v", ok, c.ok)
			}
			if ok && (b.initdb != filepath.Join(dir, "initdb") || b.pgCtl != filepath.Join(dir, "pg_ctl")) {
				t.Errorf("binariesIn = %+v", b)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"9.6", "10"},
		{"13", "16"},
		{"16", "17"},
		{"9.5", "9.6"},
	} {
		a, okA := parseVersion(c.a)
		b, okB := parseVersion(c.b)
		if !okA || !okB || !versionLess(a, b) || versionLess(b, a) {
			t.Errorf("want %s < %s", c.a, c.b)
		}
	}
	if _, ok := parseVersion("latest"); ok {
		t.Error(`parseVersion("latest") accepted`)
	}
	for out, want := range map[string]string{
		"pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n": "15",
		"pg_ctl (PostgreSQL) 9.6.24\n":                         "9.6",
		"pg_ctl (PostgreSQL) 17beta1\n":                        "17",
		"something else":                                       "",
	} {
		if got := majorOf(out); got != want {
			t.Errorf("majorOf(%q) = %q, want %q", out, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":            "''",
		"/tmp/a b":    "'/tmp/a b'",
		"/tmp/it's":   `'/tmp/it'\''s'`,
		"/tmp/$HOME`": "'/tmp/$HOME`'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
