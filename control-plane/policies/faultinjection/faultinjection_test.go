package faultinjection_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/faultinjection"
)

func TestBuild(t *testing.T) {
	d := v1alpha1.Duration("50ms")
	grpc, http := int32(14), int32(503)
	f, err := faultinjection.Build(&v1alpha1.FaultInjection{Delay: &v1alpha1.FaultDelay{Duration: d, Percentage: 5}, Abort: &v1alpha1.FaultAbort{GRPCStatus: &grpc, Percentage: 10}})
	if err != nil || f.Delay == nil || f.DelayPercent != 5 || !f.Abort || f.AbortGRPCStatus != 14 || f.AbortPercent != 10 {
		t.Fatalf("%+v, %v", f, err)
	}
	for _, tc := range []struct {
		spec v1alpha1.FaultInjection
		want string
	}{
		{v1alpha1.FaultInjection{}, "set delay, abort or both"},
		{v1alpha1.FaultInjection{Abort: &v1alpha1.FaultAbort{GRPCStatus: &grpc, HTTPStatus: &http}}, "abort: set exactly one of httpStatus, grpcStatus"},
		{v1alpha1.FaultInjection{Delay: &v1alpha1.FaultDelay{Duration: "0s"}}, "delay.duration: must be greater than 0"},
	} {
		if _, err := faultinjection.Build(&tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.spec, err, tc.want)
		}
	}
}
