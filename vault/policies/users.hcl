# Vault policy of the users service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/users, enforced by the PKI role).
path "secret/data/bulkhead/users" {
  capabilities = ["read"]
}

path "pki_int/issue/users" {
  capabilities = ["update"]
}

# Short-lived database users of its own database, and their renewal.
path "database/creds/users" {
  capabilities = ["read"]
}
