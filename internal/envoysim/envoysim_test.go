package envoysim_test

import (
	"net/netip"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
)

// Each case states one rule of Envoy's documentation
// (envoy.config.route.v3: VirtualHost.domains, RouteMatch, HeaderMatcher,
// QueryParameterMatcher, RateLimit.Action; the connection manager's
// LocalReplyConfig), on configuration written by hand rather than
// generated, so that the simulator is checked independently of the
// generator it serves.

func vh(name string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}}}
}

func TestVirtualHostSelection(t *testing.T) {
	// Listed in the order that first-match would get wrong.
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vh("any", "*"),
		vh("prefix", "api.*"),
		vh("short-suffix", "*.local"),
		vh("long-suffix", "*.bulkhead.local"),
		vh("exact", "api.bulkhead.local", "api.bulkhead.local:8080"),
	}}
	for host, want := range map[string]string{
		"api.bulkhead.local":      "exact",        // exact beats every wildcard
		"API.Bulkhead.Local":      "exact",        // domains are case-insensitive
		"api.bulkhead.local:8080": "exact",        // a port is part of the authority
		"chat.bulkhead.local":     "long-suffix",  // the longest suffix wildcard
		"chat.other.local":        "short-suffix", // suffix beats prefix
		"api.example.com":         "prefix",       // prefix wildcard before "*"
		"bulkhead.local":          "short-suffix", // *.bulkhead.local needs something before .bulkhead.local
		"example.com":             "any",
	} {
		got := envoysim.VirtualHost(rc, host)
		if got == nil || got.GetName() != want {
			t.Errorf("%s: virtual host %v; want %s", host, got.GetName(), want)
		}
	}
	// A wildcard never matches the empty string, and with no "*" an
	// unknown host has no virtual host (Envoy's 404).
	rc = &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh("suffix", "*.local"), vh("prefix", "api.*")}}
	for _, host := range []string{".local", "api.", "other"} {
		if got := envoysim.VirtualHost(rc, host); got != nil {
			t.Errorf("%q: virtual host %s; want none", host, got.GetName())
		}
	}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func exact(name, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}}
}

func TestRouteOrder(t *testing.T) {
	// The first route that matches wins, not the most specific one.
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Domains: []string{"*"}, Routes: []*routev3.Route{
		{Name: "v1", Match: prefix("/v1")},
		{Name: "chat", Match: prefix("/v1/chat")},
	}}}}
	if r := envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/v1/chat/completions"}); r.GetName() != "v1" {
		t.Fatalf("route %s; want v1, the first that matches", r.GetName())
	}
	// No route: nil (404). A prefix is case-sensitive, and the query
	// string is no part of the path.
	if r := envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/V1/chat"}); r != nil {
		t.Fatalf("route %s for /V1/chat; prefixes are case-sensitive", r.GetName())
	}
	rc.VirtualHosts[0].Routes = []*routev3.Route{{Name: "models", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/v1/models"}}}}
	if r := envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/v1/models?limit=1"}); r.GetName() != "models" {
		t.Fatal("an exact path must ignore the query string")
	}
	// A safe_regex path is a full match.
	rc.VirtualHosts[0].Routes = []*routev3.Route{{Name: "re", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/[^/]+/Generate"}}}}}
	if envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/pkg.S/Generate"}) == nil || envoysim.Route(rc, envoysim.Request{Authority: "x", Path: "/pkg.S/Generate/more"}) != nil {
		t.Fatal("safe_regex must match the whole path")
	}
}

func TestRouteHeadersAndQueryParameters(t *testing.T) {
	m := prefix("/")
	m.Headers = []*routev3.HeaderMatcher{exact(":method", "POST")}
	m.QueryParameters = []*routev3.QueryParameterMatcher{
		{Name: "stream", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "true"}}}},
		{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
	}
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Domains: []string{"*"}, Routes: []*routev3.Route{{Name: "r", Match: m}}}}}
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v1?stream=true&debug", true},
		{"GET", "/v1?stream=true&debug", false}, // :method is a header to match
		{"POST", "/v1?stream=false&debug", false},
		{"POST", "/v1?stream=true", false}, // debug must be present
		{"POST", "/v1", false},
	} {
		if got := envoysim.Route(rc, envoysim.Request{Authority: "x", Method: tc.method, Path: tc.path}) != nil; got != tc.want {
			t.Errorf("%s %s: matched %v; want %v", tc.method, tc.path, got, tc.want)
		}
	}
}

// Envoy's HeaderUtility: a value match on an absent header is false
// whether or not it is inverted, unless treat_missing_header_as_empty;
// present_match compares presence, then inverts.
func TestHeaderMatcherAbsence(t *testing.T) {
	with := envoysim.Request{Headers: map[string]string{"X-Client": "beta"}}
	other := envoysim.Request{Headers: map[string]string{"x-client": "gamma"}}
	without := envoysim.Request{}
	inv := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.InvertMatch = true; return h }
	empty := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.TreatMissingHeaderAsEmpty = true; return h }
	present := func(p bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: "x-client", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: p}}
	}
	for _, tc := range []struct {
		name                 string
		h                    *routev3.HeaderMatcher
		with, other, without bool
	}{
		{"exact", exact("x-client", "beta"), true, false, false},
		{"exact inverted", inv(exact("x-client", "beta")), false, true, false},
		{"exact inverted, missing as empty", empty(inv(exact("x-client", "beta"))), false, true, true},
		{"present", present(true), true, true, false},
		{"present inverted", inv(present(true)), false, false, true},
		{"absent (present_match false)", present(false), false, false, true},
		{"absent inverted", inv(present(false)), true, true, false},
		{"present, missing as empty", empty(present(true)), true, true, true},
		{"name only means present", &routev3.HeaderMatcher{Name: "x-client"}, true, true, false},
	} {
		for _, c := range []struct {
			req  envoysim.Request
			want bool
			what string
		}{{with, tc.with, "beta"}, {other, tc.other, "gamma"}, {without, tc.without, "absent"}} {
			if got := envoysim.HeaderMatches(tc.h, c.req); got != c.want {
				t.Errorf("%s, header %s: %v; want %v", tc.name, c.what, got, c.want)
			}
		}
	}
	// ignore_case applies to the value; header names are always
	// case-insensitive.
	h := &routev3.HeaderMatcher{Name: "X-CLIENT", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "BE"}, IgnoreCase: true}}}
	if !envoysim.HeaderMatches(h, with) {
		t.Error("ignore_case prefix")
	}
}

func TestDescriptors(t *testing.T) {
	req := envoysim.Request{Headers: map[string]string{"x-bulkhead-key-id": "k1"}, Remote: netip.MustParseAddr("192.0.2.77")}
	key := func(k, v string) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
	}
	hdr := func(name, k string, skip bool) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: name, DescriptorKey: k, SkipIfAbsent: skip}}}
	}
	match := func(expect bool) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
			DescriptorValue: "m", ExpectMatch: wrapperspb.Bool(expect), Headers: []*routev3.HeaderMatcher{exact("x-client", "beta")}}}}
	}
	masked := &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_MaskedRemoteAddress_{MaskedRemoteAddress: &routev3.RateLimit_Action_MaskedRemoteAddress{V4PrefixMaskLen: wrapperspb.UInt32(24)}}}
	limits := []*routev3.RateLimit{
		{Actions: []*routev3.RateLimit_Action{key("rule", "a"), hdr("X-Bulkhead-Key-Id", "key_id", false)}},
		{Actions: []*routev3.RateLimit_Action{key("rule", "b"), hdr("x-absent", "x", false)}}, // absent header: no descriptor at all
		{Actions: []*routev3.RateLimit_Action{key("rule", "c"), hdr("x-absent", "x", true)}},  // skip_if_absent: descriptor without it
		{Actions: []*routev3.RateLimit_Action{key("rule", "d"), match(true)}},                 // x-client absent: no match, no descriptor
		{Actions: []*routev3.RateLimit_Action{key("rule", "e"), match(false)}},                // expect_match false: appended
		{Actions: []*routev3.RateLimit_Action{key("", "f"), masked}},                          // generic_key's default key
	}
	ds, err := envoysim.Descriptors(limits, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		var es []string
		for _, e := range d.GetEntries() {
			es = append(es, e.GetKey()+"="+e.GetValue())
		}
		got = append(got, strings.Join(es, ","))
	}
	want := []string{"rule=a,key_id=k1", "rule=c", "rule=e,header_match=m", "generic_key=f,masked_remote_address=192.0.2.0/24"}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Fatalf("descriptors\n%s\nwant\n%s", strings.Join(got, " | "), strings.Join(want, " | "))
	}
	// An action the simulator does not know is an error, never a guess.
	if _, err := envoysim.Descriptors([]*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{}}}}, req); err == nil {
		t.Fatal("an unknown action was accepted")
	}
}

func TestLocalReply(t *testing.T) {
	flag := func(flags ...string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags}}}
	}
	code := func(c uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
			Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: c, RuntimeKey: "k"}}}}}
	}
	text := func(f string) *corev3.SubstitutionFormatString {
		return &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: f}}}}
	}
	jsonFormat, _ := structpb.NewStruct(map[string]any{"error": map[string]any{"message": "%LOCAL_REPLY_BODY%", "code": "%RESPONSE_CODE_DETAILS%"}})
	cfg := &hcmv3.LocalReplyConfig{
		BodyFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: jsonFormat}},
		Mappers: []*hcmv3.ResponseMapper{
			{Filter: flag("UH", "UF"), StatusCode: wrapperspb.UInt32(503), Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "busy"}},
				HeadersToAdd:       []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "Retry-After", Value: "2"}}},
				BodyFormatOverride: text("%RESPONSE_CODE%: %LOCAL_REPLY_BODY%")},
			{Filter: flag(), StatusCode: wrapperspb.UInt32(500)}, // any flag at all
			{Filter: code(404), Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "missing"}}},
			{Filter: code(404), StatusCode: wrapperspb.UInt32(410)}, // never reached: the first mapper that matches applies
		},
	}
	for _, tc := range []struct {
		status  uint32
		flags   []string
		body    string
		want    envoysim.Reply
		details string
	}{
		{503, []string{"UF"}, "upstream connect error", envoysim.Reply{Status: 503, Body: "503: busy", Headers: map[string]string{"retry-after": "2"}}, ""},
		{403, []string{"RL"}, "x", envoysim.Reply{Status: 500, Body: `{"error":{"code":"d","message":"x"}}`}, "d"},
		{404, nil, "no route", envoysim.Reply{Status: 404, Body: `{"error":{"code":"route_not_found","message":"missing"}}`}, "route_not_found"},
		{413, nil, "too big", envoysim.Reply{Status: 413, Body: `{"error":{"code":"","message":"too big"}}`}, ""},
	} {
		got, err := envoysim.LocalReply(cfg, tc.status, tc.flags, tc.body, tc.details)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.want.Status || got.Body != tc.want.Body || len(got.Headers) != len(tc.want.Headers) || got.Headers["retry-after"] != tc.want.Headers["retry-after"] {
			t.Errorf("%d %v: %+v; want %+v", tc.status, tc.flags, got, tc.want)
		}
	}
}
