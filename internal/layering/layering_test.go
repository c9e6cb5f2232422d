package layering_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/bulkhead-mesh/bulkhead"

// pkg is one package of the build graph.
type pkg struct {
	path    string // module packages relative to the module ("services/models/cmd/bulkhead-models")
	main    bool
	std     bool
	module  bool     // the module's own
	imports []string // direct, in the same form as path
	deps    []string // transitive, in the same form as path
}

// load reads the import graph of every package of the module and of
// everything they link (`go list -json -deps ./...`).
func load(t *testing.T) map[string]*pkg {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-json=ImportPath,Name,Standard,Imports,Deps", "-deps", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath, Name string
			Standard         bool
			Imports, Deps    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		q := &pkg{path: rel(p.ImportPath), main: p.Name == "main", std: p.Standard, module: isModule(p.ImportPath)}
		for _, d := range p.Imports {
			q.imports = append(q.imports, rel(d))
		}
		for _, d := range p.Deps {
			q.deps = append(q.deps, rel(d))
		}
		pkgs[q.path] = q
	}
	if len(pkgs) < 100 {
		t.Fatalf("go list found %d packages; the module links more", len(pkgs))
	}
	return pkgs
}

func isModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

func rel(path string) string {
	if path == module {
		return "."
	}
	if isModule(path) {
		return strings.TrimPrefix(path, module+"/")
	}
	return path
}

func under(dir string) func(string) bool {
	return func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
}

// testHarnesses may import package testing: only tests link them (the
// rules below check that no binary does).
// (internal/upstreamtest: an OpenAI-compatible upstream that can be made
// to fail; internal/sdkcheck: the OpenAI Node SDK's checks.)
var testHarnesses = []string{"internal/testenv", "internal/stack", "control-plane/internal/golden", "control-plane/internal/admissioncases",
	"internal/upstreamtest", "internal/sdkcheck"}

// thirdPartyTesting are packages of pinned dependencies that import package
// testing in a non-test file, so that a binary linking them links testing
// whatever this module does: go-control-plane v0.14.0 (the newest served)
// has pkg/log/test.go (NewTestLogger), and every xDS server and snapshot
// cache links pkg/log. Go registers the test flags only in testing.Init,
// so linking it changes nothing at run time.
var thirdPartyTesting = []string{"github.com/envoyproxy/go-control-plane/pkg/log"}

// The rules of DESIGN.md §7 and control-plane/README.md, on the graph.
func TestLayering(t *testing.T) {
	pkgs := load(t)
	std := func(d string) bool { return pkgs[d] != nil && pkgs[d].std }
	rules := []struct {
		name      string
		applies   func(*pkg) bool
		forbidden func(string) bool
		// direct: the rule is on what a package imports, not on all it links.
		direct bool
		why    string
	}{
		{
			name:      "service binaries link no control-plane package",
			applies:   func(p *pkg) bool { return p.module && p.main && under("services")(p.path) },
			forbidden: under("control-plane"),
			why:       "a service is a client of the mesh, not part of the control plane: identity, bootstrap and PKI are the leaves internal/workload, internal/grpcbootstrap and internal/pki",
		},
		{
			name:      "service libraries link no control-plane package",
			applies:   func(p *pkg) bool { return p.module && under("services")(p.path) },
			forbidden: under("control-plane"),
			why:       "the same: services/ builds without the control plane",
		},
		{
			name:      "the control-plane binary links nothing under services/",
			applies:   func(p *pkg) bool { return p.path == "control-plane/cmd/control-plane" },
			forbidden: under("services"),
			why:       "Vault login and PKI live in internal/pki",
		},
		{
			name:    "no binary links package testing through this module",
			applies: func(p *pkg) bool { return p.module && p.main },
			forbidden: func(d string) bool {
				q := pkgs[d]
				return q != nil && !q.std && slices.Contains(q.imports, "testing") && !slices.Contains(thirdPartyTesting, d)
			},
			why: "test helpers (internal/testenv, internal/stack) are for tests; bulkhead up starts components through internal/components",
		},
		{
			name:      "no binary links a test harness",
			applies:   func(p *pkg) bool { return p.module && p.main },
			forbidden: func(d string) bool { return slices.Contains(testHarnesses, d) },
			why:       "they import package testing",
		},
		{
			name:      "only test harnesses of the module import package testing",
			applies:   func(p *pkg) bool { return p.module && !slices.Contains(testHarnesses, p.path) },
			forbidden: func(d string) bool { return d == "testing" },
			direct:    true,
			why:       "a package that imports testing cannot be linked into a binary; put test helpers in internal/testenv",
		},
		{
			name:      "the IR depends on the standard library and internal/workload only",
			applies:   func(p *pkg) bool { return p.path == "control-plane/ir" },
			forbidden: func(d string) bool { return !std(d) && d != "internal/workload" },
			why:       "only the xds layer knows go-control-plane (DESIGN.md §7)",
		},
		{
			name:      "internal/workload is a leaf of the standard library",
			applies:   func(p *pkg) bool { return p.path == "internal/workload" },
			forbidden: func(d string) bool { return !std(d) },
			why:       "everything uses it; it can use nothing",
		},
		{
			name:      "internal/pki and internal/grpcbootstrap link neither the control plane nor the services",
			applies:   func(p *pkg) bool { return p.path == "internal/pki" || p.path == "internal/grpcbootstrap" },
			forbidden: func(d string) bool { return under("control-plane")(d) || under("services")(d) },
			why:       "they are leaves that services, the control plane and the tools share",
		},
		{
			name:    "the server knows the IR and the xDS layer, not translation",
			applies: func(p *pkg) bool { return p.path == "control-plane/server" },
			forbidden: func(d string) bool {
				return under("control-plane/translate")(d) || under("control-plane/policies")(d) || under("control-plane/resource")(d)
			},
			why: "translate hands the server IR snapshots (ir.Snapshot); the pipeline runs one way",
		},
		{
			name: "translation links none of the later stages",
			applies: func(p *pkg) bool {
				return under("control-plane/translate")(p.path) || under("control-plane/policies")(p.path)
			},
			forbidden: func(d string) bool {
				return under("control-plane/xds")(d) || under("control-plane/server")(d) || under("control-plane/status")(d) || under("control-plane/admin")(d)
			},
			why: "translate produces IR and statuses; xDS, publishing and status come after it",
		},
		{
			name: "policy features do not link each other",
			applies: func(p *pkg) bool {
				return under("control-plane/policies")(p.path) && p.path != "control-plane/policies"
			},
			forbidden: func(d string) bool { return under("control-plane/policies")(d) && d != "control-plane/policies" },
			why:       "a feature's whole story is in its folder; what features share is the contract, package policies",
		},
		{
			name:      "the status stage is read by admin, not the other way",
			applies:   func(p *pkg) bool { return p.path == "control-plane/status" },
			forbidden: under("control-plane/admin"),
			why:       "admin presents the status model",
		},
	}
	for _, r := range rules {
		matched := 0
		for _, p := range pkgs {
			if !r.applies(p) {
				continue
			}
			matched++
			list := p.deps
			if r.direct {
				list = p.imports
			}
			var bad []string
			for _, d := range list {
				if d != p.path && r.forbidden(d) {
					bad = append(bad, d)
				}
			}
			if len(bad) > 0 {
				slices.Sort(bad)
				t.Errorf("%s: %s links %s\n  (%s)", r.name, p.path, strings.Join(bad, ", "), r.why)
			}
		}
		if matched == 0 {
			t.Errorf("%s: the rule applies to no package; the layout changed and the rule must follow", r.name)
		}
	}
}
