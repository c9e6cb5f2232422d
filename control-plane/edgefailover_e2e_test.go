package controlplane_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// endpointSlice is one backend of a Service port named portName.
func endpointSlice(service, portName string, b *backend) string {
	return fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-%[3]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
ports: [{name: %[2]s, port: %[4]d}]
endpoints: [{addresses: ["%[5]s"], conditions: {ready: true}}]
`, service, portName, b.name, b.addr.Port, b.addr.IP)
}

// The platform's own edge policies (policies/mesh: the gateways' Services,
// each the other's priority fallback) carry real traffic: a proxyless
// client of the ai gateway's Service reaches the ai gateway; when every ai
// gateway is gone the identity gateways take its traffic, and when the ai
// gateway is back it gets it again. The router's Envoy is programmed with
// these very clusters (policies/testdata/router-edge.xds.yaml).
func TestPlatformGatewayFailover(t *testing.T) {
	files := map[string]string{}
	for _, f := range []string{"services.yaml", "backend-policies.yaml", "edge.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "policies", "mesh", f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	ai, identity := startBackend(t, "gateway-ai-1"), startBackend(t, "gateway-identity-1")
	files["ai-endpoint.yaml"] = endpointSlice("gateway-ai", "http", ai)
	files["identity-endpoint.yaml"] = endpointSlice("gateway-identity", "http", identity)
	m := startMesh(t, files)
	c := m.client("gateway-ai.default:10082")
	if got := outcomes(t, c, 10); got["backend:gateway-ai-1"] != 10 {
		t.Fatalf("with the ai gateway up: %v; want every call on it", got)
	}
	// The whole ai gateway is lost: its endpoint goes (as when its process
	// dies under `bulkhead up`), and the server stops.
	ai.srv.Stop()
	if err := os.Remove(filepath.Join(m.dir, "ai-endpoint.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the identity gateway takes the ai domain's traffic", func() error {
		got := outcomes(t, c, 10)
		return testenv.Until(got["backend:gateway-identity-1"] == 10, "10 calls: %v", got)
	})
	// A new ai gateway comes back at priority 0.
	ai2 := startBackend(t, "gateway-ai-2")
	m.write("ai-endpoint.yaml", endpointSlice("gateway-ai", "http", ai2))
	testenv.Eventually(t, 15*time.Second, "the ai gateway gets its traffic back", func() error {
		got := outcomes(t, c, 10)
		return testenv.Until(got["backend:gateway-ai-2"] == 10, "10 calls: %v", got)
	})
}
