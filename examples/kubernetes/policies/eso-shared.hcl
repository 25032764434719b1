# ClusterSecretStore "airlock-shared": read-only, one prefix (secret/shared/).
path "secret/data/shared/*" {
  capabilities = ["read"]
}
# dataFrom.find lists keys under the prefix.
path "secret/metadata/shared/*" {
  capabilities = ["read", "list"]
}
