package ir

import "strings"

// MTLS modes of a Service's servers.
const (
	MTLSStrict     = "STRICT"
	MTLSPermissive = "PERMISSIVE"
	MTLSDisable    = "DISABLE"
)

// UpstreamTLS makes the clients of a cluster originate mTLS with their
// workload certificate, and accept only a server whose certificate chains
// to the mesh's trust bundle and carries a URI SAN starting with
// SANPrefix.
type UpstreamTLS struct {
	SANPrefix string `json:"sanPrefix"`
}

// InboundSecurity is what a Service's SecurityPolicy asks of its servers.
type InboundSecurity struct {
	// Mode is STRICT (mTLS required), PERMISSIVE or DISABLE. A proxyless
	// gRPC server cannot tell TLS from plaintext on one port (grpc-go
	// matches no transport protocol), so for it PERMISSIVE means plaintext;
	// Envoy sidecars accept both.
	Mode string `json:"mode,omitempty"`
	// RBAC authorizes calls; nil: every authenticated call is allowed.
	RBAC *RBAC `json:"rbac,omitempty"`
	// Source is the SecurityPolicy ("namespace/name").
	Source string `json:"source,omitempty"`
}

// Strict reports whether the servers require mTLS.
func (s *InboundSecurity) Strict() bool { return s != nil && s.Mode == MTLSStrict }

// RBAC is server-side authorization: Deny rules first, then Allow rules,
// then the default.
type RBAC struct {
	Deny         []RBACRule `json:"deny,omitempty"`
	Allow        []RBACRule `json:"allow,omitempty"`
	DefaultAllow bool       `json:"defaultAllow"`
}

// RBACRule matches a call when it matches every non-empty list.
type RBACRule struct {
	Name string `json:"name"`
	// Principals: SPIFFE IDs, exact or ending in "/*" (a prefix).
	Principals []string `json:"principals,omitempty"`
	// Methods: "/pkg.Service/Method", or "/pkg.Service/*" (every method).
	Methods []string `json:"methods,omitempty"`
	// Paths: HTTP path prefixes.
	Paths []string `json:"paths,omitempty"`
}

// WildcardPrefix returns the prefix of a pattern ending in "/*" and true,
// or the pattern and false.
func WildcardPrefix(pattern string) (string, bool) {
	if p, ok := strings.CutSuffix(pattern, "/*"); ok {
		return p + "/", true
	}
	return pattern, false
}

// The SDS secrets an Envoy proxy gets once it has proved its identity:
// its workload certificate and key, and the mesh's trust bundle.
const (
	WorkloadSecret    = "workload"
	TrustBundleSecret = "trust-bundle"
)

// ExtAuthz asks an Envoy ext_authz gRPC service (auth's Check) about each
// request before anything else runs on a Gateway listener.
type ExtAuthz struct {
	// Cluster of the authorization service; its failover (auth's cache-only
	// pool) is the cluster's own fallback.
	Cluster string    `json:"cluster"`
	Timeout *Duration `json:"timeout,omitempty"`
	// FailOpen lets requests through when the service cannot answer
	// (default: fail closed).
	FailOpen bool `json:"failOpen,omitempty"`
	// HeadersToCheck are the request headers sent (empty: all).
	HeadersToCheck []string `json:"headersToCheck,omitempty"`
	Source         string   `json:"source,omitempty"`
}

// IPAccess allows or denies clients by address at an Envoy listener. Deny
// wins; when Allow is set, addresses outside it are denied.
type IPAccess struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
	// XFFNumTrustedHops: how many proxies in front append to
	// X-Forwarded-For (0: the connection's peer is the client).
	XFFNumTrustedHops uint32 `json:"xffNumTrustedHops,omitempty"`
	Source            string `json:"source,omitempty"`
}

// JWTRequirement is what a route requires: a bearer token valid for one of
// the providers (a SecurityPolicy's jwt).
type JWTRequirement struct {
	// Name is the policy's "namespace/name".
	Name      string        `json:"name"`
	Providers []JWTProvider `json:"providers"`
}

// JWTProvider is an issuer and where its keys are published.
type JWTProvider struct {
	// Name is unique per listener: "namespace/policy/provider".
	Name      string   `json:"name"`
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences,omitempty"`
	// JWKSCluster and JWKSURI fetch the key set.
	JWKSCluster   string    `json:"jwksCluster"`
	JWKSURI       string    `json:"jwksURI"`
	CacheDuration *Duration `json:"cacheDuration,omitempty"`
	// ClaimToHeaders copies claims (Name) into request headers (Value).
	ClaimToHeaders []Header `json:"claimToHeaders,omitempty"`
}
