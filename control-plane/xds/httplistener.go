package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// httpFilters is the HTTP filter chain of Envoy listeners, in the order
// requests go through it; cheap refusals come before costly ones:
//
//	ipaccess        (SecurityPolicy.ipAccess)    — client address deny, allow
//	local_ratelimit (RateLimitPolicy.local)      — per-Envoy buckets (per client IP, …)
//	jwt_authn       (SecurityPolicy.jwt)         — bearer tokens, on the routes that require one
//	ext_authz       (SecurityPolicy.extAuth)     — authenticate before anything is spent
//	ratelimit       (RateLimitPolicy.global)     — limit on the identity ext_authz established
//	buffer          (Gateway listeners)          — request bodies bounded, 413 beyond
//	rbac            (SecurityPolicy)             — sidecars, on SPIFFE principals
//	fault           (BackendPolicy, per route)   — configured per route, inert otherwise
//	router                                       — last, always
func httpFilters(l *ir.Listener) []*hcmv3.HttpFilter {
	if l == nil {
		l = &ir.Listener{}
	}
	var out []*hcmv3.HttpFilter
	if l.IPAccess != nil {
		out = append(out, ipAccessFilters(l.IPAccess)...)
	}
	if l.LocalRateLimit != nil {
		out = append(out, localRateLimitFilter(l.LocalRateLimit))
	}
	if reqs := jwtRequirements(l); len(reqs) > 0 {
		out = append(out, jwtFilter(reqs))
	}
	if l.ExtAuthz != nil {
		out = append(out, extAuthzFilter(l.ExtAuthz))
	}
	if l.RateLimit != nil {
		out = append(out, rateLimitFilter(l.RateLimit))
	}
	if l.MaxRequestBytes > 0 {
		out = append(out, bufferFilter(l.MaxRequestBytes))
	}
	if sec := l.Security; sec != nil && sec.RBAC != nil {
		out = append(out, rbacFilters(sec.RBAC)...)
	}
	return append(out,
		&hcmv3.HttpFilter{Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
		&hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
	)
}

// httpListener is an Envoy listener of the router or a gateway: HTTP/1.1
// and HTTP/2 on one port, routes over RDS under the listener's name.
func httpListener(l *ir.Listener) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: l.Name,
		}},
		HttpFilters: httpFilters(l),
		// The peer address is the client's unless
		// SecurityPolicy.ipAccess.xffNumTrustedHops says how many proxies
		// in front append to X-Forwarded-For (a load balancer before the
		// router; the router before the gateways). Envoy appends the peer
		// address to X-Forwarded-For either way.
		UseRemoteAddress:             wrapperspb.Bool(true),
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT,
		// Long generations stream for minutes: no overall request timeout
		// here (routes set theirs), but an idle stream is closed.
		StreamIdleTimeout: durationpb.New(5 * 60e9),
		RequestTimeout:    durationpb.New(0),
		// Every request gets an id (a client's own is kept), logged here and
		// passed to every service.
		GenerateRequestId:         wrapperspb.Bool(true),
		PreserveExternalRequestId: true,
		AccessLog:                 accessLog(),
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			IdleTimeout:                  durationpb.New(3600e9),
			HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_REJECT_REQUEST,
		},
	}
	hcm.LocalReplyConfig = localReplies(l.Degraded)
	if tr := l.Tracing; tr != nil {
		hcm.Tracing = tracing(tr)
	}
	if a := l.IPAccess; a != nil && a.XFFNumTrustedHops > 0 {
		// The client is the address that many hops from the right of
		// X-Forwarded-For; a client's own entries further left are ignored.
		hcm.XffNumTrustedHops = a.XFFNumTrustedHops
	}
	fc := &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}},
	}
	if l.Security.Strict() {
		// A sidecar's inbound for a STRICT Service (RBAC above needs the
		// peer's certificate).
		fc.TransportSocket = envoyDownstreamTLS()
	}
	return &listenerv3.Listener{
		Name:                          l.Name,
		Address:                       socketAddress(l.Host, l.Port),
		FilterChains:                  []*listenerv3.FilterChain{fc},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(1 << 20),
	}
}

// socketAddress is a TCP address.
func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

const bufferFilterName = "envoy.filters.http.buffer"

// bufferFilter bounds request bodies: a larger one is refused with 413
// before it reaches a service. Only requests are buffered; responses
// (SSE streams) pass through as they come. gRPC routes turn it off
// (noBuffer): a client stream is not a body to wait for.
func bufferFilter(max uint32) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: bufferFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&bufferv3.Buffer{
		MaxRequestBytes: wrapperspb.UInt32(max),
	})}}
}

var noBuffer = mustAny(&bufferv3.BufferPerRoute{Override: &bufferv3.BufferPerRoute_Disabled{Disabled: true}})

// tracing exports the listener's spans to the collector over OTLP/gRPC,
// starting traces for a share of requests (W3C traceparent propagated, so
// the services' spans join them).
func tracing(t *ir.Tracing) *hcmv3.HttpConnectionManager_Tracing {
	return &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: float64(t.SamplePercent)},
		Provider: &tracev3.Tracing_Http{
			Name: "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
				GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: t.Cluster},
				}},
				ServiceName: t.ServiceName,
			})},
		},
	}
}
