package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/authly/authly"

const (
	netHTTP  = "net/http"
	genAPI   = module + "/internal/gen/api"
	genDB    = module + "/internal/gen/db"
	domain   = module + "/internal/service"
	httpapi  = module + "/internal/httpapi"
	genPaths = module + "/internal/gen/"
)

// moduleImports maps every package of the module to what its non-test files import, read
// from the source with go/parser. Files of every build tag count, so a rule holds on every
// platform.
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root is not %s: %v", root, err)
	}
	imports := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := module
		if rel != "." {
			pkg += "/" + filepath.ToSlash(rel)
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			if !slices.Contains(imports[pkg], p) {
				imports[pkg] = append(imports[pkg], p)
			}
		}
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return imports
}

// reaches reports the chain of module packages through which pkg imports target, or nil.
func reaches(imports map[string][]string, pkg, target string) []string {
	seen := map[string]bool{}
	var walk func(p string) []string
	walk = func(p string) []string {
		if seen[p] {
			return nil
		}
		seen[p] = true
		for _, imp := range imports[p] {
			if imp == target {
				return []string{p, imp}
			}
			if _, inModule := imports[imp]; inModule {
				if chain := walk(imp); chain != nil {
					return append([]string{p}, chain...)
				}
			}
		}
		return nil
	}
	return walk(pkg)
}

func TestTheRulesSeeTheModule(t *testing.T) {
	imports := moduleImports(t)
	// A rule over packages that were never read would pass for nothing.
	for pkg, want := range map[string][]string{
		httpapi: {netHTTP, genAPI, domain},
		domain:  {genDB},
	} {
		for _, imp := range want {
			if !slices.Contains(imports[pkg], imp) {
				t.Errorf("%s is not seen importing %s; imports read: %v", pkg, imp, imports[pkg])
			}
		}
	}
	if chain := reaches(imports, httpapi, genDB); chain == nil {
		t.Error("the transport is not seen reaching the generated queries through the domain")
	}
}

func TestTheDomainKnowsNothingOfHTTP(t *testing.T) {
	imports := moduleImports(t)
	if slices.Contains(imports[domain], netHTTP) {
		t.Errorf("%s imports %s", domain, netHTTP)
	}
	if chain := reaches(imports, domain, genAPI); chain != nil {
		t.Errorf("%s reaches %s: %s", domain, genAPI, strings.Join(chain, " -> "))
	}
}

func TestNoPackageImportsBothHTTPAndTheQueries(t *testing.T) {
	for pkg, imps := range moduleImports(t) {
		if strings.HasPrefix(pkg+"/", genPaths) {
			continue
		}
		if slices.Contains(imps, netHTTP) && slices.Contains(imps, genDB) {
			t.Errorf("%s imports both %s and %s: SQL belongs behind the domain, HTTP in the transport", pkg, netHTTP, genDB)
		}
	}
}
