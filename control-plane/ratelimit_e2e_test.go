package controlplane_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// The ai gateway, its routes to api, auth's Check as its ext_authz (which
// sets the identity headers the rules select on), and the rate-limit
// Service.
const rateLimitMesh = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai}
spec:
  gatewayClassName: bulkhead
  listeners: [{name: http, protocol: HTTP, port: 10082}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: ratelimit}
spec:
  ports: [{name: grpc, port: 8081, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: auth}
spec:
  ports: [{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]
---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: ai-auth}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  extAuth: {backendRef: {name: auth, port: 9000}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat}
spec:
  parentRefs: [{name: ai}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/chat}}]
    backendRefs: [{name: api, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: models}
spec:
  parentRefs: [{name: ai}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/models}}]
    backendRefs: [{name: api, port: 8080}]
`

// limits is the RateLimitPolicy under test: per key on the gateway (perKey
// an hour, so that no window ends during the test), free-tier accounts, a
// client range counted as one, a shadow rule, and per key on the chat
// route alone.
func limits(perKey int) string {
	return fmt.Sprintf(`apiVersion: mesh.bulkhead.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: ai-limits}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: ai}]
  global:
    rules:
    - name: per-key
      clientSelectors: [{identity: {field: KeyID, type: Distinct}}]
      limit: {requests: %d, unit: Hour}
    - name: free-tier
      clientSelectors:
      - {identity: {field: Tier, type: Exact, value: free}}
      - {identity: {field: AccountID, type: Distinct}}
      limit: {requests: 2, unit: Hour}
    - name: partner-range
      clientSelectors: [{sourceCIDR: {cidr: 203.0.113.0/24, type: Exact}}]
      limit: {requests: 4, unit: Hour}
    - name: beta
      clientSelectors: [{header: {name: x-client, type: RegularExpression, value: "beta-.*"}}]
      limit: {requests: 1, unit: Hour}
      shadow: true
---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: chat-limits}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: chat}]
  global:
    rules:
    - name: per-key
      clientSelectors: [{identity: {field: KeyID, type: Distinct}}]
      limit: {requests: 100, unit: Hour}
`, perKey)
}

// gatewayRoutes fetches the ai gateway's route configuration from the
// control plane over ADS, as its Envoy would.
func gatewayRoutes(t testing.TB, m *mesh, name string) *routev3.RouteConfiguration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := m.adsClient().StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := node("gw-ai-"+t.Name(), workload.RoleGateway, "ai")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resourcev3.RouteType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resp.GetResources() {
		rc := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		if rc.GetName() == name {
			return rc
		}
	}
	t.Fatalf("no route configuration %q in %v", name, resp)
	return nil
}

// limiter asks the real rate-limit service about requests, with the
// descriptors the gateway's generated route actions make of them.
type limiter struct {
	t      *testing.T
	rc     *routev3.RouteConfiguration
	domain string
	client rlsv3.RateLimitServiceClient
}

// ask returns the overall code and each descriptor's, as
// "KEY=VALUE/...:CODE" (NO_LIMIT when no rule matches it, "(0 left)" when
// the window is used up).
func (l *limiter) ask(req envoysim.Request) (rlsv3.RateLimitResponse_Code, []string) {
	l.t.Helper()
	route := envoysim.Route(l.rc, req)
	if route == nil {
		l.t.Fatalf("no route for %s", req.Path)
	}
	ds, err := envoysim.Descriptors(route.GetRoute().GetRateLimits(), req)
	if err != nil {
		l.t.Fatal(err)
	}
	resp, err := l.client.ShouldRateLimit(l.t.Context(), &rlsv3.RateLimitRequest{Domain: l.domain, Descriptors: ds, HitsAddend: 1})
	if err != nil {
		l.t.Fatal(err)
	}
	var each []string
	for i, d := range ds {
		var kv []string
		for _, e := range d.GetEntries() {
			kv = append(kv, e.GetKey()+"="+e.GetValue())
		}
		st := resp.GetStatuses()[i]
		code := st.GetCode().String()
		if st.GetCurrentLimit() == nil {
			code = "NO_LIMIT" // no rule of the domain matches the descriptor
		} else if st.GetLimitRemaining() == 0 {
			code += "(0 left)"
		}
		each = append(each, strings.Join(kv, "/")+":"+code)
	}
	return resp.GetOverallCode(), each
}

// allowed sends n requests and returns how many were not over a limit.
func (l *limiter) allowed(n int, req envoysim.Request) int {
	ok := 0
	for range n {
		if code, _ := l.ask(req); code == rlsv3.RateLimitResponse_OK {
			ok++
		}
	}
	return ok
}

// Global rate limits end to end without Envoy: the control plane programs
// the real envoyproxy/ratelimit (Redis-backed) over xDS; the descriptors
// are the ones the ai gateway's generated route actions make of each
// request (identity headers as ext_authz sets them, route, client
// address); exactly the configured number per window is allowed, the next
// is OVER_LIMIT; editing the policy file changes the limit live.
func TestGlobalRateLimitThroughRateLimitService(t *testing.T) {
	// The limits are per hour, windows aligned to the hour: start clear of
	// its end so that no window closes during the test.
	if now := time.Now(); now.Minute() == 59 && now.Second() >= 50 {
		time.Sleep(now.Truncate(time.Hour).Add(time.Hour).Sub(now))
	}
	redis, err := components.StartRedis(t.Context(), components.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Close() })
	m := startMesh(t, map[string]string{"mesh.yaml": rateLimitMesh, "limits.yaml": limits(3)})
	rl, err := components.StartRateLimit(t.Context(), components.RateLimitOptions{XDSAddress: m.cp.XDSAddr(), RedisAddr: redis.Addr, RedisPassword: redis.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	waitRule(t, rl, "default/ai-limits/per-key", 3)

	cc, err := grpc.NewClient(rl.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	const domain = "default/ai/10082"
	l := &limiter{t: t, rc: gatewayRoutes(t, m, domain), domain: domain, client: rlsv3.NewRateLimitServiceClient(cc)}

	client := netip.MustParseAddr("192.0.2.10")
	req := func(path, key, tier string) envoysim.Request {
		return envoysim.Request{Authority: "api.bulkhead.local", Path: path, Remote: client, Headers: map[string]string{
			"x-bulkhead-key-id": key, "x-bulkhead-account-id": "acct-" + key, "x-bulkhead-tier": tier,
		}}
	}
	// The descriptors of a standard-tier request on /v1/models: the
	// gateway-wide per-key rule counts; the client's range is sent, as
	// Envoy does, and matches no rule; the tier and header rules make no
	// descriptor, the chat rule is on another route.
	if code, each := l.ask(req("/v1/models", "key-a", "standard")); code != rlsv3.RateLimitResponse_OK ||
		strings.Join(each, " ") != "rule=default/ai-limits/per-key/key_id=key-a:OK rule=default/ai-limits/partner-range/masked_remote_address=192.0.2.0/24:NO_LIMIT" {
		t.Fatalf("first request: %v %v", code, each)
	}
	// Exactly 3 per hour per key, whatever the route: 2 more, then over.
	if n := l.allowed(2, req("/v1/chat/completions", "key-a", "standard")); n != 2 {
		t.Fatalf("%d of the 2nd and 3rd requests allowed; want both", n)
	}
	code, each := l.ask(req("/v1/chat/completions", "key-a", "standard"))
	if code != rlsv3.RateLimitResponse_OVER_LIMIT || !strings.Contains(strings.Join(each, " "), "key_id=key-a:OVER_LIMIT(0 left)") {
		t.Fatalf("4th request of key-a: %v %v; want OVER_LIMIT on the per-key rule", code, each)
	}
	// The chat route counts on its own too: its rule saw key-a's 3 chat
	// requests, under its 100.
	if !strings.Contains(strings.Join(each, " "), "rule=default/chat-limits/per-key/route=HTTPRoute/default/chat/key_id=key-a:OK") {
		t.Errorf("chat route descriptor: %v", each)
	}
	// Another key has its own counter.
	if n := l.allowed(3, req("/v1/models", "key-b", "standard")); n != 3 {
		t.Fatalf("key-b: %d of 3 allowed", n)
	}

	// A free-tier account: 2 an hour, before its key's 3.
	if n := l.allowed(3, req("/v1/models", "key-free", "free")); n != 2 {
		t.Fatalf("free tier: %d of 3 allowed; want 2", n)
	}
	// The partner range counts as one: 4 from two addresses in it.
	partner := req("/v1/models", "", "standard")
	delete(partner.Headers, "x-bulkhead-key-id")
	okCount := 0
	for i := range 5 {
		partner.Remote = netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", 1+i%2))
		if code, _ := l.ask(partner); code == rlsv3.RateLimitResponse_OK {
			okCount++
		}
	}
	if okCount != 4 {
		t.Fatalf("partner range: %d of 5 allowed; want 4", okCount)
	}
	// A shadow rule reports but never rejects.
	beta := req("/v1/models", "key-beta", "standard")
	beta.Headers["x-client"] = "beta-cli"
	l.allowed(1, beta)
	// (Over its limit, the rule reports 0 left, which Envoy passes on in
	// x-ratelimit-remaining.)
	if code, each := l.ask(beta); code != rlsv3.RateLimitResponse_OK || !strings.Contains(strings.Join(each, " "), "header_x-client=match:OK(0 left)") {
		t.Fatalf("shadow rule: %v %v; want the request OK, the rule with 0 left", code, each)
	}

	// The shadow rule's over-limit request is counted where Prometheus
	// scrapes the rate-limit service.
	testenv.Eventually(t, 10*time.Second, "the shadow rule's counter on the metrics endpoint", func() error {
		m, err := rl.Metrics(t.Context())
		if err != nil {
			return err
		}
		return testenv.Until(strings.Contains(m, `ratelimit_service_rate_limit_shadow_mode{domain="default/ai/10082",key1="rule_default/ai-limits/beta",key2="header_x-client_match"} 1`), "no shadow-mode counter of the beta rule yet")
	})
	// Edit the policy: 5 per key. The rate-limit service is programmed
	// anew over xDS, nothing restarts; key-c gets exactly 5.
	m.write("limits.yaml", limits(5))
	waitRule(t, rl, "default/ai-limits/per-key", 5)
	if n := l.allowed(6, req("/v1/models", "key-c", "standard")); n != 5 {
		t.Fatalf("after the edit: %d of 6 allowed; want 5", n)
	}
}

// waitRule waits until the rate-limit service has loaded a rule with that
// limit.
func waitRule(t testing.TB, rl *components.RateLimit, id string, requests int) {
	t.Helper()
	want := fmt.Sprintf("rule_%s", id)
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("the rate-limit service loads %s at %d", id, requests), func() error {
		cfg, err := rl.Config(t.Context())
		if err != nil {
			return err
		}
		for _, line := range strings.Split(cfg, "\n") {
			if strings.Contains(line, want) && strings.Contains(line, fmt.Sprintf("requests_per_unit=%d,", requests)) {
				return nil
			}
		}
		return fmt.Errorf("its configuration:\n%s", cfg)
	})
}
