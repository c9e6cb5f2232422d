// Package outlierdetection is BackendPolicy.outlierDetection: endpoints of
// a Service that keep failing are ejected for a while.
//
// Attaches to a Service only (its clusters).
//
// Envoy honours every setting. Proxyless gRPC clients implement the
// failure-percentage (and success-rate) algorithms only (gRFC A50): a policy
// that reaches them should set failurePercentage; consecutive5xx and
// consecutiveGatewayErrors are Envoy-only.
package outlierdetection

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.outlierDetection.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.OutlierDetection, *ir.OutlierDetection]{
	Meta:    policies.Meta{Name: "outlierDetection", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.OutlierDetection { return p.Spec.OutlierDetection },
	Refusal: policies.ServiceOnly("spec.outlierDetection"),
	Build:   policies.Check[*v1alpha1.BackendPolicy]("spec.outlierDetection", Build),
	Apply: func(od *ir.OutlierDetection, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			t.Claim(c, "outlierDetection", func() { c.OutlierDetection = od })
		}
	},
}

// Build validates an outlier-detection policy and returns its IR.
func Build(spec *v1alpha1.OutlierDetection) (*ir.OutlierDetection, error) {
	out := &ir.OutlierDetection{
		Consecutive5xx:           policies.Uint32(spec.Consecutive5xx),
		ConsecutiveGatewayErrors: policies.Uint32(spec.ConsecutiveGatewayErrors),
	}
	var errs []error
	dur := func(field string, d *v1alpha1.Duration) *ir.Duration {
		if d == nil {
			return nil
		}
		v, err := d.Parse()
		if err == nil && v <= 0 {
			err = errors.New("must be greater than 0")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return nil
		}
		return ir.D(v)
	}
	out.Interval = dur("interval", spec.Interval)
	out.BaseEjectionTime = dur("baseEjectionTime", spec.BaseEjectionTime)
	if spec.MaxEjectionPercent != nil {
		v := uint32(*spec.MaxEjectionPercent)
		out.MaxEjectionPercent = &v
	}
	if fp := spec.FailurePercentage; fp != nil {
		t := uint32(fp.Threshold)
		out.FailurePercentageThreshold = &t
		out.FailurePercentageMinimumHosts = policies.Uint32(fp.MinimumHosts)
		out.FailurePercentageRequestVolume = policies.Uint32(fp.RequestVolume)
	}
	if out.Consecutive5xx == nil && out.ConsecutiveGatewayErrors == nil && out.FailurePercentageThreshold == nil {
		errs = append(errs, errors.New("set at least one ejection rule: consecutive5xx, consecutiveGatewayErrors or failurePercentage"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
