package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// apiListenerRoutes returns the RDS names an api_listener's connection
// manager asks for.
func apiListenerRoutes(res types.Resource) map[string]bool {
	l, ok := res.(*listenerv3.Listener)
	if !ok || l.GetApiListener() == nil {
		return nil
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		return nil
	}
	if rds := hcm.GetRds(); rds != nil {
		return map[string]bool{rds.GetRouteConfigName(): true}
	}
	return nil
}
