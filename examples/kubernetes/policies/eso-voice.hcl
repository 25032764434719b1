# SecretStore "airlock" (namespace voice): read-only, one prefix (secret/voice and below).
path "secret/data/voice" {
  capabilities = ["read"]
}
path "secret/data/voice/*" {
  capabilities = ["read"]
}
path "secret/metadata/voice" {
  capabilities = ["read", "list"]
}
path "secret/metadata/voice/*" {
  capabilities = ["read", "list"]
}
