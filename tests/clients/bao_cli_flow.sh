#!/usr/bin/env bash
# End-to-end checks of a Vault-API server through the real `bao` CLI (OpenBao's Go client).
#
# Usage:  BAO=/path/to/bao VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \
#           bash tests/clients/bao_cli_flow.sh
#
# Needs a root token. Creates a KV v2 and a KV v1 mount, a policy and some tokens, all with a
# random suffix, and removes them at the end. Prints one line per check, then
# `bao-cli: N passed, N failed`; exits 1 if any check failed. Failure reasons never contain
# secret values. Every bao call runs under `timeout 20`. Needs python3 (JSON parsing), no jq.
set -euo pipefail

: "${BAO:?set BAO to the bao CLI binary}"
: "${VAULT_ADDR:?set VAULT_ADDR}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a root token}"
# Only VAULT_ADDR / VAULT_TOKEN from the caller count; BAO_* would take precedence in the CLI.
unset BAO_ADDR BAO_TOKEN BAO_NAMESPACE VAULT_NAMESPACE BAO_FORMAT VAULT_FORMAT BAO_CLI_NO_COLOR \
  BAO_WRAP_TTL VAULT_WRAP_TTL BAO_MAX_RETRIES VAULT_MAX_RETRIES 2>/dev/null || true
export VAULT_ADDR VAULT_TOKEN
export VAULT_MAX_RETRIES=0 BAO_MAX_RETRIES=0 # no hidden retries: one request per step
ROOT_TOKEN=$VAULT_TOKEN

W=$(mktemp -d)
chmod 700 "$W"
SFX=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
M2="cli-kv2-$SFX"
M1="cli-kv1-$SFX"
POL="cli-pol-$SFX"
rnd() { python3 -c 'import secrets,sys; print(sys.argv[1] + "-" + secrets.token_urlsafe(12))' "$1"; }
# Secret values are exported so the JSON helper can compare against them without printing them.
PW1=$(rnd pw1) PW2=$(rnd pw2) PW3=$(rnd pw3) PW4=$(rnd pw4) PW5=$(rnd pw5)
export PW1 PW2 PW3 PW4 PW5

cat >"$W/policy.hcl" <<EOF
path "$M2/data/allowed/*" {
  capabilities = ["create", "read", "update"]
}
path "$M2/metadata/allowed/*" {
  capabilities = ["list", "read"]
}
path "auth/token/create" {
  capabilities = ["create", "update"]
}
EOF

# ------------------------------------------------------------------ helpers
# JSON helper: evaluates a Python expression on d = JSON of the last bao stdout; E = os.environ.
cat >"$W/j.py" <<'PY'
import json, os, sys
mode, expr = sys.argv[1], sys.argv[2]
try:
    d = json.load(open(os.environ["J_OUT"]))
except ValueError:
    print("output is not JSON"); sys.exit(3)
E = os.environ
try:
    v = eval(expr, {"d": d, "E": E})
except KeyError as e:
    print(f"key {e.args[0]!r} missing in output"); sys.exit(3)
except Exception as e:  # noqa: BLE001
    print(f"{type(e).__name__} evaluating {expr}"); sys.exit(3)
if mode == "val":
    print(v if isinstance(v, str) else json.dumps(v))
elif mode == "eq":  # non-secret values only: the message shows both sides
    exp = json.loads(sys.argv[3])
    if v != exp:
        print(f"expected {json.dumps(exp)}, got {json.dumps(v)}"); sys.exit(1)
elif mode == "true":  # may involve secrets: no values in the message
    if not v:
        print("condition false"); sys.exit(1)
PY
export J_OUT="$W/out"

fail() {
  printf '%s\n' "$*" >"$W/reason"
  return 1
}

# Arguments as shown in messages: KEY=value pairs are masked (values may be secrets).
shown() {
  local a out=()
  for a in "$@"; do
    if [[ $a != -* && $a == *=* ]]; then out+=("${a%%=*}=***"); else out+=("$a"); fi
  done
  printf '%s' "${out[*]}"
}

# Server/CLI error text on one line, with every secret value this script generated masked.
errline() {
  cat "$W/err" "$W/out" 2>/dev/null | python3 -c '
import os, re, sys
t = re.sub(r"\s+", " ", sys.stdin.read()).strip()
for k in ("PW1", "PW2", "PW3", "PW4", "PW5"):
    t = t.replace(os.environ[k], "***")
print(t[:220])'
}

# ok ARGS...: run `bao ARGS`, must exit 0. stdout -> $W/out, stderr -> $W/err.
ok() {
  local rc=0
  timeout 20 "$BAO" "$@" >"$W/out" 2>"$W/err" || rc=$?
  [ "$rc" -eq 0 ] || fail "bao $(shown "$@") exited $rc: $(errline)"
}

# code N ARGS...: run `bao ARGS`, must exit N.
code() {
  local want=$1 rc=0
  shift
  timeout 20 "$BAO" "$@" >"$W/out" 2>"$W/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "bao $(shown "$@") exited $rc, expected $want: $(errline)"
}

jeq() { # jeq EXPR JSON_EXPECTED WHAT
  local msg
  msg=$(python3 "$W/j.py" eq "$1" "$2") || fail "$3: $msg"
}
jtrue() { # jtrue PY_BOOL_EXPR WHAT  (safe for secrets)
  local msg
  msg=$(python3 "$W/j.py" true "$1") || fail "$2: $msg"
}
jval() { python3 "$W/j.py" val "$1"; }

out_has() { grep -Eq -- "$1" "$W/out" || fail "$2: stdout lacks /$1/"; }
err_has() { grep -Eq -- "$1" "$W/err" || fail "$2: stderr lacks /$1/"; }
any_has() { cat "$W/out" "$W/err" | grep -Eq -- "$1" || fail "$2: output lacks /$1/"; }
out_is() { # out_is EXPECTED WHAT (secret-safe)
  [ "$(cat "$W/out")" = "$1" ] || fail "$2: stdout differs from the expected value"
}

st_set() { printf '%s' "$2" >"$W/st.$1"; }
st() { cat "$W/st.$1"; }
track_accessor() { printf '%s\n' "$1" >>"$W/accessors"; }

# ------------------------------------------------------------------ checks
status_json() {
  ok status -format=json
  jeq 'd["initialized"]' true "status initialized"
  jeq 'd["sealed"]' false "status sealed"
  jtrue 'isinstance(d["t"], int) and isinstance(d["n"], int) and d["t"] <= d["n"]' "status t/n"
  jtrue 'isinstance(d["type"], str) and d["type"] != ""' "status type"
  jtrue 'isinstance(d["version"], str) and d["version"] != ""' "status version"
  jtrue 'isinstance(d["ha_enabled"], bool)' "status ha_enabled (from sys/leader)"
}

status_text() {
  ok status
  out_has '^Initialized +true$' "status text"
  out_has '^Sealed +false$' "status text"
}

secrets_enable_kv2() {
  ok secrets enable -path="$M2" -version=2 -description="cli e2e kv2" kv
  out_has "^Success! Enabled the kv secrets engine at: $M2/\$" "secrets enable kv2"
}

secrets_enable_kv1() {
  ok secrets enable -path="$M1" -version=1 -description="cli e2e kv1" kv
  out_has "^Success! Enabled the kv secrets engine at: $M1/\$" "secrets enable kv1"
}

secrets_enable_duplicate() {
  code 2 secrets enable -path="$M1" kv
  err_has 'Code: 400' "enable on a used path"
}

secrets_list() {
  ok secrets list -format=json
  jeq "d['$M2/']['type']" '"kv"' "$M2/ type"
  jeq "d['$M2/']['options']['version']" '"2"' "$M2/ options.version"
  jeq "d['$M2/']['description']" '"cli e2e kv2"' "$M2/ description"
  jeq "d['$M1/']['options']['version']" '"1"' "$M1/ options.version"
  jtrue "isinstance(d['$M2/']['accessor'], str) and d['$M2/']['accessor'] != ''" "$M2/ accessor"
  ok secrets list
  out_has "^$M2/ +kv " "secrets list text"
}

secrets_tune() {
  ok secrets tune -max-lease-ttl=2h -default-lease-ttl=30m "$M2/"
  out_has "^Success! Tuned the secrets engine at: $M2/\$" "secrets tune"
  ok read -format=json "sys/mounts/$M2/tune"
  jeq 'd["data"]["max_lease_ttl"]' 7200 "tune max_lease_ttl"
  jeq 'd["data"]["default_lease_ttl"]' 1800 "tune default_lease_ttl"
  ok secrets list -format=json
  jeq "d['$M2/']['config']['max_lease_ttl']" 7200 "sys/mounts config.max_lease_ttl"
  # Only one field changes: the CLI sends default_lease_ttl:"" for "leave as is".
  ok secrets tune -max-lease-ttl=3h "$M2/"
  ok read -format=json "sys/mounts/$M2/tune"
  jeq 'd["data"]["max_lease_ttl"]' 10800 "tune max_lease_ttl (2nd)"
  jeq 'd["data"]["default_lease_ttl"]' 1800 "default_lease_ttl kept by a max-only tune"
}

kv_put() {
  ok kv put -format=json "$M2/app/db" user=svc "password=$PW1"
  jeq 'd["data"]["version"]' 1 "kv put version"
  jeq 'd["data"]["destroyed"]' false "kv put destroyed"
  jeq 'd["data"]["deletion_time"]' '""' "kv put deletion_time"
  ok kv put "$M2/app/db" user=svc "password=$PW2"
  out_has "^$M2/data/app/db\$" "kv put text: secret path"
  out_has '^version +2$' "kv put text: version"
}

kv_put_mount_flag() {
  ok kv put -mount="$M2" app/web "token=$PW3"
  out_has '^version +1$' "kv put -mount version"
  ok kv get -mount="$M2" -format=json app/web
  jtrue 'd["data"]["data"] == {"token": E["PW3"]}' "kv get -mount data"
}

kv_get_text() {
  ok kv get "$M2/app/db"
  out_has '^=+ Secret Path =+$' "kv get text: header"
  out_has "^$M2/data/app/db\$" "kv get text: secret path"
  out_has '^=+ Data =+$' "kv get text: data header"
  out_has '^user +svc$' "kv get text: user"
  out_has '^password +' "kv get text: password row"
  out_has '^version +2$' "kv get text: version"
}

kv_get_field() {
  ok kv get -field=password "$M2/app/db"
  out_is "$PW2" "kv get -field=password"
  code 1 kv get -field=nope "$M2/app/db"
}

kv_get_json() {
  ok kv get -format=json "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW2"]}' "kv get -format=json data"
  jeq 'd["data"]["metadata"]["version"]' 2 "kv get metadata.version"
  jeq 'd["data"]["metadata"]["deletion_time"]' '""' "kv get metadata.deletion_time"
  jeq 'd["lease_duration"]' 0 "kv get lease_duration"
}

kv_get_version() {
  ok kv get -format=json -version=1 "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW1"]}' "kv get -version=1 data"
  jeq 'd["data"]["metadata"]["version"]' 1 "kv get -version=1 metadata.version"
  code 2 kv get -version=99 "$M2/app/db"
  any_has "No value found at $M2/data/app/db" "kv get of a version that never existed"
}

kv_get_missing() {
  code 2 kv get "$M2/app/nope"
  any_has "No value found at $M2/data/app/nope" "kv get of a missing key"
}

kv_list() {
  ok kv list -format=json "$M2/app"
  jeq 'd' '["db", "web"]' "kv list app"
  ok kv list "$M2/"
  out_has '^app/$' "kv list text"
  code 2 kv list "$M2/nope"
}

kv_metadata_get() {
  ok kv metadata get -format=json "$M2/app/db"
  jeq 'd["data"]["current_version"]' 2 "metadata current_version"
  jeq 'sorted(d["data"]["versions"], key=int)' '["1", "2"]' "metadata versions"
  jeq 'd["data"]["max_versions"]' 0 "metadata max_versions"
  jeq 'd["data"]["cas_required"]' false "metadata cas_required"
  jtrue 'isinstance(d["data"]["oldest_version"], int)' "metadata oldest_version"
  ok kv metadata get "$M2/app/db"
  out_has '^current_version +2$' "kv metadata get text"
  code 2 kv metadata get "$M2/app/nope"
}

kv_metadata_put() {
  ok kv metadata put -max-versions=5 -custom-metadata=owner=e2e -custom-metadata=ticket=SEC-1 "$M2/app/db"
  out_has "^Success! Data written to: $M2/metadata/app/db\$" "kv metadata put"
  ok kv metadata get -format=json "$M2/app/db"
  jeq 'd["data"]["max_versions"]' 5 "max_versions after metadata put"
  jeq 'd["data"]["custom_metadata"]' '{"owner": "e2e", "ticket": "SEC-1"}' "custom_metadata after metadata put"
}

kv_patch() {
  # HTTP PATCH with Content-Type: application/merge-patch+json
  ok kv patch -format=json "$M2/app/db" extra=x1
  jeq 'd["data"]["version"]' 3 "kv patch version"
  ok kv get -format=json "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW2"], "extra": "x1"}' "data after kv patch"
}

kv_patch_rw() {
  # -method=rw: GET latest, then PUT with options.cas = the version read
  ok kv patch -method=rw -format=json "$M2/app/db" more=y
  jeq 'd["data"]["version"]' 4 "kv patch -method=rw version"
  ok kv get -format=json "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW2"], "extra": "x1", "more": "y"}' "data after rw patch"
}

kv_rollback() {
  ok kv rollback -version=1 "$M2/app/db"
  out_has '^version +5$' "kv rollback new version"
  ok kv get -format=json "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW1"]}' "data after rollback to v1"
  jeq 'd["data"]["metadata"]["version"]' 5 "version after rollback"
}

kv_delete() {
  ok kv delete "$M2/app/db"
  out_has "^Success! Data deleted \\(if it existed\\) at: $M2/data/app/db\$" "kv delete"
  # A soft-deleted latest version is a 404 carrying the envelope: the CLI shows the metadata, exit 0.
  ok kv get -format=json "$M2/app/db"
  jeq 'd["data"]["data"]' null "deleted data.data"
  jeq 'd["data"]["metadata"]["version"]' 5 "deleted metadata.version"
  jtrue 'd["data"]["metadata"]["deletion_time"] != ""' "deleted metadata.deletion_time set"
  ok kv get -format=json -version=4 "$M2/app/db"
  jtrue 'd["data"]["data"]["more"] == "y"' "older version readable after delete"
}

kv_undelete() {
  ok kv undelete -versions=5 "$M2/app/db"
  out_has "^Success! Data written to: $M2/undelete/app/db\$" "kv undelete"
  ok kv get -format=json "$M2/app/db"
  jtrue 'd["data"]["data"] == {"user": "svc", "password": E["PW1"]}' "data after undelete"
  jeq 'd["data"]["metadata"]["deletion_time"]' '""' "deletion_time after undelete"
}

kv_delete_versions() {
  # the CLI sends {"versions":["4"]} (strings)
  ok kv delete -versions=4 "$M2/app/db"
  ok kv get -format=json -version=4 "$M2/app/db"
  jeq 'd["data"]["data"]' null "data of deleted version 4"
  jtrue 'd["data"]["metadata"]["deletion_time"] != ""' "deletion_time of version 4"
}

kv_destroy() {
  ok kv destroy -versions=5 "$M2/app/db"
  out_has "^Success! Data written to: $M2/destroy/app/db\$" "kv destroy"
  ok kv get -format=json "$M2/app/db"
  jeq 'd["data"]["data"]' null "destroyed data.data"
  jeq 'd["data"]["metadata"]["destroyed"]' true "destroyed metadata.destroyed"
  ok kv metadata get -format=json "$M2/app/db"
  jeq 'd["data"]["versions"]["5"]["destroyed"]' true "metadata versions.5.destroyed"
  jeq 'd["data"]["versions"]["3"]["destroyed"]' false "metadata versions.3.destroyed"
}

kv_metadata_delete() {
  ok kv metadata delete "$M2/app/db"
  out_has "^Success! Data deleted \\(if it existed\\) at: $M2/metadata/app/db\$" "kv metadata delete"
  code 2 kv get "$M2/app/db"
  any_has "No value found at $M2/data/app/db" "kv get after metadata delete"
  code 2 kv metadata get "$M2/app/db"
  ok kv list -format=json "$M2/app"
  jeq 'd' '["web"]' "kv list after metadata delete"
}

kv1_put_get() {
  ok kv put "$M1/svc/a" "token=$PW4" n=7
  out_has "^Success! Data written to: $M1/svc/a\$" "kv1 put"
  ok kv get -format=json "$M1/svc/a"
  jtrue 'd["data"] == {"token": E["PW4"], "n": "7"}' "kv1 get data"
  jeq 'd["lease_id"]' '""' "kv1 lease_id"
  ok kv get -field=token "$M1/svc/a"
  out_is "$PW4" "kv1 get -field=token"
  ok kv get "$M1/svc/a"
  out_has '^n +7$' "kv1 get text"
}

kv1_list() {
  ok kv put "$M1/svc/b" "token=$PW5"
  ok kv list -format=json "$M1/svc"
  jeq 'd' '["a", "b"]' "kv1 list svc"
  ok kv list -format=json "$M1"
  jeq 'd' '["svc/"]' "kv1 list root"
}

kv1_delete() {
  ok kv delete "$M1/svc/a"
  out_has "^Success! Data deleted \\(if it existed\\) at: $M1/svc/a\$" "kv1 delete"
  code 2 kv get "$M1/svc/a"
  any_has "No value found at $M1/svc/a" "kv1 get after delete"
  ok kv list -format=json "$M1/svc"
  jeq 'd' '["b"]' "kv1 list after delete"
}

policy_write_stdin() {
  ok policy write "$POL" - <"$W/policy.hcl"
  out_has "^Success! Uploaded policy: $POL\$" "policy write"
}

policy_read() {
  ok policy read -format=json "$POL"
  PFILE="$W/policy.hcl" jtrue 'd["policy"] == open(E["PFILE"]).read()' "policy read -format=json text round-trip"
  ok policy read "$POL"
  diff -q <(printf '%s\n' "$(cat "$W/out")") <(printf '%s\n' "$(cat "$W/policy.hcl")") >/dev/null ||
    fail "policy read text differs from the written policy"
}

policy_list() {
  ok policy list -format=json
  jtrue "all(p in d for p in ['default', 'root', '$POL'])" "policy list has default, root, $POL"
  ok policy list
  out_has "^$POL\$" "policy list text"
}

policy_write_invalid() {
  printf 'path "x" { capabilities = ["reed"] }\n' >"$W/bad.hcl"
  code 2 policy write "cli-bad-$SFX" "$W/bad.hcl"
  err_has 'Code: 400' "policy with an unknown capability"
  code 2 policy read "cli-bad-$SFX"
}

token_create() {
  ok token create -policy="$POL" -ttl=1h -display-name=cli-e2e -metadata=purpose=e2e -format=json
  local tok acc
  tok=$(jval 'd["auth"]["client_token"]')
  acc=$(jval 'd["auth"]["accessor"]')
  st_set tok "$tok"
  st_set acc "$acc"
  track_accessor "$acc"
  [ -n "$tok" ] && [ -n "$acc" ] && [ "$tok" != "$acc" ] || fail "token create: client_token/accessor missing"
  jeq 'sorted(d["auth"]["policies"])' "$(python3 -c 'import json,sys; print(json.dumps(sorted(["default", sys.argv[1]])))' "$POL")" "auth.policies"
  jeq 'd["auth"]["lease_duration"]' 3600 "auth.lease_duration"
  jeq 'd["auth"]["renewable"]' true "auth.renewable"
  jeq 'd["auth"]["orphan"]' false "auth.orphan"
  jeq 'd["auth"]["metadata"]' '{"purpose": "e2e"}' "auth.metadata"
}

token_create_field() {
  ok token create -policy=default -ttl=10m -use-limit=5 -field=token
  local t
  t=$(cat "$W/out")
  [ -n "$t" ] || fail "token create -field=token printed nothing"
  ok token lookup -format=json "$t"
  jeq 'd["data"]["num_uses"]' 5 "num_uses of a -use-limit=5 token"
  jeq 'd["data"]["ttl"] <= 600 and d["data"]["ttl"] > 500' true "ttl of a -ttl=10m token"
  track_accessor "$(jval 'd["data"]["accessor"]')"
}

token_lookup() {
  local tok acc
  tok=$(st tok) acc=$(st acc)
  ok token lookup -format=json "$tok"
  TOK="$tok" jtrue 'd["data"]["id"] == E["TOK"]' "token lookup id"
  jeq 'd["data"]["accessor"]' "\"$acc\"" "token lookup accessor"
  jeq 'd["data"]["display_name"]' '"token-cli-e2e"' "token lookup display_name"
  jeq 'd["data"]["meta"]' '{"purpose": "e2e"}' "token lookup meta"
  jeq 'd["data"]["path"]' '"auth/token/create"' "token lookup path"
  jeq '3500 <= d["data"]["ttl"] <= 3600' true "token lookup ttl ~3600"
  ok token lookup "$tok"
  out_has '^display_name +token-cli-e2e$' "token lookup text"
  ok token lookup -format=json -accessor "$acc"
  jeq 'd["data"]["id"]' '""' "lookup -accessor hides the id"
  jeq 'd["data"]["accessor"]' "\"$acc\"" "lookup -accessor accessor"
  ok token lookup -format=json
  jeq 'd["data"]["policies"]' '["root"]' "lookup-self of the root token"
}

token_renew() {
  local tok
  tok=$(st tok)
  ok token renew -increment=2h -format=json "$tok"
  jeq 'd["auth"]["lease_duration"]' 7200 "token renew lease_duration"
  VAULT_TOKEN=$tok ok token renew -increment=30m -format=json
  jeq 'd["auth"]["lease_duration"]' 1800 "token renew-self lease_duration"
}

token_capabilities() {
  local tok
  tok=$(st tok)
  ok token capabilities "$tok" "$M2/data/allowed/x"
  out_is "create, read, update" "token capabilities (allowed)"
  ok token capabilities "$tok" "$M2/data/other/x"
  out_is "deny" "token capabilities (denied)"
  ok token capabilities -format=json "$tok" "$M2/metadata/allowed/x"
  jeq 'd' '["list", "read"]' "token capabilities -format=json"
  VAULT_TOKEN=$tok ok token capabilities "$M2/data/allowed/x"
  out_is "create, read, update" "token capabilities (self)"
  ok token capabilities "$M2/data/allowed/x"
  out_is "root" "token capabilities (root self)"
}

acl_restricted_kv() {
  local tok
  tok=$(st tok)
  ok kv put "$M2/allowed/x" "k=$PW5"
  ok kv put "$M2/other/x" "k=$PW5"
  VAULT_TOKEN=$tok ok kv get -field=k "$M2/allowed/x"
  out_is "$PW5" "restricted kv get of an allowed path"
  VAULT_TOKEN=$tok ok kv put -format=json "$M2/allowed/y" k=v
  jeq 'd["data"]["version"]' 1 "restricted kv put of an allowed path"
  VAULT_TOKEN=$tok code 2 kv get "$M2/other/x"
  err_has 'Code: 403' "restricted kv get outside the policy"
  VAULT_TOKEN=$tok code 2 kv put "$M2/other/x" k=v
  err_has 'Code: 403' "restricted kv put outside the policy"
  VAULT_TOKEN=$tok code 2 kv get "$M1/svc/b"
  err_has 'Code: 403' "restricted kv get on a mount it has no access to"
  VAULT_TOKEN=$tok code 2 kv get "$M2/allowed/missing"
  any_has "No value found at $M2/data/allowed/missing" "restricted kv get of a missing allowed key (404, not 403)"
  VAULT_TOKEN=$tok ok kv list -format=json "$M2/allowed/"
  jeq 'd' '["x", "y"]' "restricted kv list of allowed/"
}

token_revoke() {
  local tok
  tok=$(st tok)
  ok token revoke "$tok"
  out_has '^Success! Revoked token \(if it existed\)$' "token revoke"
  code 2 token lookup "$tok"
  err_has 'Code: 403' "lookup of a revoked token"
  VAULT_TOKEN=$tok code 2 kv get "$M2/allowed/x"
  err_has 'Code: 403' "revoked token reading an allowed path"
}

token_revoke_child_with_parent() {
  local parent child
  ok token create -policy="$POL" -ttl=30m -format=json
  parent=$(jval 'd["auth"]["client_token"]')
  track_accessor "$(jval 'd["auth"]["accessor"]')"
  VAULT_TOKEN=$parent ok token create -ttl=10m -format=json
  child=$(jval 'd["auth"]["client_token"]')
  track_accessor "$(jval 'd["auth"]["accessor"]')"
  jeq 'd["auth"]["orphan"]' false "child orphan flag"
  ok token lookup "$child"
  ok token revoke "$parent"
  code 2 token lookup "$child"
  err_has 'Code: 403' "lookup of a child after its parent was revoked"
}

token_revoke_accessor() {
  local t a
  ok token create -policy=default -ttl=10m -format=json
  t=$(jval 'd["auth"]["client_token"]')
  a=$(jval 'd["auth"]["accessor"]')
  track_accessor "$a"
  ok token revoke -accessor "$a"
  code 2 token lookup "$t"
  err_has 'Code: 403' "lookup of a token revoked by accessor"
}

token_revoke_self() {
  local t
  ok token create -policy=default -ttl=10m -format=json
  t=$(jval 'd["auth"]["client_token"]')
  track_accessor "$(jval 'd["auth"]["accessor"]')"
  VAULT_TOKEN=$t ok token revoke -self
  code 2 token lookup "$t"
  err_has 'Code: 403' "lookup of a self-revoked token"
}

policy_delete() {
  ok policy delete "$POL"
  out_has "^Success! Deleted policy: $POL\$" "policy delete"
  code 2 policy read "$POL"
  any_has "No policy named: $POL" "policy read after delete"
  ok policy list -format=json
  jtrue "'$POL' not in d" "deleted policy not listed"
}

secrets_disable() {
  ok secrets disable "$M2/"
  out_has "^Success! Disabled the secrets engine \\(if it existed\\) at: $M2/\$" "secrets disable kv2"
  ok secrets disable "$M1/"
  ok secrets list -format=json
  jtrue "'$M2/' not in d and '$M1/' not in d" "disabled mounts not listed"
  code 2 kv get "$M2/app/web"
}

cleanup() {
  # Best effort; also runs on interruption. Uses the root token.
  local a
  if [ -f "$W/accessors" ]; then
    while read -r a; do
      [ -n "$a" ] && VAULT_TOKEN=$ROOT_TOKEN timeout 20 "$BAO" token revoke -accessor "$a" >/dev/null 2>&1 || true
    done <"$W/accessors"
  fi
  for p in "$POL" "cli-bad-$SFX"; do
    VAULT_TOKEN=$ROOT_TOKEN timeout 20 "$BAO" policy delete "$p" >/dev/null 2>&1 || true
  done
  for m in "$M2" "$M1"; do
    VAULT_TOKEN=$ROOT_TOKEN timeout 20 "$BAO" secrets disable "$m/" >/dev/null 2>&1 || true
  done
}
trap 'cleanup; rm -rf "$W"' EXIT
trap 'exit 143' TERM INT

# ------------------------------------------------------------------ runner
CHECKS=(
  status_json status_text
  secrets_enable_kv2 secrets_enable_kv1 secrets_enable_duplicate secrets_list secrets_tune
  kv_put kv_put_mount_flag kv_get_text kv_get_field kv_get_json kv_get_version kv_get_missing kv_list
  kv_metadata_get kv_metadata_put kv_patch kv_patch_rw kv_rollback kv_delete kv_undelete kv_delete_versions
  kv_destroy kv_metadata_delete
  kv1_put_get kv1_list kv1_delete
  policy_write_stdin policy_read policy_list policy_write_invalid
  token_create token_create_field token_lookup token_renew token_capabilities acl_restricted_kv token_revoke
  token_revoke_child_with_parent token_revoke_accessor token_revoke_self
  policy_delete secrets_disable
)

PASS=0
FAIL=0
for name in "${CHECKS[@]}"; do
  : >"$W/reason"
  rm -f "$W/line"
  set +e
  (
    set -eE
    trap 'echo "$LINENO" >"$W/line"' ERR
    "$name"
  )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    PASS=$((PASS + 1))
    echo "ok   $name"
  else
    FAIL=$((FAIL + 1))
    reason=$(cat "$W/reason")
    [ -n "$reason" ] || reason="a command failed (exit $rc) at line $(cat "$W/line" 2>/dev/null || echo '?')"
    echo "FAIL $name: $reason"
  fi
done

echo "bao-cli: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
