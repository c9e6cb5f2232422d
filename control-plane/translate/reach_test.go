package translate_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Each object reaches the proxies its configuration lands on, and no
// others.
func TestReach(t *testing.T) {
	text := mesh + strings.ReplaceAll(authPolicy, "%s", "auth-cache") + strings.ReplaceAll(gatewayPolicy, "%s", "auth") + strings.ReplaceAll(limitsPolicy, "%s", "Gateway") + `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: auth-servers}
spec:
  targetRefs: [{group: "", kind: Service, name: auth}]
  mtls: {mode: STRICT}
`
	r := translateText(t, text, translate.Options{})
	key := func(kind, name string) resource.Key {
		return resource.Key{Kind: kind, Namespace: "default", Name: name}
	}
	for _, tc := range []struct {
		key  resource.Key
		want translate.Reach
	}{
		{key("HTTPRoute", "chat"), translate.Reach{Gateways: []string{"default/ai"}}},
		{key("Gateway", "ai"), translate.Reach{Gateways: []string{"default/ai"}}},
		// api's cluster is every client's, and the ai Gateway routes to it.
		{key("Service", "api"), translate.Reach{Mesh: true, Gateways: []string{"default/ai"}}},
		// auth is the ai Gateway's ext_authz.
		{key("BackendPolicy", "auth"), translate.Reach{Mesh: true, Gateways: []string{"default/ai"}}},
		{key("SecurityPolicy", "gateways"), translate.Reach{Gateways: []string{"default/ai"}}},
		{key("SecurityPolicy", "auth-servers"), translate.Reach{Mesh: true, Gateways: []string{"default/ai"}, Servers: []string{"default/auth"}}},
		{key("RateLimitPolicy", "limits"), translate.Reach{Gateways: []string{"default/ai"}, RateLimit: true}},
		// auth-cache's endpoints are auth's fallback, in the Gateway's auth cluster.
		{key("Service", "auth-cache"), translate.Reach{Mesh: true, Gateways: []string{"default/ai"}}},
	} {
		if got := r.Reach[tc.key]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s reaches %+v; want %+v", tc.key, got, tc.want)
		}
	}
	ai := workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}
	caller := workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"}
	route := r.Reach[key("HTTPRoute", "chat")]
	if !route.Matches(ai) || route.Matches(caller) || route.Matches(workload.ProxyID{Role: workload.RoleRouter, Namespace: "default", Name: "edge"}) {
		t.Fatal("a Gateway route must match that Gateway's Envoys only")
	}
	if s := r.Reach[key("SecurityPolicy", "auth-servers")]; !s.Matches(workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "auth"}) {
		t.Fatal("a SecurityPolicy on a Service must match its servers")
	}
}
