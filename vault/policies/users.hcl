# Vault policy of the users service: read its own secret, nothing else.
path "secret/data/bulkhead/users" {
  capabilities = ["read"]
}
