package xds_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
)

// Layer 2 of the goldens: IR → xDS. The input is the IR per proxy that
// layer 1 (translate's goldens) produced, so a regression shows in exactly
// one layer's diff.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("../translate/testdata/*.ir.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no ../translate/testdata/*.ir.yaml: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".ir.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var input struct {
				Proxies []*ir.Config `json:"proxies"`
			}
			if err := yaml.Unmarshal(data, &input); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, cfg := range input.Proxies {
				res, err := xds.Build(cfg)
				if err != nil {
					t.Fatalf("build %s: %v", cfg.Proxy, err)
				}
				y, err := res.YAML()
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&out, "# proxy %s\n---\n%s", cfg.Proxy, y)
			}
			golden.Compare(t, filepath.Join("testdata", name+".xds.yaml"), []byte(out.String()))
		})
	}
}

// Whatever fails validation never reaches a snapshot, and the error names
// the resource and the rule.
func TestBuildRejectsInvalidResources(t *testing.T) {
	cfg := &ir.Config{
		Proxy: ir.ProxyID{Role: ir.RoleGRPC, Namespace: "default", Name: "caller"},
		Listeners: []*ir.Listener{{
			Name: "svc.default:9000", Kind: ir.ListenerClient,
			VirtualHosts: []*ir.VirtualHost{{Name: "svc", Domains: []string{"*"}, Routes: []*ir.Route{{
				Name: "r", Match: ir.Match{PathPrefix: "/"},
				// No backend: a route must name a cluster.
				Backends: []ir.WeightedBackend{{Cluster: "", Weight: 1}},
			}}}},
		}},
	}
	_, err := xds.Build(cfg)
	if err == nil || !strings.Contains(err.Error(), `route configuration "svc.default:9000"`) || !strings.Contains(err.Error(), "Cluster") {
		t.Fatalf("Build: %v; want a validation error naming the route configuration and the field", err)
	}

	// A route to a cluster that is not generated is an inconsistency.
	cfg.Listeners[0].VirtualHosts[0].Routes[0].Backends = []ir.WeightedBackend{{Cluster: "ghost.default:9000", Weight: 1}}
	_, err = xds.Build(cfg)
	if err == nil || !strings.Contains(err.Error(), `cluster "ghost.default:9000" is referenced but not generated`) {
		t.Fatalf("Build: %v; want the missing cluster named", err)
	}
}
