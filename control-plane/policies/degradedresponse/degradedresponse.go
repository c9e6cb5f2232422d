// Package degradedresponse applies BackendPolicy.degradedResponse: the reply
// an Envoy proxy sends at once when no upstream is left for a request (no
// healthy endpoint, circuit breaker overflow, upstream timeout, connection
// failure): the OpenAI error JSON with the DeepSeek status code and
// Retry-After, never an HTML or empty body. Proxyless clients get the gRPC
// status of the failure instead (UNAVAILABLE), which the api service maps.
package degradedresponse

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// Build validates a degraded response and renders its body.
func Build(spec *v1alpha1.DegradedResponse) (*ir.DegradedResponse, error) {
	out := &ir.DegradedResponse{StatusCode: 503}
	if spec.StatusCode != nil {
		out.StatusCode = uint32(*spec.StatusCode)
	}
	typ := spec.Type
	if typ == "" {
		typ = "overloaded"
	}
	if spec.RetryAfter != nil {
		d, err := spec.RetryAfter.Parse()
		if err != nil {
			return nil, fmt.Errorf("retryAfter: %w", err)
		}
		out.RetryAfterSeconds = uint32(math.Ceil(d.Seconds()))
	}
	// The OpenAI/DeepSeek error object.
	body, err := json.Marshal(map[string]any{"error": map[string]any{
		"message": spec.Message,
		"type":    typ,
		"param":   nil,
		"code":    typ,
	}})
	if err != nil {
		return nil, err
	}
	out.Body = string(body)
	return out, nil
}
