package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// outlierDetection enables exactly the algorithms the policy asks for:
// Envoy enables consecutive-5xx and success-rate ejection by default, so
// each is switched off unless set.
func outlierDetection(od *ir.OutlierDetection) *clusterv3.OutlierDetection {
	u := func(p *uint32) *wrapperspb.UInt32Value {
		if p == nil {
			return nil
		}
		return wrapperspb.UInt32(*p)
	}
	out := &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    u(od.Consecutive5xx),
		ConsecutiveGatewayFailure:          u(od.ConsecutiveGatewayErrors),
		MaxEjectionPercent:                 u(od.MaxEjectionPercent),
		FailurePercentageThreshold:         u(od.FailurePercentageThreshold),
		FailurePercentageMinimumHosts:      u(od.FailurePercentageMinimumHosts),
		FailurePercentageRequestVolume:     u(od.FailurePercentageRequestVolume),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		EnforcingConsecutive_5Xx:           enforcing(od.Consecutive5xx != nil),
		EnforcingConsecutiveGatewayFailure: enforcing(od.ConsecutiveGatewayErrors != nil),
		EnforcingFailurePercentage:         enforcing(od.FailurePercentageThreshold != nil),
	}
	if od.Interval != nil {
		out.Interval = durationpb.New(od.Interval.Std())
	}
	if od.BaseEjectionTime != nil {
		out.BaseEjectionTime = durationpb.New(od.BaseEjectionTime.Std())
	}
	return out
}

func enforcing(on bool) *wrapperspb.UInt32Value {
	if on {
		return wrapperspb.UInt32(100)
	}
	return wrapperspb.UInt32(0)
}
