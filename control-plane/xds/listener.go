package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// clientListener is a proxyless client's listener: an api_listener whose
// HTTP connection manager takes its routes over RDS (route name = listener
// name) and ends with the router filter, which grpc-go requires.
func clientListener(l *ir.Listener) (*listenerv3.Listener, error) {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: l.Name,
		}},
		// The fault filter does nothing unless a route configures it
		// (typed_per_filter_config); the router filter comes last.
		HttpFilters: httpFilters(nil),
	}
	api, err := packAny(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:        l.Name,
		ApiListener: &listenerv3.ApiListener{ApiListener: api},
	}, nil
}
