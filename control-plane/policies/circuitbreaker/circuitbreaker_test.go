package circuitbreaker_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/circuitbreaker"
)

// A retry budget without numbers is 20 % with at least 3 retries in flight
// (Envoy's defaults, said explicitly).
func TestBuildRetryBudgetDefaults(t *testing.T) {
	one := int32(1)
	cb := circuitbreaker.Build(&v1alpha1.CircuitBreaker{MaxRequests: &one, RetryBudget: &v1alpha1.RetryBudget{}})
	if *cb.MaxRequests != 1 || *cb.RetryBudgetPercent != 20 || *cb.MinRetryConcurrency != 3 || cb.MaxConnections != nil {
		t.Fatalf("%+v", cb)
	}
}
