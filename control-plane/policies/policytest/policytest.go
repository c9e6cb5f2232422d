// Package policytest is a fixed policies.Env for the features' unit tests:
// the clusters and Gateways a test declares, nothing else. (The golden
// cases run features through the real translation.)
package policytest

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Env serves the clusters (named SERVICE.NAMESPACE:PORT) and Gateways it
// holds.
type Env struct {
	ClusterList []*ir.Cluster
	GatewayList []*policies.GatewayListeners
}

var _ policies.Env = (*Env)(nil)

func (e *Env) Port(ns, service string, port uint32) *ir.Cluster {
	return e.Cluster(ir.ClusterName(service, ns, port))
}

func (e *Env) Clusters(ns, service string) []*ir.Cluster {
	var out []*ir.Cluster
	for _, c := range e.ClusterList {
		if c.Namespace == ns && c.Service == service {
			out = append(out, c)
		}
	}
	return out
}

func (e *Env) Cluster(name string) *ir.Cluster {
	for _, c := range e.ClusterList {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *Env) Gateways() []*policies.GatewayListeners { return e.GatewayList }

// Cluster is the cluster of a Service port.
func Cluster(service, ns string, port uint32, http2 bool) *ir.Cluster {
	return &ir.Cluster{Name: ir.ClusterName(service, ns, port), Service: service, Namespace: ns, Port: port, HTTP2: http2}
}

// Problems collects what a feature reports, as "field: message".
type Problems []string

// Report is the policies.Report that appends to p.
func (p *Problems) Report(field, msg string) { *p = append(*p, field+": "+msg) }

// Failed reports whether anything was reported.
func (p *Problems) Failed() bool { return len(*p) > 0 }
