package translate

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/authorization"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// securityPolicies validates SecurityPolicies and applies what proxyless
// servers and clients enforce: the mTLS mode (STRICT: servers require
// client certificates, clients of the Service originate mTLS) and the
// authorization rules (RBAC at the servers). One policy per Service: when
// several target it, the first by namespace/name applies and the others
// are not Accepted. extAuth, jwt and ipAccess apply to Gateways (and jwt
// to their routes) and are enforced by their Envoy.
func (t *translator) securityPolicies() {
	t.inbound = map[string]*ir.InboundSecurity{}
	for _, p := range t.res.SecurityPolicies {
		key := resource.KeyOf("SecurityPolicy", p)
		problems := t.checkTargets(key, p.Namespace, p.Spec.TargetRefs)
		report := t.reporter(key, &problems)
		check := func(field string, ref *v1alpha1.BackendRef) {
			if ref == nil {
				return
			}
			s := t.svcs[svcKey{p.Namespace, ref.Name}]
			if s == nil || s.port(uint32(ref.Port)) == nil {
				report(field, fmt.Sprintf("Service %s/%s port %d not found", p.Namespace, ref.Name, ref.Port))
			}
		}
		if ea := p.Spec.ExtAuth; ea != nil {
			check("spec.extAuth.backendRef", &ea.BackendRef)
			check("spec.extAuth.fallback", ea.Fallback)
			gatewayOnly(p.Spec.TargetRefs, "extAuth", "applied", report)
		}
		ipAccess := t.ipAccess(p, report)
		sec := &ir.InboundSecurity{Mode: ir.MTLSDisable, Source: p.Namespace + "/" + p.Name}
		if m := p.Spec.MTLS; m != nil {
			sec.Mode = string(m.Mode)
		}
		if a := p.Spec.Authorization; a != nil {
			rbac, err := authorization.Build(a)
			if err != nil {
				for _, e := range joined(err) {
					// Each error starts with its field path within authorization.
					t.fail(key, "", "spec.authorization.%s", e)
					problems = append(problems, "spec.authorization."+e.Error())
				}
			} else {
				sec.RBAC = rbac
				if !sec.Strict() {
					for _, r := range append(append([]ir.RBACRule(nil), rbac.Deny...), rbac.Allow...) {
						if len(r.Principals) > 0 {
							report("spec.authorization.rules", fmt.Sprintf("rule %q names principals, which are only known over mTLS: set spec.mtls.mode STRICT", r.Name))
							break
						}
					}
				}
			}
		}
		if len(problems) == 0 {
			for i, ref := range p.Spec.TargetRefs {
				if ref.Kind != "Service" {
					continue
				}
				k := p.Namespace + "/" + string(ref.Name)
				if prev, ok := t.inbound[k]; ok {
					report(fmt.Sprintf("spec.targetRefs[%d]", i), fmt.Sprintf("Service %s already has SecurityPolicy %s; one policy per Service", k, prev.Source))
				}
			}
		}
		var authz *ir.ExtAuthz
		if ea := p.Spec.ExtAuth; ea != nil && len(problems) == 0 {
			var msg string
			authz, msg = t.extAuthz(p.Namespace, p.Name, ea)
			if msg != "" {
				report("spec.extAuth", msg)
			}
		}
		var jwt *ir.JWTRequirement
		if p.Spec.JWT != nil {
			jwt = t.jwtRequirement(p, report)
		}
		if len(problems) == 0 {
			if jwt != nil {
				t.requireJWT(p, jwt)
			}
			for _, ref := range p.Spec.TargetRefs {
				switch ref.Kind {
				case "Service":
					t.inbound[p.Namespace+"/"+string(ref.Name)] = sec
				case "Gateway":
					if gw := t.gws[svcKey{p.Namespace, string(ref.Name)}]; gw != nil {
						for _, l := range gw.ports {
							if authz != nil {
								l.ExtAuthz = authz
							}
							if ipAccess != nil {
								l.IPAccess = ipAccess
							}
						}
					}
				}
			}
		}
		t.policyAccepted(key, problems, "mTLS and authorization are enforced by the Services' servers, extAuth, jwt and ipAccess by the Gateways' Envoy")
	}
	// Clients of a STRICT Service originate mTLS to its gRPC (h2c) ports:
	// those are served by xDS-enabled servers, which terminate the mesh's
	// TLS. A plain HTTP port (api's public API) is served by the app itself
	// and stays plaintext until a sidecar fronts it.
	for k, s := range t.svcs {
		if !t.inbound[k.namespace+"/"+k.name].Strict() {
			continue
		}
		for _, p := range s.ports {
			if p.cluster.HTTP2 {
				p.cluster.TLS = &ir.UpstreamTLS{SANPrefix: ir.TrustDomainPrefix}
			}
		}
	}
}

// joined lists the errors of an errors.Join.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// DefaultExtAuthzTimeout bounds a Check when the policy does not say.
const DefaultExtAuthzTimeout = 250 * time.Millisecond

// extAuthz builds a Gateway's ext_authz from SecurityPolicy.extAuth. The
// failover to the fallback pool is the authorization Service's own
// (BackendPolicy fallback, priority failover), so a fallback named here
// must be that one.
func (t *translator) extAuthz(ns, policy string, ea *v1alpha1.ExtAuth) (*ir.ExtAuthz, string) {
	s := t.svcs[svcKey{ns, ea.BackendRef.Name}]
	if s == nil {
		return nil, "backendRef: Service not found"
	}
	sp := s.port(uint32(ea.BackendRef.Port))
	if sp == nil {
		return nil, "backendRef: port not found"
	}
	out := &ir.ExtAuthz{Cluster: sp.cluster.Name, Timeout: ir.D(DefaultExtAuthzTimeout), FailOpen: ea.FailOpen,
		HeadersToCheck: ea.HeadersToCheck, Source: ns + "/" + policy}
	if ea.Timeout != nil {
		d, err := ea.Timeout.Parse()
		if err != nil || d <= 0 {
			return nil, fmt.Sprintf("timeout: %q must be a positive duration", *ea.Timeout)
		}
		out.Timeout = ir.D(d)
	}
	if f := ea.Fallback; f != nil {
		want := ir.ClusterName(f.Name, ns, uint32(f.Port))
		if sp.cluster.Fallback != want {
			return nil, fmt.Sprintf("fallback: the failover of %s is its BackendPolicy's fallback; declare %s there (it says %q)", sp.cluster.Name, want, sp.cluster.Fallback)
		}
	}
	return out, ""
}

// ipAccess validates SecurityPolicy.ipAccess, which Envoy Gateways
// enforce; nil when the policy has none or it is invalid.
func (t *translator) ipAccess(p *v1alpha1.SecurityPolicy, report func(field, msg string)) *ir.IPAccess {
	a := p.Spec.IPAccess
	if a == nil {
		return nil
	}
	ok := gatewayOnly(p.Spec.TargetRefs, "ipAccess", "enforced", report)
	check := func(field string, list []string) []string {
		var out []string
		for i, c := range list {
			pfx, err := netip.ParsePrefix(c)
			if err != nil {
				report(fmt.Sprintf("spec.ipAccess.%s[%d]", field, i), fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", c))
				ok = false
				continue
			}
			out = append(out, pfx.Masked().String())
		}
		return out
	}
	out := &ir.IPAccess{Allow: check("allow", a.Allow), Deny: check("deny", a.Deny), Source: p.Namespace + "/" + p.Name}
	if a.XFFNumTrustedHops < 0 || a.XFFNumTrustedHops > 8 {
		report("spec.ipAccess.xffNumTrustedHops", fmt.Sprintf("%d is not between 0 and 8", a.XFFNumTrustedHops))
		ok = false
	}
	out.XFFNumTrustedHops = uint32(max(a.XFFNumTrustedHops, 0))
	if !ok {
		return nil
	}
	return out
}

// jwtRequirement validates SecurityPolicy.jwt (the Gateways' Envoy
// verifies the tokens; proxyless servers cannot) and builds the
// requirement its targets get; nil when invalid.
func (t *translator) jwtRequirement(p *v1alpha1.SecurityPolicy, report func(field, msg string)) *ir.JWTRequirement {
	ok := true
	for i, ref := range p.Spec.TargetRefs {
		if ref.Kind == "Service" {
			report(fmt.Sprintf("spec.targetRefs[%d]", i), "jwt is verified by Envoy Gateways; target the Gateway or its routes, not a Service")
			ok = false
		}
	}
	req := &ir.JWTRequirement{Name: p.Namespace + "/" + p.Name}
	for i, pr := range p.Spec.JWT.Providers {
		field := fmt.Sprintf("spec.jwt.providers[%d]", i)
		ref := pr.JWKS.BackendRef
		var sp *servicePort
		if s := t.svcs[svcKey{p.Namespace, ref.Name}]; s != nil {
			sp = s.port(uint32(ref.Port))
		}
		if sp == nil {
			report(field+".jwks.backendRef", fmt.Sprintf("Service %s/%s port %d not found", p.Namespace, ref.Name, ref.Port))
			ok = false
			continue
		}
		out := ir.JWTProvider{
			Name: p.Namespace + "/" + p.Name + "/" + pr.Name, Issuer: pr.Issuer, Audiences: pr.Audiences,
			JWKSCluster: sp.cluster.Name,
			JWKSURI:     fmt.Sprintf("http://%s.%s:%d%s", ref.Name, p.Namespace, ref.Port, pr.JWKS.Path),
		}
		if pr.JWKS.CacheDuration != nil {
			d, err := pr.JWKS.CacheDuration.Parse()
			if err != nil || d <= 0 {
				report(field+".jwks.cacheDuration", fmt.Sprintf("%q must be a positive duration", *pr.JWKS.CacheDuration))
				ok = false
			}
			out.CacheDuration = ir.D(d)
		}
		if !strings.HasPrefix(pr.JWKS.Path, "/") {
			report(field+".jwks.path", fmt.Sprintf("%q must start with /", pr.JWKS.Path))
			ok = false
		}
		for _, c := range pr.ClaimToHeaders {
			out.ClaimToHeaders = append(out.ClaimToHeaders, ir.Header{Name: c.Claim, Value: c.Header})
		}
		req.Providers = append(req.Providers, out)
	}
	if !ok {
		return nil
	}
	return req
}

// requireJWT puts the requirement on the routes of the targeted Gateways
// and on the Gateway routes of the targeted routes.
func (t *translator) requireJWT(p *v1alpha1.SecurityPolicy, req *ir.JWTRequirement) {
	for _, ref := range p.Spec.TargetRefs {
		switch ref.Kind {
		case "Gateway":
			for _, l := range t.gws[svcKey{p.Namespace, string(ref.Name)}].ports {
				for _, vh := range l.VirtualHosts {
					for _, r := range vh.Routes {
						r.JWT = req
					}
				}
			}
		case "HTTPRoute", "GRPCRoute":
			for _, r := range t.gatewayRoutesOf(string(ref.Kind), p.Namespace, string(ref.Name)) {
				r.JWT = req
			}
		}
	}
}
