package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Types are the resource types a snapshot carries, in push order.
var Types = []resourcev3.Type{
	resourcev3.ClusterType,
	resourcev3.EndpointType,
	resourcev3.ListenerType,
	resourcev3.RouteType,
	// Secrets are added by the server, for proven Envoy nodes only.
	resourcev3.SecretType,
	// The rate-limit service's rules (role ratelimit).
	resourcev3.RateLimitConfigType,
}

// Resources are the xDS resources of one proxy, by type, sorted by name.
type Resources map[resourcev3.Type][]types.Resource

// validator is the protoc-gen-validate method every Envoy proto has.
type validator interface{ ValidateAll() error }

// Build turns the IR of a proxy into its xDS resources. Every resource
// passes ValidateAll, and every name a resource refers to exists.
//
// A route that fails validation is left out and reported in Warnings (the
// rest of its listener applies); any other failure is an error, which
// names the resource and the rule, and then nothing may be published.
func Build(cfg *ir.Config) (Resources, error) {
	res, _, err := BuildWithWarnings(cfg)
	return res, err
}

// BuildWithWarnings is Build, also returning the routes left out.
func BuildWithWarnings(cfg *ir.Config) (Resources, []error, error) {
	var warnings []error
	out := Resources{}
	var errs []error
	add := func(typ resourcev3.Type, r types.Resource) {
		if v, ok := r.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", TypeName(typ), cachev3.GetResourceName(r), err))
				return
			}
		}
		out[typ] = append(out[typ], r)
	}
	switch cfg.Proxy.Role {
	case workload.RoleGRPC:
		for _, l := range cfg.Listeners {
			if l.Kind == ir.ListenerServer {
				add(resourcev3.ListenerType, serverListener(l))
				continue
			}
			lis, err := clientListener(l)
			if err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", l.Name, err))
				continue
			}
			add(resourcev3.ListenerType, lis)
			rc, w := routeConfiguration(l, flavourGRPC)
			warnings = append(warnings, w...)
			add(resourcev3.RouteType, rc)
		}
		for _, c := range cfg.Clusters {
			add(resourcev3.ClusterType, cluster(c, flavourGRPC))
			add(resourcev3.EndpointType, loadAssignment(c))
		}
	case workload.RoleRouter, workload.RoleGateway, workload.RoleSidecar:
		for _, l := range cfg.Listeners {
			add(resourcev3.ListenerType, httpListener(l))
			rc, w := routeConfiguration(l, flavourEnvoy)
			warnings = append(warnings, w...)
			add(resourcev3.RouteType, rc)
		}
		for _, c := range cfg.Clusters {
			add(resourcev3.ClusterType, cluster(c, flavourEnvoy))
			if !c.Static {
				add(resourcev3.EndpointType, loadAssignment(c))
			}
		}
	case workload.RoleRateLimit:
		for _, d := range cfg.RateLimitDomains {
			add(resourcev3.RateLimitConfigType, rateLimitConfig(d))
		}
	default:
		return nil, nil, fmt.Errorf("xds: role %q is not translated yet", cfg.Proxy.Role)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return cachev3.GetResourceName(list[i]) < cachev3.GetResourceName(list[j]) })
	}
	if len(errs) == 0 {
		errs = append(errs, out.consistent())
	}
	return out, warnings, errors.Join(errs...)
}

// consistent checks that every cluster a route names exists, every route
// configuration a listener names exists, and every EDS cluster has its
// endpoints. go-control-plane's Snapshot.Consistent does not follow the RDS
// names of api_listeners, so the control plane checks on its own.
func (r Resources) consistent() error {
	var errs []error
	for typ, refs := range cachev3.GetAllResourceReferences(r.grouped()) {
		have := map[string]bool{}
		for _, res := range r[typ] {
			have[cachev3.GetResourceName(res)] = true
		}
		for name := range refs {
			if !have[name] {
				errs = append(errs, fmt.Errorf("%s %q is referenced but not generated", TypeName(typ), name))
			}
		}
	}
	for _, res := range r[resourcev3.RouteType] {
		for name := range routeClusters(res) {
			if !r.has(resourcev3.ClusterType, name) {
				errs = append(errs, fmt.Errorf("cluster %q is referenced but not generated (route configuration %q)", name, cachev3.GetResourceName(res)))
			}
		}
	}
	for _, res := range r[resourcev3.ListenerType] {
		for name := range apiListenerRoutes(res) {
			if !r.has(resourcev3.RouteType, name) {
				errs = append(errs, fmt.Errorf("route configuration %q, named by listener %q, is not generated", name, cachev3.GetResourceName(res)))
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

func (r Resources) has(typ resourcev3.Type, name string) bool {
	for _, res := range r[typ] {
		if cachev3.GetResourceName(res) == name {
			return true
		}
	}
	return false
}

func (r Resources) grouped() [types.UnknownType]cachev3.Resources {
	var g [types.UnknownType]cachev3.Resources
	for typ, list := range r {
		g[cachev3.GetResponseType(typ)] = cachev3.NewResources("", list)
	}
	return g
}

// Snapshot makes a cache snapshot whose per-type versions are hashes of the
// content: a type whose resources did not change keeps its version and is
// not pushed again (an endpoint-only change pushes EDS alone). It also
// returns those versions, which is what nodes ACK.
func (r Resources) Snapshot() (*cachev3.Snapshot, map[resourcev3.Type]string, error) {
	s := &cachev3.Snapshot{}
	versions := map[resourcev3.Type]string{}
	for _, typ := range Types {
		v, err := version(r[typ])
		if err != nil {
			return nil, nil, err
		}
		versions[typ] = v
		s.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(v, r[typ])
	}
	return s, versions, nil
}

func version(list []types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, res := range list {
		b, err := opts.Marshal(res)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// TypeName is a resource type's name for people ("listener", "cluster", …).
func TypeName(t resourcev3.Type) string {
	switch t {
	case resourcev3.ListenerType:
		return "listener"
	case resourcev3.RouteType:
		return "route configuration"
	case resourcev3.ClusterType:
		return "cluster"
	case resourcev3.EndpointType:
		return "endpoints"
	case resourcev3.SecretType:
		return "secret"
	case resourcev3.RateLimitConfigType:
		return "rate-limit configuration"
	}
	return t
}
