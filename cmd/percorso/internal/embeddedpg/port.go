package embeddedpg

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// systemPort is the port of the machine's own cluster, never ours even if it
// happens to be free right now: that cluster may come up later.
const systemPort = 5432

// choosePort returns the port persisted in path when it is still free, and
// otherwise a new free one, persisted for next time. Keeping the port stable
// lets tools and dashboards pointed at the embedded server keep working across
// restarts; moving only when the old one is taken keeps start-up reliable.
func choosePort(path string) (int, error) {
	if b, err := os.ReadFile(path); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && p < 65536 && p != systemPort && portFree(p) {
			return p, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("read port file: %w", err)
	}
	return newPort(path)
}

func newPort(path string) (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p == systemPort {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(p)+"\n"), 0o600); err != nil {
			return 0, fmt.Errorf("persist port: %w", err)
		}
		return p, nil
	}
	return 0, errors.New("find a free port: the kernel keeps offering 5432")
}

// portFree checks the only address the server binds, 127.0.0.1.
func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
