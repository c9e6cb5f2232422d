package ir

import (
	"encoding/json"
	"sort"
)

// Rate limits (RateLimitPolicy). A rule is one descriptor: an ordered list
// of entries that the proxy builds from each request and that the limiter
// (envoyproxy/ratelimit for global rules, Envoy itself for local ones)
// matches against the same list with the limit at its end. Both sides are
// generated from the one RateLimitRule, so they cannot disagree.

// RateLimitUnit is the window of a limit.
type RateLimitUnit string

const (
	UnitSecond RateLimitUnit = "second"
	UnitMinute RateLimitUnit = "minute"
	UnitHour   RateLimitUnit = "hour"
	UnitDay    RateLimitUnit = "day"
)

// Seconds is the length of the window.
func (u RateLimitUnit) Seconds() uint32 {
	switch u {
	case UnitMinute:
		return 60
	case UnitHour:
		return 3600
	case UnitDay:
		return 86400
	}
	return 1
}

// RateLimitRule limits the requests whose descriptor it matches.
type RateLimitRule struct {
	// ID is "NAMESPACE/POLICY/RULE", the first entry of the descriptor: each
	// rule has its own counters.
	ID string `json:"id"`
	// Entries after the rule's own, in order.
	Entries  []DescriptorEntry `json:"entries,omitempty"`
	Requests uint32            `json:"requests"`
	Unit     RateLimitUnit     `json:"unit"`
	// Shadow rules count and report but never reject.
	Shadow bool `json:"shadow,omitempty"`
}

// DescriptorSource says where the proxy takes an entry's value from.
type DescriptorSource string

const (
	// SourceConstant: the entry is Key=Value for every request (the route
	// a rule is scoped to).
	SourceConstant DescriptorSource = "constant"
	// SourceHeader: the value of request header Header; a request without
	// the header produces no descriptor, so the rule does not apply.
	SourceHeader DescriptorSource = "header"
	// SourceHeaderMatch: Value ("match") when Match matches the request.
	SourceHeaderMatch DescriptorSource = "headerMatch"
	// SourceRemoteAddress: the client's address (after X-Forwarded-For
	// handling).
	SourceRemoteAddress DescriptorSource = "remoteAddress"
	// SourceMaskedAddress: the client's address masked to PrefixLen bits;
	// Value is the CIDR, so only clients in it produce the entry.
	SourceMaskedAddress DescriptorSource = "maskedAddress"
)

// DescriptorEntry is one key of a descriptor and how its value is made.
type DescriptorEntry struct {
	Key    string           `json:"key"`
	Source DescriptorSource `json:"source"`
	// Value the limiter expects; "" means any value, each with its own
	// counter (a Distinct selector).
	Value     string       `json:"value,omitempty"`
	Header    string       `json:"header,omitempty"`
	Match     *HeaderMatch `json:"match,omitempty"`
	PrefixLen uint32       `json:"prefixLen,omitempty"`
	IPv6      bool         `json:"ipv6,omitempty"`
}

// GlobalRateLimit is the global rate-limit filter of an Envoy listener.
type GlobalRateLimit struct {
	// Domain of the listener's rules in the rate-limit service.
	Domain string `json:"domain"`
	// Cluster of the rate-limit service.
	Cluster string    `json:"cluster"`
	Timeout *Duration `json:"timeout,omitempty"`
	// FailClosed rejects requests when the service cannot answer (default:
	// let them through; budgets are enforced by users regardless).
	FailClosed bool `json:"failClosed,omitempty"`
}

// LocalRateLimit is what each Envoy of a listener counts on its own.
type LocalRateLimit struct {
	Rules []RateLimitRule `json:"rules"`
}

// RateLimitDomain is the configuration of one domain of the rate-limit
// service (one Gateway listener).
type RateLimitDomain struct {
	Domain string          `json:"domain"`
	Rules  []RateLimitRule `json:"rules"`
}

// GlobalRules lists the distinct global rules of the listener's routes, in
// the order they first appear.
func (l *Listener) GlobalRules() []RateLimitRule {
	var out []RateLimitRule
	seen := map[string]bool{}
	for _, vh := range l.VirtualHosts {
		for _, r := range vh.Routes {
			for _, rule := range r.RateLimits {
				b, _ := json.Marshal(rule)
				if !seen[string(b)] {
					seen[string(b)] = true
					out = append(out, rule)
				}
			}
		}
	}
	return out
}

// RateLimitDomains is the rate-limit service's configuration for a set of
// Envoy listeners: one domain per listener with a global rate-limit filter,
// holding the listener's global rules, sorted by domain.
func RateLimitDomains(listeners []*Listener) []*RateLimitDomain {
	var out []*RateLimitDomain
	for _, l := range listeners {
		if l.RateLimit == nil {
			continue
		}
		out = append(out, &RateLimitDomain{Domain: l.RateLimit.Domain, Rules: l.GlobalRules()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}
