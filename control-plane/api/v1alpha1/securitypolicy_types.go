package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecurityPolicy authenticates and authorises traffic: mTLS mode, external
// authorization (auth's Check), JWT validation, IP allow/deny lists and
// authorization rules on SPIFFE principals and gRPC methods or HTTP paths.
// It targets a Gateway, an HTTPRoute or GRPCRoute, or a Service (its
// sidecars and proxyless servers).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=bulkhead,shortName=sp
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SecurityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SecurityPolicySpec `json:"spec"`
	Status PolicyStatus       `json:"status,omitempty"`
}

// SecurityPolicyList is a list of SecurityPolicy.
//
// +kubebuilder:object:root=true
type SecurityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SecurityPolicy `json:"items"`
}

// SecurityPolicySpec is what the targets require of their callers.
//
// +kubebuilder:validation:XValidation:rule="has(self.mtls) || has(self.extAuth) || has(self.jwt) || has(self.ipAccess) || has(self.authorization)",message="a SecurityPolicy must set at least one of mtls, extAuth, jwt, ipAccess, authorization"
type SecurityPolicySpec struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, (r.group == '' && r.kind == 'Service') || (r.group == 'gateway.networking.k8s.io' && (r.kind == 'Gateway' || r.kind == 'HTTPRoute' || r.kind == 'GRPCRoute')))",message="targetRefs may only name a Service (group \"\") or a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
	TargetRefs []PolicyTargetReference `json:"targetRefs"`

	// +optional
	MTLS *MTLS `json:"mtls,omitempty"`
	// +optional
	ExtAuth *ExtAuth `json:"extAuth,omitempty"`
	// +optional
	JWT *JWT `json:"jwt,omitempty"`
	// +optional
	IPAccess *IPAccess `json:"ipAccess,omitempty"`
	// +optional
	Authorization *Authorization `json:"authorization,omitempty"`
}

// MTLSMode is how a server treats plaintext.
//
// +kubebuilder:validation:Enum=STRICT;PERMISSIVE;DISABLE
type MTLSMode string

const (
	// MTLSStrict accepts only mutual TLS with a workload certificate.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSPermissive accepts mutual TLS and plaintext (migration).
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSDisable serves plaintext only.
	MTLSDisable MTLSMode = "DISABLE"
)

// MTLS sets the transport security of the targets' servers.
type MTLS struct {
	Mode MTLSMode `json:"mode"`
}

// ExtAuth sends each request to an Envoy ext_authz gRPC service (auth's
// Check) before it is routed.
type ExtAuth struct {
	// BackendRef of the authorization service.
	BackendRef BackendRef `json:"backendRef"`
	// Fallback backend tried when the primary has no healthy endpoint (auth's
	// cache-only pool).
	//
	// +optional
	Fallback *BackendRef `json:"fallback,omitempty"`
	// Timeout of each check (default 200ms).
	//
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`
	// FailOpen lets requests through when the service cannot answer. The
	// default, false, fails closed.
	//
	// +optional
	FailOpen bool `json:"failOpen,omitempty"`
	// HeadersToCheck are the request headers sent to the service (default:
	// all).
	//
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	HeadersToCheck []string `json:"headersToCheck,omitempty"`
}

// JWT validates bearer tokens against providers; a request must carry a
// token valid for one of them.
type JWT struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:XValidation:rule="self.all(p, self.exists_one(o, o.name == p.name))",message="provider names must be unique"
	Providers []JWTProvider `json:"providers"`
}

// JWTProvider is an issuer of tokens and where its keys are.
type JWTProvider struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// Issuer ("iss") required of tokens.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Issuer string `json:"issuer"`
	// Audiences of which the token must name one ("aud"); none: any.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	Audiences []string `json:"audiences,omitempty"`
	// JWKS is where the public keys are published.
	JWKS JWKSSource `json:"jwks"`
	// ClaimToHeaders copies claims into request headers for the upstream.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`
}

// JWKSSource is an HTTP(S) URI of a JSON Web Key Set served by a backend.
type JWKSSource struct {
	// BackendRef of the service that serves the key set.
	BackendRef BackendRef `json:"backendRef"`
	// Path of the key set on that service.
	//
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path"`
	// CacheDuration of the fetched keys (default 5m).
	//
	// +optional
	CacheDuration *Duration `json:"cacheDuration,omitempty"`
}

// ClaimToHeader copies one claim to one header.
type ClaimToHeader struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Header string `json:"header"`
}

// IPAccess allows or denies clients by address, and says how the client's
// address is found (xffNumTrustedHops). Deny wins over allow; when allow is
// set, addresses outside it are denied. Enforced by Envoy Gateways (403).
//
// +kubebuilder:validation:XValidation:rule="has(self.allow) || has(self.deny) || has(self.xffNumTrustedHops)",message="ipAccess must set allow, deny or xffNumTrustedHops"
type IPAccess struct {
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="allow entries must be CIDRs such as 10.0.0.0/8 or 2001:db8::/32"
	// +kubebuilder:validation:items:MaxLength=64
	Allow []string `json:"allow,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="deny entries must be CIDRs such as 10.0.0.0/8 or 2001:db8::/32"
	// +kubebuilder:validation:items:MaxLength=64
	Deny []string `json:"deny,omitempty"`
	// XFFNumTrustedHops: how many proxies in front of the target append to
	// X-Forwarded-For; the client address is the entry that many hops from
	// the right. 0 (default) uses the connection's peer address.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8
	XFFNumTrustedHops int32 `json:"xffNumTrustedHops,omitempty"`
}

// AuthorizationAction is what a matching rule does.
//
// +kubebuilder:validation:Enum=Allow;Deny
type AuthorizationAction string

const (
	ActionAllow AuthorizationAction = "Allow"
	ActionDeny  AuthorizationAction = "Deny"
)

// Authorization decides, per request, from the caller's SPIFFE identity and
// what it calls. Deny rules are evaluated first; then a request matching an
// Allow rule is allowed; otherwise defaultAction applies.
type Authorization struct {
	// DefaultAction when no rule matches.
	DefaultAction AuthorizationAction `json:"defaultAction"`
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(r, self.exists_one(o, o.name == r.name))",message="rule names must be unique"
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule matches callers and calls. Empty lists match anything;
// a request matches the rule when it matches every non-empty list.
//
// +kubebuilder:validation:XValidation:rule="has(self.principals) || has(self.methods) || has(self.paths)",message="a rule must set at least one of principals, methods, paths"
type AuthorizationRule struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name   string              `json:"name"`
	Action AuthorizationAction `json:"action"`
	// Principals are SPIFFE IDs of callers, exact or with a trailing "/*"
	// wildcard: spiffe://bulkhead.local/ns/default/sa/chat,
	// spiffe://bulkhead.local/ns/default/*.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.all(p, p.startsWith('spiffe://'))",message="principals must be SPIFFE IDs (spiffe://trust-domain/path)"
	Principals []string `json:"principals,omitempty"`
	// Methods are gRPC methods, "/package.Service/Method", or every method of
	// a service, "/package.Service/*".
	//
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^/[A-Za-z_][A-Za-z0-9_.]*/([A-Za-z_][A-Za-z0-9_]*|\*)$`
	Methods []string `json:"methods,omitempty"`
	// Paths are HTTP path prefixes ("/v1/chat/").
	//
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^/[^\s]*$`
	Paths []string `json:"paths,omitempty"`
}
