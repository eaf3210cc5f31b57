package privacy

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testMaster is a fixed master key so that failures reproduce.
var testMaster = mustHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

func mustHex(s string) []byte {
	k, err := parseMasterKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

// startServer runs an in-process JetStream server on dir. The returned stop
// function is idempotent so tests can restart on the same directory.
func startServer(tb testing.TB, dir string) (*server.Server, func()) {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		tb.Fatalf("new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		s.Shutdown()
		s.WaitForShutdown()
	}
	tb.Cleanup(stop)
	return s, stop
}

func connect(tb testing.TB, s *server.Server) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

func newJSStore(tb testing.TB, js jetstream.JetStream, opts ...JetStreamOption) *JetStreamKeyStore {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ks, err := NewJetStreamKeyStore(ctx, js, testMaster, opts...)
	if err != nil {
		tb.Fatalf("NewJetStreamKeyStore: %v", err)
	}
	return ks
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(tb testing.TB, dir string, needle []byte) []string {
	tb.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Files come and go while the server runs (temporary block
			// rewrites); a vanished file cannot hold the needle.
			if errorsIsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := readFileIfExists(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			rel, _ := filepath.Rel(dir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("scan %s: %v", dir, err)
	}
	return hits
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func joinHits(h []string) string { return strings.Join(h, ", ") }

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func readFileIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
