package envoy_test

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/envoy"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Every template renders to a bootstrap Envoy's own schema accepts (strict
// protobuf JSON, unknown fields refused, then ValidateAll), whose node
// metadata the control plane reads back as the intended identity.
func TestBootstrapsAreValidEnvoyConfig(t *testing.T) {
	for _, role := range []string{"router", "gateway", "sidecar"} {
		t.Run(role, func(t *testing.T) {
			b := envoy.Bootstrap{Role: role, Name: "ai", Namespace: "bulkhead", NodeID: role + "-1", XDSAddress: "127.0.0.1:18000", AdminPort: 19000,
				XDSTLS: &envoy.TLSFiles{Dir: "/certs", Certificate: "/certs/cert.pem", PrivateKey: "/certs/key.pem", CA: "/certs/ca.pem"}}
			want := workload.ProxyID{Role: workload.Role(role), Namespace: "bulkhead", Name: "ai"}
			if role == "sidecar" {
				b.InboundPort, b.AppPort = 9000, 19000
				want.Inbound = "0.0.0.0:9000=19000"
			}
			y, err := envoy.Render(b)
			if err != nil {
				t.Fatal(err)
			}
			j, err := yaml.YAMLToJSON(y)
			if err != nil {
				t.Fatalf("not YAML: %v\n%s", err, y)
			}
			var parsed bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(j, &parsed); err != nil {
				t.Fatalf("not an Envoy bootstrap: %v\n%s", err, y)
			}
			if err := parsed.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			id, err := server.ProxyOf(parsed.GetNode())
			if err != nil {
				t.Fatal(err)
			}
			if id != want {
				t.Fatalf("the control plane reads the node as %s; want %s", id, want)
			}
			if parsed.GetDynamicResources().GetAdsConfig().GetApiType().String() != "DELTA_GRPC" {
				t.Error("Envoy nodes use delta ADS")
			}
			// The xDS connection is mTLS with the node's certificate, and
			// accepts only the control plane's identity.
			ts := parsed.GetStaticResources().GetClusters()[0].GetTransportSocket()
			tlsCtx := &tlsv3.UpstreamTlsContext{}
			if err := ts.GetTypedConfig().UnmarshalTo(tlsCtx); err != nil {
				t.Fatalf("xds cluster transport socket: %v", err)
			}
			common := tlsCtx.GetCommonTlsContext()
			if common.GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/certs/cert.pem" ||
				common.GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != envoy.ControlPlaneID {
				t.Errorf("xds TLS: %v", common)
			}
		})
	}
}

// In a cluster the control plane is a Service name, resolved by DNS, and
// its certificate names its own ServiceAccount.
func TestBootstrapInACluster(t *testing.T) {
	const cpID = "spiffe://bulkhead.local/ns/bulkhead-system/sa/bulkhead-control-plane"
	y, err := envoy.Render(envoy.Bootstrap{Role: "gateway", Name: "ai", Namespace: "bulkhead", NodeID: "gateway-ai", AdminPort: 19000,
		XDSAddress: "control-plane.bulkhead-system.svc:18000", ControlPlaneID: cpID,
		XDSTLS: &envoy.TLSFiles{Dir: "/certs", Certificate: "/certs/cert.pem", PrivateKey: "/certs/key.pem", CA: "/certs/ca.pem"}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var parsed bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &parsed); err != nil {
		t.Fatal(err)
	}
	if err := parsed.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	xds := parsed.GetStaticResources().GetClusters()[0]
	addr := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if xds.GetType().String() != "STRICT_DNS" || addr.GetAddress() != "control-plane.bulkhead-system.svc" || addr.GetPortValue() != 18000 {
		t.Fatalf("xds cluster %s %v", xds.GetType(), addr)
	}
	tlsCtx := &tlsv3.UpstreamTlsContext{}
	if err := xds.GetTransportSocket().GetTypedConfig().UnmarshalTo(tlsCtx); err != nil {
		t.Fatal(err)
	}
	if got := tlsCtx.GetCommonTlsContext().GetValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact(); got != cpID {
		t.Fatalf("the control plane must prove %s; the bootstrap accepts %s", cpID, got)
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		b    envoy.Bootstrap
		want string
	}{
		{envoy.Bootstrap{Role: "grpc", Name: "x", NodeID: "n", XDSAddress: "127.0.0.1:1", AdminPort: 1}, `role "grpc"`},
		{envoy.Bootstrap{Role: "router", Name: "x", NodeID: "n", XDSAddress: "cp", AdminPort: 1}, "want ip:port or host:port"},
		{envoy.Bootstrap{Role: "router", Name: "x", NodeID: "n", XDSAddress: "127.0.0.1:1", AdminPort: 0}, "admin port"},
		{envoy.Bootstrap{Role: "router", NodeID: "n", XDSAddress: "127.0.0.1:1", AdminPort: 1}, "name and node id"},
		{envoy.Bootstrap{Role: "router", Name: "x", NodeID: "n", XDSAddress: "127.0.0.1:1", AdminPort: 1, XDSTLS: &envoy.TLSFiles{Dir: "/d"}}, "xds tls"},
	} {
		if _, err := envoy.Render(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Render(%+v): %v; want an error containing %q", tc.b, err, tc.want)
		}
	}
}
