package translate

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

type svcKey struct{ namespace, name string }

// service is a Service with, per port, its cluster and client listener.
type service struct {
	obj   *corev1.Service
	ports []*servicePort
}

type servicePort struct {
	name     string
	port     uint32
	cluster  *ir.Cluster
	listener *ir.Listener
	// routed is set once a route attaches to this port.
	routed bool
}

func (s *service) port(p uint32) *servicePort {
	for _, sp := range s.ports {
		if sp.port == p {
			return sp
		}
	}
	return nil
}

func (t *translator) sortedServices() []*service {
	out := make([]*service, 0, len(t.svcs))
	for _, s := range t.svcs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].obj, out[j].obj
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// services makes a cluster and a client listener per Service port.
func (t *translator) services() {
	for _, svc := range t.res.Services {
		key := resource.KeyOf("Service", svc)
		s := &service{obj: svc}
		seen := map[uint32]bool{}
		for i, p := range svc.Spec.Ports {
			field := fmt.Sprintf("spec.ports[%d]", i)
			if p.Port < 1 || p.Port > 65535 {
				t.fail(key, field+".port", "%d is not a port (1-65535)", p.Port)
				continue
			}
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				t.fail(key, field+".protocol", "%s is not supported; the mesh carries TCP (HTTP/2, gRPC) only", p.Protocol)
				continue
			}
			if seen[uint32(p.Port)] {
				t.fail(key, field+".port", "port %d is listed twice", p.Port)
				continue
			}
			seen[uint32(p.Port)] = true
			port := uint32(p.Port)
			name := ir.ClusterName(svc.Name, svc.Namespace, port)
			s.ports = append(s.ports, &servicePort{
				name:    p.Name,
				port:    port,
				cluster: &ir.Cluster{Name: name, Service: svc.Name, Namespace: svc.Namespace, Port: port, HTTP2: isHTTP2(p)},
				listener: &ir.Listener{
					Name: name,
					Kind: ir.ListenerClient,
					Host: fmt.Sprintf("%s.%s", svc.Name, svc.Namespace),
					Port: port,
				},
			})
		}
		if len(svc.Spec.Ports) == 0 {
			t.fail(key, "spec.ports", "a Service needs at least one port")
		}
		t.svcs[svcKey{svc.Namespace, svc.Name}] = s
	}
}

// endpoints fills the clusters from the EndpointSlices of each Service.
func (t *translator) endpoints() {
	type locKey struct{ zone string }
	byCluster := map[*ir.Cluster]map[locKey]*ir.LocalityEndpoints{}
	for _, es := range t.res.EndpointSlices {
		key := resource.KeyOf("EndpointSlice", es)
		svcName := es.Labels[discoveryv1.LabelServiceName]
		if svcName == "" {
			t.fail(key, "metadata.labels", "label %s names no Service", discoveryv1.LabelServiceName)
			continue
		}
		s := t.svcs[svcKey{es.Namespace, svcName}]
		if s == nil {
			t.fail(key, "metadata.labels."+discoveryv1.LabelServiceName, "Service %s/%s not found", es.Namespace, svcName)
			continue
		}
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			t.fail(key, "addressType", "%q is not supported (IPv4 or IPv6)", es.AddressType)
			continue
		}
		for pi, p := range es.Ports {
			pname := ""
			if p.Name != nil {
				pname = *p.Name
			}
			if p.Port == nil {
				t.fail(key, fmt.Sprintf("ports[%d].port", pi), "required")
				continue
			}
			sp := matchPort(s, pname)
			if sp == nil {
				t.fail(key, fmt.Sprintf("ports[%d].name", pi), "Service %s/%s has no port named %q", es.Namespace, svcName, pname)
				continue
			}
			locs := byCluster[sp.cluster]
			if locs == nil {
				locs = map[locKey]*ir.LocalityEndpoints{}
				byCluster[sp.cluster] = locs
			}
			for ei, ep := range es.Endpoints {
				zone := ""
				if ep.Zone != nil {
					zone = *ep.Zone
				}
				lk := locKey{zone: zone}
				loc := locs[lk]
				if loc == nil {
					loc = &ir.LocalityEndpoints{Zone: zone, Weight: 1}
					locs[lk] = loc
				}
				for ai, addr := range ep.Addresses {
					if !validIP(addr, es.AddressType) {
						t.fail(key, fmt.Sprintf("endpoints[%d].addresses[%d]", ei, ai), "%q is not an %s address", addr, es.AddressType)
						continue
					}
					loc.Endpoints = append(loc.Endpoints, &ir.Endpoint{
						Address: addr,
						Port:    uint32(*p.Port),
						Health:  health(ep.Conditions),
						Weight:  1,
					})
				}
			}
		}
	}
	for c, locs := range byCluster {
		for _, l := range locs {
			if len(l.Endpoints) == 0 {
				continue
			}
			sort.Slice(l.Endpoints, func(i, j int) bool {
				a, b := l.Endpoints[i], l.Endpoints[j]
				if a.Address != b.Address {
					return a.Address < b.Address
				}
				return a.Port < b.Port
			})
			c.Localities = append(c.Localities, l)
		}
		sort.Slice(c.Localities, func(i, j int) bool {
			a, b := c.Localities[i], c.Localities[j]
			if a.Priority != b.Priority {
				return a.Priority < b.Priority
			}
			return a.Zone < b.Zone
		})
	}
}

// matchPort finds the Service port an EndpointSlice port serves: by name,
// or the only port of a Service whose port has no name.
func matchPort(s *service, name string) *servicePort {
	for _, sp := range s.ports {
		if sp.name == name {
			return sp
		}
	}
	return nil
}

func health(c discoveryv1.EndpointConditions) ir.Health {
	switch {
	case c.Terminating != nil && *c.Terminating:
		return ir.HealthDraining
	case c.Ready != nil && !*c.Ready:
		return ir.HealthUnhealthy
	default:
		return ir.HealthHealthy
	}
}

// isHTTP2 reads a Service port's protocol: appProtocol kubernetes.io/h2c,
// grpc or h2c, or, without appProtocol, a port name "grpc" or "grpc-…"
// (Istio's convention).
func isHTTP2(p corev1.ServicePort) bool {
	if p.AppProtocol != nil {
		switch *p.AppProtocol {
		case "kubernetes.io/h2c", "grpc", "h2c", "http2":
			return true
		}
		return false
	}
	return p.Name == "grpc" || strings.HasPrefix(p.Name, "grpc-")
}
