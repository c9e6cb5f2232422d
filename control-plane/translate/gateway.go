package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// DefaultMaxRequestBytes bounds request bodies at Gateway listeners (413
// beyond): the api service's own default.
const DefaultMaxRequestBytes = 4 << 20

// gateway is a Gateway with its listeners; listeners sharing a port share
// one Envoy listener (virtual hosts by hostname).
type gateway struct {
	obj       *gwapiv1.Gateway
	key       resource.Key
	listeners []*gwListener
	ports     map[uint32]*ir.Listener
}

// gwListener is one listener of a Gateway.
type gwListener struct {
	gw       *gateway
	name     string
	hostname string // "" matches any
	port     uint32
	kinds    map[string]bool // route kinds allowed
	// allNamespaces admits routes from every namespace (allowedRoutes
	// namespaces.from: All); otherwise only the Gateway's own (Same, the
	// default).
	allNamespaces bool
}

// gateways reads every Gateway: HTTP listeners only (HTTPS, TLS and TCP are
// not supported yet; TLS is terminated in front of the router).
func (t *translator) gateways() {
	for _, gc := range t.res.GatewayClasses {
		if gc.Spec.ControllerName == resource.ControllerName {
			key := resource.KeyOf("GatewayClass", gc)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: "handled by " + resource.ControllerName})
		}
	}
	t.gws = map[svcKey]*gateway{}
	for _, g := range t.res.Gateways {
		key := resource.KeyOf("Gateway", g)
		gw := &gateway{obj: g, key: key, ports: map[uint32]*ir.Listener{}}
		var problems []string
		for i, l := range g.Spec.Listeners {
			field := fmt.Sprintf("spec.listeners[%d]", i)
			if l.Protocol != gwapiv1.HTTPProtocolType {
				t.fail(key, field+".protocol", "%s is not supported yet (HTTP only: terminate TLS in front of the Gateway)", l.Protocol)
				problems = append(problems, field+".protocol: "+string(l.Protocol)+" not supported yet")
				continue
			}
			if l.Port < 1 || l.Port > 65535 {
				t.fail(key, field+".port", "%d is not a port", l.Port)
				problems = append(problems, field+".port: invalid")
				continue
			}
			gl := &gwListener{gw: gw, name: string(l.Name), port: uint32(l.Port), kinds: map[string]bool{"HTTPRoute": true, "GRPCRoute": true}}
			if l.Hostname != nil {
				gl.hostname = strings.ToLower(string(*l.Hostname))
			}
			if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
				switch from := *ar.Namespaces.From; from {
				case gwapiv1.NamespacesFromSame:
				case gwapiv1.NamespacesFromAll:
					gl.allNamespaces = true
				default:
					// Narrowing to Same instead would silently drop routes
					// the SRE meant to admit; refusing says so.
					t.fail(key, field+".allowedRoutes.namespaces.from", "%s is not supported yet (Same or All)", from)
					problems = append(problems, field+".allowedRoutes.namespaces.from: "+string(from)+" not supported yet")
					continue
				}
			}
			if ar := l.AllowedRoutes; ar != nil && len(ar.Kinds) > 0 {
				gl.kinds = map[string]bool{}
				for _, k := range ar.Kinds {
					gl.kinds[string(k.Kind)] = true
				}
			}
			if _, ok := gw.ports[gl.port]; !ok {
				gw.ports[gl.port] = &ir.Listener{
					Name: fmt.Sprintf("%s/%s/%d", g.Namespace, g.Name, gl.port),
					Kind: ir.ListenerHTTP,
					Host: "0.0.0.0",
					Port: gl.port,
					// The API's own bound (api --max-body-bytes), enforced
					// before the body travels further.
					MaxRequestBytes: DefaultMaxRequestBytes,
				}
			}
			gw.listeners = append(gw.listeners, gl)
		}
		if len(problems) > 0 {
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalid, Message: strings.Join(problems, "; ")})
		} else {
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: "listeners valid"})
		}
		t.gws[svcKey{g.Namespace, g.Name}] = gw
	}
}

// gatewayParent resolves a parentRef to a Gateway into its listeners
// (sectionName picks one by name; port narrows by port).
func (t *translator) gatewayParent(key resource.Key, field, ns, routeKind string, p gwapiv1.ParentReference) []*gwListener {
	pns := ns
	if p.Namespace != nil {
		pns = string(*p.Namespace)
	}
	gw := t.gws[svcKey{pns, string(p.Name)}]
	if gw == nil && slices.Contains(t.res.ForeignGateways, resource.Key{Kind: "Gateway", Namespace: pns, Name: string(p.Name)}) {
		return nil // another controller's Gateway: its business
	}
	if gw == nil {
		t.fail(key, field+".name", "Gateway %s/%s not found", pns, p.Name)
		t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonNoMatchingParent, Message: fmt.Sprintf("%s: Gateway %s/%s not found", field, pns, p.Name)})
		return nil
	}
	var out []*gwListener
	otherNS := false
	for _, l := range gw.listeners {
		if p.SectionName != nil && string(*p.SectionName) != l.name {
			continue
		}
		if p.Port != nil && uint32(*p.Port) != l.port {
			continue
		}
		if !l.kinds[routeKind] {
			continue
		}
		if ns != pns && !l.allNamespaces {
			otherNS = true
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 && otherNS {
		t.fail(key, field, "no listener of Gateway %s/%s admits routes from namespace %s (allowedRoutes.namespaces.from is Same unless set to All)", pns, p.Name, ns)
		t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonNotAllowedByListener, Message: fmt.Sprintf("%s: no listener of Gateway %s/%s admits routes from namespace %s", field, pns, p.Name, ns)})
		return nil
	}
	if len(out) == 0 {
		t.fail(key, field, "no listener of Gateway %s/%s accepts this %s (sectionName, port or allowedRoutes)", pns, p.Name, routeKind)
		t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonNotAllowedByListener, Message: field + ": no matching listener"})
	}
	return out
}

// finishGateways builds the virtual hosts of every Gateway port: one per
// hostname (the route's hostnames that the listener's hostname admits, or
// the listener's own), routes in precedence order; requests for no known
// host or path get Envoy's 404.
func (t *translator) finishGateways(entries map[*gwListener][]routeEntry) {
	for _, gw := range t.gws {
		byPort := map[uint32]map[string][]routeEntry{}
		for _, l := range gw.listeners {
			hosts := byPort[l.port]
			if hosts == nil {
				hosts = map[string][]routeEntry{}
				byPort[l.port] = hosts
			}
			for _, e := range entries[l] {
				for _, h := range effectiveHosts(l.hostname, e.hostnames) {
					hosts[h] = append(hosts[h], e)
				}
			}
		}
		for port, hosts := range byPort {
			lis := gw.ports[port]
			names := make([]string, 0, len(hosts))
			for h := range hosts {
				names = append(names, h)
			}
			// Exact hostnames, then wildcards, then the catch-all.
			sort.Slice(names, func(i, j int) bool {
				a, b := hostRank(names[i]), hostRank(names[j])
				if a != b {
					return a < b
				}
				return names[i] < names[j]
			})
			for _, h := range names {
				list := hosts[h]
				sort.SliceStable(list, func(i, j int) bool { return list[i].before(list[j]) })
				vh := &ir.VirtualHost{Name: fmt.Sprintf("%s/%s", lis.Name, h), Domains: domains(h, port)}
				for _, e := range list {
					vh.Routes = append(vh.Routes, e.route)
				}
				lis.VirtualHosts = append(lis.VirtualHosts, vh)
			}
		}
	}
}

func effectiveHosts(listener string, route []string) []string {
	if len(route) == 0 {
		if listener == "" {
			return []string{"*"}
		}
		return []string{listener}
	}
	var out []string
	for _, h := range route {
		switch {
		case listener == "":
			out = append(out, h)
		case hostMatches(listener, h):
			out = append(out, h)
		case hostMatches(h, listener):
			out = append(out, listener)
		}
	}
	return out
}

// hostMatches reports whether pattern ("*.example.com" or exact) admits h.
func hostMatches(pattern, h string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(h, suffix) && len(h) > len(suffix)
	}
	return pattern == h
}

func hostRank(h string) int {
	switch {
	case h == "*":
		return 2
	case strings.HasPrefix(h, "*"):
		return 1
	default:
		return 0
	}
}

// domains of a virtual host: the hostname with and without the port, as
// clients may send either in Host.
func domains(h string, port uint32) []string {
	if h == "*" {
		return []string{"*"}
	}
	return []string{h, fmt.Sprintf("%s:%d", h, port)}
}

// GatewayListeners returns the listeners of one Gateway, sorted by name.
func (r *Result) gatewayConfig(id workload.ProxyID) ([]*ir.Listener, []*ir.Cluster) {
	ls := r.GatewayListeners[id.Namespace+"/"+id.Name]
	used := map[string]bool{}
	for _, l := range ls {
		if l.ExtAuthz != nil {
			used[l.ExtAuthz.Cluster] = true
		}
		if l.RateLimit != nil {
			used[l.RateLimit.Cluster] = true
		}
		if l.Tracing != nil {
			used[l.Tracing.Cluster] = true
		}
		for _, vh := range l.VirtualHosts {
			for _, rt := range vh.Routes {
				for _, b := range rt.Backends {
					used[b.Cluster] = true
				}
				for _, m := range rt.Mirrors {
					used[m.Cluster] = true
				}
			}
		}
	}
	var cs []*ir.Cluster
	for _, c := range r.Clusters {
		if used[c.Name] {
			cs = append(cs, c)
		}
	}
	return ls, cs
}
