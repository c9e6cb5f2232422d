// Package retry is BackendPolicy.retry: how a route re-sends failed
// requests.
//
// Attaches to a Service (every route of the traffic to it) or to an
// HTTPRoute or GRPCRoute (that route's rules); a route-level policy beats
// a Service-level one.
//
// Envoy honours every condition; proxyless gRPC clients honour the gRPC
// status conditions (cancelled, deadline-exceeded, internal,
// resource-exhausted, unavailable), numRetries and backoff, and ignore the
// HTTP ones and perTryTimeout.
//
// Per-try timeout: an HTTPRoute rule's timeouts.backendRequest, when set,
// bounds each attempt of that route instead of the policy's perTryTimeout
// (the route is the more specific of the two, as Gateway API intends); a
// route without a retry policy is still bounded by it.
package retry

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.retry.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.Retry, *ir.Retry]{
	Meta:  policies.Meta{Name: "retry", Kind: policies.BackendPolicy, Attaches: policies.Service | policies.Route},
	Field: func(p *v1alpha1.BackendPolicy) *v1alpha1.Retry { return p.Spec.Retry },
	Build: policies.Check[*v1alpha1.BackendPolicy]("spec.retry", Build),
	Apply: func(r *ir.Retry, t *policies.Target, _ policies.Env) {
		for _, rt := range t.Routes {
			t.Claim(rt, "retry", func() { rt.Retry = OnRoute(r, rt) })
		}
	},
}

// OnRoute is the retry a route gets: the policy's, each attempt bounded by
// the route's own per-try timeout when it has one.
func OnRoute(r *ir.Retry, rt *ir.Route) *ir.Retry {
	if rt.PerTryTimeout == nil {
		return r
	}
	c := *r
	c.PerTryTimeout = rt.PerTryTimeout
	return &c
}

// Build validates a retry policy and returns its IR.
func Build(spec *v1alpha1.Retry) (*ir.Retry, error) {
	out := &ir.Retry{NumRetries: uint32(spec.NumRetries)}
	var errs []error
	statusCodes := false
	for _, on := range spec.RetryOn {
		out.On = append(out.On, string(on))
		if on == "retriable-status-codes" {
			statusCodes = true
		}
	}
	for _, c := range spec.RetriableStatusCodes {
		out.RetriableStatusCodes = append(out.RetriableStatusCodes, uint32(c))
	}
	if len(spec.RetriableStatusCodes) > 0 && !statusCodes {
		errs = append(errs, errors.New("retriableStatusCodes: set, but retryOn does not include retriable-status-codes"))
	}
	if b := spec.Backoff; b != nil {
		base, err := b.BaseInterval.Parse()
		if err != nil {
			errs = append(errs, fmt.Errorf("backoff.baseInterval: %w", err))
		} else if base <= 0 {
			errs = append(errs, errors.New("backoff.baseInterval: must be greater than 0"))
		} else {
			out.BaseInterval = ir.D(base)
		}
		if b.MaxInterval != nil {
			maxI, err := b.MaxInterval.Parse()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("backoff.maxInterval: %w", err))
			case out.BaseInterval != nil && maxI < out.BaseInterval.Std():
				errs = append(errs, fmt.Errorf("backoff.maxInterval: %s is less than baseInterval %s", maxI, out.BaseInterval.Std()))
			default:
				out.MaxInterval = ir.D(maxI)
			}
		}
	}
	if spec.PerTryTimeout != nil {
		d, err := spec.PerTryTimeout.Parse()
		if err != nil {
			errs = append(errs, fmt.Errorf("perTryTimeout: %w", err))
		} else if d <= 0 {
			errs = append(errs, errors.New("perTryTimeout: must be greater than 0"))
		} else {
			out.PerTryTimeout = ir.D(d)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
