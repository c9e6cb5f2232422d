# Vault policy of the api service: read its own secret, nothing else.
path "secret/data/bulkhead/api" {
  capabilities = ["read"]
}
