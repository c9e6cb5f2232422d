package timeout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/timeout"
)

func dur(s string) *v1alpha1.Duration { d := v1alpha1.Duration(s); return &d }

func TestBuild(t *testing.T) {
	to, err := timeout.Build(&v1alpha1.Timeout{Request: dur("0s"), Idle: dur("5m"), Connect: dur("1s")})
	if err != nil || to.Request.Std() != 0 || to.Idle.Std() != 5*time.Minute || to.Connect.Std() != time.Second {
		t.Fatalf("%+v, %v (0s request means none; it is allowed)", to, err)
	}
	_, err = timeout.Build(&v1alpha1.Timeout{Request: dur("-1s"), Connect: dur("0s"), Idle: dur("soon")})
	for _, want := range []string{"request: must be greater than 0", "connect: must be greater than 0", "idle: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
