// Package faultinjection is BackendPolicy.faultInjection: delays and
// aborts a share of a route's requests (chaos testing). Envoy's fault
// filter, which proxyless gRPC clients implement too (gRFC A33).
//
// Attaches to a Service (its routes) or a route.
package faultinjection

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.faultInjection.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.FaultInjection, *ir.Fault]{
	Meta:  policies.Meta{Name: "faultInjection", Kind: policies.BackendPolicy, Attaches: policies.Service | policies.Route},
	Field: func(p *v1alpha1.BackendPolicy) *v1alpha1.FaultInjection { return p.Spec.FaultInjection },
	Build: policies.Check[*v1alpha1.BackendPolicy]("spec.faultInjection", Build),
	Apply: func(f *ir.Fault, t *policies.Target, _ policies.Env) {
		for _, rt := range t.Routes {
			t.Claim(rt, "faultInjection", func() { rt.Fault = f })
		}
	},
}

// Build validates a fault-injection policy and returns its IR.
func Build(spec *v1alpha1.FaultInjection) (*ir.Fault, error) {
	out := &ir.Fault{}
	if d := spec.Delay; d != nil {
		v, err := d.Duration.Parse()
		if err != nil {
			return nil, fmt.Errorf("delay.duration: %w", err)
		}
		if v <= 0 {
			return nil, errors.New("delay.duration: must be greater than 0")
		}
		out.Delay, out.DelayPercent = ir.D(v), uint32(d.Percentage)
	}
	if a := spec.Abort; a != nil {
		out.Abort, out.AbortPercent = true, uint32(a.Percentage)
		switch {
		case a.HTTPStatus != nil && a.GRPCStatus == nil:
			out.AbortHTTPStatus = uint32(*a.HTTPStatus)
		case a.GRPCStatus != nil && a.HTTPStatus == nil:
			out.AbortGRPCStatus = uint32(*a.GRPCStatus)
		default:
			return nil, errors.New("abort: set exactly one of httpStatus, grpcStatus")
		}
	}
	if out.Delay == nil && !out.Abort {
		return nil, errors.New("set delay, abort or both")
	}
	return out, nil
}
