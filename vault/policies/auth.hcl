# Vault policy of the auth service: read its own secret, nothing else.
path "secret/data/bulkhead/auth" {
  capabilities = ["read"]
}
