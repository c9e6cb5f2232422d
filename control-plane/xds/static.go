package xds

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// StaticBootstrap renders a proxy's listeners and clusters as an Envoy
// bootstrap (static resources, with an ADS source for the routes and
// endpoints they name), for `envoy --mode validate`: Envoy itself checks
// the configuration the control plane would serve (the CI workflow in
// .github/workflows does it where Docker is).
func (r Resources) StaticBootstrap(nodeID, xdsHost string, xdsPort uint32) ([]byte, error) {
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: nodeID, Cluster: "bulkhead"},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{{
				Name:                 "xds_cluster",
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				LoadAssignment: loadAssignment(&ir.Cluster{Name: "xds_cluster", Localities: []*ir.LocalityEndpoints{{Weight: 1, Endpoints: []*ir.Endpoint{
					{Address: xdsHost, Port: xdsPort, Health: ir.HealthHealthy, Weight: 1},
				}}}}),
				TypedExtensionProtocolOptions: http2Options(),
			}},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds_cluster"},
				}}},
			},
		},
	}
	for _, l := range r[resourcev3.ListenerType] {
		b.StaticResources.Listeners = append(b.StaticResources.Listeners, l.(*listenerv3.Listener))
	}
	for _, c := range r[resourcev3.ClusterType] {
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, c.(*clusterv3.Cluster))
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	j, err := protojson.Marshal(b)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}
