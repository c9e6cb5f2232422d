# Vault policy of the Envoy gateway ai (the cert agent beside Envoy in its pod logs in), least privilege: issue its own workload certificate
# (SPIFFE ID spiffe://bulkhead.local/ns/NAMESPACE/sa/gateway-ai, enforced by the PKI
# role), nothing else.
path "pki_int/issue/gateway-ai" {
  capabilities = ["update"]
}
