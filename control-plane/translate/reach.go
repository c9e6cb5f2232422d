package translate

import (
	"slices"
	"sort"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Reach is which proxies an object's configuration lands on: the status
// stage's Programmed asks only them.
type Reach struct {
	// Mesh: every proxyless client and sidecar (each sees every Service's
	// cluster and client listener).
	Mesh bool `json:"mesh,omitempty"`
	// Gateways ("namespace/name") whose Envoys (roles gateway and router)
	// carry it; each must have a connected node for it to be programmed.
	Gateways []string `json:"gateways,omitempty"`
	// Servers ("namespace/name") of the Services whose servers carry it
	// (their inbound security).
	Servers []string `json:"servers,omitempty"`
	// RateLimit: the rate-limit service carries it.
	RateLimit bool `json:"rateLimit,omitempty"`
}

// Matches reports whether the proxies of id carry what the Reach says.
func (r Reach) Matches(id workload.ProxyID) bool {
	name := id.Namespace + "/" + id.Name
	switch id.Role {
	case workload.RoleGRPC:
		return r.Mesh || slices.Contains(r.Servers, name)
	case workload.RoleSidecar:
		return r.Mesh || slices.Contains(r.Servers, name)
	case workload.RoleGateway, workload.RoleRouter:
		return slices.Contains(r.Gateways, name)
	case workload.RoleRateLimit:
		return r.RateLimit
	}
	return false
}

// Describe names what it reaches, for a message.
func (r Reach) Describe() string {
	var parts []string
	if r.Mesh {
		parts = append(parts, "the proxyless clients and sidecars")
	}
	for _, g := range r.Gateways {
		parts = append(parts, "Gateway "+g)
	}
	for _, s := range r.Servers {
		parts = append(parts, "the servers of Service "+s)
	}
	if r.RateLimit {
		parts = append(parts, "the rate-limit service")
	}
	if len(parts) == 0 {
		return "no proxy"
	}
	return strings.Join(parts, ", ")
}

// Empty reports whether it reaches no proxy.
func (r Reach) Empty() bool {
	return !r.Mesh && !r.RateLimit && len(r.Gateways) == 0 && len(r.Servers) == 0
}

func (r *Reach) add(o Reach) {
	r.Mesh = r.Mesh || o.Mesh
	r.RateLimit = r.RateLimit || o.RateLimit
	r.Gateways = union(r.Gateways, o.Gateways)
	r.Servers = union(r.Servers, o.Servers)
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	sort.Strings(a)
	return a
}

// reaches computes the Reach of every object that configures a proxy.
func (t *translator) reaches() map[resource.Key]Reach {
	out := map[resource.Key]Reach{}
	// Which Gateway each Gateway route is on, and the clusters each
	// Gateway's Envoy uses.
	routeGateway := map[*ir.Route]string{}
	clusterGateways := map[string][]string{}
	for k, gw := range t.gws {
		name := k.namespace + "/" + k.name
		for _, l := range gw.ports {
			used := func(c string) { clusterGateways[c] = union(clusterGateways[c], []string{name}) }
			if l.ExtAuthz != nil {
				used(l.ExtAuthz.Cluster)
			}
			if l.RateLimit != nil {
				used(l.RateLimit.Cluster)
			}
			if l.Tracing != nil {
				used(l.Tracing.Cluster)
			}
			for _, vh := range l.VirtualHosts {
				for _, r := range vh.Routes {
					routeGateway[r] = name
					for _, b := range r.Backends {
						used(b.Cluster)
					}
					for _, m := range r.Mirrors {
						used(m.Cluster)
					}
					if r.JWT != nil {
						for _, p := range r.JWT.Providers {
							used(p.JWKSCluster)
						}
					}
				}
			}
		}
	}
	// A fallback's endpoints are in the clusters that fail over to it.
	fallbackOf := map[string][]string{}
	for _, s := range t.svcs {
		for _, sp := range s.ports {
			if fb := sp.cluster.Fallback; fb != "" {
				fallbackOf[fb] = append(fallbackOf[fb], sp.cluster.Name)
			}
		}
	}
	service := func(ns, name string) Reach {
		r := Reach{Mesh: true}
		if s := t.svcs[svcKey{ns, name}]; s != nil {
			for _, sp := range s.ports {
				r.Gateways = union(r.Gateways, clusterGateways[sp.cluster.Name])
				for _, primary := range fallbackOf[sp.cluster.Name] {
					r.Gateways = union(r.Gateways, clusterGateways[primary])
				}
			}
		}
		return r
	}
	route := func(key resource.Key) Reach {
		var r Reach
		for _, rt := range t.routeIndex[key] {
			if g, ok := routeGateway[rt]; ok {
				r.Gateways = union(r.Gateways, []string{g})
			} else {
				r.Mesh = true
			}
		}
		return r
	}
	for _, s := range t.res.Services {
		out[resource.KeyOf("Service", s)] = service(s.Namespace, s.Name)
	}
	for _, es := range t.res.EndpointSlices {
		if svc := es.Labels["kubernetes.io/service-name"]; t.svcs[svcKey{es.Namespace, svc}] != nil {
			r := service(es.Namespace, svc)
			r.Servers = []string{es.Namespace + "/" + svc}
			out[resource.KeyOf("EndpointSlice", es)] = r
		}
	}
	for k := range t.gws {
		out[resource.Key{Kind: "Gateway", Namespace: k.namespace, Name: k.name}] = Reach{Gateways: []string{k.namespace + "/" + k.name}}
	}
	for key := range t.routeIndex {
		out[key] = route(key)
	}
	for key, targets := range t.inForce {
		var r Reach
		for _, tg := range targets {
			switch policies.AttachOf(tg.Kind) {
			case policies.Service:
				r.add(service(tg.Namespace, tg.Name))
				if key.Kind == policies.SecurityPolicy {
					r.Servers = union(r.Servers, []string{tg.Namespace + "/" + tg.Name})
				}
			case policies.Route:
				r.add(route(resource.Key{Kind: tg.Kind, Namespace: tg.Namespace, Name: tg.Name}))
			case policies.Gateway:
				r.add(Reach{Gateways: []string{tg.Namespace + "/" + tg.Name}})
			}
		}
		if key.Kind == policies.RateLimitPolicy {
			r.RateLimit = true
		}
		out[key] = r
	}
	return out
}
