package xds

import (
	"encoding/json"
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// noUpstreamFlags are Envoy's response flags of a request that no upstream
// could take: no healthy host (UH), circuit-breaker overflow (UO), upstream
// connection failure (UF), upstream request timeout (UT), retry limit
// exceeded (URX), and the retries' own overflow (UO covers it).
var noUpstreamFlags = []string{"UH", "UO", "UF", "UT", "URX"}

// localReplies gives every reply Envoy makes itself the API's error shape,
// {"error":{"message","type","param","code"}}, never an HTML or empty body.
// The mappers are tried in order, the first that matches applies:
//
//	no upstream left (UH, UO, UF, UT, URX) → the degraded response (status, body, Retry-After)
//	rate limited (RL)                      → 429 rate_limit_exceeded (the filters add Retry-After, x-ratelimit-*)
//	ext_authz could not answer (UAEX, 503) → 503 overloaded, Retry-After 1
//	ext_authz denied (UAEX)                → auth's own body and status, as they are
//	401 (jwt_authn)                        → invalid_token
//	413                                    → request_too_large
//	403                                    → permission_denied (ipAccess, RBAC)
//	404                                    → not_found (no route)
//	anything else                          → the status with Envoy's details as the code
func localReplies(d *ir.DegradedResponse) *hcmv3.LocalReplyConfig {
	cfg := &hcmv3.LocalReplyConfig{
		// The fallback shape; the mappers below override it.
		BodyFormat: &corev3.SubstitutionFormatString{
			Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{
				"error": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					"message": structpb.NewStringValue("%LOCAL_REPLY_BODY%"),
					"type":    structpb.NewStringValue("server_error"),
					"param":   structpb.NewNullValue(),
					"code":    structpb.NewStringValue("%RESPONSE_CODE_DETAILS%"),
				}}),
			}}},
		},
	}
	if d != nil {
		cfg.Mappers = append(cfg.Mappers, replyMapper(flagFilter(noUpstreamFlags...), d.StatusCode, d.Body, d.RetryAfterSeconds))
	}
	cfg.Mappers = append(cfg.Mappers,
		replyMapper(flagFilter("RL"), 429, apiError("Rate limit reached; retry after the number of seconds in Retry-After", "rate_limit_error", "rate_limit_exceeded"), 0),
		replyMapper(&accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
			Filters: []*accesslogv3.AccessLogFilter{flagFilter("UAEX"), statusFilter(503)},
		}}}, 503, apiError("Authentication is unavailable, please retry shortly", "server_error", "overloaded"), 1),
		// auth's denial already has the API's shape: keep it.
		&hcmv3.ResponseMapper{
			Filter:             flagFilter("UAEX"),
			BodyFormatOverride: jsonBody("%LOCAL_REPLY_BODY%"),
		},
		replyMapper(statusFilter(401), 401, apiError("Authentication failed: the bearer token is missing, expired or invalid", "authentication_error", "invalid_token"), 0),
		replyMapper(statusFilter(413), 413, apiError("Request body too large", "invalid_request_error", "request_too_large"), 0),
		replyMapper(statusFilter(403), 403, apiError("Access denied", "permission_error", "permission_denied"), 0),
		replyMapper(statusFilter(404), 404, apiError("No such endpoint", "invalid_request_error", "not_found"), 0),
	)
	return cfg
}

// replyMapper answers with status, a JSON body and, when set, Retry-After.
func replyMapper(f *accesslogv3.AccessLogFilter, status uint32, body string, retryAfter uint32) *hcmv3.ResponseMapper {
	m := &hcmv3.ResponseMapper{
		Filter:             f,
		StatusCode:         wrapperspb.UInt32(status),
		Body:               &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
		BodyFormatOverride: jsonBody("%LOCAL_REPLY_BODY%"),
	}
	if retryAfter > 0 {
		m.HeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "retry-after", Value: strconv.Itoa(int(retryAfter))},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	}
	return m
}

func jsonBody(format string) *corev3.SubstitutionFormatString {
	return &corev3.SubstitutionFormatString{
		Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: format}}},
		ContentType: "application/json",
	}
}

func flagFilter(flags ...string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags},
	}}
}

func statusFilter(code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "local_reply." + strconv.Itoa(int(code))}},
	}}}
}

// apiError is the API's error body (services/apierr writes the same shape).
func apiError(message, typ, code string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code}})
	return string(b)
}
