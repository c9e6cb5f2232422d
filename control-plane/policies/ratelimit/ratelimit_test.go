package ratelimit_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/policytest"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/ratelimit"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
)

// The identity selectors read the headers auth's Check sets; the control
// plane cannot link services/, so the names are written twice, and this
// keeps them equal.
func TestIdentityHeadersAreAuths(t *testing.T) {
	for field, want := range map[v1alpha1.IdentityField]string{
		v1alpha1.IdentityKeyID:     identity.KeyIDHeader,
		v1alpha1.IdentityAccountID: identity.AccountIDHeader,
		v1alpha1.IdentityTier:      identity.TierHeader,
	} {
		if got := ratelimit.IdentityHeaders[field]; got != want {
			t.Errorf("identity selector %s reads %q; auth sets %q", field, got, want)
		}
	}
}

func str(s string) *string { return &s }

func validate(t *testing.T, spec v1alpha1.RateLimitPolicySpec, targets ...*policies.Target) policytest.Problems {
	t.Helper()
	env := &policytest.Env{ClusterList: []*ir.Cluster{policytest.Cluster("ratelimit", "default", 8081, true)}}
	p := &v1alpha1.RateLimitPolicy{Spec: spec}
	p.Namespace, p.Name = "default", "limits"
	var probs policytest.Problems
	ratelimit.Feature.Validate(p, targets, env, probs.Report, probs.Failed)
	return probs
}

func TestValidateSelectors(t *testing.T) {
	gw := &policies.Target{Kind: "Gateway", Field: "spec.targetRefs[0]", Listeners: []*ir.Listener{{Name: "default/ai/8080", ExtAuthz: &ir.ExtAuthz{}}}}
	rule := func(sel ...v1alpha1.RateLimitSelector) v1alpha1.RateLimitRule {
		return v1alpha1.RateLimitRule{Name: "r", ClientSelectors: sel, Limit: v1alpha1.RateLimitValue{Requests: 10, Unit: "Minute"}}
	}
	if probs := validate(t, v1alpha1.RateLimitPolicySpec{Global: &v1alpha1.RateLimitRules{Rules: []v1alpha1.RateLimitRule{
		rule(v1alpha1.RateLimitSelector{Identity: &v1alpha1.IdentitySelector{Field: v1alpha1.IdentityKeyID, Type: v1alpha1.MatchDistinct}}),
	}}}, gw); len(probs) != 0 {
		t.Fatalf("a valid rule refused: %v", probs)
	}
	for _, tc := range []struct {
		sel  v1alpha1.RateLimitSelector
		want string
	}{
		{v1alpha1.RateLimitSelector{}, "set exactly one of header, identity, sourceCIDR"},
		{v1alpha1.RateLimitSelector{Header: &v1alpha1.HeaderSelector{Name: "x", Type: v1alpha1.MatchDistinct, Value: str("a")}}, "header.value: not allowed with type Distinct"},
		{v1alpha1.RateLimitSelector{Header: &v1alpha1.HeaderSelector{Name: "x", Type: v1alpha1.MatchExact}}, "header.value: required with type Exact"},
		{v1alpha1.RateLimitSelector{SourceCIDR: &v1alpha1.CIDRSelector{CIDR: "10.0.0.0/33", Type: v1alpha1.MatchExact}}, `sourceCIDR.cidr: "10.0.0.0/33" is not a CIDR`},
	} {
		probs := validate(t, v1alpha1.RateLimitPolicySpec{Global: &v1alpha1.RateLimitRules{Rules: []v1alpha1.RateLimitRule{rule(tc.sel)}}}, gw)
		if got := strings.Join(probs, "\n"); !strings.Contains(got, "spec.global.rules[0].clientSelectors[0]: "+tc.want) {
			t.Errorf("%+v: %s; want %q", tc.sel, got, tc.want)
		}
	}
	// Identity selectors where no extAuth sets the headers: refused.
	open := &policies.Target{Kind: "Gateway", Field: "spec.targetRefs[0]", Listeners: []*ir.Listener{{Name: "default/edge/10080"}}}
	probs := validate(t, v1alpha1.RateLimitPolicySpec{Global: &v1alpha1.RateLimitRules{Rules: []v1alpha1.RateLimitRule{
		rule(v1alpha1.RateLimitSelector{Identity: &v1alpha1.IdentitySelector{Field: v1alpha1.IdentityTier, Type: v1alpha1.MatchDistinct}}),
	}}}, open)
	if got := strings.Join(probs, "\n"); !strings.Contains(got, "spec.targetRefs[0]: identity selectors read the headers auth's Check sets, and listener default/edge/10080 has no SecurityPolicy extAuth") {
		t.Fatalf("problems: %s", got)
	}
}

// Global rules on a route carry the route in their descriptor; on a
// Gateway, every route of its listeners counts into the same rule.
func TestApplyScopesRouteRules(t *testing.T) {
	spec := v1alpha1.RateLimitPolicySpec{Global: &v1alpha1.RateLimitRules{Rules: []v1alpha1.RateLimitRule{{Name: "all", Limit: v1alpha1.RateLimitValue{Requests: 5, Unit: "Second"}}}}}
	p := &v1alpha1.RateLimitPolicy{Spec: spec}
	p.Namespace, p.Name = "default", "limits"
	env := &policytest.Env{ClusterList: []*ir.Cluster{policytest.Cluster("ratelimit", "default", 8081, true)}}
	var probs policytest.Problems
	v, ok := ratelimit.Feature.Validate(p, nil, env, probs.Report, probs.Failed)
	if !ok {
		t.Fatal(probs)
	}
	rt := &ir.Route{}
	ratelimit.Feature.ApplyTo(v, &policies.Target{Kind: "HTTPRoute", Namespace: "default", Name: "chat", GatewayRoutes: []*ir.Route{rt}}, env)
	if len(rt.RateLimits) != 1 || rt.RateLimits[0].ID != "default/limits/all" || len(rt.RateLimits[0].Entries) != 1 || rt.RateLimits[0].Entries[0].Value != "HTTPRoute/default/chat" {
		t.Fatalf("%+v", rt.RateLimits)
	}
	// The filter: only on listeners whose routes carry global rules.
	with := &ir.Listener{Name: "default/ai/8080", VirtualHosts: []*ir.VirtualHost{{Routes: []*ir.Route{rt}}}}
	without := &ir.Listener{Name: "default/ai/9090"}
	env.GatewayList = []*policies.GatewayListeners{{Namespace: "default", Name: "ai", Listeners: []*ir.Listener{with, without}}}
	ratelimit.Feature.Complete(env)
	if with.RateLimit == nil || with.RateLimit.Domain != "default/ai/8080" || with.RateLimit.Cluster != "ratelimit.default:8081" || without.RateLimit != nil {
		t.Fatalf("filters: %+v, %+v", with.RateLimit, without.RateLimit)
	}
}
