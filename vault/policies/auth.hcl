# Vault policy of the auth service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/auth, enforced by the PKI role).
path "secret/data/bulkhead/auth" {
  capabilities = ["read"]
}

path "pki_int/issue/auth" {
  capabilities = ["update"]
}

# Short-lived database users of its own database, and their renewal.
path "database/creds/auth" {
  capabilities = ["read"]
}
