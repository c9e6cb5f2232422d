package controlplane_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// policy is a BackendPolicy on Service echo with the given spec fields.
func policy(spec string) string {
	return `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: echo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
` + spec
}

// outcomes makes n calls and counts them by "backend:NAME" or status code.
func outcomes(t *testing.T, c healthpb.HealthClient, n int, md ...string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := map[string]int{}
	for range n {
		b, err := call(ctx, c, md...)
		if err != nil {
			got[status.Code(err).String()]++
			continue
		}
		got["backend:"+b]++
	}
	return got
}

func TestRetryRecoversUnavailable(t *testing.T) {
	b := startBackend(t, "flaky")
	b.failEvery.Store(2) // every second call fails
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000, b)})
	c := m.client("echo.default:9000")

	// Without a policy, half the calls fail.
	if got := outcomes(t, c, 20); got["Unavailable"] == 0 {
		t.Fatalf("without retries: %v; want some Unavailable", got)
	}
	m.write("policy.yaml", policy(`  retry: {numRetries: 2, retryOn: [unavailable], backoff: {baseInterval: 10ms}}
`))
	testenv.Eventually(t, 10*time.Second, "every call recovered by a retry", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:flaky"] == 20, "20 calls: %v", got)
	})
}

func TestRouteTimeout(t *testing.T) {
	b := startBackend(t, "slow")
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	b.hold.Store(&hold)
	m := startMesh(t, map[string]string{
		"echo.yaml":   service("echo", 9000, b),
		"policy.yaml": policy("  timeout: {request: 200ms}\n"),
	})
	c := m.client("echo.default:9000")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := call(ctx, c)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call to a backend that never answers: %v; want DeadlineExceeded from the route's 200ms timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the test's own deadline expired: the route timeout did not apply")
	}
}

func TestOutlierDetectionEjectsFailingEndpoint(t *testing.T) {
	good, bad := startBackend(t, "good"), startBackend(t, "bad")
	bad.failEvery.Store(1)
	m := startMesh(t, map[string]string{
		"echo.yaml": service("echo", 9000, good, bad),
		"policy.yaml": policy(`  outlierDetection:
    interval: 100ms
    baseEjectionTime: 30s
    maxEjectionPercent: 50
    failurePercentage: {threshold: 50, minimumHosts: 2, requestVolume: 5}
`),
	})
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 15*time.Second, "the failing endpoint ejected: 40 calls in a row served by good", func() error {
		got := outcomes(t, c, 40)
		return testenv.Until(got["backend:good"] == 40, "40 calls: %v", got)
	})
}

func TestCircuitBreakerRejectsOverflow(t *testing.T) {
	b := startBackend(t, "held")
	hold := make(chan struct{})
	b.hold.Store(&hold)
	m := startMesh(t, map[string]string{
		"echo.yaml":   service("echo", 9000, b),
		"policy.yaml": policy("  circuitBreaker: {maxRequests: 2}\n"),
	})
	c := m.client("echo.default:9000")
	// Warm the channel up so that the policy is in force.
	b.hold.Store(nil)
	if _, err := call(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	b.hold.Store(&hold)

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := call(t.Context(), c)
			errs <- err
		}()
	}
	testenv.Eventually(t, 10*time.Second, "two calls held by the backend", func() error {
		return testenv.Until(b.inFlight.Load() == 2, "%d in flight", b.inFlight.Load())
	})
	_, err := call(t.Context(), c)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("third concurrent call with maxRequests 2: %v; want Unavailable at once", err)
	}
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a call within the limit failed: %v", err)
		}
	}
}

func TestFaultInjectionAborts(t *testing.T) {
	b := startBackend(t, "echo")
	m := startMesh(t, map[string]string{
		"echo.yaml":   service("echo", 9000, b),
		"policy.yaml": policy("  faultInjection: {abort: {grpcStatus: 8, percentage: 100}}\n"),
	})
	c := m.client("echo.default:9000")
	got := outcomes(t, c, 10)
	if got["ResourceExhausted"] != 10 {
		t.Fatalf("with a 100%% abort fault: %v; want 10 ResourceExhausted", got)
	}
	if n := b.calls.Load(); n != 0 {
		t.Fatalf("the backend saw %d calls; aborted calls must not reach it", n)
	}
	// Removing the fault restores service without reconnecting.
	m.write("policy.yaml", policy("  timeout: {request: 5s}\n"))
	testenv.Eventually(t, 10*time.Second, "calls served after the fault is removed", func() error {
		got := outcomes(t, c, 5)
		return testenv.Until(got["backend:echo"] == 5, "5 calls: %v", got)
	})
}

func TestFallbackTakesTrafficWhenPrimaryIsDown(t *testing.T) {
	primary, fb := startBackend(t, "primary"), startBackend(t, "fallback")
	m := startMesh(t, map[string]string{
		"echo.yaml":     service("echo", 9000, primary),
		"fallback.yaml": service("echo-fallback", 9000, fb),
		"policy.yaml":   policy("  fallback: {backendRef: {name: echo-fallback, port: 9000}}\n"),
	})
	c := m.client("echo.default:9000")
	if got := outcomes(t, c, 10); got["backend:primary"] != 10 {
		t.Fatalf("while the primary is up: %v; want all on primary", got)
	}
	primary.srv.Stop()
	testenv.Eventually(t, 15*time.Second, "all calls on the fallback once the primary is down", func() error {
		got := outcomes(t, c, 10)
		return testenv.Until(got["backend:fallback"] == 10, "10 calls: %v", got)
	})
}

func TestRingHashAffinity(t *testing.T) {
	a, b, c3 := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	m := startMesh(t, map[string]string{
		"echo.yaml":   service("echo", 9000, a, b, c3),
		"policy.yaml": policy("  loadBalancer: {type: RingHash, ringHash: {header: x-session}}\n"),
	})
	c := m.client("echo.default:9000")
	used := map[string]bool{}
	for i := range 30 {
		session := fmt.Sprintf("session-%d", i)
		got := count(t, c, 10, "x-session", session)
		if len(got) != 1 {
			t.Fatalf("session %s spread over %v; want one backend", session, got)
		}
		for k := range got {
			used[k] = true
		}
	}
	if len(used) < 2 {
		t.Fatalf("30 sessions all hashed to %v; want them spread", used)
	}
}

// grpc-go accepts (ACKs) everything the control plane sends it for a
// BackendPolicy that sets every field, including the Envoy-only ones it
// ignores, and keeps serving.
func TestGRPCAcceptsEveryBackendPolicyField(t *testing.T) {
	a, fb := startBackend(t, "a"), startBackend(t, "fallback")
	m := startMesh(t, map[string]string{
		"echo.yaml":     service("echo", 9000, a),
		"fallback.yaml": service("echo-fallback", 9000, fb),
		"policy.yaml": policy(`  loadBalancer: {type: LeastRequest}
  retry:
    numRetries: 2
    retryOn: [unavailable, reset, "5xx", retriable-status-codes]
    retriableStatusCodes: [503]
    backoff: {baseInterval: 10ms, maxInterval: 100ms}
    perTryTimeout: 1s
  timeout: {request: 5s, idle: 30s, connect: 1s}
  circuitBreaker: {maxConnections: 100, maxPendingRequests: 100, maxRequests: 100, maxRetries: 3, retryBudget: {percent: 20, minRetryConcurrency: 3}}
  outlierDetection: {consecutive5xx: 5, consecutiveGatewayErrors: 5, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50, failurePercentage: {threshold: 90, minimumHosts: 5, requestVolume: 100}}
  healthCheck: {type: GRPC, interval: 5s, timeout: 1s}
  fallback: {backendRef: {name: echo-fallback, port: 9000}}
  faultInjection: {delay: {duration: 1ms, percentage: 1}}
  degradedResponse: {message: "overloaded"}
`),
	})
	c := m.client("echo.default:9000")
	if got := count(t, c, 20); got["a"] != 20 {
		t.Fatalf("calls %v; want all on a", got)
	}
	for _, n := range m.cp.Server.Nodes() {
		for typ, st := range n.Types {
			if st.Nacked != "" {
				t.Errorf("node %s rejected %s: %s", n.NodeID, typ, st.NackError)
			}
		}
	}
}
