// Package loadbalancer is BackendPolicy.loadBalancer: the algorithm that
// picks a Service's endpoint (round robin, least request, ring hash) and,
// for ring hash, the header the routes to it hash on (session affinity).
//
// Attaches to a Service only (it configures its clusters). Envoy and
// proxyless gRPC clients implement all three.
package loadbalancer

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// lbValue is the cluster's load balancer and the routes' hash policy.
type lbValue struct {
	lb   ir.LoadBalancer
	hash *ir.HashPolicy
}

// Feature is BackendPolicy.loadBalancer.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.LoadBalancer, lbValue]{
	Meta:    policies.Meta{Name: "loadBalancer", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.LoadBalancer { return p.Spec.LoadBalancer },
	Refusal: policies.ServiceOnly("spec.loadBalancer"),
	Build: func(spec *v1alpha1.LoadBalancer, _ policies.Context[*v1alpha1.BackendPolicy]) (lbValue, bool) {
		lb, hash := Build(spec)
		return lbValue{lb, hash}, true
	},
	Apply: func(v lbValue, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			t.Claim(c, "loadBalancer", func() { c.LB = v.lb })
		}
		if v.hash != nil {
			for _, rt := range t.Routes {
				t.Claim(rt, "hashPolicy", func() { rt.HashPolicy = v.hash })
			}
		}
	},
}

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
