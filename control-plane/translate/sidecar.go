package translate

import (
	"fmt"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// OutboundPort is where a sidecar accepts its app's calls to other
// Services: one HTTP listener on 127.0.0.1 that routes by :authority
// ("chat.default:9000"), with the same routes as proxyless clients get.
const OutboundPort = 15001

// sidecarConfig is the configuration of one sidecar instance: an inbound
// listener on its own port for its app, and the outbound listener.
func (r *Result) sidecarConfig(id workload.ProxyID) ([]*ir.Listener, []*ir.Cluster) {
	out := &ir.Listener{
		Name: "outbound",
		Kind: ir.ListenerHTTP,
		Host: "127.0.0.1",
		Port: OutboundPort,
	}
	for _, l := range r.ClientListeners {
		if len(l.VirtualHosts) == 0 {
			continue
		}
		out.VirtualHosts = append(out.VirtualHosts, &ir.VirtualHost{
			Name:    l.Name,
			Domains: []string{fmt.Sprintf("%s:%d", l.Host, l.Port), fmt.Sprintf("%s.svc.cluster.local:%d", l.Host, l.Port)},
			Routes:  l.VirtualHosts[0].Routes,
		})
	}
	listeners := []*ir.Listener{out}
	clusters := r.Clusters
	if id.Inbound == "" {
		// Without an inbound port the sidecar only carries outbound calls.
		return listeners, clusters
	}
	in, err := workload.ParseInbound(id.Inbound)
	if err != nil {
		return listeners, clusters
	}
	local := &ir.Cluster{
		Name:      fmt.Sprintf("inbound|%d", in.AppPort),
		Service:   id.Name,
		Namespace: id.Namespace,
		Port:      in.AppPort,
		HTTP2:     r.serviceHTTP2(id, in.Port),
		Static:    true,
		Localities: []*ir.LocalityEndpoints{{Weight: 1, Endpoints: []*ir.Endpoint{
			{Address: "127.0.0.1", Port: in.AppPort, Health: ir.HealthHealthy, Weight: 1},
		}}},
	}
	listeners = append(listeners, &ir.Listener{
		Name:     fmt.Sprintf("inbound/%s", strings.ReplaceAll(id.Inbound, "=", "->")),
		Kind:     ir.ListenerHTTP,
		Host:     in.Address,
		Port:     in.Port,
		Security: r.Inbound[id.Namespace+"/"+id.Name],
		VirtualHosts: []*ir.VirtualHost{{
			Name: "inbound", Domains: []string{"*"},
			Routes: []*ir.Route{{
				Name:     "inbound",
				Source:   fmt.Sprintf("sidecar of Service %s/%s", id.Namespace, id.Name),
				Match:    ir.Match{PathPrefix: "/"},
				Backends: []ir.WeightedBackend{{Cluster: local.Name, Weight: 1}},
			}},
		}},
	})
	return listeners, append([]*ir.Cluster{local}, clusters...)
}

// serviceHTTP2 tells whether the Service a sidecar fronts speaks HTTP/2 on
// the port it serves (by the EndpointSlice port, else its only port).
func (r *Result) serviceHTTP2(id workload.ProxyID, port uint32) bool {
	var own []*ir.Cluster
	for _, c := range r.Clusters {
		if c.Service == id.Name && c.Namespace == id.Namespace {
			own = append(own, c)
			for _, l := range c.Localities {
				for _, e := range l.Endpoints {
					if e.Port == port && l.Priority == 0 {
						return c.HTTP2
					}
				}
			}
		}
	}
	if len(own) == 1 {
		return own[0].HTTP2
	}
	return false
}
