# Vault policy of the inference service, least privilege: read its own secret,
# and issue its own workload certificate (SPIFFE ID
# spiffe://bulkhead.local/ns/default/sa/inference, enforced by the PKI role).
path "secret/data/bulkhead/inference" {
  capabilities = ["read"]
}

path "pki_int/issue/inference" {
  capabilities = ["update"]
}

# The API keys of the models' OpenAI-compatible upstreams (Model objects'
# spec.backends[].apiKey), and nothing else of the KV store.
path "secret/data/bulkhead/upstreams/*" {
  capabilities = ["read"]
}
