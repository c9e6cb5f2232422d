package xds

import (
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

const faultFilterName = "envoy.filters.http.fault"

// faultConfig is the per-route configuration of the fault filter; the
// listener's filter itself injects nothing.
func faultConfig(f *ir.Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if f.Delay != nil {
		out.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay.Std())},
			Percentage:         percent(f.DelayPercent),
		}
	}
	if f.Abort {
		a := &faultv3.FaultAbort{Percentage: percent(f.AbortPercent)}
		if f.AbortGRPCStatus != 0 {
			a.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: f.AbortGRPCStatus}
		} else {
			a.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortHTTPStatus}
		}
		out.Abort = a
	}
	return out
}

func percent(p uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: p, Denominator: typev3.FractionalPercent_HUNDRED}
}

// mustAny packs a message; packing a generated message cannot fail. The
// bytes are marshalled deterministically (map entries in key order, as an
// RBAC filter's policies): the versions of a configuration are hashes of
// its bytes, and the same configuration must have the same version in
// every replica and every translation.
func mustAny(m proto.Message) *anypb.Any {
	a, err := packAny(m)
	if err != nil {
		panic(err)
	}
	return a
}

func packAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}
