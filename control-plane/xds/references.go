package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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

// routeClusters returns the clusters a route configuration sends to.
func routeClusters(res types.Resource) map[string]bool {
	rc, ok := res.(*routev3.RouteConfiguration)
	if !ok {
		return nil
	}
	out := map[string]bool{}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if c := a.GetCluster(); c != "" {
				out[c] = true
			}
			for _, wc := range a.GetWeightedClusters().GetClusters() {
				out[wc.GetName()] = true
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				out[m.GetCluster()] = true
			}
		}
	}
	return out
}
