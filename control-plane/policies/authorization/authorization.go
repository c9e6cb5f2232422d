// Package authorization applies SecurityPolicy.authorization: server-side
// RBAC on the caller's SPIFFE identity (from its mTLS certificate) and the
// gRPC method or HTTP path it calls. Deny rules are evaluated first, then
// Allow rules, then defaultAction.
//
// Proxyless gRPC servers enforce it with grpc-go's RBAC HTTP filter (gRFC
// A41); a principal is only known on an mTLS connection, so principal rules
// need the Service's mTLS mode to be STRICT (translate checks it).
package authorization

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

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
	if !strings.HasPrefix(p, ir.TrustDomainPrefix) {
		if strings.HasPrefix(p, "spiffe://") {
			return fmt.Errorf("%q: trust domain is not the mesh's (%s): no such caller can authenticate", p, ir.TrustDomain)
		}
		return fmt.Errorf("%q is not a SPIFFE ID (spiffe://%s/...)", p, ir.TrustDomain)
	}
	body, _ := ir.WildcardPrefix(p)
	if strings.Contains(body, "*") {
		return fmt.Errorf("%q: the only wildcard is a trailing /*", p)
	}
	return nil
}
