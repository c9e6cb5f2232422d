package xds

import (
	"math"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// Rate limits. One ir.RateLimitRule gives three things, built here from
// the same entries so that they agree: the route's descriptor actions
// (what Envoy sends), the rate-limit service's descriptor tree (what
// envoyproxy/ratelimit counts, a RateLimitConfig resource), and for local
// rules the local filter's descriptors.

// RuleKey is the first entry of every descriptor: the rule's ID.
const RuleKey = "rule"

const (
	rateLimitFilterName      = "envoy.filters.http.ratelimit"
	localRateLimitFilterName = "envoy.filters.http.local_ratelimit"
)

// rateLimitFilter sends the descriptors of each request's route to the
// rate-limit service, after ext_authz has set the identity headers.
// Requests over a limit get 429 (RESOURCE_EXHAUSTED for gRPC) with
// x-ratelimit-* headers and Retry-After; the listener's local reply gives
// them the API's error body.
func rateLimitFilter(g *ir.GlobalRateLimit) *hcmv3.HttpFilter {
	cfg := &ratelimitv3.RateLimit{
		Domain:      g.Domain,
		RequestType: "both",
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: g.Cluster},
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		FailureModeDeny:                g.FailClosed,
		EnableXRatelimitHeaders:        ratelimitv3.RateLimit_DRAFT_VERSION_03,
		EnableRetryAfterHeader:         true,
		RateLimitedAsResourceExhausted: true,
	}
	if g.Timeout != nil {
		cfg.Timeout = durationpb.New(g.Timeout.Std())
	}
	return &hcmv3.HttpFilter{Name: rateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// localRateLimitFilter counts the listener's local rules in this Envoy:
// a token bucket per rule, or per distinct value (client address, header)
// for Distinct selectors. Requests matching no rule are not limited (the
// default bucket is never empty).
func localRateLimitFilter(l *ir.LocalRateLimit) *hcmv3.HttpFilter {
	cfg := &localrlv3.LocalRateLimit{
		StatPrefix: "local_rate_limit",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     math.MaxUint32,
			TokensPerFill: wrapperspb.UInt32(math.MaxUint32),
			FillInterval:  durationpb.New(1e9),
		},
		FilterEnabled:                  fullPercent("local_rate_limit_enabled"),
		FilterEnforced:                 fullPercent("local_rate_limit_enforced"),
		EnableXRatelimitHeaders:        commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		EnableRetryAfterHeader:         true,
		RateLimitedAsResourceExhausted: true,
		// Each Distinct rule keeps at most this many values (an LRU).
		MaxDynamicDescriptors: wrapperspb.UInt32(10000),
	}
	for _, r := range l.Rules {
		cfg.RateLimits = append(cfg.RateLimits, rateLimitActions(r))
		d := &commonrlv3.LocalRateLimitDescriptor{
			TokenBucket: &typev3.TokenBucket{
				MaxTokens:     r.Requests,
				TokensPerFill: wrapperspb.UInt32(r.Requests),
				FillInterval:  durationpb.New(time.Duration(r.Unit.Seconds()) * time.Second),
			},
		}
		for _, e := range descriptorEntries(r) {
			d.Entries = append(d.Entries, &commonrlv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value})
		}
		cfg.Descriptors = append(cfg.Descriptors, d)
	}
	return &hcmv3.HttpFilter{Name: localRateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

func fullPercent(runtimeKey string) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		RuntimeKey:   runtimeKey,
	}
}

// descriptorEntries is the whole descriptor of a rule: its ID, then its
// entries.
func descriptorEntries(r ir.RateLimitRule) []ir.DescriptorEntry {
	return append([]ir.DescriptorEntry{{Key: RuleKey, Source: ir.SourceConstant, Value: r.ID}}, r.Entries...)
}

// rateLimitActions is how Envoy makes a rule's descriptor from a request.
// When an action has nothing to produce (a header absent, a header match
// failing) Envoy sends no descriptor for the rule, so it does not apply.
func rateLimitActions(r ir.RateLimitRule) *routev3.RateLimit {
	out := &routev3.RateLimit{}
	for _, e := range descriptorEntries(r) {
		var a *routev3.RateLimit_Action
		switch e.Source {
		case ir.SourceConstant:
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{
				DescriptorKey: e.Key, DescriptorValue: e.Value,
			}}}
		case ir.SourceHeader:
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
				HeaderName: e.Header, DescriptorKey: e.Key,
			}}}
		case ir.SourceHeaderMatch:
			m := *e.Match
			m.Invert = false
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorKey: e.Key, DescriptorValue: e.Value,
				ExpectMatch: wrapperspb.Bool(!e.Match.Invert),
				Headers:     []*routev3.HeaderMatcher{headerMatcher(m)},
			}}}
		case ir.SourceRemoteAddress:
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}}
		case ir.SourceMaskedAddress:
			mask := &routev3.RateLimit_Action_MaskedRemoteAddress{
				V4PrefixMaskLen: wrapperspb.UInt32(32),
				V6PrefixMaskLen: wrapperspb.UInt32(128),
			}
			if e.IPv6 {
				mask.V6PrefixMaskLen = wrapperspb.UInt32(e.PrefixLen)
			} else {
				mask.V4PrefixMaskLen = wrapperspb.UInt32(e.PrefixLen)
			}
			a = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_MaskedRemoteAddress_{MaskedRemoteAddress: mask}}
		}
		out.Actions = append(out.Actions, a)
	}
	return out
}

// rateLimitConfig is one domain's configuration of envoyproxy/ratelimit:
// the descriptors of its rules merged into one tree, each rule's limit at
// the end of its path.
func rateLimitConfig(d *ir.RateLimitDomain) *rlsconfv3.RateLimitConfig {
	out := &rlsconfv3.RateLimitConfig{Name: d.Domain, Domain: d.Domain}
	for _, r := range d.Rules {
		level := &out.Descriptors
		var node *rlsconfv3.RateLimitDescriptor
		for _, e := range descriptorEntries(r) {
			node = nil
			for _, n := range *level {
				if n.Key == e.Key && n.Value == e.Value {
					node = n
					break
				}
			}
			if node == nil {
				node = &rlsconfv3.RateLimitDescriptor{Key: e.Key, Value: e.Value}
				*level = append(*level, node)
			}
			level = &node.Descriptors
		}
		node.RateLimit = &rlsconfv3.RateLimitPolicy{Unit: rlsUnit(r.Unit), RequestsPerUnit: r.Requests, Name: r.ID}
		node.ShadowMode = r.Shadow
	}
	return out
}

func rlsUnit(u ir.RateLimitUnit) rlsconfv3.RateLimitUnit {
	switch u {
	case ir.UnitMinute:
		return rlsconfv3.RateLimitUnit_MINUTE
	case ir.UnitHour:
		return rlsconfv3.RateLimitUnit_HOUR
	case ir.UnitDay:
		return rlsconfv3.RateLimitUnit_DAY
	}
	return rlsconfv3.RateLimitUnit_SECOND
}
