package outlierdetection_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/outlierdetection"
)

func TestBuild(t *testing.T) {
	five := int32(5)
	od, err := outlierdetection.Build(&v1alpha1.OutlierDetection{FailurePercentage: &v1alpha1.FailurePercentage{Threshold: 80, MinimumHosts: &five}})
	if err != nil || *od.FailurePercentageThreshold != 80 || *od.FailurePercentageMinimumHosts != 5 {
		t.Fatalf("%+v, %v", od, err)
	}
	zero := v1alpha1.Duration("0s")
	_, err = outlierdetection.Build(&v1alpha1.OutlierDetection{Interval: &zero})
	for _, want := range []string{"interval: must be greater than 0", "set at least one ejection rule"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
