package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// serverListener is the inbound listener of an xDS-enabled gRPC server: its
// address, one filter chain whose connection manager carries its routes
// inline with non-forwarding actions (the server handles the call itself),
// as gRFC A36 requires. The Service's SecurityPolicy adds mTLS (the
// filter chain's transport socket, STRICT) and RBAC (HTTP filters before
// the router).
func serverListener(l *ir.Listener) *listenerv3.Listener {
	rc := &routev3.RouteConfiguration{Name: "inbound"}
	for _, vh := range l.VirtualHosts {
		v := &routev3.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		for _, r := range vh.Routes {
			v.Routes = append(v.Routes, &routev3.Route{
				Name:   r.Name,
				Match:  routeMatch(r.Match),
				Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, v)
	}
	var filters []*hcmv3.HttpFilter
	if sec := l.Security; sec != nil && sec.RBAC != nil {
		filters = append(filters, rbacFilters(sec.RBAC)...)
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "inbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    filters,
	}
	fc := &listenerv3.FilterChain{
		Name: "inbound",
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if l.Security.Strict() {
		fc.TransportSocket = downstreamTLS()
	}
	return &listenerv3.Listener{
		Name:         l.Name,
		Address:      socketAddress(l.Host, l.Port),
		FilterChains: []*listenerv3.FilterChain{fc},
	}
}
