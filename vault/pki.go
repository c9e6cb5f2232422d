package vault

import "time"

// The mesh's PKI in Vault: a root CA (mount "pki", ten years) that only
// signs the intermediate (mount "pki_int", five years), which issues the
// short-lived workload certificates. One PKI role per workload identity,
// named after it, allows exactly its SPIFFE ID as URI SAN and nothing else
// (no common name, no DNS names).
const (
	RootMount         = "pki"
	IntermediateMount = "pki_int"
	// WorkloadTTL is the longest lifetime of a workload certificate; a
	// workload renews at two thirds of it.
	WorkloadTTL = time.Hour
)

// Operator is the identity of the platform's operator tools (`bulkhead up`
// creating the development key, the tests): spiffe://bulkhead.local/ns/
// default/sa/operator. policies/mesh lets it call the services'
// administrative methods.
const Operator = "operator"

// The database secrets engine: one connection (PostgreSQL, with the
// administrative user) and one role per service that creates short-lived
// users of the service's database.
const (
	DatabaseMount      = "database"
	DatabaseConnection = "bulkhead-postgres"
	// DatabaseCredentialTTL is the lifetime of a database user; a service
	// takes new credentials at two thirds of it.
	DatabaseCredentialTTL = time.Hour
)

// ControlPlane is the control plane's identity; its PKI role
// (EnvoyIssuerRole) lets it issue the workload certificates it serves to
// proven Envoy nodes over SDS (any identity of the trust domain), and
// nothing else can.
const (
	ControlPlane    = "control-plane"
	EnvoyIssuerRole = "envoy-sds"
)

// RateLimit is the identity of the rate-limit service (envoyproxy/ratelimit):
// its workload certificate proves it to the control plane, and its Redis
// user owns the keys "ratelimit:*".
const RateLimit = "ratelimit"
