package workload

// TrustDomain is the mesh's SPIFFE trust domain.
const TrustDomain = "bulkhead.local"

// TrustDomainPrefix is what every identity of the mesh starts with.
const TrustDomainPrefix = "spiffe://" + TrustDomain + "/"

// SPIFFEID is the identity of the workloads of a service account:
// spiffe://bulkhead.local/ns/NAMESPACE/sa/ACCOUNT.
func SPIFFEID(namespace, account string) string {
	return TrustDomainPrefix + "ns/" + namespace + "/sa/" + account
}

// Account is the service account a proxy runs as, and so the identity it
// must prove: a Gateway's Envoy runs as gateway-NAME, a router's as
// router-NAME; a proxyless application or a sidecar as its Service's
// account, unless a proxyless node declares another in its metadata
// (declared: auth's cache-only pool is Service auth-cache run by account
// auth).
func Account(id ProxyID, declared string) string {
	switch id.Role {
	case RoleGateway:
		return "gateway-" + id.Name
	case RoleRouter:
		return "router-" + id.Name
	case RoleGRPC:
		if declared != "" {
			return declared
		}
	}
	return id.Name
}

// Identity is the SPIFFE ID a proxy must prove (Account in its namespace).
func Identity(id ProxyID, declared string) string {
	return SPIFFEID(id.Namespace, Account(id, declared))
}
