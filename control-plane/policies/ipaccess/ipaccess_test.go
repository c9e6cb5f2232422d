package ipaccess_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/ipaccess"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/policytest"
)

// CIDRs are masked (10.9.9.9/16 is 10.9.0.0/16); anything else is refused
// at its index.
func TestValidate(t *testing.T) {
	p := &v1alpha1.SecurityPolicy{Spec: v1alpha1.SecurityPolicySpec{IPAccess: &v1alpha1.IPAccess{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.9.9.9/16", "fd00::/8"}, XFFNumTrustedHops: 1}}}
	var probs policytest.Problems
	v, ok := ipaccess.Feature.Validate(p, nil, &policytest.Env{}, probs.Report, probs.Failed)
	a := v.(*ir.IPAccess)
	if !ok || strings.Join(a.Deny, ",") != "10.9.0.0/16,fd00::/8" || a.XFFNumTrustedHops != 1 {
		t.Fatalf("%+v %v %v", a, ok, probs)
	}
	p.Spec.IPAccess = &v1alpha1.IPAccess{Deny: []string{"10.0.0.1", "10.0.0.0/8"}, XFFNumTrustedHops: 9}
	probs = nil
	_, ok = ipaccess.Feature.Validate(p, nil, &policytest.Env{}, probs.Report, probs.Failed)
	if got := strings.Join(probs, "\n"); ok || got != "spec.ipAccess.deny[0]: \"10.0.0.1\" is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32\nspec.ipAccess.xffNumTrustedHops: 9 is not between 0 and 8" {
		t.Fatalf("problems:\n%s", got)
	}
}
