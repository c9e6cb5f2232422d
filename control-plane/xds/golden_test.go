package xds_test

import (
	"path/filepath"
	"strings"
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
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
			golden.XDS(t, in, filepath.Join("testdata", name+".xds.yaml"))
		})
	}
}

// Whatever fails validation never reaches a snapshot, and the error names
// the resource and the rule.
func TestBuildRejectsInvalidResources(t *testing.T) {
	cfg := &ir.Config{
		Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"},
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
