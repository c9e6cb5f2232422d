package xds_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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
	cfg.Listeners[0].VirtualHosts[0].Routes[0].Source = "GRPCRoute default/bad rule 0 match 0"
	res, warnings, err := xds.BuildWithWarnings(cfg)
	if err != nil {
		t.Fatalf("a bad route must be left out, not fail the proxy: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), `route "r" (from GRPCRoute default/bad rule 0 match 0) left out of route configuration "svc.default:9000"`) || !strings.Contains(warnings[0].Error(), "Cluster") {
		t.Fatalf("warnings %v; want the route, its source, the route configuration and the field", warnings)
	}
	if len(res[resourcev3.RouteType]) != 1 {
		t.Fatal("the route configuration itself must still be published")
	}

	// A route to a cluster that is not generated is an inconsistency.
	cfg.Listeners[0].VirtualHosts[0].Routes[0].Backends = []ir.WeightedBackend{{Cluster: "ghost.default:9000", Weight: 1}}
	_, err = xds.Build(cfg)
	if err == nil || !strings.Contains(err.Error(), `cluster "ghost.default:9000" is referenced but not generated`) {
		t.Fatalf("Build: %v; want the missing cluster named", err)
	}
}
