# Vault policy of the chat service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/chat, enforced by the PKI role).
path "secret/data/bulkhead/chat" {
  capabilities = ["read"]
}

path "pki_int/issue/chat" {
  capabilities = ["update"]
}

# Short-lived database users of its own database, and their renewal.
path "database/creds/chat" {
  capabilities = ["read"]
}
