// Package policies_test checks the platform's own resources in mesh/: they
// translate with no problem, as `bulkhead validate -f policies/mesh` does.
package policies_test

import (
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
