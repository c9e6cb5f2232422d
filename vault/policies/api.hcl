# Vault policy of the api service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/api, enforced by the PKI role).
path "secret/data/bulkhead/api" {
  capabilities = ["read"]
}

path "pki_int/issue/api" {
  capabilities = ["update"]
}
