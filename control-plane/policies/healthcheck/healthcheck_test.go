package healthcheck_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/healthcheck"
)

func TestBuild(t *testing.T) {
	hc, err := healthcheck.Build(&v1alpha1.HealthCheck{Type: v1alpha1.HealthCheckHTTP, Interval: "2s", Timeout: "500ms", HTTP: &v1alpha1.HTTPHealthCheck{Path: "/healthz", ExpectedStatuses: []int32{200}}})
	if err != nil || hc.Path != "/healthz" || hc.HealthyThreshold != 2 || hc.UnhealthyThreshold != 3 || len(hc.ExpectedStatuses) != 1 {
		t.Fatalf("%+v, %v (thresholds default to 2 and 3)", hc, err)
	}
	for _, tc := range []struct {
		spec v1alpha1.HealthCheck
		want string
	}{
		{v1alpha1.HealthCheck{Type: v1alpha1.HealthCheckTCP, Interval: "1s", Timeout: "2s"}, "timeout: 2s is longer than the interval 1s"},
		{v1alpha1.HealthCheck{Type: v1alpha1.HealthCheckHTTP, Interval: "1s", Timeout: "1s"}, "http: required when type is HTTP"},
		{v1alpha1.HealthCheck{Type: v1alpha1.HealthCheckTCP, Interval: "0s", Timeout: "0s"}, "interval and timeout must be greater than 0"},
	} {
		if _, err := healthcheck.Build(&tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.spec, err, tc.want)
		}
	}
}
