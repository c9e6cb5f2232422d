// Package envoysim evaluates the parts of Envoy's route configuration that
// the tests need without an Envoy binary (it cannot be installed on the
// development machines): which route a request takes, which rate-limit
// descriptors that route's actions make of it, and what a local reply
// becomes, with Envoy's documented semantics. Tests then send those
// descriptors to the real rate-limit service, so the generated
// configuration is exercised end to end.
package envoysim

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Request is what the route matchers and the rate-limit actions read: the
// authority, method and path (with its query string), the request headers
// (names in any case; after ext_authz added its own) and the client's
// address (after X-Forwarded-For handling).
type Request struct {
	Authority string
	Method    string
	Path      string
	Headers   map[string]string
	Remote    netip.Addr
}

// header is a request header, the pseudo-headers (:authority, :method,
// :path) included, as Envoy's matchers see them.
func (r Request) header(name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":authority":
		return r.Authority, r.Authority != ""
	case ":method":
		return r.Method, r.Method != ""
	case ":path":
		return r.Path, r.Path != ""
	}
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Route returns the route a request takes, or nil (Envoy then answers 404).
// The virtual host is the one whose domains admit the authority most
// specifically: an exact domain, then the longest suffix wildcard
// ("*.example.com"), then the longest prefix wildcard ("example.*"), then
// "*"; domains are compared without regard to case, and a wildcard never
// matches the empty string. In that virtual host, the first route in order
// whose match admits the request wins (not the longest).
func Route(rc *routev3.RouteConfiguration, req Request) *routev3.Route {
	vh := VirtualHost(rc, req.Authority)
	if vh == nil {
		return nil
	}
	for _, r := range vh.GetRoutes() {
		if routeMatches(r.GetMatch(), req) {
			return r
		}
	}
	return nil
}

// VirtualHost selects the virtual host of an authority (see Route).
func VirtualHost(rc *routev3.RouteConfiguration, authority string) *routev3.VirtualHost {
	host := strings.ToLower(authority)
	var best *routev3.VirtualHost
	bestRank, bestLen := 4, -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			rank, n := -1, 0
			switch {
			case d == "*":
				rank = 3
			case d == host:
				rank, n = 0, len(d)
			case strings.HasPrefix(d, "*"):
				if suffix := d[1:]; len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
					rank, n = 1, len(suffix)
				}
			case strings.HasSuffix(d, "*"):
				if prefix := d[:len(d)-1]; len(host) > len(prefix) && strings.HasPrefix(host, prefix) {
					rank, n = 2, len(prefix)
				}
			}
			if rank < 0 {
				continue
			}
			if rank < bestRank || (rank == bestRank && n > bestLen) {
				best, bestRank, bestLen = vh, rank, n
			}
		}
	}
	return best
}

func routeMatches(m *routev3.RouteMatch, req Request) bool {
	path, query, _ := strings.Cut(req.Path, "?")
	switch {
	case m.GetPath() != "":
		if path != m.GetPath() {
			return false
		}
	case m.GetSafeRegex() != nil:
		if !fullMatch(m.GetSafeRegex().GetRegex(), path) {
			return false
		}
	default:
		if !strings.HasPrefix(path, m.GetPrefix()) {
			return false
		}
	}
	for _, h := range m.GetHeaders() {
		if !HeaderMatches(h, req) {
			return false
		}
	}
	params, _ := url.ParseQuery(query)
	for _, q := range m.GetQueryParameters() {
		if !queryMatches(q, params) {
			return false
		}
	}
	return true
}

// queryMatches applies a query parameter matcher: present_match, or a
// string match on the parameter's first value (an absent parameter never
// matches a string).
func queryMatches(q *routev3.QueryParameterMatcher, params url.Values) bool {
	vs, ok := params[q.GetName()]
	if q.GetStringMatch() == nil {
		return ok == q.GetPresentMatch()
	}
	if !ok || len(vs) == 0 {
		return false
	}
	return stringMatches(q.GetStringMatch(), vs[0])
}

// HeaderMatches applies one header matcher as Envoy's HeaderUtility does:
// a value match (string_match: exact, prefix, suffix, contains,
// safe_regex as a full match, ignore_case) on an absent header is false,
// inverted or not, unless treat_missing_header_as_empty makes the value
// ""; present_match compares presence, then invert_match inverts.
func HeaderMatches(h *routev3.HeaderMatcher, req Request) bool {
	v, ok := req.header(h.GetName())
	if !ok && h.GetTreatMissingHeaderAsEmpty() {
		v, ok = "", true
	}
	if h.GetStringMatch() == nil {
		// present_match (false by default: a matcher naming only a header
		// asks for its presence, as Envoy reads it).
		want := h.GetPresentMatch() || h.GetHeaderMatchSpecifier() == nil
		return (ok == want) != h.GetInvertMatch()
	}
	if !ok {
		return false
	}
	return stringMatches(h.GetStringMatch(), v) != h.GetInvertMatch()
}

func stringMatches(sm *matcherv3.StringMatcher, v string) bool {
	fold := func(s string) string {
		if sm.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch {
	case sm.GetSafeRegex() != nil:
		return fullMatch(sm.GetSafeRegex().GetRegex(), v)
	case sm.GetPrefix() != "":
		return strings.HasPrefix(fold(v), fold(sm.GetPrefix()))
	case sm.GetSuffix() != "":
		return strings.HasSuffix(fold(v), fold(sm.GetSuffix()))
	case sm.GetContains() != "":
		return strings.Contains(fold(v), fold(sm.GetContains()))
	default:
		return fold(v) == fold(sm.GetExact())
	}
}

func fullMatch(re, s string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	return err == nil && r.MatchString(s)
}

// Descriptors returns the descriptors a list of rate limits makes of a
// request. A limit whose action has nothing to produce (a header absent, a
// header match failing) makes no descriptor at all, as in Envoy.
func Descriptors(limits []*routev3.RateLimit, req Request) ([]*commonrlv3.RateLimitDescriptor, error) {
	var out []*commonrlv3.RateLimitDescriptor
	for _, rl := range limits {
		d := &commonrlv3.RateLimitDescriptor{}
		produced := true
		for _, a := range rl.GetActions() {
			e, ok, err := entry(a, req)
			if err != nil {
				return nil, err
			}
			if !ok {
				produced = false
				break
			}
			if e != nil {
				d.Entries = append(d.Entries, e)
			}
		}
		if produced && len(d.Entries) > 0 {
			out = append(out, d)
		}
	}
	return out, nil
}

// entry is one action's entry; ok false means the descriptor is not made;
// a nil entry with ok true is a skipped absent header (skip_if_absent).
func entry(a *routev3.RateLimit_Action, req Request) (*commonrlv3.RateLimitDescriptor_Entry, bool, error) {
	switch {
	case a.GetGenericKey() != nil:
		g := a.GetGenericKey()
		return &commonrlv3.RateLimitDescriptor_Entry{Key: or(g.GetDescriptorKey(), "generic_key"), Value: g.GetDescriptorValue()}, true, nil
	case a.GetRequestHeaders() != nil:
		h := a.GetRequestHeaders()
		v, ok := req.header(h.GetHeaderName())
		if !ok {
			return nil, h.GetSkipIfAbsent(), nil
		}
		return &commonrlv3.RateLimitDescriptor_Entry{Key: h.GetDescriptorKey(), Value: v}, true, nil
	case a.GetHeaderValueMatch() != nil:
		hv := a.GetHeaderValueMatch()
		all := true
		for _, h := range hv.GetHeaders() {
			all = all && HeaderMatches(h, req)
		}
		expect := hv.GetExpectMatch() == nil || hv.GetExpectMatch().GetValue()
		if all != expect {
			return nil, false, nil
		}
		return &commonrlv3.RateLimitDescriptor_Entry{Key: or(hv.GetDescriptorKey(), "header_match"), Value: hv.GetDescriptorValue()}, true, nil
	case a.GetRemoteAddress() != nil:
		if !req.Remote.IsValid() {
			return nil, false, nil
		}
		return &commonrlv3.RateLimitDescriptor_Entry{Key: "remote_address", Value: req.Remote.String()}, true, nil
	case a.GetMaskedRemoteAddress() != nil:
		m := a.GetMaskedRemoteAddress()
		if !req.Remote.IsValid() {
			return nil, false, nil
		}
		bits := 32
		if m.GetV4PrefixMaskLen() != nil {
			bits = int(m.GetV4PrefixMaskLen().GetValue())
		}
		if !req.Remote.Is4() {
			bits = 128
			if m.GetV6PrefixMaskLen() != nil {
				bits = int(m.GetV6PrefixMaskLen().GetValue())
			}
		}
		p, err := req.Remote.Prefix(bits)
		if err != nil {
			return nil, false, err
		}
		return &commonrlv3.RateLimitDescriptor_Entry{Key: "masked_remote_address", Value: p.String()}, true, nil
	}
	return nil, false, fmt.Errorf("envoysim: rate-limit action %v is not simulated", a)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Reply is a response Envoy sends itself (a local reply).
type Reply struct {
	Status  uint32
	Body    string
	Headers map[string]string
}

// LocalReply applies a connection manager's local reply configuration to
// a reply Envoy makes with that status, those response flags ("UH", "RL",
// "UAEX", …) and body: the first mapper whose filter matches rewrites the
// status, body and headers; the body is then formatted (the mapper's
// format, else the configuration's), with %LOCAL_REPLY_BODY%,
// %RESPONSE_CODE% and %RESPONSE_CODE_DETAILS% substituted.
func LocalReply(cfg *hcmv3.LocalReplyConfig, status uint32, flags []string, body, details string) (Reply, error) {
	out := Reply{Status: status, Body: body, Headers: map[string]string{}}
	format := cfg.GetBodyFormat()
	for _, m := range cfg.GetMappers() {
		ok, err := filterMatches(m.GetFilter(), status, flags)
		if err != nil {
			return Reply{}, err
		}
		if !ok {
			continue
		}
		if m.GetStatusCode() != nil {
			out.Status = m.GetStatusCode().GetValue()
		}
		if m.GetBody() != nil {
			out.Body = m.GetBody().GetInlineString()
		}
		for _, h := range m.GetHeadersToAdd() {
			out.Headers[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		if m.GetBodyFormatOverride() != nil {
			format = m.GetBodyFormatOverride()
		}
		break
	}
	if format == nil {
		return out, nil
	}
	subst := strings.NewReplacer("%LOCAL_REPLY_BODY%", out.Body, "%RESPONSE_CODE%", fmt.Sprint(out.Status), "%RESPONSE_CODE_DETAILS%", details)
	switch {
	case format.GetTextFormatSource() != nil:
		out.Body = subst.Replace(format.GetTextFormatSource().GetInlineString())
	case format.GetJsonFormat() != nil:
		b, err := json.Marshal(substituteJSON(format.GetJsonFormat().AsMap(), subst))
		if err != nil {
			return Reply{}, err
		}
		out.Body = string(b)
	}
	return out, nil
}

func substituteJSON(v any, r *strings.Replacer) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = substituteJSON(e, r)
		}
		return x
	case string:
		return r.Replace(x)
	}
	return v
}

func filterMatches(f *accesslogv3.AccessLogFilter, status uint32, flags []string) (bool, error) {
	switch {
	case f.GetResponseFlagFilter() != nil:
		want := f.GetResponseFlagFilter().GetFlags()
		for _, have := range flags {
			if len(want) == 0 || slices.Contains(want, have) {
				return true, nil
			}
		}
		return false, nil
	case f.GetStatusCodeFilter() != nil:
		c := f.GetStatusCodeFilter().GetComparison()
		v := c.GetValue().GetDefaultValue()
		switch c.GetOp() {
		case accesslogv3.ComparisonFilter_EQ:
			return status == v, nil
		case accesslogv3.ComparisonFilter_GE:
			return status >= v, nil
		case accesslogv3.ComparisonFilter_LE:
			return status <= v, nil
		}
		return false, fmt.Errorf("envoysim: comparison %v", c.GetOp())
	case f.GetAndFilter() != nil:
		for _, sub := range f.GetAndFilter().GetFilters() {
			ok, err := filterMatches(sub, status, flags)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case f.GetOrFilter() != nil:
		for _, sub := range f.GetOrFilter().GetFilters() {
			ok, err := filterMatches(sub, status, flags)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("envoysim: access log filter %v is not simulated", f)
}
