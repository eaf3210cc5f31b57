package workerpath_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDomainImportsOnlyStdlib keeps every package under domain/ free of
// transports, drivers and other modules: the rules must be testable and
// reusable without NATS or PostgreSQL. The module's own domain packages are
// allowed; nothing else with a dot in its first path element is.
func TestDomainImportsOnlyStdlib(t *testing.T) {
	const own = "github.com/percorso/percorso/domain"
	root := ".." // domain/
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if !allowedImport(p, own) {
				t.Errorf("%s imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("walked only %d Go files under domain/", files)
	}
}

func allowedImport(path, own string) bool {
	first, _, _ := strings.Cut(path, "/")
	if !strings.Contains(first, ".") {
		return path != "C" // cgo is not the standard library
	}
	return path == own || strings.HasPrefix(path, own+"/")
}

func TestAllowedImport(t *testing.T) {
	const own = "github.com/percorso/percorso/domain"
	for path, want := range map[string]bool{
		"time":          true,
		"encoding/json": true,
		"github.com/percorso/percorso/domain/fault": true,
		"github.com/percorso/percorso/domain":       true,
		"github.com/percorso/percorso/eventstore":   false,
		"github.com/percorso/percorso/domainx":      false,
		"github.com/nats-io/nats.go":                false,
		"github.com/jackc/pgx/v5":                   false,
		"golang.org/x/text/unicode/norm":            false,
		"C":                                         false,
	} {
		if got := allowedImport(path, own); got != want {
			t.Errorf("allowedImport(%q) = %v, want %v", path, got, want)
		}
	}
}
