package xds

import (
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

const jwtFilterName = "envoy.filters.http.jwt_authn"

// jwtRequirements lists the distinct JWT requirements of a listener's
// routes, by name.
func jwtRequirements(l *ir.Listener) []*ir.JWTRequirement {
	byName := map[string]*ir.JWTRequirement{}
	for _, vh := range l.VirtualHosts {
		for _, r := range vh.Routes {
			if r.JWT != nil {
				byName[r.JWT.Name] = r.JWT
			}
		}
	}
	out := make([]*ir.JWTRequirement, 0, len(byName))
	for _, r := range byName {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// jwtFilter verifies bearer tokens (Authorization: Bearer) on the routes
// that require one (a per-route requirement name; other routes are not
// checked): signature against the provider's published key set (fetched
// from its Service over the mesh, cached, fetched before the first
// request), issuer, audiences, expiry. A failure is 401 in the API's shape.
func jwtFilter(reqs []*ir.JWTRequirement) *hcmv3.HttpFilter {
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, RequirementMap: map[string]*jwtv3.JwtRequirement{}}
	for _, req := range reqs {
		var any []*jwtv3.JwtRequirement
		for _, p := range req.Providers {
			cache := 5 * time.Minute
			if p.CacheDuration != nil {
				cache = p.CacheDuration.Std()
			}
			jp := &jwtv3.JwtProvider{
				Issuer:    p.Issuer,
				Audiences: p.Audiences,
				JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
					HttpUri: &corev3.HttpUri{
						Uri:              p.JWKSURI,
						HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: p.JWKSCluster},
						Timeout:          durationpb.New(time.Second),
					},
					CacheDuration: durationpb.New(cache),
					AsyncFetch:    &jwtv3.JwksAsyncFetch{},
				}},
				// The upstream sees the token too (the api service reads it).
				Forward: true,
			}
			for _, c := range p.ClaimToHeaders {
				jp.ClaimToHeaders = append(jp.ClaimToHeaders, &jwtv3.JwtClaimToHeader{ClaimName: c.Name, HeaderName: c.Value})
			}
			cfg.Providers[p.Name] = jp
			any = append(any, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: p.Name}})
		}
		if len(any) == 1 {
			cfg.RequirementMap[req.Name] = any[0]
		} else {
			cfg.RequirementMap[req.Name] = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: any},
			}}
		}
	}
	return &hcmv3.HttpFilter{Name: jwtFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// jwtPerRoute names the requirement of a route.
func jwtPerRoute(req *ir.JWTRequirement) *anypb.Any {
	return mustAny(&jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: req.Name}})
}
