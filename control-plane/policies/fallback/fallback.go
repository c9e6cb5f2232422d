// Package fallback applies BackendPolicy.fallback: the fallback Service's
// endpoints join the primary cluster at the next priority, so that clients
// (Envoy and proxyless gRPC alike) send traffic there only while the primary
// has no healthy endpoint (priority failover).
package fallback

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

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
