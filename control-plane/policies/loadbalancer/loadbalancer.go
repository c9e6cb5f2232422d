// Package loadbalancer applies BackendPolicy.loadBalancer: the cluster's
// algorithm and, for ring hash, the routes' hash policy.
package loadbalancer

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// Build returns the cluster's load balancer and the routes' hash policy
// (nil unless ring hash).
func Build(spec *v1alpha1.LoadBalancer) (ir.LoadBalancer, *ir.HashPolicy) {
	switch spec.Type {
	case v1alpha1.LoadBalancerLeastRequest:
		return ir.LoadBalancer{Policy: ir.LBLeastRequest}, nil
	case v1alpha1.LoadBalancerRingHash:
		lb := ir.LoadBalancer{Policy: ir.LBRingHash, MinimumRingSize: 1024}
		if spec.RingHash == nil {
			return lb, nil
		}
		if spec.RingHash.MinimumRingSize != nil {
			lb.MinimumRingSize = uint64(*spec.RingHash.MinimumRingSize)
		}
		return lb, &ir.HashPolicy{Header: spec.RingHash.Header}
	default:
		return ir.LoadBalancer{Policy: ir.LBRoundRobin}, nil
	}
}
