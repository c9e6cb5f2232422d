# Vault policy of the models service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/models, enforced by the PKI role).
path "secret/data/bulkhead/models" {
  capabilities = ["read"]
}

path "pki_int/issue/models" {
  capabilities = ["update"]
}

# Short-lived database users of its own database, and their renewal.
path "database/creds/models" {
  capabilities = ["read"]
}

# The same upstream API keys, read by the readiness probe of Model objects
# (GET {baseURL}/models with the key, as inference will call it).
path "secret/data/bulkhead/upstreams/*" {
  capabilities = ["read"]
}
