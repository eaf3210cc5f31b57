package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestNewGivesPrivateDatabaseDroppedAfterTest(t *testing.T) {
	var names []string
	var open []*pgx.Conn
	defer func() {
		for _, c := range open {
			c.Close(context.Background())
		}
	}()
	t.Run("use", func(t *testing.T) {
		for range 2 {
			u := New(t)
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatalf("connect to %s: %v", u, err)
			}
			// Left open past the subtest: the drop must not wait for it.
			open = append(open, conn)

			var name string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, Prefix) {
				t.Errorf("database %q lacks prefix %q", name, Prefix)
			}
			if p, _ := url.Parse(u); p.Path != "/"+name {
				t.Errorf("URL %s does not name database %s", u, name)
			}
			// Succeeds only in an empty database, so the second round also
			// proves it did not get the first one's.
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (n int); INSERT INTO t VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v: want two distinct ones", names)
	}

	conn, err := pgx.Connect(t.Context(), adminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, name := range names {
		var exists bool
		if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

// fatalRecorder stands in for a test so the unreachable-server path can be
// observed without failing this one.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestNoServerFailsWithInstructions(t *testing.T) {
	// Port 1 on loopback: nothing listens there.
	t.Setenv(EnvURL, "postgres://someone:s3cret@127.0.0.1:1/postgres?sslmode=disable")
	admin.mu.Lock()
	saved := admin.url
	admin.url = ""
	admin.mu.Unlock()
	t.Cleanup(func() {
		admin.mu.Lock()
		admin.url = saved
		admin.mu.Unlock()
	})

	r := &fatalRecorder{TB: t}
	done := make(chan string, 1)
	go func() {
		defer func() { done <- r.msg }()
		New(r)
	}()
	msg := <-done
	if msg == "" {
		t.Fatal("New returned without a server")
	}
	t.Logf("message: %s", msg)
	for _, want := range []string{"pg_ctlcluster --skip-systemctl-redirect 15 main start", EnvURL, "127.0.0.1:1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("message %q leaks the password", msg)
	}
}
