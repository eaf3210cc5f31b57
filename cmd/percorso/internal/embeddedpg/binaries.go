package embeddedpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoBinaries reports that no PostgreSQL server programs (initdb, pg_ctl,
// postgres) could be found. Errors returned for that reason wrap it, so the
// caller can tell "install PostgreSQL" apart from a server that failed.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// binEnv names the directory that, when set, is the only place searched: an
// operator who sets it wants exactly those binaries, and a silent fallback to
// another version would be worse than an error.
const binEnv = "PERCORSO_PG_BIN"

// debianRoot is where Debian and Ubuntu install one directory per major
// version, none of them on PATH. A variable so tests can stand in for a
// machine without PostgreSQL.
var debianRoot = "/usr/lib/postgresql"

// binaries are the programs this package runs; postgres itself is started by
// pg_ctl, which looks for it next to its own (symlink-resolved) path.
type binaries struct {
	initdb string
	pgCtl  string
}

// findBinaries locates the server programs. wantMajor is the major version
// that created an existing cluster ("" for a new one): a data directory only
// works with its own major version, so on a machine with several versions
// installed the matching one wins over the highest.
func findBinaries(ctx context.Context, wantMajor string) (binaries, error) {
	if dir, ok := os.LookupEnv(binEnv); ok && dir != "" {
		if b, ok := binariesIn(dir, true); ok {
			return b, nil
		}
		return binaries{}, fmt.Errorf("%w in %s=%s: point it at the directory holding initdb, pg_ctl and postgres, or unset it to search the usual places", ErrNoBinaries, binEnv, dir)
	}
	if wantMajor != "" {
		if b, ok := binariesIn(filepath.Join(debianRoot, wantMajor, "bin"), true); ok {
			return b, nil
		}
	}
	if b, ok := highestDebianVersion(); ok {
		return b, nil
	}
	if b, ok := fromPgConfig(ctx); ok {
		return b, nil
	}
	initdb, err1 := exec.LookPath("initdb")
	pgCtl, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, pgCtl: pgCtl}, nil
	}
	return binaries{}, fmt.Errorf("%w: install them with \"sudo apt-get install postgresql\" (or set %s)", ErrNoBinaries, binEnv)
}

// binariesIn reports whether dir holds the server programs. needPostgres is
// set for directories we pick ourselves: a client-only package ships pg_config
// without a server, and pg_ctl would only fail later and less clearly.
func binariesIn(dir string, needPostgres bool) (binaries, bool) {
	names := []string{"initdb", "pg_ctl"}
	if needPostgres {
		names = append(names, "postgres")
	}
	for _, n := range names {
		if !isExecutable(filepath.Join(dir, n)) {
			return binaries{}, false
		}
	}
	return binaries{initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}, true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func highestDebianVersion() (binaries, bool) {
	entries, err := os.ReadDir(debianRoot)
	if err != nil {
		return binaries{}, false
	}
	var best binaries
	var bestVersion []int
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		b, ok := binariesIn(filepath.Join(debianRoot, e.Name(), "bin"), true)
		if !ok {
			continue
		}
		if bestVersion == nil || versionLess(bestVersion, v) {
			best, bestVersion = b, v
		}
	}
	return best, bestVersion != nil
}

// parseVersion reads directory names such as "16" or "9.6".
func parseVersion(s string) ([]int, bool) {
	parts := strings.Split(s, ".")
	v := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func fromPgConfig(ctx context.Context) (binaries, bool) {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return binaries{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--bindir").Output()
	if err != nil {
		return binaries{}, false
	}
	return binariesIn(strings.TrimSpace(string(out)), true)
}

// majorOf turns the output of "pg_ctl --version", e.g.
// "pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", into the major
// version as PG_VERSION spells it ("15", or "9.6" before version 10).
func majorOf(versionOutput string) string {
	f := strings.Fields(versionOutput)
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			v := strings.Split(f[i+1], ".")
			if len(v) >= 2 && v[0] == "9" {
				return v[0] + "." + v[1]
			}
			n := 0
			for n < len(v[0]) && v[0][n] >= '0' && v[0][n] <= '9' {
				n++
			}
			return v[0][:n]
		}
	}
	return ""
}
