package xds

import (
	"strconv"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// noUpstreamFlags are Envoy's response flags of a request that no upstream
// could take: no healthy host (UH), circuit-breaker overflow (UO), upstream
// connection failure (UF), upstream request timeout (UT), retry limit
// exceeded (URX), and the retries' own overflow (UO covers it).
var noUpstreamFlags = []string{"UH", "UO", "UF", "UT", "URX"}

// localReply makes Envoy answer those requests with the degraded response:
// its status, its JSON body, Retry-After.
func localReply(d *ir.DegradedResponse) *hcmv3.LocalReplyConfig {
	m := &hcmv3.ResponseMapper{
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
			ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: noUpstreamFlags},
		}},
		StatusCode: wrapperspb.UInt32(d.StatusCode),
		Body:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: d.Body}},
		BodyFormatOverride: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%LOCAL_REPLY_BODY%"}}},
			ContentType: "application/json",
		},
	}
	if d.RetryAfterSeconds > 0 {
		m.HeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "retry-after", Value: strconv.Itoa(int(d.RetryAfterSeconds))},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	}
	return &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{m}}
}
