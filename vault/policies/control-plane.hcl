# Vault policy of the control plane: issue the workload certificates it
# serves over SDS to Envoy nodes that proved their identity.
path "pki_int/issue/envoy-sds" {
  capabilities = ["update"]
}

# In a cluster, its own serving certificate (its SPIFFE ID and the DNS names
# of its Service, which the nodes dial; enforced by the PKI role).
path "pki_int/issue/control-plane" {
  capabilities = ["update"]
}
