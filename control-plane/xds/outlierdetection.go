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
	out := &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    optUint32(od.Consecutive5xx),
		ConsecutiveGatewayFailure:          optUint32(od.ConsecutiveGatewayErrors),
		MaxEjectionPercent:                 optUint32(od.MaxEjectionPercent),
		FailurePercentageThreshold:         optUint32(od.FailurePercentageThreshold),
		FailurePercentageMinimumHosts:      optUint32(od.FailurePercentageMinimumHosts),
		FailurePercentageRequestVolume:     optUint32(od.FailurePercentageRequestVolume),
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
