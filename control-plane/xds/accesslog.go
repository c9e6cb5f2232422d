package xds

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// accessLog is the Envoy listeners' access log: one JSON object per
// request on stdout, with the request id that every service logs too, so
// one id follows a request from the edge to the engine. No header that
// carries a credential (Authorization, the identity token) is logged.
func accessLog() []*accesslogv3.AccessLog {
	format, _ := structpb.NewStruct(map[string]any{
		"time":          "%START_TIME%",
		"request_id":    "%REQ(X-REQUEST-ID)%",
		"method":        "%REQ(:METHOD)%",
		"path":          "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"authority":     "%REQ(:AUTHORITY)%",
		"status":        "%RESPONSE_CODE%",
		"grpc_status":   "%GRPC_STATUS(CAMEL_STRING)%",
		"flags":         "%RESPONSE_FLAGS%",
		"details":       "%RESPONSE_CODE_DETAILS%",
		"duration_ms":   "%DURATION%",
		"bytes_in":      "%BYTES_RECEIVED%",
		"bytes_out":     "%BYTES_SENT%",
		"upstream":      "%UPSTREAM_HOST%",
		"cluster":       "%UPSTREAM_CLUSTER%",
		"client":        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
		"user_agent":    "%REQ(USER-AGENT)%",
		"key_id":        "%REQ(X-BULKHEAD-KEY-ID)%",
		"authz_outcome": "%DYNAMIC_METADATA(envoy.filters.http.ext_authz)%",
	})
	return []*accesslogv3.AccessLog{{
		Name: "envoy.access_loggers.stdout",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: format},
			}},
		})},
	}}
}
