// Package ipaccess is SecurityPolicy.ipAccess: a Gateway's Envoy allows or
// denies clients by address (RBAC on the connection's client address,
// after X-Forwarded-For handling). Deny wins; when allow is set, addresses
// outside it are denied. xffNumTrustedHops says how many proxies in front
// append to X-Forwarded-For (the gateways trust the router's one hop).
//
// Attaches to a Gateway only (every listener of it).
package ipaccess

import (
	"fmt"
	"net/netip"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is SecurityPolicy.ipAccess.
var Feature = policies.Define[*v1alpha1.SecurityPolicy, v1alpha1.IPAccess, *ir.IPAccess]{
	Meta:    policies.Meta{Name: "ipAccess", Kind: policies.SecurityPolicy, Attaches: policies.Gateway},
	Field:   func(p *v1alpha1.SecurityPolicy) *v1alpha1.IPAccess { return p.Spec.IPAccess },
	Refusal: policies.GatewayOnly("ipAccess", "enforced"),
	Build: func(a *v1alpha1.IPAccess, c policies.Context[*v1alpha1.SecurityPolicy]) (*ir.IPAccess, bool) {
		ok := true
		check := func(field string, list []string) []string {
			var out []string
			for i, cidr := range list {
				pfx, err := netip.ParsePrefix(cidr)
				if err != nil {
					c.Report(fmt.Sprintf("spec.ipAccess.%s[%d]", field, i), fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", cidr))
					ok = false
					continue
				}
				out = append(out, pfx.Masked().String())
			}
			return out
		}
		out := &ir.IPAccess{Allow: check("allow", a.Allow), Deny: check("deny", a.Deny), Source: c.Policy.Namespace + "/" + c.Policy.Name}
		if a.XFFNumTrustedHops < 0 || a.XFFNumTrustedHops > 8 {
			c.Report("spec.ipAccess.xffNumTrustedHops", fmt.Sprintf("%d is not between 0 and 8", a.XFFNumTrustedHops))
			ok = false
		}
		out.XFFNumTrustedHops = uint32(max(a.XFFNumTrustedHops, 0))
		return out, ok
	},
	Apply: func(a *ir.IPAccess, t *policies.Target, _ policies.Env) {
		for _, l := range t.Listeners {
			l.IPAccess = a
		}
	},
}
