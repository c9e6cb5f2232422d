package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// healthChecks is Envoy's active health check of a cluster.
func healthChecks(hc *ir.HealthCheck) []*corev3.HealthCheck {
	out := &corev3.HealthCheck{
		Interval:           durationpb.New(hc.Interval.Std()),
		Timeout:            durationpb.New(hc.Timeout.Std()),
		HealthyThreshold:   wrapperspb.UInt32(hc.HealthyThreshold),
		UnhealthyThreshold: wrapperspb.UInt32(hc.UnhealthyThreshold),
	}
	switch hc.Type {
	case "HTTP":
		h := &corev3.HealthCheck_HttpHealthCheck{Path: hc.Path}
		for _, s := range hc.ExpectedStatuses {
			h.ExpectedStatuses = append(h.ExpectedStatuses, &typev3.Int64Range{Start: int64(s), End: int64(s) + 1})
		}
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: h}
	case "GRPC":
		out.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: hc.GRPCServiceName}}
	default:
		out.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
	}
	return []*corev3.HealthCheck{out}
}
