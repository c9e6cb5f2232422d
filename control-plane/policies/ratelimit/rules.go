package ratelimit

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// buildRules turns a policy's rules into IR rules (descriptors).
func buildRules(id, field string, rules []v1alpha1.RateLimitRule, local bool, report policies.Report) []ir.RateLimitRule {
	var out []ir.RateLimitRule
	names := map[string]bool{}
	for i, r := range rules {
		f := fmt.Sprintf("%s.rules[%d]", field, i)
		if names[r.Name] {
			report(f+".name", fmt.Sprintf("%q is used by another rule of the policy", r.Name))
			continue
		}
		names[r.Name] = true
		rule := ir.RateLimitRule{ID: id + r.Name, Shadow: r.Shadow}
		ok := true
		if local && r.Shadow {
			report(f+".shadow", "shadow mode is for global rules (the rate-limit service reports without rejecting); a local rule always enforces")
			ok = false
		}
		if r.Limit.Requests < 1 || r.Limit.Requests > math.MaxUint32 {
			report(f+".limit.requests", fmt.Sprintf("%d is not between 1 and %d", r.Limit.Requests, uint32(math.MaxUint32)))
			ok = false
		}
		rule.Requests = uint32(min(max(r.Limit.Requests, 0), math.MaxUint32))
		switch r.Limit.Unit {
		case "Second":
			rule.Unit = ir.UnitSecond
		case "Minute":
			rule.Unit = ir.UnitMinute
		case "Hour":
			rule.Unit = ir.UnitHour
		case "Day":
			rule.Unit = ir.UnitDay
		default:
			report(f+".limit.unit", fmt.Sprintf("%q is not one of Second, Minute, Hour, Day", r.Limit.Unit))
			ok = false
		}
		keys := map[string]bool{}
		for j, s := range r.ClientSelectors {
			sf := fmt.Sprintf("%s.clientSelectors[%d]", f, j)
			entries, msg := selectorEntries(s)
			if msg != "" {
				report(sf, msg)
				ok = false
				continue
			}
			for _, e := range entries {
				if keys[e.Key] {
					report(sf, fmt.Sprintf("a rule can select on %s only once", e.Key))
					ok = false
				}
				keys[e.Key] = true
			}
			rule.Entries = append(rule.Entries, entries...)
		}
		if ok {
			out = append(out, rule)
		}
	}
	return out
}

// selectorEntries is the descriptor entries of one selector, or why it is
// invalid.
func selectorEntries(s v1alpha1.RateLimitSelector) ([]ir.DescriptorEntry, string) {
	set := 0
	for _, b := range []bool{s.Header != nil, s.Identity != nil, s.SourceCIDR != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, "set exactly one of header, identity, sourceCIDR"
	}
	switch {
	case s.Header != nil:
		h := s.Header
		// No dot in a key: the rate-limit service's statistics split on dots.
		return headerEntry("header_"+strings.ToLower(h.Name), strings.ToLower(h.Name), h.Type, h.Value, h.Invert, "header")
	case s.Identity != nil:
		name, ok := IdentityHeaders[s.Identity.Field]
		if !ok {
			return nil, fmt.Sprintf("identity.field: %q is not one of KeyID, AccountID, Tier", s.Identity.Field)
		}
		return headerEntry(identityKeys[s.Identity.Field], name, s.Identity.Type, s.Identity.Value, false, "identity")
	}
	c := s.SourceCIDR
	prefix, err := netip.ParsePrefix(c.CIDR)
	if err != nil {
		return nil, fmt.Sprintf("sourceCIDR.cidr: %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", c.CIDR)
	}
	prefix = prefix.Masked()
	masked := ir.DescriptorEntry{Key: "masked_remote_address", Source: ir.SourceMaskedAddress, Value: prefix.String(),
		PrefixLen: uint32(prefix.Bits()), IPv6: !prefix.Addr().Is4()}
	switch c.Type {
	case v1alpha1.MatchExact:
		return []ir.DescriptorEntry{masked}, ""
	case v1alpha1.MatchDistinct:
		return []ir.DescriptorEntry{masked, {Key: "remote_address", Source: ir.SourceRemoteAddress}}, ""
	}
	return nil, fmt.Sprintf("sourceCIDR.type: %q; a range is Exact (one counter) or Distinct (one counter per address)", c.Type)
}

func headerEntry(key, header string, typ v1alpha1.MatchType, value *string, invert bool, field string) ([]ir.DescriptorEntry, string) {
	switch typ {
	case v1alpha1.MatchDistinct:
		if value != nil {
			return nil, field + ".value: not allowed with type Distinct (one counter per value)"
		}
		if invert {
			return nil, field + ".invert: not allowed with type Distinct"
		}
		return []ir.DescriptorEntry{{Key: key, Source: ir.SourceHeader, Header: header}}, ""
	case v1alpha1.MatchExact, v1alpha1.MatchRegularExpression:
		if value == nil {
			return nil, field + ".value: required with type " + string(typ)
		}
		m := &ir.HeaderMatch{Name: header, Invert: invert}
		v := *value
		if typ == v1alpha1.MatchExact {
			m.Exact = v
		} else {
			if _, err := regexp.Compile(v); err != nil {
				return nil, fmt.Sprintf("%s.value: %q is not a regular expression: %v", field, v, err)
			}
			m.Regex = v
			v = "match"
		}
		if invert {
			v = "not-" + v
		}
		return []ir.DescriptorEntry{{Key: key, Source: ir.SourceHeaderMatch, Value: v, Match: m}}, ""
	}
	return nil, fmt.Sprintf("%s.type: %q is not one of Exact, RegularExpression, Distinct", field, typ)
}
