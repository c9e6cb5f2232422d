# Vault policy of the webhooks service, least privilege: read its own
# secret (the key that seals endpoint secrets, its Kafka user), and issue
# its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/webhooks, enforced by the PKI role).
path "secret/data/bulkhead/webhooks" {
  capabilities = ["read"]
}

path "pki_int/issue/webhooks" {
  capabilities = ["update"]
}

# Short-lived database users of its own database (DB Webhooks), and their
# renewal.
path "database/creds/webhooks" {
  capabilities = ["read"]
}
