// Package timeout applies BackendPolicy.timeout: request (routes) and
// connect (clusters).
package timeout

import (
	"errors"
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

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
