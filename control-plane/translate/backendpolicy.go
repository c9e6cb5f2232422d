package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/circuitbreaker"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/degradedresponse"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/fallback"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/faultinjection"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/healthcheck"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/loadbalancer"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/outlierdetection"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/retry"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/timeout"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// Precedence of BackendPolicies (documented in policies/README.md):
//
//  1. A policy that targets a route beats one that targets the route's
//     parent Service, feature by feature (retry, timeout, fault injection).
//  2. Between policies at the same level, the oldest (creationTimestamp)
//     wins, then the first by namespace/name; the others are reported
//     Conflicted for that feature on that target and the rest of them
//     still applies.
//
// Cluster features (loadBalancer, circuitBreaker, outlierDetection,
// fallback, timeout.connect) apply to a Service only.

// target is what one targetRef resolved to.
type target struct {
	// service ports (Service target) or nil.
	ports []*servicePort
	// routes the route-level features apply to.
	routes []*ir.Route
	// routeLevel is true for a route target (more specific).
	routeLevel bool
	name       string
}

// claim records which policy set a feature on an IR object.
type claim struct {
	policy     string
	routeLevel bool
}

type claimKey struct {
	obj     any
	feature string
}

func (t *translator) backendPolicies() {
	pols := append([]*v1alpha1.BackendPolicy(nil), t.res.BackendPolicies...)
	sort.SliceStable(pols, func(i, j int) bool {
		a, b := pols[i], pols[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	claims := map[claimKey]claim{}
	// Service-level first, so that route-level policies can override them.
	for _, level := range []bool{false, true} {
		for _, p := range pols {
			t.backendPolicy(p, level, claims)
		}
	}
}

func (t *translator) backendPolicy(p *v1alpha1.BackendPolicy, routeLevel bool, claims map[claimKey]claim) {
	key := resource.KeyOf("BackendPolicy", p)
	origin := t.res.Origin(key)
	var problems []string
	report := t.reporter(key, &problems)
	fail := func(field, format string, args ...any) { report(field, fmt.Sprintf(format, args...)) }
	var conflicts []string

	for i, ref := range p.Spec.TargetRefs {
		field := fmt.Sprintf("spec.targetRefs[%d]", i)
		isRoute := ref.Kind == "HTTPRoute" || ref.Kind == "GRPCRoute"
		if isRoute != routeLevel {
			continue
		}
		tg, err := t.resolveTarget(p.Namespace, ref)
		if err != nil {
			fail(field, "%v", err)
			t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "False", Reason: "TargetNotFound", Message: field + ": " + err.Error()})
			continue
		}
		set := func(obj any, feature string, apply func()) {
			ck := claimKey{obj, feature}
			if c, ok := claims[ck]; ok && c.routeLevel == tg.routeLevel {
				msg := fmt.Sprintf("%s on %s is already set by %s", feature, tg.name, c.policy)
				if !slices.Contains(conflicts, msg) {
					conflicts = append(conflicts, msg)
				}
				return
			}
			claims[ck] = claim{policy: "BackendPolicy " + p.Namespace + "/" + p.Name, routeLevel: tg.routeLevel}
			apply()
		}
		s := p.Spec
		// Route-level features, in a fixed order.
		if s.Retry != nil {
			if r, err := retry.Build(s.Retry); err != nil {
				fail("spec.retry", "%v", err)
			} else {
				for _, rt := range tg.routes {
					set(rt, "retry", func() { rt.Retry = r })
				}
			}
		}
		if s.Timeout != nil {
			if to, err := timeout.Build(s.Timeout); err != nil {
				fail("spec.timeout", "%v", err)
			} else {
				if to.Request != nil {
					for _, rt := range tg.routes {
						set(rt, "timeout.request", func() { rt.Timeout = to.Request })
					}
				}
				if to.Connect != nil {
					if tg.routeLevel {
						fail("spec.timeout.connect", "applies to a Service's connections: target the Service")
					}
					for _, sp := range tg.ports {
						set(sp.cluster, "timeout.connect", func() { sp.cluster.ConnectTimeout = to.Connect })
					}
				}
			}
		}
		if s.FaultInjection != nil {
			if f, err := faultinjection.Build(s.FaultInjection); err != nil {
				fail("spec.faultInjection", "%v", err)
			} else {
				for _, rt := range tg.routes {
					set(rt, "faultInjection", func() { rt.Fault = f })
				}
			}
		}
		// Cluster features: Service targets only.
		clusterFeature := func(name string, present bool) bool {
			if !present {
				return false
			}
			if tg.routeLevel {
				fail("spec."+name, "applies to a Service: target the Service, not the route")
				return false
			}
			return true
		}
		if clusterFeature("loadBalancer", s.LoadBalancer != nil) {
			lb, hash := loadbalancer.Build(s.LoadBalancer)
			for _, sp := range tg.ports {
				set(sp.cluster, "loadBalancer", func() { sp.cluster.LB = lb })
			}
			if hash != nil {
				for _, rt := range tg.routes {
					set(rt, "hashPolicy", func() { rt.HashPolicy = hash })
				}
			}
		}
		if clusterFeature("circuitBreaker", s.CircuitBreaker != nil) {
			cb := circuitbreaker.Build(s.CircuitBreaker)
			for _, sp := range tg.ports {
				set(sp.cluster, "circuitBreaker", func() { sp.cluster.CircuitBreaker = cb })
			}
		}
		if clusterFeature("outlierDetection", s.OutlierDetection != nil) {
			if od, err := outlierdetection.Build(s.OutlierDetection); err != nil {
				fail("spec.outlierDetection", "%v", err)
			} else {
				for _, sp := range tg.ports {
					set(sp.cluster, "outlierDetection", func() { sp.cluster.OutlierDetection = od })
				}
			}
		}
		if clusterFeature("healthCheck", s.HealthCheck != nil) {
			if hc, err := healthcheck.Build(s.HealthCheck); err != nil {
				fail("spec.healthCheck", "%v", err)
			} else {
				for _, sp := range tg.ports {
					set(sp.cluster, "healthCheck", func() { sp.cluster.HealthCheck = hc })
				}
			}
		}
		if clusterFeature("degradedResponse", s.DegradedResponse != nil) {
			if dr, err := degradedresponse.Build(s.DegradedResponse); err != nil {
				fail("spec.degradedResponse", "%v", err)
			} else {
				for _, sp := range tg.ports {
					set(sp.cluster, "degradedResponse", func() { sp.cluster.Degraded = dr })
				}
			}
		}
		if clusterFeature("fallback", s.Fallback != nil) {
			ref := s.Fallback.BackendRef
			fs := t.svcs[svcKey{p.Namespace, ref.Name}]
			var fsp *servicePort
			if fs != nil {
				fsp = fs.port(uint32(ref.Port))
			}
			switch {
			case fsp == nil:
				fail("spec.fallback.backendRef", "Service %s/%s port %d not found", p.Namespace, ref.Name, ref.Port)
			default:
				for _, sp := range tg.ports {
					if sp == fsp {
						fail("spec.fallback.backendRef", "a Service cannot be its own fallback")
						continue
					}
					set(sp.cluster, "fallback", func() { fallback.Merge(sp.cluster, fsp.cluster) })
				}
			}
		}
	}
	switch {
	case len(problems) > 0:
		t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalid, Message: strings.Join(problems, "; ")})
	case len(conflicts) > 0:
		t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "False", Reason: "Conflicted", Message: strings.Join(conflicts, "; ") + " (older policies win)"})
	default:
		t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted})
	}
}

// resolveTarget finds what a targetRef names, in the policy's namespace.
func (t *translator) resolveTarget(ns string, ref v1alpha1.PolicyTargetReference) (*target, error) {
	name := string(ref.Name)
	switch ref.Kind {
	case "Service":
		s := t.svcs[svcKey{ns, name}]
		if s == nil {
			return nil, fmt.Errorf("target Service %s/%s not found", ns, name)
		}
		tg := &target{name: "Service " + ns + "/" + name}
		for _, sp := range s.ports {
			if ref.SectionName != nil && string(*ref.SectionName) != sp.name {
				continue
			}
			tg.ports = append(tg.ports, sp)
			for _, vh := range sp.listener.VirtualHosts {
				tg.routes = append(tg.routes, vh.Routes...)
			}
		}
		if len(tg.ports) == 0 {
			return nil, fmt.Errorf("target Service %s/%s has no port named %q (sectionName)", ns, name, *ref.SectionName)
		}
		// Gateway routes whose every backend is this Service are traffic to
		// it too.
		clusters := map[string]bool{}
		for _, sp := range tg.ports {
			clusters[sp.cluster.Name] = true
		}
		for _, rt := range t.gatewayRoutes {
			all := len(rt.Backends) > 0
			for _, b := range rt.Backends {
				all = all && clusters[b.Cluster]
			}
			if all {
				tg.routes = append(tg.routes, rt)
			}
		}
		return tg, nil
	case "HTTPRoute", "GRPCRoute":
		routes, ok := t.routeIndex[resource.Key{Kind: string(ref.Kind), Namespace: ns, Name: name}]
		if !ok {
			return nil, fmt.Errorf("%s %s/%s not found (or attached to no Service)", ref.Kind, ns, name)
		}
		return &target{routes: routes, routeLevel: true, name: string(ref.Kind) + " " + ns + "/" + name}, nil
	}
	return nil, fmt.Errorf("kind %s cannot be targeted by a BackendPolicy", ref.Kind)
}
