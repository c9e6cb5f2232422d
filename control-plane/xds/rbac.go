package xds

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// rbacFilters turns a SecurityPolicy's authorization into RBAC HTTP filters
// that run before the router: first a DENY filter with the Deny rules,
// then, when the default is deny, an ALLOW filter with the Allow rules (an
// ALLOW filter without policies denies everything). With a default of
// allow, the Allow rules change nothing and are left out.
func rbacFilters(r *ir.RBAC) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if len(r.Deny) > 0 {
		out = append(out, rbacFilter("envoy.filters.http.rbac.deny", rbacv3.RBAC_DENY, r.Deny))
	}
	if !r.DefaultAllow {
		out = append(out, rbacFilter("envoy.filters.http.rbac.allow", rbacv3.RBAC_ALLOW, r.Allow))
	}
	return out
}

func rbacFilter(name string, action rbacv3.RBAC_Action, rules []ir.RBACRule) *hcmv3.HttpFilter {
	policies := map[string]*rbacv3.Policy{}
	for _, rule := range rules {
		policies[rule.Name] = &rbacv3.Policy{Permissions: permissions(rule), Principals: principals(rule)}
	}
	return &hcmv3.HttpFilter{
		Name: name,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbacfilterv3.RBAC{
			Rules: &rbacv3.RBAC{Action: action, Policies: policies},
		})},
	}
}

// permissions: any of the rule's methods and paths (any call when none).
func permissions(r ir.RBACRule) []*rbacv3.Permission {
	var any []*rbacv3.Permission
	for _, m := range r.Methods {
		any = append(any, pathPermission(m))
	}
	for _, p := range r.Paths {
		any = append(any, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}},
		}}})
	}
	if len(any) == 0 {
		return []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}
	}
	return []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: any}}}}
}

func pathPermission(method string) *rbacv3.Permission {
	m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: method}}
	if prefix, ok := ir.WildcardPrefix(method); ok {
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: m},
	}}}
}

// principals: any of the rule's SPIFFE IDs, from the peer's certificate
// (any caller when none).
func principals(r ir.RBACRule) []*rbacv3.Principal {
	if len(r.Principals) == 0 {
		return []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}
	}
	var any []*rbacv3.Principal
	for _, p := range r.Principals {
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: p}}
		if prefix, ok := ir.WildcardPrefix(p); ok {
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
		}
		any = append(any, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m},
		}})
	}
	return []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: any}}}}
}

// ipAccessFilters refuse clients by address (403): a DENY filter with the
// deny list, then an ALLOW filter with the allow list. The address is the
// downstream remote address, which the connection manager takes from
// X-Forwarded-For when the listener trusts hops in front of it
// (xff_num_trusted_hops), else from the connection.
func ipAccessFilters(a *ir.IPAccess) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	filter := func(name string, action rbacv3.RBAC_Action, cidrs []string) *hcmv3.HttpFilter {
		var ids []*rbacv3.Principal
		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				continue // translate validated every entry
			}
			p = p.Masked()
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: &corev3.CidrRange{
				AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits())),
			}}})
		}
		policy := &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}},
		}
		return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbacfilterv3.RBAC{
			Rules: &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{a.Source: policy}},
		})}}
	}
	if len(a.Deny) > 0 {
		out = append(out, filter("ipaccess.deny", rbacv3.RBAC_DENY, a.Deny))
	}
	if len(a.Allow) > 0 {
		out = append(out, filter("ipaccess.allow", rbacv3.RBAC_ALLOW, a.Allow))
	}
	return out
}
