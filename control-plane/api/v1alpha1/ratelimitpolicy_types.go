package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RateLimitPolicy limits request rates. Local rules are enforced by each proxy
// on its own; global rules are counted across all proxies by the rate-limit
// service (envoyproxy/ratelimit, backed by Redis). It targets a Gateway (all
// its traffic), an HTTPRoute or GRPCRoute, or a Service (its sidecars and
// proxyless servers).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=bulkhead,shortName=rlp
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.ancestors[0].conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RateLimitPolicySpec `json:"spec"`
	Status PolicyStatus        `json:"status,omitempty"`
}

// RateLimitPolicyList is a list of RateLimitPolicy.
//
// +kubebuilder:object:root=true
type RateLimitPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RateLimitPolicy `json:"items"`
}

// RateLimitPolicySpec holds the rules.
//
// +kubebuilder:validation:XValidation:rule="has(self.local) || has(self.global)",message="a RateLimitPolicy must set local, global or both"
type RateLimitPolicySpec struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, (r.group == '' && r.kind == 'Service') || (r.group == 'gateway.networking.k8s.io' && (r.kind == 'Gateway' || r.kind == 'HTTPRoute' || r.kind == 'GRPCRoute')))",message="targetRefs may only name a Service (group \"\") or a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
	TargetRefs []PolicyTargetReference `json:"targetRefs"`

	// Local rules: each proxy counts on its own (a token bucket per proxy).
	//
	// +optional
	Local *RateLimitRules `json:"local,omitempty"`
	// Global rules: counted across every proxy by the rate-limit service.
	//
	// +optional
	Global *RateLimitRules `json:"global,omitempty"`
}

// RateLimitRules is an ordered list of rules; a request is limited by every
// rule whose selectors all match it.
type RateLimitRules struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(r, self.exists_one(o, o.name == r.name))",message="rule names must be unique"
	Rules []RateLimitRule `json:"rules"`
}

// RateLimitRule limits the requests its selectors match.
type RateLimitRule struct {
	// Name of the rule, unique in the policy; it names the rule's counters
	// and appears in logs and metrics.
	//
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// ClientSelectors must all match for the rule to apply; none means every
	// request.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	ClientSelectors []RateLimitSelector `json:"clientSelectors,omitempty"`
	Limit           RateLimitValue      `json:"limit"`
	// Shadow mode: the rule counts and reports (metrics, x-ratelimit-*
	// headers) but never rejects a request.
	//
	// +optional
	Shadow bool `json:"shadow,omitempty"`
}

// MatchType says how a selector compares a value. Distinct keeps one counter
// per distinct value (per key, per client address, …).
//
// +kubebuilder:validation:Enum=Exact;RegularExpression;Distinct
type MatchType string

const (
	MatchExact             MatchType = "Exact"
	MatchRegularExpression MatchType = "RegularExpression"
	MatchDistinct          MatchType = "Distinct"
)

// RateLimitSelector matches requests on one attribute; set exactly one of
// header, identity, sourceCIDR.
//
// +kubebuilder:validation:XValidation:rule="[has(self.header), has(self.identity), has(self.sourceCIDR)].filter(x, x).size() == 1",message="a selector sets exactly one of header, identity, sourceCIDR"
type RateLimitSelector struct {
	// +optional
	Header *HeaderSelector `json:"header,omitempty"`
	// Identity matches on what ext_authz established about the caller (the
	// identity headers auth returns).
	//
	// +optional
	Identity *IdentitySelector `json:"identity,omitempty"`
	// SourceCIDR matches the client address (as resolved by the proxy, see
	// the X-Forwarded-For handling of SecurityPolicy).
	//
	// +optional
	SourceCIDR *CIDRSelector `json:"sourceCIDR,omitempty"`
}

// HeaderSelector matches a request header.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'Distinct' ? !has(self.value) : has(self.value)",message="value is required for Exact and RegularExpression, and not allowed for Distinct"
type HeaderSelector struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string    `json:"name"`
	Type MatchType `json:"type"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Value *string `json:"value,omitempty"`
	// Invert matches requests whose header does not match.
	//
	// +optional
	Invert bool `json:"invert,omitempty"`
}

// IdentityField is an attribute of the authenticated caller.
//
// +kubebuilder:validation:Enum=KeyID;AccountID;Tier
type IdentityField string

const (
	IdentityKeyID     IdentityField = "KeyID"
	IdentityAccountID IdentityField = "AccountID"
	IdentityTier      IdentityField = "Tier"
)

// IdentitySelector matches the caller's identity.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'Distinct' ? !has(self.value) : has(self.value)",message="value is required for Exact and RegularExpression, and not allowed for Distinct"
type IdentitySelector struct {
	Field IdentityField `json:"field"`
	Type  MatchType     `json:"type"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Value *string `json:"value,omitempty"`
}

// CIDRSelector matches the client address.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'RegularExpression'",message="sourceCIDR.type is Exact (one counter for the range) or Distinct (one counter per address in the range)"
// +kubebuilder:validation:XValidation:rule="isCIDR(self.cidr)",message="sourceCIDR.cidr must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
type CIDRSelector struct {
	// +kubebuilder:validation:MaxLength=64
	CIDR string    `json:"cidr"`
	Type MatchType `json:"type"`
}

// RateLimitUnit is the window of a limit.
//
// +kubebuilder:validation:Enum=Second;Minute;Hour;Day
type RateLimitUnit string

// RateLimitValue is a number of requests per unit.
type RateLimitValue struct {
	// +kubebuilder:validation:Minimum=1
	Requests int64         `json:"requests"`
	Unit     RateLimitUnit `json:"unit"`
}
