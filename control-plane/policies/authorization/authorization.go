// Package authorization is SecurityPolicy.authorization: server-side RBAC
// on the caller's SPIFFE identity (from its mTLS certificate) and the gRPC
// method or HTTP path it calls. Deny rules are evaluated first, then Allow
// rules, then defaultAction.
//
// Attaches to a Service only. Proxyless gRPC servers enforce it with
// grpc-go's RBAC HTTP filter (gRFC A41), Envoy sidecars with theirs; a
// principal is only known on an mTLS connection, so principal rules need
// the policy's mtls mode to be STRICT.
package authorization

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Feature is SecurityPolicy.authorization.
var Feature = policies.Define[*v1alpha1.SecurityPolicy, v1alpha1.Authorization, *ir.RBAC]{
	Meta:    policies.Meta{Name: "authorization", Kind: policies.SecurityPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.SecurityPolicy) *v1alpha1.Authorization { return p.Spec.Authorization },
	Refusal: policies.ServersOnly("authorization"),
	Build: func(a *v1alpha1.Authorization, c policies.Context[*v1alpha1.SecurityPolicy]) (*ir.RBAC, bool) {
		rbac, err := Build(a)
		if err != nil {
			policies.ReportErr(c.Report, "spec.authorization", err)
			return nil, false
		}
		if m := c.Policy.Spec.MTLS; m == nil || m.Mode != v1alpha1.MTLSStrict {
			for _, r := range append(slices.Clone(rbac.Deny), rbac.Allow...) {
				if len(r.Principals) > 0 {
					c.Report("spec.authorization.rules", fmt.Sprintf("rule %q names principals, which are only known over mTLS: set spec.mtls.mode STRICT", r.Name))
					return nil, false
				}
			}
		}
		return rbac, true
	},
	Apply: func(rbac *ir.RBAC, t *policies.Target, _ policies.Env) { t.Inbound.RBAC = rbac },
}

var methodRE = regexp.MustCompile(`^/[A-Za-z_][A-Za-z0-9_.]*/([A-Za-z_][A-Za-z0-9_]*|\*)$`)

// Build validates an authorization policy and returns its IR.
func Build(spec *v1alpha1.Authorization) (*ir.RBAC, error) {
	out := &ir.RBAC{}
	var errs []error
	switch spec.DefaultAction {
	case v1alpha1.ActionAllow:
		out.DefaultAllow = true
	case v1alpha1.ActionDeny:
	default:
		errs = append(errs, fmt.Errorf("defaultAction: %q is not Allow or Deny", spec.DefaultAction))
	}
	seen := map[string]bool{}
	for i, r := range spec.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", field, r.Name))
		}
		seen[r.Name] = true
		if len(r.Principals)+len(r.Methods)+len(r.Paths) == 0 {
			errs = append(errs, fmt.Errorf("%s: a rule must set at least one of principals, methods, paths", field))
		}
		rule := ir.RBACRule{Name: r.Name}
		for j, p := range r.Principals {
			if err := principal(p); err != nil {
				errs = append(errs, fmt.Errorf("%s.principals[%d]: %w", field, j, err))
				continue
			}
			rule.Principals = append(rule.Principals, p)
		}
		for j, m := range r.Methods {
			if !methodRE.MatchString(m) {
				errs = append(errs, fmt.Errorf("%s.methods[%d]: %q is not /package.Service/Method or /package.Service/*", field, j, m))
				continue
			}
			rule.Methods = append(rule.Methods, m)
		}
		for j, p := range r.Paths {
			if !strings.HasPrefix(p, "/") {
				errs = append(errs, fmt.Errorf("%s.paths[%d]: %q must start with /", field, j, p))
				continue
			}
			rule.Paths = append(rule.Paths, p)
		}
		switch r.Action {
		case v1alpha1.ActionAllow:
			out.Allow = append(out.Allow, rule)
		case v1alpha1.ActionDeny:
			out.Deny = append(out.Deny, rule)
		default:
			errs = append(errs, fmt.Errorf("%s.action: %q is not Allow or Deny", field, r.Action))
		}
	}
	return out, errors.Join(errs...)
}

// principal checks a SPIFFE ID pattern: of the mesh's trust domain, with
// "/*" as the only wildcard, at the end.
func principal(p string) error {
	if !strings.HasPrefix(p, workload.TrustDomainPrefix) {
		if strings.HasPrefix(p, "spiffe://") {
			return fmt.Errorf("%q: trust domain is not the mesh's (%s): no such caller can authenticate", p, workload.TrustDomain)
		}
		return fmt.Errorf("%q is not a SPIFFE ID (spiffe://%s/...)", p, workload.TrustDomain)
	}
	body, _ := ir.WildcardPrefix(p)
	if strings.Contains(body, "*") {
		return fmt.Errorf("%q: the only wildcard is a trailing /*", p)
	}
	return nil
}
