# Vault policy of the chat service: read its own secret, nothing else.
path "secret/data/bulkhead/chat" {
  capabilities = ["read"]
}
