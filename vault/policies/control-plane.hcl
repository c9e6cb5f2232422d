# Vault policy of the control plane: issue the workload certificates it
# serves over SDS to Envoy nodes that proved their identity.
path "pki_int/issue/envoy-sds" {
  capabilities = ["update"]
}
