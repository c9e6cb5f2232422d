// Package circuitbreaker applies BackendPolicy.circuitBreaker to clusters.
//
// Envoy honours every threshold; proxyless gRPC clients honour maxRequests.
package circuitbreaker

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// Build returns the IR of a circuit breaker.
func Build(spec *v1alpha1.CircuitBreaker) *ir.CircuitBreaker {
	u := func(p *int32) *uint32 {
		if p == nil {
			return nil
		}
		v := uint32(*p)
		return &v
	}
	out := &ir.CircuitBreaker{
		MaxConnections:     u(spec.MaxConnections),
		MaxPendingRequests: u(spec.MaxPendingRequests),
		MaxRequests:        u(spec.MaxRequests),
		MaxRetries:         u(spec.MaxRetries),
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
