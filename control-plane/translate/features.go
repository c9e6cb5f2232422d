package translate

import (
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/authorization"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/circuitbreaker"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/degradedresponse"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/extauth"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/fallback"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/faultinjection"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/healthcheck"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/ipaccess"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/jwt"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/loadbalancer"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/mtls"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/outlierdetection"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/ratelimit"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/retry"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/timeout"
)

// Features is every policy feature, in the order they apply: the one
// place where precedence between features is decided.
//
// The policy kinds apply one after the other, in the order of kinds
// below; a kind's policies each apply their features in this list's
// order, and a kind's Finish steps run once all its policies have
// applied. So a feature sees what the features above it did:
//
//   - BackendPolicy first: SecurityPolicy extAuth checks the authorization
//     Service's fallback, which BackendPolicy fallback declares; the
//     Gateways' degraded replies (degradedResponse's Finish) come from the
//     clusters BackendPolicies configured.
//   - SecurityPolicy next: RateLimitPolicy identity selectors are refused
//     on a listener without extAuth (a client could send the identity
//     headers itself).
//   - Within BackendPolicy, a route-level policy beats a Service-level one
//     and the oldest policy beats younger ones, feature by feature
//     (policies.Target.Claim); see policies/README.md.
//
// Adding a feature: a folder under control-plane/policies (retry is the
// worked example in control-plane/README.md) and one line here.
var Features = []policies.Feature{
	// BackendPolicy: what a route does, then what its clusters do.
	retry.Feature,
	timeout.Feature,
	faultinjection.Feature,
	loadbalancer.Feature,
	circuitbreaker.Feature,
	outlierdetection.Feature,
	healthcheck.Feature,
	degradedresponse.Feature,
	fallback.Feature,
	// SecurityPolicy: the Gateways' checks in the order their Envoy
	// filters run, then the Services' servers.
	extauth.Feature,
	ipaccess.Feature,
	mtls.Feature,
	authorization.Feature,
	jwt.Feature,
	// RateLimitPolicy.
	ratelimit.Feature,
}

// kinds are the policy kinds, in the order they apply.
var kinds = []policyKind{backendPolicies, securityPolicies, rateLimitPolicies}
