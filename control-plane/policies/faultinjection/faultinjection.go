// Package faultinjection applies BackendPolicy.faultInjection to routes:
// Envoy's fault filter, which proxyless gRPC clients also implement.
package faultinjection

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

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
