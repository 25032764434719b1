# SecretStore "airlock-push" (namespace voice): PushSecret writes below one prefix only.
# ESO reads a key's metadata (custom_metadata managed-by=external-secrets) before it
# overwrites or deletes it, and writes the data and the metadata.
path "secret/data/voice/pushed/*" {
  capabilities = ["create", "update", "read", "delete"]
}
path "secret/metadata/voice/pushed/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
}
