// Package degradedresponse is BackendPolicy.degradedResponse: the reply an
// Envoy proxy sends at once when no upstream is left for a request (no
// healthy endpoint, circuit breaker overflow, upstream timeout, connection
// failure): the OpenAI error JSON with the DeepSeek status code and
// Retry-After, never an HTML or empty body. Proxyless clients get the gRPC
// status of the failure instead (UNAVAILABLE), which the api service maps.
//
// Attaches to a Service only (its clusters). Once every BackendPolicy has
// applied, each Gateway listener takes the degraded reply of the Services
// its routes reach. One Envoy listener has one local-reply configuration:
// when its Services disagree, the Service first by name wins and the
// Gateway's status says so (condition DegradedResponseConflict).
package degradedresponse

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
)

// Feature is BackendPolicy.degradedResponse.
var Feature = policies.Define[*v1alpha1.BackendPolicy, v1alpha1.DegradedResponse, *ir.DegradedResponse]{
	Meta:    policies.Meta{Name: "degradedResponse", Kind: policies.BackendPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.BackendPolicy) *v1alpha1.DegradedResponse { return p.Spec.DegradedResponse },
	Refusal: policies.ServiceOnly("spec.degradedResponse"),
	Build:   policies.Check[*v1alpha1.BackendPolicy]("spec.degradedResponse", Build),
	Apply: func(dr *ir.DegradedResponse, t *policies.Target, _ policies.Env) {
		for _, c := range t.Clusters {
			t.Claim(c, "degradedResponse", func() { c.Degraded = dr })
		}
	},
	Finish: gatewayReplies,
}

// ConflictCondition is the Gateway condition that says two Services
// behind one listener have different degraded replies.
const ConflictCondition = "DegradedResponseConflict"

// gatewayReplies gives each Gateway listener the degraded response of the
// Services its routes reach.
func gatewayReplies(env policies.Env) {
	for _, gw := range env.Gateways() {
		for _, lis := range gw.Listeners {
			var names []string
			seen := map[string]bool{}
			for _, vh := range lis.VirtualHosts {
				for _, r := range vh.Routes {
					for _, b := range r.Backends {
						if c := env.Cluster(b.Cluster); c != nil && c.Degraded != nil && !seen[c.Name] {
							seen[c.Name] = true
							names = append(names, c.Name)
						}
					}
				}
			}
			if len(names) == 0 {
				continue
			}
			sort.Strings(names)
			chosen := env.Cluster(names[0]).Degraded
			lis.Degraded = chosen
			for _, n := range names[1:] {
				if d := env.Cluster(n).Degraded; *d != *chosen {
					gw.Conflict("spec.listeners", ConflictCondition, fmt.Sprintf("listener %s: Services %s and %s have different degraded responses; one listener can answer only one, %s's applies", lis.Name, names[0], n, names[0]))
				}
			}
		}
	}
}

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
