package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// extAuthzFilter asks the authorization service (auth's Check, over gRPC
// on its cluster) about every request, first in the chain. Fail closed by
// default: when the service cannot answer the request gets 503 (the
// listener's degraded reply gives it the API's error body).
func extAuthzFilter(a *ir.ExtAuthz) *hcmv3.HttpFilter {
	gs := &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: a.Cluster}},
	}
	if a.Timeout != nil {
		gs.Timeout = durationpb.New(a.Timeout.Std())
	}
	cfg := &extauthzv3.ExtAuthz{
		Services:            &extauthzv3.ExtAuthz_GrpcService{GrpcService: gs},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    a.FailOpen,
		StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
	if len(a.HeadersToCheck) > 0 {
		lm := &matcherv3.ListStringMatcher{}
		for _, h := range a.HeadersToCheck {
			lm.Patterns = append(lm.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}, IgnoreCase: true})
		}
		cfg.AllowedHeaders = lm
	}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.ext_authz", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}
