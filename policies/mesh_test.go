// Package policies_test checks the platform's own resources in mesh/: they
// translate with no problem, as `bulkhead validate -f policies/mesh` does.
package policies_test

import (
	"os"
	"path/filepath"
	"testing"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
)

func TestPlatformPoliciesAreValid(t *testing.T) {
	r := controlplane.Offline("mesh")
	for _, err := range r.Errors {
		t.Error(err)
	}
	for _, o := range r.Status.Objects() {
		for _, c := range o.Conditions {
			if c.Status != "True" {
				t.Errorf("%s %s/%s: %s %s: %s", o.Kind, o.Namespace, o.Name, c.Type, c.Reason, c.Message)
			}
		}
	}
	if len(r.Clusters) < 9 {
		t.Fatalf("%d clusters; want one per platform Service", len(r.Clusters))
	}
	if _, err := xds.Build(r.Config(ir.ProxyID{Role: ir.RoleGRPC, Namespace: "default", Name: "chat"})); err != nil {
		t.Fatal(err)
	}
}

// The Envoy configurations of the edge router and the two gateways, and the
// rate-limit service's rules, as the
// control plane builds them from mesh/ (every resource ValidateAll-clean),
// against goldens in testdata/ (BULKHEAD_UPDATE_GOLDEN=1 rewrites them;
// review the diff).
func TestEdgeGolden(t *testing.T) {
	r := controlplane.Offline("mesh")
	for _, id := range []ir.ProxyID{
		{Role: ir.RoleRouter, Namespace: "default", Name: "edge"},
		{Role: ir.RoleGateway, Namespace: "default", Name: "identity"},
		{Role: ir.RoleGateway, Namespace: "default", Name: "ai"},
		{Role: ir.RoleRateLimit, Namespace: "default", Name: "ratelimit"},
	} {
		res, err := xds.Build(r.Config(id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		got, err := res.YAML()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", string(id.Role)+"-"+id.Name+".xds.yaml")
		if os.Getenv("BULKHEAD_UPDATE_GOLDEN") != "" {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run `make golden`)", err)
		}
		if string(want) != string(got) {
			t.Errorf("%s differs from the output for %s (run `make golden` and review the diff)", path, id)
		}
	}
}
