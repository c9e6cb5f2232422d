package testenv_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

func TestWait(t *testing.T) {
	calls := 0
	if err := testenv.Wait(time.Minute, func() error {
		calls++
		return testenv.Until(calls == 3, "%d calls", calls)
	}); err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls; want nil after 3", err, calls)
	}
	err := testenv.Wait(30*time.Millisecond, func() error { return errors.New("the backend is still down") })
	if err == nil || !strings.Contains(err.Error(), "not within 30ms: the backend is still down") {
		t.Fatalf("Wait past its bound = %v; want the last reason", err)
	}
}
