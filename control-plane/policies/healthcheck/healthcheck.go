// Package healthcheck is BackendPolicy.healthCheck: Envoy probes each
// endpoint of a Service actively (HTTP, gRPC health or TCP). Proxyless gRPC
// clients do not probe; they rely on outlier detection and on the
// endpoints' health in EDS.
//
// Attaches to a Service only (its clusters).
package healthcheck

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.healthCheck.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.HealthCheck, *ir.HealthCheck]{
	Meta:    policies.Meta{Name: "healthCheck", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.HealthCheck { return p.Spec.HealthCheck },
	Refusal: policies.ServiceOnly("spec.healthCheck"),
	Build:   policies.Check[*v1alpha1.BackendPolicy]("spec.healthCheck", Build),
	Apply: func(hc *ir.HealthCheck, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			t.Claim(c, "healthCheck", func() { c.HealthCheck = hc })
		}
	},
}

// Build validates an active health check and returns its IR.
func Build(spec *v1alpha1.HealthCheck) (*ir.HealthCheck, error) {
	interval, err := spec.Interval.Parse()
	if err != nil {
		return nil, fmt.Errorf("interval: %w", err)
	}
	timeout, err := spec.Timeout.Parse()
	if err != nil {
		return nil, fmt.Errorf("timeout: %w", err)
	}
	if interval <= 0 || timeout <= 0 {
		return nil, errors.New("interval and timeout must be greater than 0")
	}
	if timeout > interval {
		return nil, fmt.Errorf("timeout: %s is longer than the interval %s", timeout, interval)
	}
	out := &ir.HealthCheck{
		Type:               string(spec.Type),
		Interval:           *ir.D(interval),
		Timeout:            *ir.D(timeout),
		HealthyThreshold:   2,
		UnhealthyThreshold: 3,
	}
	if spec.HealthyThreshold != nil {
		out.HealthyThreshold = uint32(*spec.HealthyThreshold)
	}
	if spec.UnhealthyThreshold != nil {
		out.UnhealthyThreshold = uint32(*spec.UnhealthyThreshold)
	}
	switch spec.Type {
	case v1alpha1.HealthCheckHTTP:
		if spec.HTTP == nil {
			return nil, errors.New("http: required when type is HTTP")
		}
		out.Path = spec.HTTP.Path
		for _, s := range spec.HTTP.ExpectedStatuses {
			out.ExpectedStatuses = append(out.ExpectedStatuses, uint32(s))
		}
	case v1alpha1.HealthCheckGRPC:
		if spec.GRPC != nil {
			out.GRPCServiceName = spec.GRPC.ServiceName
		}
	}
	return out, nil
}
