package translate_test

import (
	"encoding/json"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// mesh is a small platform: the ai Gateway in front of api, auth with its
// cache-only fallback, the rate-limit service; the policies are appended.
const mesh = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai}
spec:
  gatewayClassName: bulkhead
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: auth}
spec:
  ports: [{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: auth-cache}
spec:
  ports: [{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: ratelimit}
spec:
  ports: [{name: grpc, port: 8081}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat}
spec:
  parentRefs: [{name: ai}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/chat}}]
    backendRefs: [{name: api, port: 8080}]
`

const (
	authPolicy = `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: auth}
spec:
  targetRefs: [{group: "", kind: Service, name: auth}]
  fallback: {backendRef: {name: %s, port: 9000}}
  retry: {numRetries: 2, retryOn: [unavailable]}
`
	gatewayPolicy = `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: gateways}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  extAuth: {backendRef: {name: %s, port: 9000}, fallback: {name: auth-cache, port: 9000}}
`
	limitsPolicy = `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: limits}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: %s, name: ai}]
  global:
    rules: [{name: per-key, clientSelectors: [{identity: {field: KeyID, type: Distinct}}], limit: {requests: 1200, unit: Minute}}]
`
)

func translateText(t *testing.T, text string, opts translate.Options) *translate.Result {
	t.Helper()
	res := &resource.Resources{}
	if err := resource.Decode(res, "in.yaml", []byte(text)); err != nil {
		t.Fatalf("decode: %v", err)
	}
	res.Sort()
	return translate.TranslateWith(res, opts)
}

func accepted(r *translate.Result, kind, name string) translate.Condition {
	if o := r.Status.Get(resource.Key{Kind: kind, Namespace: "default", Name: name}); o != nil {
		for _, c := range o.Conditions {
			if c.Type == translate.CondAccepted {
				return c
			}
		}
	}
	return translate.Condition{}
}

func configYAML(t *testing.T, r *translate.Result, id workload.ProxyID) string {
	t.Helper()
	b, err := yaml.Marshal(r.Config(id))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var aiGateway = workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}

// A bad edit of a policy of any kind never removes what its last accepted
// version configured: that version stays in force, the new one is
// reported on the object, and nothing that depended on it changes.
func TestAnInvalidEditKeepsTheLastAcceptedVersion(t *testing.T) {
	good := mesh + strings.ReplaceAll(authPolicy, "%s", "auth-cache") + strings.ReplaceAll(gatewayPolicy, "%s", "auth") + strings.ReplaceAll(limitsPolicy, "%s", "Gateway")
	r1 := translateText(t, good, translate.Options{})
	if len(r1.Errors) != 0 {
		t.Fatalf("the good mesh has problems: %v", r1.Errors)
	}
	before := configYAML(t, r1, aiGateway)
	for _, tc := range []struct {
		kind, name, edit string
	}{
		// The fallback names a Service that does not exist; the whole
		// policy (retry, fallback) would go, and with it extAuth's check.
		{"BackendPolicy", "auth", mesh + strings.ReplaceAll(authPolicy, "%s", "nowhere") + strings.ReplaceAll(gatewayPolicy, "%s", "auth") + strings.ReplaceAll(limitsPolicy, "%s", "Gateway")},
		// extAuth to a Service that does not exist: the Gateway would lose
		// authentication, and the identity rate limit with it.
		{"SecurityPolicy", "gateways", mesh + strings.ReplaceAll(authPolicy, "%s", "auth-cache") + strings.ReplaceAll(gatewayPolicy, "%s", "authz") + strings.ReplaceAll(limitsPolicy, "%s", "Gateway")},
		// A target that does not exist (a route named like the Gateway).
		{"RateLimitPolicy", "limits", mesh + strings.ReplaceAll(authPolicy, "%s", "auth-cache") + strings.ReplaceAll(gatewayPolicy, "%s", "auth") + strings.ReplaceAll(limitsPolicy, "%s", "HTTPRoute")},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			// Without memory (a cold start) the edit would change the
			// Gateway's configuration...
			cold := translateText(t, tc.edit, translate.Options{})
			if configYAML(t, cold, aiGateway) == before {
				t.Fatal("the edit changes nothing even without memory; the test proves nothing")
			}
			// ...with the previous translation's accepted versions it does not.
			r2 := translateText(t, tc.edit, translate.Options{Accepted: r1.Accepted})
			if got := configYAML(t, r2, aiGateway); got != before {
				t.Fatalf("the ai Gateway's configuration changed after an invalid edit of %s %s", tc.kind, tc.name)
			}
			c := accepted(r2, tc.kind, tc.name)
			if c.Status != "False" || !strings.HasSuffix(c.Message, translate.KeptMessage) {
				t.Fatalf("Accepted of the edited %s: %+v; want False, the reason, and that the last accepted version stays in force", tc.kind, c)
			}
			// The version in force is carried to the next translation.
			if r2.Accepted[resource.Key{Kind: tc.kind, Namespace: "default", Name: tc.name}] == nil {
				t.Fatal("the version in force is not carried on")
			}
			// Once the edit is fixed, the fixed version applies.
			r3 := translateText(t, good, translate.Options{Accepted: r2.Accepted})
			if c := accepted(r3, tc.kind, tc.name); c.Status != "True" {
				t.Fatalf("after the fix: %+v", c)
			}
		})
	}
}

// With no accepted version to fall back on, a SecurityPolicy that cannot be
// accepted closes what it protects: the Gateway's routes answer 503 in the
// API's error shape, naming the policy; a Service's servers refuse every
// call (deny-all RBAC over mTLS).
func TestSecurityFailsClosedWithoutAnAcceptedVersion(t *testing.T) {
	text := mesh + strings.ReplaceAll(gatewayPolicy, "%s", "authz") + `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: auth}
spec:
  targetRefs: [{group: "", kind: Service, name: auth}]
  mtls: {mode: STRICT}
  authorization: {defaultAction: Allow, rules: [{name: r, action: Deny, principals: ["spiffe://other.org/x"]}]}
`
	r := translateText(t, text, translate.Options{})

	// The Gateway: its route's reply is the API's error shape.
	out, err := xds.Build(r.Config(aiGateway))
	if err != nil {
		t.Fatal(err)
	}
	rc := out[resourcev3.RouteType][0].(*routev3.RouteConfiguration)
	rt := envoysim.Route(rc, envoysim.Request{Authority: "api.bulkhead.local", Path: "/v1/chat/completions"})
	dr := rt.GetDirectResponse()
	if dr == nil || dr.GetStatus() != 503 {
		t.Fatalf("the route of the Gateway whose SecurityPolicy is not accepted: %v; want a 503 direct response", rt)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := out[resourcev3.ListenerType][0].(*listenerv3.Listener).GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	reply, err := envoysim.LocalReply(hcm.GetLocalReplyConfig(), dr.GetStatus(), nil, dr.GetBody().GetInlineString(), "direct_response")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Message, Type string }
	}
	if err := json.Unmarshal([]byte(reply.Body), &body); err != nil || reply.Status != 503 || !strings.Contains(body.Error.Message, "SecurityPolicy default/gateways is not accepted") {
		t.Fatalf("reply %d %s (%v); want 503 in the API's error shape naming the policy", reply.Status, reply.Body, err)
	}

	// The Service: its servers require mTLS and refuse every call.
	sec := r.Inbound["default/auth"]
	if !sec.Strict() || sec.RBAC == nil || sec.RBAC.DefaultAllow || len(sec.RBAC.Allow) != 0 {
		t.Fatalf("inbound security of auth: %+v; want STRICT and deny-all", sec)
	}
	if c := accepted(r, "SecurityPolicy", "auth"); c.Status != "False" || !strings.Contains(c.Message, "trust domain is not the mesh's") {
		t.Fatalf("Accepted of the refused policy: %+v", c)
	}
	var clusterTLS *ir.UpstreamTLS
	for _, c := range r.Clusters {
		if c.Name == "auth.default:9000" {
			clusterTLS = c.TLS
		}
	}
	if clusterTLS == nil {
		t.Fatal("clients of the closed Service would not even speak mTLS to it")
	}
}
