# Vault policy of the models service: read its own secret, nothing else.
path "secret/data/bulkhead/models" {
  capabilities = ["read"]
}
