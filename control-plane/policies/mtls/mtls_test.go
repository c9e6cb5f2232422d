package mtls_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/mtls"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/policytest"
)

// STRICT: the servers require mTLS and the clients of the Service's gRPC
// ports originate it; its plain HTTP port is left alone, and so is every
// port of a PERMISSIVE Service.
func TestApply(t *testing.T) {
	grpc, metrics := policytest.Cluster("users", "default", 9000, true), policytest.Cluster("users", "default", 9090, false)
	env := &policytest.Env{ClusterList: []*ir.Cluster{grpc, metrics}}
	tg := &policies.Target{Kind: "Service", Namespace: "default", Name: "users", Inbound: &ir.InboundSecurity{Mode: ir.MTLSDisable}}
	mtls.Feature.ApplyTo(ir.MTLSStrict, tg, env)
	if !tg.Inbound.Strict() || grpc.TLS == nil || grpc.TLS.SANPrefix != "spiffe://bulkhead.local/" || metrics.TLS != nil {
		t.Fatalf("inbound %+v, grpc %+v, metrics %+v", tg.Inbound, grpc.TLS, metrics.TLS)
	}
	grpc.TLS = nil
	mtls.Feature.ApplyTo(ir.MTLSPermissive, tg, env)
	if tg.Inbound.Strict() || grpc.TLS != nil {
		t.Fatalf("PERMISSIVE: inbound %+v, grpc %+v", tg.Inbound, grpc.TLS)
	}
}
