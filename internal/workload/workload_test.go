package workload_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

func TestParseProxyID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want workload.ProxyID
	}{
		{"grpc/chat", workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "chat"}},
		{"gateway/bulkhead/ai", workload.ProxyID{Role: workload.RoleGateway, Namespace: "bulkhead", Name: "ai"}},
		{"ratelimit/default/", workload.ProxyID{Role: workload.RoleRateLimit, Namespace: "default"}},
		{"sidecar/default/api/10.0.0.5:9000=19000", workload.ProxyID{Role: workload.RoleSidecar, Namespace: "default", Name: "api", Inbound: "10.0.0.5:9000=19000"}},
	} {
		got, err := workload.ParseProxyID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseProxyID(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if back, err := workload.ParseProxyID(got.String()); err != nil || back != got {
			t.Errorf("%q does not round-trip: %q gives %+v, %v", tc.in, got.String(), back, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"grpc", "want ROLE/NAME"},
		{"proxy/default/x", `unknown role "proxy"`},
		{"grpc/default/", "name is empty"},
		{"grpc/default/chat/1.2.3.4:1=2", "only a sidecar has an inbound port"},
		{"sidecar/default/api/1.2.3.4:1", "want ADDRESS:PORT=APPPORT"},
		{"sidecar/default/api/host:1=2", "is not ip:port"},
		{"sidecar/default/api/1.2.3.4:0=2", "ports must be 1-65535"},
	} {
		if _, err := workload.ParseProxyID(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseProxyID(%q) = %v; want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		id       workload.ProxyID
		declared string
		want     string
	}{
		{workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"}, "", "spiffe://bulkhead.local/ns/default/sa/gateway-ai"},
		{workload.ProxyID{Role: workload.RoleRouter, Namespace: "edge", Name: "edge"}, "x", "spiffe://bulkhead.local/ns/edge/sa/router-edge"},
		{workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "auth-cache"}, "auth", "spiffe://bulkhead.local/ns/default/sa/auth"},
		{workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "chat"}, "", "spiffe://bulkhead.local/ns/default/sa/chat"},
		// Only a proxyless node may declare its account.
		{workload.ProxyID{Role: workload.RoleSidecar, Namespace: "default", Name: "api"}, "auth", "spiffe://bulkhead.local/ns/default/sa/api"},
	} {
		if got := workload.Identity(tc.id, tc.declared); got != tc.want {
			t.Errorf("Identity(%s, %q) = %s; want %s", tc.id, tc.declared, got, tc.want)
		}
	}
}
