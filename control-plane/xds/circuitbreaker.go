package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

func circuitBreakers(cb *ir.CircuitBreaker) *clusterv3.CircuitBreakers {
	u := func(p *uint32) *wrapperspb.UInt32Value {
		if p == nil {
			return nil
		}
		return wrapperspb.UInt32(*p)
	}
	t := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     u(cb.MaxConnections),
		MaxPendingRequests: u(cb.MaxPendingRequests),
		MaxRequests:        u(cb.MaxRequests),
		MaxRetries:         u(cb.MaxRetries),
	}
	if cb.RetryBudgetPercent != nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: *cb.RetryBudgetPercent},
			MinRetryConcurrency: u(cb.MinRetryConcurrency),
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}
