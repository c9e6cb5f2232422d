package resource_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

const input = `# routes of the chat service
apiVersion: v1
kind: Service
metadata: {name: chat}
spec:
  ports: [{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]
---
# comments only
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: chat, namespace: prod}
spec:
  parentRefs: [{group: "", kind: Service, name: chat}]
  rules:
  - backendRefs: [{name: chat, port: 9000}]
---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: chat}
spec:
  targetRefs: [{group: "", kind: Service, name: chat}]
  retri: {numRetries: 2}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: v1
kind: Service
metadata: {name: chat}
`

func TestDecodeReportsEachBadDocumentAndKeepsTheGoodOnes(t *testing.T) {
	var r resource.Resources
	err := resource.Decode(&r, "policies/chat.yaml", []byte(input))
	if len(r.Services) != 1 || len(r.GRPCRoutes) != 1 {
		t.Fatalf("decoded %d services and %d GRPCRoutes; want 1 and 1", len(r.Services), len(r.GRPCRoutes))
	}
	if ns := r.Services[0].Namespace; ns != "default" {
		t.Errorf("Service without a namespace got %q; want default", ns)
	}
	if got := r.Origin(resource.Key{Kind: "GRPCRoute", Namespace: "prod", Name: "chat"}); got.String() != "policies/chat.yaml:10" {
		t.Errorf("GRPCRoute origin %s; want policies/chat.yaml:10", got)
	}
	if err == nil {
		t.Fatal("no error for the bad documents")
	}
	msg := err.Error()
	for _, want := range []string{
		`policies/chat.yaml:18: BackendPolicy default/chat: unknown field "spec.retri"`,
		`policies/chat.yaml:25: unsupported apiVersion/kind example.com/v1/Widget`,
		`policies/chat.yaml:29: Service default/chat: defined twice; first at policies/chat.yaml:2`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors do not contain %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 3 {
		t.Errorf("%d errors; want 3:\n%s", n, msg)
	}
}

func TestDecodeNamesNestedUnknownFieldsByPath(t *testing.T) {
	var r resource.Resources
	err := resource.Decode(&r, "routes.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: chat}
spec:
  parentRefs: [{group: "", kind: Service, name: chat}]
  rules:
  - backendRefs: [{name: chat, port: 9000}]
  - backendRefs: [{name: chat-canary, port: 9000, weigth: 5}]
`))
	want := `routes.yaml:1: GRPCRoute default/chat: unknown field "spec.rules[1].backendRefs[0].weigth"`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v; want %s", err, want)
	}
	if len(r.GRPCRoutes) != 0 {
		t.Fatal("a route with an unknown field was kept")
	}
}
