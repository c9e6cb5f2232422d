# Vault policy of the Envoy edge router (the cert agent beside Envoy in its pod logs in), least privilege: issue its own workload certificate
# (SPIFFE ID spiffe://bulkhead.local/ns/NAMESPACE/sa/router-edge, enforced by the PKI
# role), nothing else.
path "pki_int/issue/router-edge" {
  capabilities = ["update"]
}
