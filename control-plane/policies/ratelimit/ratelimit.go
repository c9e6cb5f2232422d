// Package ratelimit is RateLimitPolicy: request limits that the Gateways'
// Envoy enforce. Global rules (spec.global) are counted by the rate-limit
// service (envoyproxy/ratelimit, backed by Redis) across every Envoy;
// local rules (spec.local) by each Envoy on its own (Envoy's
// local_ratelimit, per client address at the router). A rule is one
// descriptor (ir.RateLimitRule): the rule's id, then what its selectors
// take from the request (a header, an identity header auth's Check set, the
// client's address in a range), matched against the same list with the
// limit at its end; both sides are generated from the one rule, so they
// cannot disagree.
//
// Attaches to a Gateway (its listeners count across all their routes) or
// to an HTTPRoute or GRPCRoute (global rules only, counted per route: the
// route is part of the descriptor). Proxyless servers cannot (grpc-go has
// no rate-limit filter). Identity selectors read headers that only auth's
// Check may set, so they are refused on a listener without SecurityPolicy
// extAuth. A policy applies whole or not at all. Global rules fail open
// (budgets are enforced by users regardless); shadow rules count and
// report but never reject.
//
// Once every RateLimitPolicy has applied, each Gateway listener whose
// routes carry global rules gets the rate-limit filter, its domain being
// the listener's name (rule ids are descriptor roots, so policies never
// share counters).
package ratelimit

import (
	"fmt"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Service is the Service of the global rate-limit service
// (envoyproxy/ratelimit) in a Gateway's namespace: the Gateways send their
// global rules' descriptors to its gRPC port, and its replicas connect to
// the control plane as role ratelimit to receive the rules.
const Service = "ratelimit"

// DefaultTimeout bounds a ShouldRateLimit call; past it the request goes on
// (the limiter fails open).
const DefaultTimeout = 100 * time.Millisecond

// rules are a valid policy's global and local rules.
type rules struct {
	global, local []ir.RateLimitRule
}

// Feature is RateLimitPolicy (its global and local rules).
var Feature = policies.Define[*v1alpha1.RateLimitPolicy, v1alpha1.RateLimitPolicySpec, rules]{
	Meta:  policies.Meta{Name: "rateLimits", Kind: policies.RateLimitPolicy, Attaches: policies.Gateway | policies.Route},
	Field: func(p *v1alpha1.RateLimitPolicy) *v1alpha1.RateLimitPolicySpec { return &p.Spec },
	Refusal: func(t *policies.Target) (string, string) {
		return t.Field, "rate limits are enforced by Envoy Gateways; proxyless servers cannot (grpc-go implements no rate-limit filter): target the Gateway or the route"
	},
	Build:  build,
	Apply:  apply,
	Finish: filters,
}

func build(spec *v1alpha1.RateLimitPolicySpec, c policies.Context[*v1alpha1.RateLimitPolicy]) (rules, bool) {
	ns := c.Policy.Namespace
	id := ns + "/" + c.Policy.Name + "/"
	var out rules
	if g := spec.Global; g != nil {
		out.global = buildRules(id, "spec.global", g.Rules, false, c.Report)
		if cluster(c.Env, ns) == "" {
			c.Report("spec.global", fmt.Sprintf("global rules are counted by the rate-limit service, and namespace %s declares no Service %q with a gRPC port (policies/mesh/ratelimit.yaml declares one)", ns, Service))
		}
	}
	if l := spec.Local; l != nil {
		out.local = buildRules(id, "spec.local", l.Rules, true, c.Report)
		for _, t := range c.Targets {
			if policies.AttachOf(t.Kind) == policies.Route {
				c.Report(t.Field, "local rules count per Envoy listener: target the Gateway (routes take global rules)")
			}
		}
	}
	if !c.Failed() {
		checkIdentitySource(spec, c)
	}
	return out, !c.Failed()
}

// apply puts a valid policy's rules where they act.
func apply(r rules, t *policies.Target, _ policies.Env) {
	switch policies.AttachOf(t.Kind) {
	case policies.Gateway:
		for _, l := range t.Listeners {
			if r.local != nil {
				if l.LocalRateLimit == nil {
					l.LocalRateLimit = &ir.LocalRateLimit{}
				}
				l.LocalRateLimit.Rules = append(l.LocalRateLimit.Rules, r.local...)
			}
		}
		for _, rt := range t.GatewayRoutes {
			rt.RateLimits = append(rt.RateLimits, r.global...)
		}
	case policies.Route:
		// The route is part of the descriptor: each route its own counters.
		scope := ir.DescriptorEntry{Key: "route", Source: ir.SourceConstant, Value: t.Kind + "/" + t.Namespace + "/" + t.Name}
		for _, rt := range t.GatewayRoutes {
			for _, g := range r.global {
				g.Entries = append([]ir.DescriptorEntry{scope}, g.Entries...)
				rt.RateLimits = append(rt.RateLimits, g)
			}
		}
	}
}

// filters gives every Gateway listener whose routes carry global rules the
// rate-limit filter, its domain being the listener's name.
func filters(env policies.Env) {
	for _, gw := range env.Gateways() {
		for _, l := range gw.Listeners {
			if len(l.GlobalRules()) == 0 {
				continue
			}
			l.RateLimit = &ir.GlobalRateLimit{Domain: l.Name, Cluster: cluster(env, gw.Namespace), Timeout: ir.D(DefaultTimeout)}
		}
	}
}

// cluster is the cluster of the rate-limit service's gRPC port in a
// namespace ("" when there is none).
func cluster(env policies.Env, ns string) string {
	for _, c := range env.Clusters(ns, Service) {
		if c.HTTP2 {
			return c.Name
		}
	}
	return ""
}

// checkIdentitySource refuses identity selectors where no ext_authz sets
// the identity headers: on such a listener a client could send them itself
// and pick its own counter.
func checkIdentitySource(spec *v1alpha1.RateLimitPolicySpec, c policies.Context[*v1alpha1.RateLimitPolicy]) {
	usesIdentity := func(rules *v1alpha1.RateLimitRules) bool {
		if rules == nil {
			return false
		}
		for _, r := range rules.Rules {
			for _, s := range r.ClientSelectors {
				if s.Identity != nil {
					return true
				}
			}
		}
		return false
	}
	if !usesIdentity(spec.Global) && !usesIdentity(spec.Local) {
		return
	}
	for _, t := range c.Targets {
		for _, l := range t.Listeners {
			if l.ExtAuthz == nil {
				c.Report(t.Field, fmt.Sprintf("identity selectors read the headers auth's Check sets, and listener %s has no SecurityPolicy extAuth: a client could send them itself", l.Name))
				return
			}
		}
	}
}
