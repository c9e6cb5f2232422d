# Vault policy of the training service, least privilege: read its own
# secret (its Kafka user), and issue its own workload certificate (SPIFFE
# ID spiffe://bulkhead.local/ns/default/sa/training, enforced by the PKI
# role).
path "secret/data/bulkhead/training" {
  capabilities = ["read"]
}

path "pki_int/issue/training" {
  capabilities = ["update"]
}

# Short-lived database users of its own database (DB Training), and their
# renewal.
path "database/creds/training" {
  capabilities = ["read"]
}
