# Vault policy of the rate-limit service (envoyproxy/ratelimit, which cannot read Vault: the cert agent beside it in its pod logs in), least privilege: issue its own workload certificate
# (SPIFFE ID spiffe://bulkhead.local/ns/NAMESPACE/sa/ratelimit, enforced by the PKI
# role), nothing else.
path "pki_int/issue/ratelimit" {
  capabilities = ["update"]
}
