package v1alpha1_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// The generated CRDs, installed in a real kube-apiserver, accept the valid
// policies and refuse each invalid one at admission with a message naming
// the field and the reason.

const crdDir = "../../../policies/crds"

var resources = map[string]string{
	"BackendPolicy":   "backendpolicies",
	"RateLimitPolicy": "ratelimitpolicies",
	"SecurityPolicy":  "securitypolicies",
}

type admissionCase struct {
	name string
	yaml string
	// wantErr is a fragment of the API server's refusal; empty means the
	// object must be accepted.
	wantErr []string
}

var admissionCases = []admissionCase{
	{name: "backend policy with every feature", yaml: `
kind: BackendPolicy
spec:
  targetRefs:
  - {group: "", kind: Service, name: inference}
  loadBalancer: {type: RingHash, ringHash: {header: x-session-id}}
  retry:
    numRetries: 2
    retryOn: [unavailable, reset, "5xx"]
    backoff: {baseInterval: 25ms, maxInterval: 250ms}
    perTryTimeout: 2s
  timeout: {request: 30s, connect: 1s}
  circuitBreaker: {maxRequests: 100, maxPendingRequests: 10, retryBudget: {percent: 20, minRetryConcurrency: 3}}
  outlierDetection: {consecutive5xx: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50, failurePercentage: {threshold: 80}}
  healthCheck: {type: GRPC, interval: 5s, timeout: 1s, grpc: {serviceName: bulkhead.inference.v1.InferenceService}}
  fallback: {backendRef: {name: inference-fallback, port: 9000}}
  faultInjection: {abort: {grpcStatus: 14, percentage: 10}}
  degradedResponse: {statusCode: 503, message: "The server is overloaded, please retry later.", type: overloaded, retryAfter: 5s}
`},
	{name: "backend policy targets a route", yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: chat}]
  timeout: {request: 0s}
`},
	{name: "backend policy with nothing to apply", wantErr: []string{"must set at least one of loadBalancer"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
`},
	{name: "backend policy targets a Gateway", wantErr: []string{"spec.targetRefs", "may only name a Service"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  timeout: {request: 1s}
`},
	{name: "ring hash without its header", wantErr: []string{"spec.loadBalancer", "ringHash must be set when, and only when, type is RingHash"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  loadBalancer: {type: RingHash}
`},
	{name: "unknown retry condition", wantErr: []string{"spec.retry.retryOn[0]", "Unsupported value"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  retry: {numRetries: 1, retryOn: [sometimes]}
`},
	{name: "too many retries", wantErr: []string{"spec.retry.numRetries", "less than or equal to 10"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  retry: {numRetries: 50, retryOn: [unavailable]}
`},
	{name: "malformed duration", wantErr: []string{"spec.timeout.request", "should match"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  timeout: {request: 10 seconds}
`},
	{name: "abort with two statuses", wantErr: []string{"spec.faultInjection.abort", "exactly one of httpStatus, grpcStatus"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  faultInjection: {abort: {httpStatus: 503, grpcStatus: 14, percentage: 5}}
`},
	{name: "percentage over 100", wantErr: []string{"spec.outlierDetection.maxEjectionPercent", "less than or equal to 100"}, yaml: `
kind: BackendPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: inference}]
  outlierDetection: {consecutive5xx: 1, maxEjectionPercent: 150}
`},
	{name: "rate limits local and global", yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  local:
    rules:
    - name: per-ip
      clientSelectors: [{sourceCIDR: {cidr: 0.0.0.0/0, type: Distinct}}]
      limit: {requests: 50, unit: Second}
  global:
    rules:
    - name: free-tier
      clientSelectors:
      - identity: {field: Tier, type: Exact, value: free}
      - identity: {field: KeyID, type: Distinct}
      limit: {requests: 60, unit: Minute}
    - name: canary
      clientSelectors: [{header: {name: x-canary, type: Exact, value: "1"}}]
      limit: {requests: 10, unit: Second}
      shadow: true
`},
	{name: "selector with two attributes", wantErr: []string{"exactly one of header, identity, sourceCIDR"}, yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  global:
    rules:
    - name: r
      clientSelectors: [{header: {name: x-a, type: Distinct}, sourceCIDR: {cidr: 10.0.0.0/8, type: Exact}}]
      limit: {requests: 1, unit: Second}
`},
	{name: "distinct selector with a value", wantErr: []string{"value is required for Exact and RegularExpression, and not allowed for Distinct"}, yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  global:
    rules:
    - name: r
      clientSelectors: [{identity: {field: KeyID, type: Distinct, value: key_1}}]
      limit: {requests: 1, unit: Second}
`},
	{name: "bad CIDR", wantErr: []string{"sourceCIDR.cidr must be a CIDR"}, yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  local:
    rules:
    - name: r
      clientSelectors: [{sourceCIDR: {cidr: 10.0.0.300/8, type: Exact}}]
      limit: {requests: 1, unit: Second}
`},
	{name: "duplicate rule names", wantErr: []string{"spec.global.rules", "rule names must be unique"}, yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  global:
    rules:
    - {name: r, limit: {requests: 1, unit: Second}}
    - {name: r, limit: {requests: 2, unit: Second}}
`},
	{name: "zero requests", wantErr: []string{"limit.requests", "greater than or equal to 1"}, yaml: `
kind: RateLimitPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  global:
    rules:
    - {name: r, limit: {requests: 0, unit: Second}}
`},
	{name: "security policy with every feature", yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
  mtls: {mode: STRICT}
  extAuth: {backendRef: {name: auth, port: 9000}, fallback: {name: auth-cache, port: 9000}, timeout: 200ms}
  jwt:
    providers:
    - name: bulkhead
      issuer: https://auth.bulkhead.local
      audiences: [bulkhead]
      jwks: {backendRef: {name: auth, port: 8081}, path: /.well-known/jwks.json}
      claimToHeaders: [{claim: sub, header: x-bulkhead-account}]
  ipAccess: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.6.6.0/24], xffNumTrustedHops: 1}
  authorization:
    defaultAction: Deny
    rules:
    - name: chat-reserves-quota
      action: Allow
      principals: [spiffe://bulkhead.local/ns/default/sa/chat]
      methods: [/bulkhead.users.v1.UsersService/Reserve, /bulkhead.users.v1.UsersService/Commit]
    - name: api-everything
      action: Allow
      principals: [spiffe://bulkhead.local/ns/default/sa/api]
      methods: [/bulkhead.users.v1.UsersService/*]
`},
	{name: "unknown mTLS mode", wantErr: []string{"spec.mtls.mode", "Unsupported value"}, yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
  mtls: {mode: OPTIONAL}
`},
	{name: "principal is not a SPIFFE ID", wantErr: []string{"principals must be SPIFFE IDs"}, yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
  authorization:
    defaultAction: Deny
    rules: [{name: r, action: Allow, principals: [chat]}]
`},
	{name: "malformed gRPC method", wantErr: []string{"spec.authorization.rules[0].methods[0]", "should match"}, yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
  authorization:
    defaultAction: Deny
    rules: [{name: r, action: Allow, methods: [UsersService.Reserve]}]
`},
	{name: "deny list entry not a CIDR", wantErr: []string{"spec.ipAccess.deny", "deny entries must be CIDRs"}, yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge}]
  ipAccess: {deny: [evil.example.com]}
`},
	{name: "security policy with nothing to apply", wantErr: []string{"must set at least one of mtls, extAuth, jwt, ipAccess, authorization"}, yaml: `
kind: SecurityPolicy
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
`},
}

func TestCRDAdmission(t *testing.T) {
	t.Parallel()
	k := testenv.NewKube(t, testenv.KubeOptions{CRDDirs: []string{crdDir}})
	dyn, err := dynamic.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range admissionCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tc.yaml), &obj.Object); err != nil {
				t.Fatalf("test YAML: %v", err)
			}
			obj.SetAPIVersion("mesh.bulkhead.dev/v1alpha1")
			obj.SetNamespace("default")
			obj.SetName(strings.ToLower(obj.GetKind()) + "-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
			gvr := schema.GroupVersionResource{Group: "mesh.bulkhead.dev", Version: "v1alpha1", Resource: resources[obj.GetKind()]}
			_, err := dyn.Resource(gvr).Namespace("default").Create(t.Context(), obj, metav1.CreateOptions{})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid %s refused: %v", obj.GetKind(), err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid %s accepted; want an error containing %q", obj.GetKind(), tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
