package xds

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// grpcRetryOn are the conditions grpc-go understands.
var grpcRetryOn = map[string]bool{
	"cancelled": true, "deadline-exceeded": true, "internal": true,
	"resource-exhausted": true, "unavailable": true,
}

func retryPolicy(r *ir.Retry, f flavour) *routev3.RetryPolicy {
	on := r.On
	if f == flavourGRPC {
		// grpc-go rejects nothing but ignores conditions it does not know;
		// leave them out so the config dump shows what applies.
		on = nil
		for _, c := range r.On {
			if grpcRetryOn[c] {
				on = append(on, c)
			}
		}
	}
	rp := &routev3.RetryPolicy{
		RetryOn:              strings.Join(on, ","),
		NumRetries:           wrapperspb.UInt32(r.NumRetries),
		RetriableStatusCodes: r.RetriableStatusCodes,
	}
	if r.BaseInterval != nil {
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.BaseInterval.Std())}
		if r.MaxInterval != nil {
			rp.RetryBackOff.MaxInterval = durationpb.New(r.MaxInterval.Std())
		}
	}
	if r.PerTryTimeout != nil && f == flavourEnvoy {
		rp.PerTryTimeout = durationpb.New(r.PerTryTimeout.Std())
	}
	return rp
}
