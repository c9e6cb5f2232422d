# Vault policy of the Envoy gateway identity (the cert agent beside Envoy in its pod logs in), least privilege: issue its own workload certificate
# (SPIFFE ID spiffe://bulkhead.local/ns/NAMESPACE/sa/gateway-identity, enforced by the PKI
# role), nothing else.
path "pki_int/issue/gateway-identity" {
  capabilities = ["update"]
}
