package translate

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// RateLimitService is the Service of the global rate-limit service
// (envoyproxy/ratelimit) in a Gateway's namespace: the Gateways send their
// global rules' descriptors to its gRPC port, and its replicas connect to
// the control plane as role ratelimit to receive the rules.
const RateLimitService = "ratelimit"

// DefaultRateLimitTimeout bounds a ShouldRateLimit call; past it the
// request goes on (the limiter fails open).
const DefaultRateLimitTimeout = 100 * time.Millisecond

// IdentityHeaders are the request headers auth's Check sets (ext_authz)
// that RateLimitPolicy identity selectors read: services/identity defines
// the same names (a test keeps them equal).
var IdentityHeaders = map[v1alpha1.IdentityField]string{
	v1alpha1.IdentityKeyID:     "x-bulkhead-key-id",
	v1alpha1.IdentityAccountID: "x-bulkhead-account-id",
	v1alpha1.IdentityTier:      "x-bulkhead-tier",
}

// identityKeys are the descriptor keys of the identity selectors.
var identityKeys = map[v1alpha1.IdentityField]string{
	v1alpha1.IdentityKeyID:     "key_id",
	v1alpha1.IdentityAccountID: "account_id",
	v1alpha1.IdentityTier:      "tier",
}

// rateLimitPolicies validates RateLimitPolicies and applies them to the
// Envoy Gateways they target. Global rules go on the routes (descriptor
// actions) and into the rate-limit service's domain of each listener;
// local rules go on the listeners of a targeted Gateway. A policy applies
// whole or not at all: any problem leaves it out, and its status says why.
func (t *translator) rateLimitPolicies() {
	for _, p := range t.res.RateLimitPolicies {
		key := resource.KeyOf("RateLimitPolicy", p)
		problems := t.checkTargets(key, p.Namespace, p.Spec.TargetRefs)
		report := t.reporter(key, &problems)
		id := p.Namespace + "/" + p.Name + "/"
		var global, local []ir.RateLimitRule
		if g := p.Spec.Global; g != nil {
			global = buildRules(id, "spec.global", g.Rules, false, report)
			if t.rateLimitCluster(p.Namespace) == "" {
				report("spec.global", fmt.Sprintf("global rules are counted by the rate-limit service, and namespace %s declares no Service %q with a gRPC port (policies/mesh/ratelimit.yaml declares one)", p.Namespace, RateLimitService))
			}
		}
		if l := p.Spec.Local; l != nil {
			local = buildRules(id, "spec.local", l.Rules, true, report)
		}
		for i, ref := range p.Spec.TargetRefs {
			field := fmt.Sprintf("spec.targetRefs[%d]", i)
			switch ref.Kind {
			case "Service":
				report(field, "rate limits are enforced by Envoy Gateways; proxyless servers cannot (grpc-go implements no rate-limit filter): target the Gateway or the route")
			case "HTTPRoute", "GRPCRoute":
				if p.Spec.Local != nil {
					report(field, "local rules count per Envoy listener: target the Gateway (routes take global rules)")
				}
			}
		}
		if len(problems) == 0 {
			t.checkIdentitySource(p, report)
		}
		if len(problems) == 0 {
			t.applyRateLimits(p, global, local)
		}
		t.policyAccepted(key, problems, "enforced by the targeted Gateways' Envoy (global rules through the rate-limit service)")
	}
	t.rateLimitFilters()
}

// buildRules turns a policy's rules into IR rules (descriptors).
func buildRules(id, field string, rules []v1alpha1.RateLimitRule, local bool, report func(field, msg string)) []ir.RateLimitRule {
	var out []ir.RateLimitRule
	names := map[string]bool{}
	for i, r := range rules {
		f := fmt.Sprintf("%s.rules[%d]", field, i)
		if names[r.Name] {
			report(f+".name", fmt.Sprintf("%q is used by another rule of the policy", r.Name))
			continue
		}
		names[r.Name] = true
		rule := ir.RateLimitRule{ID: id + r.Name, Shadow: r.Shadow}
		ok := true
		if local && r.Shadow {
			report(f+".shadow", "shadow mode is for global rules (the rate-limit service reports without rejecting); a local rule always enforces")
			ok = false
		}
		if r.Limit.Requests < 1 || r.Limit.Requests > math.MaxUint32 {
			report(f+".limit.requests", fmt.Sprintf("%d is not between 1 and %d", r.Limit.Requests, uint32(math.MaxUint32)))
			ok = false
		}
		rule.Requests = uint32(min(max(r.Limit.Requests, 0), math.MaxUint32))
		switch r.Limit.Unit {
		case "Second":
			rule.Unit = ir.UnitSecond
		case "Minute":
			rule.Unit = ir.UnitMinute
		case "Hour":
			rule.Unit = ir.UnitHour
		case "Day":
			rule.Unit = ir.UnitDay
		default:
			report(f+".limit.unit", fmt.Sprintf("%q is not one of Second, Minute, Hour, Day", r.Limit.Unit))
			ok = false
		}
		keys := map[string]bool{}
		for j, s := range r.ClientSelectors {
			sf := fmt.Sprintf("%s.clientSelectors[%d]", f, j)
			entries, msg := selectorEntries(s)
			if msg != "" {
				report(sf, msg)
				ok = false
				continue
			}
			for _, e := range entries {
				if keys[e.Key] {
					report(sf, fmt.Sprintf("a rule can select on %s only once", e.Key))
					ok = false
				}
				keys[e.Key] = true
			}
			rule.Entries = append(rule.Entries, entries...)
		}
		if ok {
			out = append(out, rule)
		}
	}
	return out
}

// selectorEntries is the descriptor entries of one selector, or why it is
// invalid.
func selectorEntries(s v1alpha1.RateLimitSelector) ([]ir.DescriptorEntry, string) {
	set := 0
	for _, b := range []bool{s.Header != nil, s.Identity != nil, s.SourceCIDR != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, "set exactly one of header, identity, sourceCIDR"
	}
	switch {
	case s.Header != nil:
		h := s.Header
		// No dot in a key: the rate-limit service's statistics split on dots.
		return headerEntry("header_"+strings.ToLower(h.Name), strings.ToLower(h.Name), h.Type, h.Value, h.Invert, "header")
	case s.Identity != nil:
		name, ok := IdentityHeaders[s.Identity.Field]
		if !ok {
			return nil, fmt.Sprintf("identity.field: %q is not one of KeyID, AccountID, Tier", s.Identity.Field)
		}
		return headerEntry(identityKeys[s.Identity.Field], name, s.Identity.Type, s.Identity.Value, false, "identity")
	}
	c := s.SourceCIDR
	prefix, err := netip.ParsePrefix(c.CIDR)
	if err != nil {
		return nil, fmt.Sprintf("sourceCIDR.cidr: %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", c.CIDR)
	}
	prefix = prefix.Masked()
	masked := ir.DescriptorEntry{Key: "masked_remote_address", Source: ir.SourceMaskedAddress, Value: prefix.String(),
		PrefixLen: uint32(prefix.Bits()), IPv6: !prefix.Addr().Is4()}
	switch c.Type {
	case v1alpha1.MatchExact:
		return []ir.DescriptorEntry{masked}, ""
	case v1alpha1.MatchDistinct:
		return []ir.DescriptorEntry{masked, {Key: "remote_address", Source: ir.SourceRemoteAddress}}, ""
	}
	return nil, fmt.Sprintf("sourceCIDR.type: %q; a range is Exact (one counter) or Distinct (one counter per address)", c.Type)
}

func headerEntry(key, header string, typ v1alpha1.MatchType, value *string, invert bool, field string) ([]ir.DescriptorEntry, string) {
	switch typ {
	case v1alpha1.MatchDistinct:
		if value != nil {
			return nil, field + ".value: not allowed with type Distinct (one counter per value)"
		}
		if invert {
			return nil, field + ".invert: not allowed with type Distinct"
		}
		return []ir.DescriptorEntry{{Key: key, Source: ir.SourceHeader, Header: header}}, ""
	case v1alpha1.MatchExact, v1alpha1.MatchRegularExpression:
		if value == nil {
			return nil, field + ".value: required with type " + string(typ)
		}
		m := &ir.HeaderMatch{Name: header, Invert: invert}
		v := *value
		if typ == v1alpha1.MatchExact {
			m.Exact = v
		} else {
			if _, err := regexp.Compile(v); err != nil {
				return nil, fmt.Sprintf("%s.value: %q is not a regular expression: %v", field, v, err)
			}
			m.Regex = v
			v = "match"
		}
		if invert {
			v = "not-" + v
		}
		return []ir.DescriptorEntry{{Key: key, Source: ir.SourceHeaderMatch, Value: v, Match: m}}, ""
	}
	return nil, fmt.Sprintf("%s.type: %q is not one of Exact, RegularExpression, Distinct", field, typ)
}

// applyRateLimits puts a valid policy's rules where they act.
func (t *translator) applyRateLimits(p *v1alpha1.RateLimitPolicy, global, local []ir.RateLimitRule) {
	for _, ref := range p.Spec.TargetRefs {
		switch ref.Kind {
		case "Gateway":
			gw := t.gws[svcKey{p.Namespace, string(ref.Name)}]
			for _, l := range gw.ports {
				if local != nil {
					if l.LocalRateLimit == nil {
						l.LocalRateLimit = &ir.LocalRateLimit{}
					}
					l.LocalRateLimit.Rules = append(l.LocalRateLimit.Rules, local...)
				}
				for _, vh := range l.VirtualHosts {
					for _, r := range vh.Routes {
						r.RateLimits = append(r.RateLimits, global...)
					}
				}
			}
		case "HTTPRoute", "GRPCRoute":
			// The route is part of the descriptor: each route its own
			// counters.
			scope := ir.DescriptorEntry{Key: "route", Source: ir.SourceConstant, Value: string(ref.Kind) + "/" + p.Namespace + "/" + string(ref.Name)}
			for _, r := range t.gatewayRoutesOf(string(ref.Kind), p.Namespace, string(ref.Name)) {
				for _, g := range global {
					g.Entries = append([]ir.DescriptorEntry{scope}, g.Entries...)
					r.RateLimits = append(r.RateLimits, g)
				}
			}
		}
	}
}

// rateLimitFilters gives every Gateway listener whose routes carry global
// rules the rate-limit filter, its domain being the listener's name.
func (t *translator) rateLimitFilters() {
	for k, gw := range t.gws {
		for _, l := range gw.ports {
			if len(l.GlobalRules()) == 0 {
				continue
			}
			l.RateLimit = &ir.GlobalRateLimit{Domain: l.Name, Cluster: t.rateLimitCluster(k.namespace), Timeout: ir.D(DefaultRateLimitTimeout)}
		}
	}
}

// rateLimitCluster is the cluster of the rate-limit service's gRPC port in
// a namespace ("" when there is none).
func (t *translator) rateLimitCluster(ns string) string {
	s := t.svcs[svcKey{ns, RateLimitService}]
	if s == nil {
		return ""
	}
	for _, p := range s.ports {
		if p.cluster.HTTP2 {
			return p.cluster.Name
		}
	}
	return ""
}

// rateLimitDomains is the rate-limit service's configuration: one domain
// per Gateway listener with global rules, sorted.
func rateLimitDomains(gws map[string][]*ir.Listener) []*ir.RateLimitDomain {
	var out []*ir.RateLimitDomain
	for _, ls := range gws {
		for _, l := range ls {
			if l.RateLimit == nil {
				continue
			}
			out = append(out, &ir.RateLimitDomain{Domain: l.RateLimit.Domain, Rules: l.GlobalRules()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// gatewayRoutesOf returns the routes on Gateway listeners made from one
// route object (not its copies on Services, which proxyless clients apply).
func (t *translator) gatewayRoutesOf(kind, ns, name string) []*ir.Route {
	if t.onGateway == nil {
		// gatewayRoutes is complete once routes() has run, before any
		// policy asks.
		t.onGateway = make(map[*ir.Route]bool, len(t.gatewayRoutes))
		for _, r := range t.gatewayRoutes {
			t.onGateway[r] = true
		}
	}
	var out []*ir.Route
	for _, r := range t.routeIndex[resource.Key{Kind: kind, Namespace: ns, Name: name}] {
		if t.onGateway[r] {
			out = append(out, r)
		}
	}
	return out
}

// checkIdentitySource refuses identity selectors where no ext_authz sets
// the identity headers: on such a listener a client could send them itself
// and pick its own counter.
func (t *translator) checkIdentitySource(p *v1alpha1.RateLimitPolicy, report func(field, msg string)) {
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
	if !usesIdentity(p.Spec.Global) && !usesIdentity(p.Spec.Local) {
		return
	}
	for i, ref := range p.Spec.TargetRefs {
		var listeners []*ir.Listener
		switch ref.Kind {
		case "Gateway":
			for _, l := range t.gws[svcKey{p.Namespace, string(ref.Name)}].ports {
				listeners = append(listeners, l)
			}
		case "HTTPRoute", "GRPCRoute":
			listeners = t.listenersOf(t.gatewayRoutesOf(string(ref.Kind), p.Namespace, string(ref.Name)))
		}
		for _, l := range listeners {
			if l.ExtAuthz == nil {
				report(fmt.Sprintf("spec.targetRefs[%d]", i), fmt.Sprintf("identity selectors read the headers auth's Check sets, and listener %s has no SecurityPolicy extAuth: a client could send them itself", l.Name))
				return
			}
		}
	}
}

// listenersOf returns the Gateway listeners that hold any of routes.
func (t *translator) listenersOf(routes []*ir.Route) []*ir.Listener {
	want := map[*ir.Route]bool{}
	for _, r := range routes {
		want[r] = true
	}
	var out []*ir.Listener
	for _, gw := range t.gws {
		for _, l := range gw.ports {
		search:
			for _, vh := range l.VirtualHosts {
				for _, r := range vh.Routes {
					if want[r] {
						out = append(out, l)
						break search
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
