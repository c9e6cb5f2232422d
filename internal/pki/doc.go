// Package pki is how a workload gets its credentials from Vault: it logs in
// (AppRole, or Kubernetes service account in a cluster), issues workload
// certificates from the mesh's PKI (one SPIFFE ID each), writes them where
// workloads read them, and issues the certificates the control plane serves
// to Envoy nodes over SDS (Issuer). Services, the control plane and the
// provisioning all use it; it depends on the Vault API client, the Vault
// layout (package vault) and workload identities only.
package pki
