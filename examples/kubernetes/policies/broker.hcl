# The credential broker sidecar (`airlock broker serve`, chart value brokerSidecar):
# its keys, the agents and bindings it serves, their secrets, and its audit batches.
path "sys/broker/keys" {
  capabilities = ["read", "sudo"]
}
path "sys/broker/ca" {
  capabilities = ["read"]
}
path "sys/broker/bindings" {
  capabilities = ["list"]
}
path "sys/broker/bindings/*" {
  capabilities = ["read"]
}
path "sys/broker/agents" {
  capabilities = ["list"]
}
path "sys/broker/agents/*" {
  capabilities = ["read"]
}
# `broker env` in the init container mints the agent's proxy credential.
path "sys/broker/agents/voice/credential" {
  capabilities = ["update"]
}
path "sys/broker/audit" {
  capabilities = ["update"]
}
# The secrets the bindings name.
path "secret/data/agents/*" {
  capabilities = ["read"]
}
