// Package fallback is BackendPolicy.fallback: the fallback Service's
// endpoints join the primary's cluster at the next priority, so that
// clients (Envoy and proxyless gRPC alike) send traffic there only while
// the primary has no healthy endpoint (priority failover).
//
// Attaches to a Service only (its clusters); the fallback is a Service
// port of the policy's namespace, never the target itself.
package fallback

import (
	"fmt"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.fallback.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.Fallback, *ir.Cluster]{
	Meta:    policies.Meta{Name: "fallback", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.Fallback { return p.Spec.Fallback },
	Refusal: policies.ServiceOnly("spec.fallback"),
	Build: func(spec *v1alpha1.Fallback, c policies.Context[*v1alpha1.BackendPolicy]) (*ir.Cluster, bool) {
		ref := spec.BackendRef
		fb := c.Env.Port(c.Policy.Namespace, ref.Name, uint32(ref.Port))
		if fb == nil {
			c.Report("spec.fallback.backendRef", fmt.Sprintf("Service %s/%s port %d not found", c.Policy.Namespace, ref.Name, ref.Port))
			return nil, false
		}
		for _, t := range c.Targets {
			for _, cl := range t.Clusters {
				if cl == fb {
					c.Report("spec.fallback.backendRef", "a Service cannot be its own fallback")
				}
			}
		}
		return fb, true
	},
	Apply: func(fb *ir.Cluster, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			if c == fb {
				continue
			}
			t.Claim(c, "fallback", func() { Merge(c, fb) })
		}
	},
}

// Merge appends the fallback's endpoints to the primary's, one priority
// below the lowest the primary has.
func Merge(primary, fb *ir.Cluster) {
	next := uint32(0)
	for _, l := range primary.Localities {
		if l.Priority+1 > next {
			next = l.Priority + 1
		}
	}
	for _, l := range fb.Localities {
		c := *l
		c.Priority = next + l.Priority
		primary.Localities = append(primary.Localities, &c)
	}
	primary.Fallback = fb.Name
}
