// Package timeout is BackendPolicy.timeout: how long a request may take
// (request, on routes: the whole request, retries included; 0 means none),
// how long a stream may go without activity (idle, on routes) and how long
// a connection may take to open (connect, on clusters).
//
// Attaches to a Service or a route; connect applies to a Service's
// connections, so it needs a Service target. Proxyless gRPC clients bound
// a call with the route's max_stream_duration, Envoy with its timeout;
// idle is Envoy's route idle_timeout (grpc-go has none per route, so
// proxyless clients only have the request bound).
package timeout

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.timeout.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.Timeout, *Parsed]{
	Meta:  policies.Meta{Name: "timeout", Kind: policies.BackendPolicy, Attaches: policies.Service | policies.Route},
	Field: func(p *v1alpha1.BackendPolicy) *v1alpha1.Timeout { return p.Spec.Timeout },
	Build: func(spec *v1alpha1.Timeout, c policies.Context[*v1alpha1.BackendPolicy]) (*Parsed, bool) {
		to, err := Build(spec)
		if err != nil {
			policies.ReportErr(c.Report, "spec.timeout", err)
			return nil, false
		}
		if to.Connect != nil {
			for _, t := range c.Targets {
				if policies.AttachOf(t.Kind) == policies.Route {
					c.Report("spec.timeout.connect", "applies to a Service's connections: target the Service")
				}
			}
		}
		return to, true
	},
	Apply: func(to *Parsed, t *policies.Target, _ policies.Env) {
		if to.Request != nil {
			for _, rt := range t.Routes {
				t.Claim(rt, "timeout.request", func() { rt.Timeout = to.Request })
			}
		}
		if to.Idle != nil {
			for _, rt := range t.Routes {
				t.Claim(rt, "timeout.idle", func() { rt.IdleTimeout = to.Idle })
			}
		}
		if to.Connect != nil {
			for _, c := range t.Clusters {
				t.Claim(c, "timeout.connect", func() { c.ConnectTimeout = to.Connect })
			}
		}
	},
}

// Parsed holds the validated durations; nil means unset.
type Parsed struct {
	Request *ir.Duration
	Idle    *ir.Duration
	Connect *ir.Duration
}

// Build validates a timeout policy.
func Build(spec *v1alpha1.Timeout) (*Parsed, error) {
	out := &Parsed{}
	var errs []error
	parse := func(field string, d *v1alpha1.Duration, zeroOK bool) *ir.Duration {
		if d == nil {
			return nil
		}
		v, err := d.Parse()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return nil
		}
		if v < 0 || (v == 0 && !zeroOK) {
			errs = append(errs, fmt.Errorf("%s: must be greater than 0", field))
			return nil
		}
		return ir.D(v)
	}
	out.Request = parse("request", spec.Request, true)
	out.Idle = parse("idle", spec.Idle, true)
	out.Connect = parse("connect", spec.Connect, false)
	return out, errors.Join(errs...)
}
