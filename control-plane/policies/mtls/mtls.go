// Package mtls is SecurityPolicy.mtls: whether a Service's servers require
// mTLS. STRICT: servers require a client certificate of the mesh (its
// SPIFFE ID is then the caller's principal for authorization), and the
// clients of the Service's gRPC (h2c) ports originate mTLS with their
// workload certificate, accepting only a server of the trust domain.
// PERMISSIVE: Envoy sidecars accept both; a proxyless gRPC server cannot
// tell TLS from plaintext on one port (grpc-go matches no transport
// protocol), so for it PERMISSIVE means plaintext. DISABLE: plaintext.
//
// Attaches to a Service only; one SecurityPolicy per Service (translate's
// rule for the kind). A plain HTTP port (api's public API) is served by the
// app itself and stays plaintext until a sidecar fronts it.
package mtls

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Feature is SecurityPolicy.mtls.
var Feature = policies.Define[*v1alpha1.SecurityPolicy, v1alpha1.MTLS, string]{
	Meta:    policies.Meta{Name: "mtls", Kind: policies.SecurityPolicy, Attaches: policies.Service},
	Field:   func(p *v1alpha1.SecurityPolicy) *v1alpha1.MTLS { return p.Spec.MTLS },
	Refusal: policies.ServersOnly("mtls"),
	// The mode's values are the CRD's enum (STRICT, PERMISSIVE, DISABLE).
	Build: func(m *v1alpha1.MTLS, _ policies.Context[*v1alpha1.SecurityPolicy]) (string, bool) {
		return string(m.Mode), true
	},
	Apply: func(mode string, t *policies.Target, env policies.Env) {
		t.Inbound.Mode = mode
		if !t.Inbound.Strict() {
			return
		}
		for _, c := range env.Clusters(t.Namespace, t.Name) {
			if c.HTTP2 {
				c.TLS = &ir.UpstreamTLS{SANPrefix: workload.TrustDomainPrefix}
			}
		}
	},
}
