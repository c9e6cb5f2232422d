# Vault policy of the operator's tools in a cluster (the job that makes the development key), least privilege: issue its own workload certificate
# (SPIFFE ID spiffe://bulkhead.local/ns/NAMESPACE/sa/operator, enforced by the PKI
# role), nothing else.
path "pki_int/issue/operator" {
  capabilities = ["update"]
}
