// Package policies_test checks the platform's own resources in mesh/: they
// translate with no problem, as `bulkhead validate -f policies/mesh` does.
package policies_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/envoysim"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

func TestPlatformPoliciesAreValid(t *testing.T) {
	r := controlplane.Offline("mesh")
	for _, err := range r.Errors {
		t.Error(err)
	}
	for _, o := range r.Status.Objects() {
		for _, c := range o.Conditions {
			if c.Status != "True" {
				t.Errorf("%s %s/%s: %s %s: %s", o.Kind, o.Namespace, o.Name, c.Type, c.Reason, c.Message)
			}
		}
	}
	if len(r.Clusters) < 9 {
		t.Fatalf("%d clusters; want one per platform Service", len(r.Clusters))
	}
	if _, err := xds.Build(r.Config(workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "chat"})); err != nil {
		t.Fatal(err)
	}
}

// edgeEnvoys are the router and the two gateways of mesh/edge.yaml.
var edgeEnvoys = []workload.ProxyID{
	{Role: workload.RoleRouter, Namespace: "default", Name: "edge"},
	{Role: workload.RoleGateway, Namespace: "default", Name: "identity"},
	{Role: workload.RoleGateway, Namespace: "default", Name: "ai"},
}

// The Envoy configurations of the edge router and the two gateways, and the
// rate-limit service's rules, as the
// control plane builds them from mesh/ (every resource ValidateAll-clean),
// against goldens in testdata/ (BULKHEAD_UPDATE_GOLDEN=1 rewrites them;
// review the diff).
func TestEdgeGolden(t *testing.T) {
	r := controlplane.Offline("mesh")
	for _, id := range append(edgeEnvoys, workload.ProxyID{Role: workload.RoleRateLimit, Namespace: "default", Name: "ratelimit"}) {
		res, err := xds.Build(r.Config(id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		got, err := res.YAML()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", string(id.Role)+"-"+id.Name+".xds.yaml")
		if os.Getenv("BULKHEAD_UPDATE_GOLDEN") != "" {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run `make golden`)", err)
		}
		if string(want) != string(got) {
			t.Errorf("%s differs from the output for %s (run `make golden` and review the diff)", path, id)
		}
	}
}

// Every reply the gateways' and the router's Envoy make themselves has the
// API's error shape with the DeepSeek status, never an HTML or empty body:
// the generated local reply configuration, applied as Envoy applies it.
func TestEdgeLocalRepliesHaveTheAPIShape(t *testing.T) {
	r := controlplane.Offline("mesh")
	for _, id := range edgeEnvoys {
		res, err := xds.Build(r.Config(id))
		if err != nil {
			t.Fatal(err)
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := res[resourcev3.ListenerType][0].(*listenerv3.Listener).GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		authDenial := `{"error":{"message":"Authentication Fails, Your api key is invalid","type":"authentication_error","param":null,"code":"invalid_api_key"}}`
		for _, tc := range []struct {
			what       string
			status     uint32
			flags      []string
			body       string
			wantStatus uint32
			wantCode   string
			retryAfter string
		}{
			{"no healthy upstream", 503, []string{"UH"}, "no healthy upstream", 503, "overloaded", "5"},
			{"circuit breaker overflow", 503, []string{"UO"}, "upstream overflow", 503, "overloaded", "5"},
			{"upstream timeout", 504, []string{"UT"}, "upstream request timeout", 503, "overloaded", "5"},
			{"rate limited", 429, []string{"RL"}, "", 429, "rate_limit_exceeded", ""},
			{"auth unreachable (fail closed)", 503, []string{"UAEX"}, "", 503, "overloaded", "1"},
			{"auth's denial", 401, []string{"UAEX"}, authDenial, 401, "invalid_api_key", ""},
			{"invalid token (jwt_authn)", 401, nil, "Jwt is missing", 401, "invalid_token", ""},
			{"body too large", 413, nil, "Payload Too Large", 413, "request_too_large", ""},
			{"address refused", 403, nil, "RBAC: access denied", 403, "permission_denied", ""},
			{"no route", 404, nil, "", 404, "not_found", ""},
			{"anything else", 502, nil, "upstream connect error", 502, "upstream_reset_before_response_started", ""},
		} {
			got, err := envoysim.LocalReply(hcm.GetLocalReplyConfig(), tc.status, tc.flags, tc.body, "upstream_reset_before_response_started")
			if err != nil {
				t.Fatal(err)
			}
			var shape struct {
				Error struct {
					Message, Type, Code string
					Param               *string
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(got.Body), &shape); err != nil || shape.Error.Message == "" || shape.Error.Type == "" {
				t.Errorf("%s %s: body %q is not the API's error shape (%v)", id, tc.what, got.Body, err)
				continue
			}
			if got.Status != tc.wantStatus || shape.Error.Code != tc.wantCode || got.Headers["retry-after"] != tc.retryAfter {
				t.Errorf("%s %s: %d %s Retry-After %q; want %d %s Retry-After %q", id, tc.what, got.Status, shape.Error.Code, got.Headers["retry-after"], tc.wantStatus, tc.wantCode, tc.retryAfter)
			}
		}
	}
}
