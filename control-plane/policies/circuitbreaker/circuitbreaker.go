// Package circuitbreaker is BackendPolicy.circuitBreaker: caps on what is
// in flight towards a Service (connections, pending and active requests,
// retries, or a retry budget); overflow fails fast instead of queueing.
//
// Attaches to a Service only (its clusters). Envoy honours every
// threshold; proxyless gRPC clients honour maxRequests.
package circuitbreaker

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.circuitBreaker.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.CircuitBreaker, *ir.CircuitBreaker]{
	Meta:    policies.Meta{Name: "circuitBreaker", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.CircuitBreaker { return p.Spec.CircuitBreaker },
	Refusal: policies.ServiceOnly("spec.circuitBreaker"),
	Build: func(spec *v1alpha1.CircuitBreaker, _ policies.Context[*v1alpha1.BackendPolicy]) (*ir.CircuitBreaker, bool) {
		return Build(spec), true
	},
	Apply: func(cb *ir.CircuitBreaker, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			t.Claim(c, "circuitBreaker", func() { c.CircuitBreaker = cb })
		}
	},
}

// Build returns the IR of a circuit breaker.
func Build(spec *v1alpha1.CircuitBreaker) *ir.CircuitBreaker {
	out := &ir.CircuitBreaker{
		MaxConnections:     policies.Uint32(spec.MaxConnections),
		MaxPendingRequests: policies.Uint32(spec.MaxPendingRequests),
		MaxRequests:        policies.Uint32(spec.MaxRequests),
		MaxRetries:         policies.Uint32(spec.MaxRetries),
	}
	if b := spec.RetryBudget; b != nil {
		pct := 20.0
		if b.Percent != nil {
			pct = float64(*b.Percent)
		}
		out.RetryBudgetPercent = &pct
		minC := uint32(3)
		if b.MinRetryConcurrency != nil {
			minC = uint32(*b.MinRetryConcurrency)
		}
		out.MinRetryConcurrency = &minC
	}
	return out
}
