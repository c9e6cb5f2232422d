package translate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// scaleInput is n Services (each with an EndpointSlice of 3 endpoints), n
// GAMMA HTTPRoutes (a weighted split between two Services) and n
// BackendPolicies (retry, timeout, outlier detection, circuit breaker).
func scaleInput(tb testing.TB, n int) *resource.Resources {
	tb.Helper()
	res := &resource.Resources{}
	if err := resource.Decode(res, "scale.yaml", scaleText(n)); err != nil {
		tb.Fatal(err)
	}
	res.Sort()
	return res
}

func scaleText(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata: {name: svc-%[1]d, namespace: ns-%[2]d}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-%[1]d-1
  namespace: ns-%[2]d
  labels: {kubernetes.io/service-name: svc-%[1]d}
addressType: IPv4
ports: [{name: grpc, port: 50051}]
endpoints:
- {addresses: [10.%[3]d.%[4]d.1], zone: a}
- {addresses: [10.%[3]d.%[4]d.2], zone: b}
- {addresses: [10.%[3]d.%[4]d.3], zone: c}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-%[1]d, namespace: ns-%[2]d}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-%[1]d}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api.v1.Service%[1]d/}, headers: [{name: x-tenant, value: t%[1]d}]}]
    timeouts: {request: 5s}
    backendRefs: [{name: svc-%[1]d, port: 9000, weight: 90}, {name: svc-%[5]d, port: 9000, weight: 10}]
---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: policy-%[1]d, namespace: ns-%[2]d}
spec:
  targetRefs: [{group: "", kind: Service, name: svc-%[1]d}]
  retry: {numRetries: 2, retryOn: [unavailable], backoff: {baseInterval: 25ms}}
  timeout: {request: 10s, connect: 1s}
  circuitBreaker: {maxRequests: 100}
  outlierDetection: {failurePercentage: {threshold: 50}, interval: 1s}
`, i, i/10, i/250, i%250, i^1)
	}
	// Pairs (i, i^1) share a namespace (i/10 is the same for both).
	return []byte(b.String())
}

func TestScaleInputTranslatesCleanly(t *testing.T) {
	r := translate.Translate(scaleInput(t, 100))
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if len(r.Clusters) != 100 || len(r.ClientListeners) != 100 {
		t.Fatalf("%d clusters, %d listeners; want 100 each", len(r.Clusters), len(r.ClientListeners))
	}
}

// BenchmarkTranslate1000 translates 1,000 Services, 1,000 HTTPRoutes and
// 1,000 BackendPolicies (the target: under 200 ms and 200 MB).
func BenchmarkTranslate1000(b *testing.B) {
	res := scaleInput(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		r := translate.Translate(res)
		if len(r.Errors) > 0 {
			b.Fatal(r.Err())
		}
	}
}

// BenchmarkTranslateAndBuild1000 adds building and validating the xDS of a
// proxyless client (1,000 listeners, routes, clusters, endpoints) and its
// snapshot versions: the whole path from input to publishable snapshot.
func BenchmarkTranslateAndBuild1000(b *testing.B) {
	res := scaleInput(b, 1000)
	id := workload.ProxyID{Role: workload.RoleGRPC, Namespace: "ns-0", Name: "svc-0"}
	b.ReportAllocs()
	for b.Loop() {
		r := translate.Translate(res)
		out, err := xds.Build(r.Config(id))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := out.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAndTranslate1000 includes reading the 4,000 YAML documents
// (what a full reload of the config directory costs).
func BenchmarkDecodeAndTranslate1000(b *testing.B) {
	text := scaleText(1000)
	b.ReportAllocs()
	for b.Loop() {
		res := &resource.Resources{}
		if err := resource.Decode(res, "scale.yaml", text); err != nil {
			b.Fatal(err)
		}
		res.Sort()
		if r := translate.Translate(res); len(r.Errors) > 0 {
			b.Fatal(r.Err())
		}
	}
}
