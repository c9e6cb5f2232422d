package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// defaultConnectTimeout bounds establishing a connection to an endpoint.
const defaultConnectTimeout = 5e9 // 5s, in nanoseconds

// cluster builds an EDS cluster whose endpoints come over ADS under the
// cluster's own name.
func cluster(c *ir.Cluster, f flavour) *clusterv3.Cluster {
	out := &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsSource(),
			ServiceName: c.Name,
		},
		ConnectTimeout: durationpb.New(defaultConnectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	if c.Static {
		// The endpoints come inline: no EDS for this one.
		out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		out.EdsClusterConfig = nil
		out.LoadAssignment = loadAssignment(c)
	}
	if c.ConnectTimeout != nil {
		out.ConnectTimeout = durationpb.New(c.ConnectTimeout.Std())
	}
	loadBalancer(out, c.LB)
	if c.CircuitBreaker != nil {
		out.CircuitBreakers = circuitBreakers(c.CircuitBreaker)
	}
	if c.OutlierDetection != nil {
		out.OutlierDetection = outlierDetection(c.OutlierDetection)
	}
	if c.TLS != nil {
		if f == flavourGRPC {
			out.TransportSocket = upstreamTLS(c.TLS)
		} else {
			out.TransportSocket = envoyUpstreamTLS(c.TLS)
		}
	}
	if f == flavourEnvoy && c.HealthCheck != nil {
		out.HealthChecks = healthChecks(c.HealthCheck)
	}
	if f == flavourEnvoy && c.HTTP2 {
		// gRPC backends: HTTP/2 in clear text.
		out.TypedExtensionProtocolOptions = http2Options()
	}
	return out
}

// http2Options makes Envoy speak HTTP/2 to a cluster.
func http2Options() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
}
