// Package translate turns one input snapshot (resource.Resources) into the
// configuration of every proxy (ir.Config) and the status of every input
// object. It is a pure function: no I/O, no clock, the same input gives the
// same output. It is best-effort: an invalid object is reported, in its
// status and in Result.Errors, and skipped; the valid ones still translate.
package translate

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Result is the output of a translation.
type Result struct {
	// Clusters of every Service port, with endpoints, sorted by name.
	Clusters []*ir.Cluster
	// ClientListeners are the proxyless clients' view of every Service port,
	// sorted by name.
	ClientListeners []*ir.Listener
	// GatewayListeners are the Envoy listeners of each Gateway, by
	// "namespace/name", sorted by name.
	GatewayListeners map[string][]*ir.Listener
	// Inbound is the security (mTLS, authorization) of each Service's
	// servers, by "namespace/name"; absent: plaintext, all allowed.
	Inbound map[string]*ir.InboundSecurity
	// RateLimitDomains are the rate-limit service's configuration: the
	// global rules of every Gateway listener, by domain.
	RateLimitDomains []*ir.RateLimitDomain
	// Accepted are the policy versions in force (the next translation's
	// Options.Accepted).
	Accepted map[resource.Key]client.Object
	// Reach says which proxies each object's configuration lands on (no
	// entry: none, such as a GatewayClass or a policy not in force).
	Reach map[resource.Key]Reach
	// AttachedRoutes counts, per Gateway and listener name, the routes
	// attached to it (Gateway status).
	AttachedRoutes map[resource.Key]map[string]int32
	// Status of every input object that has one.
	Status *Status
	// Errors lists every problem found, each naming the file, the object and
	// the field.
	Errors []error
}

// Err joins Errors (nil when there is none).
func (r *Result) Err() error { return errors.Join(r.Errors...) }

// Config returns the configuration of the proxies of id.
//
// A proxyless application sees every Service as a client (it subscribes to
// the ones it dials; per-service narrowing comes with authorization), and,
// as a server, gets one inbound listener per endpoint of its own Service
// (role grpc, name = its Service's name).
func (r *Result) Config(id workload.ProxyID) *ir.Config {
	cfg := &ir.Config{Proxy: id}
	switch id.Role {
	case workload.RoleGRPC:
		cfg.Listeners = append(slices.Clone(r.ClientListeners), r.serverListeners(id)...)
		sort.Slice(cfg.Listeners, func(i, j int) bool { return cfg.Listeners[i].Name < cfg.Listeners[j].Name })
		cfg.Clusters = r.Clusters
	case workload.RoleRouter, workload.RoleGateway:
		// The router and the gateways are Gateways; the node's name is the
		// Gateway's.
		cfg.Listeners, cfg.Clusters = r.gatewayConfig(id)
	case workload.RoleSidecar:
		cfg.Listeners, cfg.Clusters = r.sidecarConfig(id)
	case workload.RoleRateLimit:
		// One rate-limit service counts for every Gateway: the domains keep
		// their rules apart.
		cfg.RateLimitDomains = r.RateLimitDomains
	}
	return cfg
}

// serverListeners are the inbound listeners of the endpoints of the Service
// named by id: the Service's own endpoints (priority 0), not its fallback's.
func (r *Result) serverListeners(id workload.ProxyID) []*ir.Listener {
	var out []*ir.Listener
	seen := map[string]bool{}
	for _, c := range r.Clusters {
		if c.Service != id.Name || c.Namespace != id.Namespace {
			continue
		}
		for _, l := range c.Localities {
			if l.Priority != 0 {
				continue
			}
			for _, e := range l.Endpoints {
				addr := net.JoinHostPort(e.Address, strconv.Itoa(int(e.Port)))
				name := fmt.Sprintf(workload.ServerListenerTemplate, addr)
				if seen[name] {
					continue
				}
				seen[name] = true
				out = append(out, &ir.Listener{
					Name: name, Kind: ir.ListenerServer, Host: e.Address, Port: e.Port,
					Security: r.Inbound[c.Namespace+"/"+c.Service],
					VirtualHosts: []*ir.VirtualHost{{
						Name: "inbound", Domains: []string{"*"},
						Routes: []*ir.Route{{Name: "inbound", Source: fmt.Sprintf("Service %s/%s port %d", c.Namespace, c.Service, c.Port), Match: ir.Match{PathPrefix: "/"}}},
					}},
				})
			}
		}
	}
	return out
}

// Options is what a translation may use beyond its snapshot.
type Options struct {
	// Accepted are the policy versions in force after the previous
	// translation (its Result.Accepted): a policy whose new version cannot
	// apply keeps its previous one, reported on its status.
	Accepted map[resource.Key]client.Object
}

// Translate translates a snapshot of the input, with no memory of earlier
// translations (bulkhead translate and validate, goldens).
func Translate(res *resource.Resources) *Result { return TranslateWith(res, Options{}) }

// TranslateWith translates a snapshot of the input; the running control
// plane passes each translation what the previous one accepted.
func TranslateWith(res *resource.Resources, opts Options) *Result {
	t := &translator{
		res:        res,
		opts:       opts,
		accepted:   map[resource.Key]client.Object{},
		inForce:    map[resource.Key][]*policies.Target{},
		attachedTo: map[*gwListener]map[resource.Key]bool{},
		status:     newStatus(),
		svcs:       map[svcKey]*service{},
		routeIndex: map[resource.Key][]*ir.Route{},
		inbound:    map[string]*ir.InboundSecurity{},

		securedListeners: map[*ir.Listener]bool{},
		securedRoutes:    map[*ir.Route]bool{},
	}
	t.services()
	t.endpoints()
	t.gateways()
	t.routes()
	// Every policy feature, in the order of Features (features.go).
	t.policies()
	t.refusedVersions()
	t.tracing()
	out := &Result{Status: t.status, Errors: t.errs, GatewayListeners: map[string][]*ir.Listener{}, Inbound: t.inbound, Accepted: t.accepted, Reach: t.reaches()}
	for k, gw := range t.gws {
		var ls []*ir.Listener
		for _, l := range gw.ports {
			ls = append(ls, l)
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		out.GatewayListeners[k.namespace+"/"+k.name] = ls
	}
	var listeners []*ir.Listener
	for _, ls := range out.GatewayListeners {
		listeners = append(listeners, ls...)
	}
	out.RateLimitDomains = ir.RateLimitDomains(listeners)
	out.AttachedRoutes = map[resource.Key]map[string]int32{}
	for _, gw := range t.gws {
		counts := map[string]int32{}
		for _, l := range gw.listeners {
			counts[l.name] = int32(len(t.attachedTo[l]))
		}
		out.AttachedRoutes[gw.key] = counts
	}
	for _, s := range t.sortedServices() {
		for _, p := range s.ports {
			out.Clusters = append(out.Clusters, p.cluster)
			out.ClientListeners = append(out.ClientListeners, p.listener)
		}
	}
	sort.Slice(out.Clusters, func(i, j int) bool { return out.Clusters[i].Name < out.Clusters[j].Name })
	sort.Slice(out.ClientListeners, func(i, j int) bool { return out.ClientListeners[i].Name < out.ClientListeners[j].Name })
	return out
}

type translator struct {
	res      *resource.Resources
	opts     Options
	accepted map[resource.Key]client.Object
	// inForce are the targets of each policy in force (for its Reach).
	inForce map[resource.Key][]*policies.Target
	// attachedTo are the route objects attached to each Gateway listener.
	attachedTo map[*gwListener]map[resource.Key]bool
	status     *Status
	errs       []error
	svcs       map[svcKey]*service
	// routeIndex lists the IR routes made from each route object.
	routeIndex map[resource.Key][]*ir.Route
	gws        map[svcKey]*gateway
	// gatewayRoutes are every route of every Gateway listener; onGateway
	// indexes them (built on first use by gatewayRoutesOf).
	gatewayRoutes []*ir.Route
	onGateway     map[*ir.Route]bool
	// inbound is the security of each Service's servers, by
	// "namespace/name".
	inbound map[string]*ir.InboundSecurity
	// securedListeners and securedRoutes are what accepted SecurityPolicies
	// in force cover (closed.go).
	securedListeners map[*ir.Listener]bool
	securedRoutes    map[*ir.Route]bool
}

// fail records a problem with an object, at a field.
func (t *translator) fail(key resource.Key, field string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	err := fmt.Errorf("%s: %s: %s", t.res.Origin(key), key, msg)
	t.errs = append(t.errs, err)
	return err
}
