package xds

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// flavour selects what a builder emits where Envoy and grpc-go differ.
type flavour int

const (
	flavourEnvoy flavour = iota
	flavourGRPC
)

// routeConfiguration builds the RDS resource of a listener. A route that
// fails validation is left out and reported with the input it comes from;
// the listener's other routes still apply.
func routeConfiguration(l *ir.Listener, f flavour) (*routev3.RouteConfiguration, []error) {
	rc := &routev3.RouteConfiguration{Name: l.Name}
	var errs []error
	for _, vh := range l.VirtualHosts {
		v := &routev3.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		for _, r := range vh.Routes {
			out := route(r, f, l.MaxRequestBytes > 0)
			if err := out.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("route %q (from %s) left out of route configuration %q: %w", r.Name, r.Source, l.Name, err))
				continue
			}
			v.Routes = append(v.Routes, out)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, v)
	}
	return rc, errs
}

// route builds one route; buffered says the listener buffers requests (a
// gRPC route then turns it off).
func route(r *ir.Route, f flavour, buffered bool) *routev3.Route {
	if r.Closed != nil {
		return &routev3.Route{
			Name:  r.Name,
			Match: routeMatch(r.Match),
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: r.Closed.StatusCode,
				Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: r.Closed.Message}},
			}},
		}
	}
	if r.Redirect != nil {
		out := &routev3.Route{
			Name:   r.Name,
			Match:  routeMatch(r.Match),
			Action: &routev3.Route_Redirect{Redirect: redirect(r.Redirect)},
		}
		headerMods(out, r)
		return out
	}
	action := &routev3.RouteAction{}
	if len(r.Backends) == 1 {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Backends[0].Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, b := range r.Backends {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   b.Cluster,
				Weight: wrapperspb.UInt32(b.Weight),
			})
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	switch {
	case r.Timeout != nil && f == flavourGRPC:
		// grpc-go bounds a call with max_stream_duration, not timeout.
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(r.Timeout.Std())}
	case r.Timeout != nil:
		action.Timeout = durationpb.New(r.Timeout.Std())
	case f == flavourEnvoy:
		// No timeout means none: Envoy's own default (15 s) would cut long
		// generations. Idle streams are still closed by the listener.
		action.Timeout = durationpb.New(0)
	}
	if r.IdleTimeout != nil && f == flavourEnvoy {
		action.IdleTimeout = durationpb.New(r.IdleTimeout.Std())
	}
	switch {
	case r.Retry != nil:
		// The retry carries the per-try timeout that applies (the route's
		// own wins; translate's retry feature decides).
		action.RetryPolicy = retryPolicy(r.Retry, f)
	case r.PerTryTimeout != nil && f == flavourEnvoy:
		// No retry: the route's per-try timeout still bounds its attempt.
		action.RetryPolicy = &routev3.RetryPolicy{PerTryTimeout: durationpb.New(r.PerTryTimeout.Std())}
	}
	if f == flavourEnvoy {
		rewrite(action, r)
		for _, rl := range r.RateLimits {
			action.RateLimits = append(action.RateLimits, rateLimitActions(rl))
		}
		for _, m := range r.Mirrors {
			action.RequestMirrorPolicies = append(action.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
				Cluster:         m.Cluster,
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: percent(m.Percent)},
			})
		}
	}
	if r.HashPolicy != nil {
		action.HashPolicy = []*routev3.RouteAction_HashPolicy{{
			PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: r.HashPolicy.Header}},
		}}
	}
	out := &routev3.Route{
		Name:   r.Name,
		Match:  routeMatch(r.Match),
		Action: &routev3.Route_Route{Route: action},
	}
	if r.Fault != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: mustAny(faultConfig(r.Fault))}
	}
	if f == flavourEnvoy {
		perFilter := func(name string, cfg *anypb.Any) {
			if out.TypedPerFilterConfig == nil {
				out.TypedPerFilterConfig = map[string]*anypb.Any{}
			}
			out.TypedPerFilterConfig[name] = cfg
		}
		if r.JWT != nil {
			perFilter(jwtFilterName, jwtPerRoute(r.JWT))
		}
		if r.GRPC && buffered {
			perFilter(bufferFilterName, noBuffer)
		}
	}
	if f == flavourEnvoy {
		headerMods(out, r)
	}
	return out
}

func routeMatch(m ir.Match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch {
	case m.PathExact != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.PathExact}
	case m.PathRegex != "":
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.PathRegex}}
	default:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	for _, q := range m.QueryParams {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if q.Regex != "" {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: q.Regex}},
			}}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: q.Exact},
			}}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

func headerMatcher(h ir.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
	switch {
	case h.Regex != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: h.Regex}},
		}}
	case h.Exact != "":
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact},
		}}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}
