package degradedresponse_test

import (
	"encoding/json"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/degradedresponse"
)

// The reply is the OpenAI/DeepSeek error object: 503 overloaded by
// default, Retry-After rounded up to whole seconds.
func TestBuildRendersTheAPIsErrorShape(t *testing.T) {
	after := v1alpha1.Duration("1500ms")
	dr, err := degradedresponse.Build(&v1alpha1.DegradedResponse{Message: "busy", RetryAfter: &after})
	if err != nil || dr.StatusCode != 503 || dr.RetryAfterSeconds != 2 {
		t.Fatalf("%+v, %v", dr, err)
	}
	var body struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		}
	}
	if err := json.Unmarshal([]byte(dr.Body), &body); err != nil || body.Error.Message != "busy" || body.Error.Type != "overloaded" || body.Error.Code != "overloaded" || body.Error.Param != nil {
		t.Fatalf("body %s: %+v %v", dr.Body, body, err)
	}
	bad := v1alpha1.Duration("soon")
	if _, err := degradedresponse.Build(&v1alpha1.DegradedResponse{RetryAfter: &bad}); err == nil {
		t.Fatal("a Retry-After that is no duration was accepted")
	}
}
