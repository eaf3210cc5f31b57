package embeddedpg

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the identity the PostgreSQL programs run under. initdb, pg_ctl
// and postgres refuse to run as root (a compromised server must not own the
// machine), so when percorso itself runs as root — common in containers — the
// cluster is built and run by an unprivileged account instead.
type runAs struct {
	name string
	cred *syscall.Credential // nil: run as ourselves
}

// chooseRunAs picks that account. A cluster that already belongs to a
// non-root user keeps that owner, since postgres refuses a data directory
// owned by anyone else; otherwise the "postgres" system user the distribution
// packages create, else "nobody".
func chooseRunAs(clusterDir string) (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{name: currentUserName()}, nil
	}
	if fi, err := os.Stat(clusterDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			name := strconv.FormatUint(uint64(st.Uid), 10)
			if u, err := user.LookupId(name); err == nil {
				name = u.Username
			}
			return runAs{name: name, cred: &syscall.Credential{Uid: st.Uid, Gid: st.Gid}}, nil
		}
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		// Groups left empty: the children drop root's supplementary groups too.
		return runAs{name: name, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
	}
	return runAs{}, fmt.Errorf("running as root and neither a %q nor a %q user exists to run PostgreSQL: create one, or run percorso as a normal user", "postgres", "nobody")
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Geteuid())
}

// prepareClusterDir creates the cluster directory, owned by the run-as user
// and private to it (postgres insists on 0700 for its data directory, and the
// socket and log live next to it).
func prepareClusterDir(dataDir, clusterDir string, who runAs, log *slog.Logger) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Mkdir(clusterDir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	if who.cred == nil {
		return nil
	}
	if err := os.Chown(clusterDir, int(who.cred.Uid), int(who.cred.Gid)); err != nil {
		return fmt.Errorf("hand cluster directory to user %s: %w", who.name, err)
	}
	return makeReachable(dataDir, who, log)
}

// makeReachable lets the run-as user walk down to the cluster directory.
// As root, the data directory and its parents are typically root-owned and
// sometimes 0700 (/root, or the per-test directories Go creates under /tmp);
// the unprivileged postgres could then not even reach its own files. Each
// such directory gets the "others may search" bit (o+x) and nothing more:
// with it a user can open a path it already knows but cannot list the
// directory, so names and the other files in it stay private. Granting it to
// "others" rather than changing ownership keeps root the owner of everything
// percorso itself writes. Both the path as given and its symlink-resolved
// form are walked, since the kernel checks the directories of both.
func makeReachable(dataDir string, who runAs, log *slog.Logger) error {
	paths := []string{dataDir}
	if real, err := filepath.EvalSymlinks(dataDir); err == nil && real != dataDir {
		paths = append(paths, real)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		for dir := p; !seen[dir]; dir = filepath.Dir(dir) {
			seen[dir] = true
			if err := grantSearch(dir, who, log); err != nil {
				return err
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return nil
}

func grantSearch(dir string, who runAs, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || canSearch(fi.Mode(), st, who.cred) {
		return nil
	}
	mode := fi.Mode().Perm() | 0o001
	if err := os.Chmod(dir, mode|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return fmt.Errorf("let user %s reach the cluster through %s: %w", who.name, dir, err)
	}
	log.Info("granted search permission so PostgreSQL can reach its cluster", "dir", dir, "user", who.name)
	return nil
}

// canSearch applies the kernel's owner/group/other rule; only the primary
// group counts because the children run without supplementary groups.
func canSearch(mode fs.FileMode, st *syscall.Stat_t, c *syscall.Credential) bool {
	switch {
	case st.Uid == c.Uid:
		return mode&0o100 != 0
	case st.Gid == c.Gid:
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}
