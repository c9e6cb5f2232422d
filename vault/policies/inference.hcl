# Vault policy of the inference service: read its own secret, nothing else.
path "secret/data/bulkhead/inference" {
  capabilities = ["read"]
}
