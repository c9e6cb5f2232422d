package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

func circuitBreakers(cb *ir.CircuitBreaker) *clusterv3.CircuitBreakers {
	t := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     optUint32(cb.MaxConnections),
		MaxPendingRequests: optUint32(cb.MaxPendingRequests),
		MaxRequests:        optUint32(cb.MaxRequests),
		MaxRetries:         optUint32(cb.MaxRetries),
	}
	if cb.RetryBudgetPercent != nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: *cb.RetryBudgetPercent},
			MinRetryConcurrency: optUint32(cb.MinRetryConcurrency),
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

// optUint32 wraps an optional value; nil stays unset (Envoy's default).
func optUint32(p *uint32) *wrapperspb.UInt32Value {
	if p == nil {
		return nil
	}
	return wrapperspb.UInt32(*p)
}
