// Package jwt is SecurityPolicy.jwt: the routes of a Gateway require a
// bearer token (JWT) valid for one of the providers: its issuer, its
// audiences, signed by a key of the provider's key set, fetched over the
// mesh from a Service of the policy's namespace (auth publishes its keys
// through api at /.well-known/jwks.json). Claims can be copied into request
// headers. A request without a valid token gets 401 in the API's error
// shape.
//
// Attaches to a Gateway (all its routes) or to a route (its copies on
// Gateways): the Gateways' Envoy verifies the tokens (jwt_authn);
// proxyless servers cannot.
package jwt

import (
	"fmt"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is SecurityPolicy.jwt.
var Feature = policies.Define[*v1alpha1.SecurityPolicy, v1alpha1.JWT, *ir.JWTRequirement]{
	Meta:  policies.Meta{Name: "jwt", Kind: policies.SecurityPolicy, Attaches: policies.Gateway | policies.Route},
	Field: func(p *v1alpha1.SecurityPolicy) *v1alpha1.JWT { return p.Spec.JWT },
	Refusal: func(t *policies.Target) (string, string) {
		return t.Field, "jwt is verified by Envoy Gateways; target the Gateway or its routes, not a Service"
	},
	Build: build,
	Apply: func(req *ir.JWTRequirement, t *policies.Target, _ policies.Env) {
		for _, r := range t.GatewayRoutes {
			r.JWT = req
		}
	},
}

func build(spec *v1alpha1.JWT, c policies.Context[*v1alpha1.SecurityPolicy]) (*ir.JWTRequirement, bool) {
	ns, name := c.Policy.Namespace, c.Policy.Name
	ok := true
	req := &ir.JWTRequirement{Name: ns + "/" + name}
	for i, pr := range spec.Providers {
		field := fmt.Sprintf("spec.jwt.providers[%d]", i)
		ref := pr.JWKS.BackendRef
		keys := c.Env.Port(ns, ref.Name, uint32(ref.Port))
		if keys == nil {
			c.Report(field+".jwks.backendRef", fmt.Sprintf("Service %s/%s port %d not found", ns, ref.Name, ref.Port))
			ok = false
			continue
		}
		out := ir.JWTProvider{
			Name: ns + "/" + name + "/" + pr.Name, Issuer: pr.Issuer, Audiences: pr.Audiences,
			JWKSCluster: keys.Name,
			JWKSURI:     fmt.Sprintf("http://%s.%s:%d%s", ref.Name, ns, ref.Port, pr.JWKS.Path),
		}
		if pr.JWKS.CacheDuration != nil {
			d, err := pr.JWKS.CacheDuration.Parse()
			if err != nil || d <= 0 {
				c.Report(field+".jwks.cacheDuration", fmt.Sprintf("%q must be a positive duration", *pr.JWKS.CacheDuration))
				ok = false
			}
			out.CacheDuration = ir.D(d)
		}
		if !strings.HasPrefix(pr.JWKS.Path, "/") {
			c.Report(field+".jwks.path", fmt.Sprintf("%q must start with /", pr.JWKS.Path))
			ok = false
		}
		for _, h := range pr.ClaimToHeaders {
			out.ClaimToHeaders = append(out.ClaimToHeaders, ir.Header{Name: h.Claim, Value: h.Header})
		}
		req.Providers = append(req.Providers, out)
	}
	return req, ok
}
