# VaultDynamicSecret "voice-pg" (namespace voice): database credentials of one role.
path "database/creds/voice-agent" {
  capabilities = ["read"]
}
