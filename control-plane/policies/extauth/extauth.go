// Package extauth is SecurityPolicy.extAuth: a Gateway's Envoy asks an
// Envoy ext_authz gRPC service (auth's Check) about each request before
// anything else runs, and passes on the identity headers it answers.
//
// Attaches to a Gateway only (every listener of it). Fails closed unless
// failOpen; a Check is bounded by timeout (250 ms by default). The
// failover to the authorization Service's fallback pool is that Service's
// own (BackendPolicy fallback, priority failover), so a fallback named
// here must be that one: the policy says so rather than hide a second
// failover path.
package extauth

import (
	"fmt"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// DefaultTimeout bounds a Check when the policy does not say.
const DefaultTimeout = 250 * time.Millisecond

// Feature is SecurityPolicy.extAuth.
var Feature = policies.Define[*v1alpha1.SecurityPolicy, v1alpha1.ExtAuth, *ir.ExtAuthz]{
	Meta:    policies.Meta{Name: "extAuth", Kind: policies.SecurityPolicy, Attaches: policies.Gateway},
	Field:   func(p *v1alpha1.SecurityPolicy) *v1alpha1.ExtAuth { return p.Spec.ExtAuth },
	Refusal: policies.GatewayOnly("extAuth", "applied"),
	Build:   build,
	Apply: func(a *ir.ExtAuthz, t *policies.Target, _ policies.Env) {
		for _, l := range t.Listeners {
			l.ExtAuthz = a
		}
	},
}

func build(ea *v1alpha1.ExtAuth, c policies.Context[*v1alpha1.SecurityPolicy]) (*ir.ExtAuthz, bool) {
	ns := c.Policy.Namespace
	backend := c.Env.Port(ns, ea.BackendRef.Name, uint32(ea.BackendRef.Port))
	if backend == nil {
		c.Report("spec.extAuth.backendRef", fmt.Sprintf("Service %s/%s port %d not found", ns, ea.BackendRef.Name, ea.BackendRef.Port))
	}
	var fallback *ir.Cluster
	if f := ea.Fallback; f != nil {
		if fallback = c.Env.Port(ns, f.Name, uint32(f.Port)); fallback == nil {
			c.Report("spec.extAuth.fallback", fmt.Sprintf("Service %s/%s port %d not found", ns, f.Name, f.Port))
		}
	}
	if backend == nil || (ea.Fallback != nil && fallback == nil) {
		return nil, false
	}
	ok := true
	out := &ir.ExtAuthz{Cluster: backend.Name, Timeout: ir.D(DefaultTimeout), FailOpen: ea.FailOpen,
		HeadersToCheck: ea.HeadersToCheck, Source: ns + "/" + c.Policy.Name}
	if ea.Timeout != nil {
		d, err := ea.Timeout.Parse()
		if err != nil || d <= 0 {
			c.Report("spec.extAuth", fmt.Sprintf("timeout: %q must be a positive duration", *ea.Timeout))
			ok = false
		}
		out.Timeout = ir.D(d)
	}
	if fallback != nil && backend.Fallback != fallback.Name {
		c.Report("spec.extAuth", fmt.Sprintf("fallback: the failover of %s is its BackendPolicy's fallback; declare %s there (it says %q)", backend.Name, fallback.Name, backend.Fallback))
		ok = false
	}
	return out, ok
}
