package translate

import (
	"fmt"
	"sort"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// resolveTargets resolves a policy's targetRefs, in its namespace, into
// the IR objects its features may change. A targetRef that names nothing
// (notFound) or a kind the policy cannot target is reported and left out.
func (t *translator) resolveTargets(k policyKind, p policyObject, report func(field, msg string, notFound bool)) []*policies.Target {
	notFound := func(field, msg string) { report(field, msg, true) }
	var out []*policies.Target
	ns := p.key.Namespace
	for i, ref := range p.refs {
		field := fmt.Sprintf("spec.targetRefs[%d]", i)
		kind, name := string(ref.Kind), string(ref.Name)
		tg := &policies.Target{Kind: kind, Namespace: ns, Name: name, Field: field}
		if k.targets&policies.AttachOf(kind) == 0 {
			report(field, fmt.Sprintf("kind %s cannot be targeted by a %s (it targets: %s)", kind, k.name, k.targets), false)
			continue
		}
		switch policies.AttachOf(kind) {
		case policies.Service:
			s := t.svcs[svcKey{ns, name}]
			if s == nil {
				notFound(field, fmt.Sprintf("Service %s/%s not found", ns, name))
				continue
			}
			for _, sp := range s.ports {
				if ref.SectionName != nil && string(*ref.SectionName) != sp.name {
					continue
				}
				tg.Clusters = append(tg.Clusters, sp.cluster)
				for _, vh := range sp.listener.VirtualHosts {
					tg.Routes = append(tg.Routes, vh.Routes...)
				}
			}
			if len(tg.Clusters) == 0 {
				notFound(field, fmt.Sprintf("Service %s/%s has no port named %q (sectionName)", ns, name, *ref.SectionName))
				continue
			}
			// Gateway routes whose every backend is this Service are traffic
			// to it too.
			mine := map[string]bool{}
			for _, c := range tg.Clusters {
				mine[c.Name] = true
			}
			for _, rt := range t.gatewayRoutes {
				all := len(rt.Backends) > 0
				for _, b := range rt.Backends {
					all = all && mine[b.Cluster]
				}
				if all {
					tg.Routes = append(tg.Routes, rt)
					tg.GatewayRoutes = append(tg.GatewayRoutes, rt)
				}
			}
		case policies.Route:
			routes, ok := t.routeIndex[resource.Key{Kind: kind, Namespace: ns, Name: name}]
			if !ok {
				notFound(field, fmt.Sprintf("%s %s/%s not found (or attached to no parent)", kind, ns, name))
				continue
			}
			tg.Routes = routes
			tg.GatewayRoutes = t.gatewayRoutesOf(kind, ns, name)
			tg.Listeners = t.listenersOf(tg.GatewayRoutes)
		case policies.Gateway:
			gw := t.gws[svcKey{ns, name}]
			if gw == nil {
				notFound(field, fmt.Sprintf("Gateway %s/%s not found", ns, name))
				continue
			}
			tg.Listeners = gw.sortedListeners()
			for _, l := range tg.Listeners {
				for _, vh := range l.VirtualHosts {
					tg.Routes = append(tg.Routes, vh.Routes...)
				}
			}
			tg.GatewayRoutes = tg.Routes
		}
		out = append(out, tg)
	}
	return out
}

// gatewayRoutesOf returns the routes on Gateway listeners made from one
// route object (not its copies on Services, which proxyless clients apply).
func (t *translator) gatewayRoutesOf(kind, ns, name string) []*ir.Route {
	if t.onGateway == nil {
		// gatewayRoutes is complete once routes() has run, before any
		// policy asks.
		t.onGateway = make(map[*ir.Route]bool, len(t.gatewayRoutes))
		for _, r := range t.gatewayRoutes {
			t.onGateway[r] = true
		}
	}
	var out []*ir.Route
	for _, r := range t.routeIndex[resource.Key{Kind: kind, Namespace: ns, Name: name}] {
		if t.onGateway[r] {
			out = append(out, r)
		}
	}
	return out
}

// listenersOf returns the Gateway listeners that hold any of routes, sorted
// by name.
func (t *translator) listenersOf(routes []*ir.Route) []*ir.Listener {
	want := map[*ir.Route]bool{}
	for _, r := range routes {
		want[r] = true
	}
	var out []*ir.Listener
	for _, gw := range t.gws {
		for _, l := range gw.ports {
		search:
			for _, vh := range l.VirtualHosts {
				for _, r := range vh.Routes {
					if want[r] {
						out = append(out, l)
						break search
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sortedListeners are the Gateway's Envoy listeners, sorted by name.
func (gw *gateway) sortedListeners() []*ir.Listener {
	out := make([]*ir.Listener, 0, len(gw.ports))
	for _, l := range gw.ports {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// env is what features may look up (policies.Env).
type env struct {
	t        *translator
	clusters map[string]*ir.Cluster
	gateways []*policies.GatewayListeners
}

var _ policies.Env = (*env)(nil)

func (e *env) Port(ns, service string, port uint32) *ir.Cluster {
	s := e.t.svcs[svcKey{ns, service}]
	if s == nil {
		return nil
	}
	if sp := s.port(port); sp != nil {
		return sp.cluster
	}
	return nil
}

func (e *env) Clusters(ns, service string) []*ir.Cluster {
	s := e.t.svcs[svcKey{ns, service}]
	if s == nil {
		return nil
	}
	out := make([]*ir.Cluster, len(s.ports))
	for i, sp := range s.ports {
		out[i] = sp.cluster
	}
	return out
}

func (e *env) Cluster(name string) *ir.Cluster {
	if e.clusters == nil {
		e.clusters = map[string]*ir.Cluster{}
		for _, s := range e.t.svcs {
			for _, sp := range s.ports {
				e.clusters[sp.cluster.Name] = sp.cluster
			}
		}
	}
	return e.clusters[name]
}

func (e *env) Gateways() []*policies.GatewayListeners {
	if e.gateways != nil {
		return e.gateways
	}
	keys := make([]svcKey, 0, len(e.t.gws))
	for k := range e.t.gws {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].namespace != keys[j].namespace {
			return keys[i].namespace < keys[j].namespace
		}
		return keys[i].name < keys[j].name
	})
	for _, k := range keys {
		gw := e.t.gws[k]
		e.gateways = append(e.gateways, &policies.GatewayListeners{
			Namespace: k.namespace, Name: k.name, Listeners: gw.sortedListeners(),
			Conflict: func(field, condition, msg string) {
				e.t.fail(gw.key, field, "%s", msg)
				e.t.status.Set(gw.key, e.t.res.Origin(gw.key), Condition{Type: condition, Status: "True", Reason: "Conflicted", Message: msg})
			},
		})
	}
	return e.gateways
}
