#!/usr/bin/env bash
# The Airlock side of these examples: KV store, policies (one prefix per ESO store),
# the Kubernetes auth method and its roles, and (with VOICE_PG_URL) the database engine.
# Runs against AIRLOCK_ADDR with AIRLOCK_TOKEN (or the `airlock login` token); safe to run
# again. `bao`/`vault` users: the same paths work, see README.md.
#
#   export AIRLOCK_ADDR=https://airlock.airlock.svc:8200 AIRLOCK_CACERT=ca.crt
#   airlock login
#   ./setup.sh
#   VOICE_PG_URL='postgresql://{{username}}:{{password}}@db.voice.svc:5432/voice?sslmode=verify-full&sslrootcert=/etc/airlock/pg-ca.pem' \
#   VOICE_PG_USER=vaultadmin VOICE_PG_PASSWORD_FILE=./vaultadmin.txt ./setup.sh
set -euo pipefail
cd "$(dirname "$0")"
AIRLOCK="${AIRLOCK:-airlock}"
KUBERNETES_HOST="${KUBERNETES_HOST:-https://kubernetes.default.svc}"

# KV v2 at secret/ (a new server has none; dev mode has one).
if ! "$AIRLOCK" secrets list | grep -q '^secret/'; then
  "$AIRLOCK" secrets enable -path=secret kv-v2
fi

for p in eso-shared eso-voice eso-voice-push eso-voice-db broker; do
  "$AIRLOCK" policy write "$p" "policies/$p.hcl"
done

# Kubernetes auth. Inside the cluster Airlock reviews tokens as its own service account
# (the chart's kubernetesAuth.enabled: projected token + system:auth-delegator), so the
# API server's address is all the config needs.
if ! "$AIRLOCK" auth list | grep -q '^kubernetes/'; then
  "$AIRLOCK" auth enable kubernetes
fi
"$AIRLOCK" write auth/kubernetes/config kubernetes_host="$KUBERNETES_HOST"

# One role per store, bound to one service account in one namespace.
"$AIRLOCK" write auth/kubernetes/role/eso-shared \
  bound_service_account_names=external-secrets bound_service_account_namespaces=external-secrets \
  token_policies=eso-shared token_ttl=20m token_max_ttl=1h
"$AIRLOCK" write auth/kubernetes/role/eso-voice \
  bound_service_account_names=voice-eso bound_service_account_namespaces=voice \
  token_policies=eso-voice token_ttl=20m token_max_ttl=1h
"$AIRLOCK" write auth/kubernetes/role/eso-voice-push \
  bound_service_account_names=voice-eso bound_service_account_namespaces=voice \
  token_policies=eso-voice-push token_ttl=20m token_max_ttl=1h
# Database leases end with the token that created them: token_ttl >= default_ttl below.
"$AIRLOCK" write auth/kubernetes/role/eso-voice-db \
  bound_service_account_names=voice-eso bound_service_account_namespaces=voice \
  token_policies=eso-voice-db token_ttl=1h token_max_ttl=1h
# The broker sidecar renews its token for as long as it runs: a periodic token.
"$AIRLOCK" write auth/kubernetes/role/broker \
  bound_service_account_names=voice-agent bound_service_account_namespaces=voice \
  token_policies=broker token_period=1h

# The broker sidecar's binding and agent (agent-chart/): the voice agent's OpenAI key is
# injected on its way to api.openai.com/v1/, and the agent only ever holds a placeholder.
"$AIRLOCK" write sys/broker/bindings/openai - <<'JSON'
{"provider": "openai", "secret": "secret/agents/voice#OPENAI_API_KEY", "paths": ["/v1/"]}
JSON
"$AIRLOCK" write sys/broker/agents/voice - <<'JSON'
{"bindings": ["openai"], "egress": "tunnel"}
JSON

if [ -n "${VOICE_PG_URL:-}" ]; then
  if ! "$AIRLOCK" secrets list | grep -q '^database/'; then
    "$AIRLOCK" secrets enable database
  fi
  "$AIRLOCK" write database/config/voice-pg plugin_name=postgresql-database-plugin \
    connection_url="$VOICE_PG_URL" username="${VOICE_PG_USER:?VOICE_PG_USER}" \
    password=@"${VOICE_PG_PASSWORD_FILE:?VOICE_PG_PASSWORD_FILE}" \
    password_authentication=scram-sha-256 allowed_roles=voice-agent
  "$AIRLOCK" write database/roles/voice-agent db_name=voice-pg default_ttl=1h max_ttl=24h \
    creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT voice_app TO \"{{name}}\";"
fi
echo "Airlock is set up for the examples."
