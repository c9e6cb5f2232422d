package xds_test

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// The HTTP filters of every listener, Envoy and proxyless alike, run in the
// documented order: client address checks and local limits first, then
// ext_authz before the global rate limit (which reads the identity headers
// ext_authz sets), the body bound, RBAC, fault, and the router last. RBAC
// filters are named envoy.filters.http.rbac.deny and .allow, the address
// filters ipaccess.deny and .allow.
var filterOrder = []string{
	"ipaccess",
	"envoy.filters.http.local_ratelimit",
	"envoy.filters.http.jwt_authn",
	"envoy.filters.http.ext_authz",
	"envoy.filters.http.ratelimit",
	"envoy.filters.http.buffer",
	"envoy.filters.http.rbac",
	"envoy.filters.http.fault",
	"envoy.filters.http.router",
}

func TestHTTPFilterOrder(t *testing.T) {
	seen := map[string]bool{}
	defer func() {
		for _, want := range []string{"ipaccess.deny", "ipaccess.allow", "envoy.filters.http.local_ratelimit", "envoy.filters.http.jwt_authn", "envoy.filters.http.ext_authz",
			"envoy.filters.http.ratelimit", "envoy.filters.http.buffer", "envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow", "envoy.filters.http.fault"} {
			if !seen[want] {
				t.Errorf("no listener of the test has %s: its place is not checked", want)
			}
		}
	}()
	gw := &ir.Listener{Name: "default/ai/8080", Kind: ir.ListenerHTTP, Host: "0.0.0.0", Port: 8080,
		VirtualHosts: []*ir.VirtualHost{{Name: "any", Domains: []string{"*"}, Routes: []*ir.Route{{Name: "r", Match: ir.Match{PathPrefix: "/"},
			Backends: []ir.WeightedBackend{{Cluster: "auth.default:9000", Weight: 1}},
			JWT: &ir.JWTRequirement{Name: "default/p", Providers: []ir.JWTProvider{{Name: "default/p/auth", Issuer: "bulkhead-auth",
				JWKSCluster: "auth.default:9000", JWKSURI: "http://auth.default:9000/jwks"}}}}}}},
		ExtAuthz:  &ir.ExtAuthz{Cluster: "auth.default:9000"},
		RateLimit: &ir.GlobalRateLimit{Domain: "default/ai/8080", Cluster: "ratelimit.default:8081"},
		LocalRateLimit: &ir.LocalRateLimit{Rules: []ir.RateLimitRule{{ID: "default/p/r", Requests: 1, Unit: ir.UnitSecond,
			Entries: []ir.DescriptorEntry{{Key: "remote_address", Source: ir.SourceRemoteAddress}}}}},
		IPAccess:        &ir.IPAccess{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.1.0.0/16"}, Source: "default/p"},
		MaxRequestBytes: 1 << 20}
	rbac := &ir.RBAC{Deny: []ir.RBACRule{{Name: "d", Methods: []string{"/a.B/*"}}}, Allow: []ir.RBACRule{{Name: "a", Methods: []string{"/a.B/C"}}}}
	inbound := &ir.Listener{Name: "inbound/0.0.0.0:9000->19000", Kind: ir.ListenerHTTP, Host: "0.0.0.0", Port: 9000,
		VirtualHosts: []*ir.VirtualHost{{Name: "any", Domains: []string{"*"}}},
		Security:     &ir.InboundSecurity{Mode: ir.MTLSStrict, RBAC: rbac}}
	client := &ir.Listener{Name: "svc.default:9000", Kind: ir.ListenerClient,
		VirtualHosts: []*ir.VirtualHost{{Name: "any", Domains: []string{"*"}}}}
	for _, cfg := range []*ir.Config{
		{Proxy: workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}, Listeners: []*ir.Listener{gw},
			Clusters: []*ir.Cluster{{Name: "auth.default:9000", Service: "auth", Namespace: "default", Port: 9000, HTTP2: true},
				{Name: "ratelimit.default:8081", Service: "ratelimit", Namespace: "default", Port: 8081, HTTP2: true}}},
		{Proxy: workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "sidecar-like"}, Listeners: []*ir.Listener{inbound}},
		{Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"}, Listeners: []*ir.Listener{client}},
	} {
		res, err := xds.Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res[resourcev3.ListenerType] {
			l := r.(*listenerv3.Listener)
			hcm := &hcmv3.HttpConnectionManager{}
			if api := l.GetApiListener(); api != nil {
				if err := api.GetApiListener().UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
			} else if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			var names []string
			last := -1
			for _, f := range hcm.GetHttpFilters() {
				names = append(names, f.GetName())
				seen[f.GetName()] = true
				i := slices.IndexFunc(filterOrder, func(n string) bool { return f.GetName() == n || strings.HasPrefix(f.GetName(), n+".") })
				if i < 0 {
					t.Errorf("%s: filter %s has no place in the documented order", l.GetName(), f.GetName())
					continue
				}
				if i < last {
					t.Errorf("%s: filters %v out of order; want the order %v", l.GetName(), names, filterOrder)
				}
				last = i
			}
			if len(names) == 0 || names[len(names)-1] != "envoy.filters.http.router" {
				t.Errorf("%s: filters %v; the router must be last", l.GetName(), names)
			}
		}
	}
}
