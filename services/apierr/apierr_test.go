package apierr_test

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

func TestFromGRPC(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
		param  any
		retry  string
	}{
		{platform.InvalidField("temperature", "must be in [0, 2]"), 422, "invalid_parameter", "temperature", ""},
		{status.Error(codes.Unauthenticated, "bad key"), 401, "invalid_api_key", nil, ""},
		{platform.Reason(codes.FailedPrecondition, apierr.ReasonBudget, 0, "no money"), 402, "insufficient_balance", nil, ""},
		{platform.Reason(codes.ResourceExhausted, apierr.ReasonConcurrency, 2500*time.Millisecond, "busy"), 429, "concurrency_limit_exceeded", nil, "3"},
		{platform.Reason(codes.ResourceExhausted, apierr.ReasonTPM, 0, "tpm"), 429, "rate_limit_exceeded", nil, "1"},
		{status.Error(codes.Unavailable, "no healthy upstream"), 503, "overloaded", nil, "1"},
		{status.Error(codes.Internal, "boom"), 500, "internal_error", nil, ""},
	} {
		e := apierr.FromGRPC(c.err)
		var body struct {
			Error struct {
				Message, Type, Code string
				Param               any
			}
		}
		if err := json.Unmarshal(e.Body(), &body); err != nil {
			t.Fatal(err)
		}
		if e.Status != c.status || body.Error.Code != c.code || body.Error.Param != c.param || e.RetryAfterSeconds() != c.retry || body.Error.Message == "" || body.Error.Type == "" {
			t.Errorf("%v → %d %s", c.err, e.Status, e.Body())
		}
	}
}
