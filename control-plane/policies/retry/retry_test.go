package retry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/retry"
)

func dur(s string) *v1alpha1.Duration { d := v1alpha1.Duration(s); return &d }

func TestBuild(t *testing.T) {
	r, err := retry.Build(&v1alpha1.Retry{NumRetries: 3, RetryOn: []v1alpha1.RetryOn{"unavailable", "retriable-status-codes"}, RetriableStatusCodes: []int32{503},
		Backoff: &v1alpha1.Backoff{BaseInterval: *dur("25ms"), MaxInterval: dur("250ms")}, PerTryTimeout: dur("2s")})
	if err != nil || r.NumRetries != 3 || r.BaseInterval.Std() != 25*time.Millisecond || r.MaxInterval.Std() != 250*time.Millisecond || r.PerTryTimeout.Std() != 2*time.Second || len(r.RetriableStatusCodes) != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	_, err = retry.Build(&v1alpha1.Retry{NumRetries: 1, RetryOn: []v1alpha1.RetryOn{"5xx"}, RetriableStatusCodes: []int32{503},
		Backoff: &v1alpha1.Backoff{BaseInterval: *dur("0s"), MaxInterval: dur("1s")}, PerTryTimeout: dur("-1s")})
	for _, want := range []string{
		"retriableStatusCodes: set, but retryOn does not include retriable-status-codes",
		"backoff.baseInterval: must be greater than 0",
		"perTryTimeout: must be greater than 0",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// The HTTPRoute's per-try timeout (timeouts.backendRequest) bounds each
// attempt instead of the policy's; the policy's own value is not changed.
func TestOnRouteTheRoutesPerTryTimeoutWins(t *testing.T) {
	policy := &ir.Retry{NumRetries: 2, PerTryTimeout: ir.D(time.Second)}
	if got := retry.OnRoute(policy, &ir.Route{}); got != policy {
		t.Fatalf("a route without its own per-try timeout gets %+v; want the policy's", got)
	}
	got := retry.OnRoute(policy, &ir.Route{PerTryTimeout: ir.D(3 * time.Second)})
	if got.PerTryTimeout.Std() != 3*time.Second || got.NumRetries != 2 {
		t.Fatalf("OnRoute = %+v; want the route's 3s and the policy's retries", got)
	}
	if policy.PerTryTimeout.Std() != time.Second {
		t.Fatal("OnRoute changed the policy's retry, which other routes share")
	}
}
