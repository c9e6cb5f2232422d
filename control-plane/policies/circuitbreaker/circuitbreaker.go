// Package circuitbreaker applies BackendPolicy.circuitBreaker to clusters.
//
// Envoy honours every threshold; proxyless gRPC clients honour maxRequests.
package circuitbreaker

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

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
