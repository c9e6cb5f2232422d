package controlplane_test

import (
	"sort"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

const aiGateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai}
spec:
  gatewayClassName: bulkhead
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo}
spec:
  parentRefs: [{name: ai}]
  rules: [{backendRefs: [{name: echo, port: 9000}]}]
`

// Envoy nodes use delta ADS: a gateway node subscribing with wildcards gets
// its listener and clusters, and ACKs are tracked as for SotW.
func TestDeltaADSForEnvoyNodes(t *testing.T) {
	b := startBackend(t, "echo")
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000, b), "gateway.yaml": aiGateway})
	stream, err := m.adsClient().DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, listeners := deltaWildcard(t, stream, node("envoy-ai-1", workload.RoleGateway, "ai"))
	for _, l := range listeners {
		if l.GetAddress().GetSocketAddress().GetPortValue() != 8080 {
			t.Errorf("listener %s on %v; want port 8080", l.GetName(), l.GetAddress())
		}
	}
	if c := got[resourcev3.ClusterType]; len(c) != 1 || c[0] != "echo.default:9000" {
		t.Errorf("clusters %v; want [echo.default:9000]", c)
	}
	if l := got[resourcev3.ListenerType]; len(l) != 1 || l[0] != "default/ai/8080" {
		t.Errorf("listeners %v; want [default/ai/8080]", l)
	}
}

// A sidecar instance (inbound port in its metadata) gets its inbound
// listener and local app cluster, and the outbound listener.
func TestDeltaADSForSidecar(t *testing.T) {
	b := startBackend(t, "echo")
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000, b)})
	stream, err := m.adsClient().DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	md, err := structpb.NewStruct(map[string]any{"bulkhead": map[string]any{
		"role": "sidecar", "namespace": "default", "name": "echo",
		"inbound": map[string]any{"address": "127.0.0.1", "port": 9000, "appPort": 19000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := deltaWildcard(t, stream, &corev3.Node{Id: "echo-sidecar-1", Metadata: md})
	if l := strings.Join(got[resourcev3.ListenerType], ","); l != "inbound/127.0.0.1:9000->19000,outbound" {
		t.Errorf("listeners %s; want the inbound and the outbound listener", l)
	}
	if c := strings.Join(got[resourcev3.ClusterType], ","); c != "echo.default:9000,inbound|19000" {
		t.Errorf("clusters %s; want the mesh's and the local app's", c)
	}
}

// deltaWildcard subscribes a delta stream to every cluster and listener and
// returns their names and the listeners, ACKing each response.
func deltaWildcard(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, n *corev3.Node) (map[string][]string, []*listenerv3.Listener) {
	t.Helper()
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: n, TypeUrl: typ, ResourceNamesSubscribe: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][]string{}
	var listeners []*listenerv3.Listener
	for len(got) < 2 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResources() {
			got[resp.GetTypeUrl()] = append(got[resp.GetTypeUrl()], r.GetName())
			if resp.GetTypeUrl() == resourcev3.ListenerType {
				var l listenerv3.Listener
				if err := r.GetResource().UnmarshalTo(&l); err != nil {
					t.Fatal(err)
				}
				listeners = append(listeners, &l)
			}
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: n, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, names := range got {
		sort.Strings(names)
	}
	return got, listeners
}
