#!/usr/bin/env python3
"""Writes cases/*.json. The JSON files are the cases; this script is only a convenient way to
edit many of them at once. Run from tests/compat: python3 gen_cases.py"""
import json, os
C = {}
def S(method, path, body=None, name=None, token="root", compare=True, save=None, select=None, headers=None, raw_body=None):
    s = {"method": method, "path": path}
    if name: s["name"] = name
    if token != "root": s["token"] = token
    if body is not None: s["body"] = body
    if raw_body is not None: s["raw_body"] = raw_body
    if headers: s["headers"] = headers
    if save: s["save"] = save
    if select: s["select"] = select
    if compare is not True: s["compare"] = compare
    return s

C["010-sys-basic"] = ("health, seal status, leader, init status", [
    S("GET", "/v1/sys/health", name="health"),
    S("HEAD", "/v1/sys/health", name="health HEAD", compare="status"),
    S("GET", "/v1/sys/health?standbycode=200&sealedcode=200&uninitcode=200&perfstandbyok=true", name="health custom codes"),
    S("GET", "/v1/sys/health?activecode=299", name="health active code override", compare="status"),
    S("GET", "/v1/sys/seal-status", name="seal-status"),
    S("GET", "/v1/sys/leader", name="leader"),
    S("GET", "/v1/sys/init", name="init status"),
    S("GET", "/v1/sys/health", token=None, name="health needs no token"),
])
C["020-mounts"] = ("mount lifecycle for kv v1 and v2", [
    S("POST", "/v1/sys/mounts/c-mnt-kv2", {"type": "kv", "options": {"version": "2"}, "description": "compat kv2"}, name="enable kv2"),
    S("POST", "/v1/sys/mounts/c-mnt-kv1", {"type": "kv", "options": {"version": "1"}, "description": "compat kv1"}, name="enable kv1"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2", {"type": "kv", "options": {"version": "2"}}, name="enable duplicate"),
    S("POST", "/v1/sys/mounts/c-mnt-bad", {"type": "no-such-engine"}, name="enable unknown type"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2", name="read one mount"),
    S("GET", "/v1/sys/mounts", name="mount list entry", select="data.c-mnt-kv2/"),
    S("GET", "/v1/sys/mounts", name="mount list entry (top level copy)", select="c-mnt-kv1/"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2/tune", name="tune read"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/tune", {"default_lease_ttl": "1h", "max_lease_ttl": "24h"}, name="tune write"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2/tune", name="tune read after write"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/tune", {"description": "changed"}, name="tune description"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2", name="read after tune"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-kv2/app/config", name="ui mounts kv2"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-kv1/app", name="ui mounts kv1"),
    S("DELETE", "/v1/sys/mounts/c-mnt-kv2", name="disable kv2"),
    S("DELETE", "/v1/sys/mounts/c-mnt-kv1", name="disable kv1"),
    S("GET", "/v1/c-mnt-kv1/x", name="read from disabled mount"),
    S("DELETE", "/v1/sys/mounts/c-mnt-never", name="disable unknown mount"),
])
POL = 'path "secret/data/c-pol/*" {\n  capabilities = ["read", "list"]\n}\n'
C["030-policies"] = ("ACL policy CRUD, legacy endpoints and parse errors", [
    S("PUT", "/v1/sys/policies/acl/c-pol", {"policy": POL}, name="write"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read"),
    S("LIST", "/v1/sys/policies/acl", name="list verb"),
    S("GET", "/v1/sys/policies/acl?list=true", name="list query"),
    S("GET", "/v1/sys/policy", name="legacy list"),
    S("GET", "/v1/sys/policy/c-pol", name="legacy read"),
    S("PUT", "/v1/sys/policies/acl/c-pol", {"policy": POL + '\npath "sys/mounts" { capabilities = ["read"] }\n'}, name="update", compare="status"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read version 2"),
    S("PUT", "/v1/sys/policies/acl/c-pol-bad", {"policy": 'path "secret/*" { capabilities = ["read" }'}, name="bad HCL"),
    S("PUT", "/v1/sys/policies/acl/c-pol-bad", {"policy": 'path "secret/*" { capabilities = ["reed"] }'}, name="bad capability"),
    S("GET", "/v1/sys/policies/acl/c-pol-missing", name="read missing"),
    S("GET", "/v1/sys/policies/acl/default", name="read default"),
    S("DELETE", "/v1/sys/policies/acl/c-pol", name="delete"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read after delete"),
    S("DELETE", "/v1/sys/policies/acl/c-pol-missing", name="delete missing"),
    S("PUT", "/v1/sys/policy/c-pol-legacy", {"rules": POL}, name="legacy write"),
    S("GET", "/v1/sys/policies/acl/c-pol-legacy", name="legacy-written read"),
    S("DELETE", "/v1/sys/policy/c-pol-legacy", name="legacy delete"),
])
CAPPOL = ('path "secret/data/c-cap/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }\n'
          'path "secret/data/c-cap/admin" { capabilities = ["deny"] }\n'
          'path "secret/data/c-cap/team/+/config" { capabilities = ["read"] }\n'
          'path "secret/metadata/c-cap/*" { capabilities = ["list", "read"] }\n'
          'path "sys/capabilities" { capabilities = ["update"] }\n')
PATHS = ["secret/data/c-cap/config", "secret/data/c-cap/admin", "secret/data/c-cap/team/x/config", "secret/data/c-cap/team/x/y/config", "secret/metadata/c-cap/a", "sys/mounts", "auth/token/lookup-self"]
C["040-capabilities"] = ("capabilities endpoints and policy enforcement", [
    S("PUT", "/v1/sys/policies/acl/c-cap", {"policy": CAPPOL}, name="policy", compare=False),
    S("POST", "/v1/auth/token/create", {"policies": ["c-cap"], "ttl": "1h"}, save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="token", compare=False),
    S("POST", "/v1/sys/capabilities", {"token": "${tok}", "paths": PATHS}, name="capabilities"),
    S("POST", "/v1/sys/capabilities-self", {"paths": PATHS}, token="${tok}", name="capabilities-self"),
    S("POST", "/v1/sys/capabilities-accessor", {"accessor": "${acc}", "paths": PATHS}, name="capabilities-accessor"),
    S("POST", "/v1/sys/capabilities", {"token": "${tok}", "path": "secret/data/c-cap/x"}, name="single path form"),
    S("POST", "/v1/sys/capabilities-self", {"paths": ["secret/data/anything"]}, name="root capabilities"),
    S("POST", "/v1/secret/data/c-cap/x", {"data": {"k": "v"}}, token="${tok}", name="allowed write"),
    S("GET", "/v1/secret/data/c-cap/x", token="${tok}", name="allowed read"),
    S("GET", "/v1/secret/data/c-cap/nothing", token="${tok}", name="allowed read of missing key is 404"),
    S("GET", "/v1/secret/data/c-cap/admin", token="${tok}", name="explicit deny"),
    S("GET", "/v1/sys/mounts", token="${tok}", name="no rule"),
    S("LIST", "/v1/secret/metadata/c-cap", token="${tok}", name="list via folder rule", compare="status"),
    S("GET", "/v1/secret/data/c-cap/team/a/config", token="${tok}", name="plus segment read missing"),
    S("POST", "/v1/secret/data/c-cap/team/a/config", {"data": {"a": 1}}, token="${tok}", name="plus segment write denied"),
    S("DELETE", "/v1/secret/metadata/c-cap/x", compare=False),
    S("POST", "/v1/auth/token/revoke", {"token": "${tok}"}, compare=False),
    S("DELETE", "/v1/sys/policies/acl/c-cap", compare=False),
])
TPOL = 'path "secret/data/c-tok/*" { capabilities = ["read"] }\npath "auth/token/create" { capabilities = ["update"] }\n'
C["050-tokens"] = ("token create, lookup, renew and revoke", [
    S("PUT", "/v1/sys/policies/acl/c-tok", {"policy": TPOL}, compare=False),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": "1h", "explicit_max_ttl": "2h", "num_uses": 0, "display_name": "compat-app", "meta": {"team": "a"}, "renewable": True}, save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="create"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="lookup-self"),
    S("POST", "/v1/auth/token/lookup", {"token": "${tok}"}, name="lookup"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "${acc}"}, name="lookup-accessor"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "10h"}, token="${tok}", name="renew-self capped"),
    S("POST", "/v1/auth/token/renew", {"token": "${tok}", "increment": "30m"}, name="renew"),
    S("GET", "/v1/auth/token/lookup-self", token=None, headers={"Authorization": "Bearer ${tok}"}, name="bearer header"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"]}, token="${tok}", save={"child": "auth.client_token"}, name="child of non-root"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok", "other"]}, token="${tok}", name="child policies not subset"),
    S("POST", "/v1/auth/token/revoke", {"token": "${tok}"}, name="revoke parent"),
    S("GET", "/v1/auth/token/lookup-self", token="${child}", name="child revoked with parent"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="revoked token"),
    S("POST", "/v1/auth/token/lookup", {"token": "not-a-token"}, name="lookup bad token"),
    S("GET", "/v1/auth/token/lookup-self", token="not-a-token", name="bad token"),
    S("GET", "/v1/auth/token/lookup-self", token=None, name="no token"),
    S("GET", "/v1/secret/data/anything", token="not-a-token", name="bad token on kv"),
    S("POST", "/v1/auth/token/create-orphan", {"policies": ["c-tok"], "ttl": "10m"}, save={"orph": "auth.client_token", "oacc": "auth.accessor"}, name="create-orphan"),
    S("POST", "/v1/auth/token/revoke-accessor", {"accessor": "${oacc}"}, name="revoke-accessor"),
    S("GET", "/v1/auth/token/lookup-self", token="${orph}", name="after revoke-accessor"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "${oacc}"}, name="lookup revoked accessor"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "renewable": False, "ttl": "5m"}, save={"nr": "auth.client_token"}, name="non-renewable"),
    S("POST", "/v1/auth/token/renew-self", {}, token="${nr}", name="renew non-renewable"),
    S("POST", "/v1/auth/token/revoke-self", token="${nr}", name="revoke-self"),
    S("GET", "/v1/auth/token/lookup-self", token="${nr}", name="after revoke-self"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "num_uses": 2}, save={"nu": "auth.client_token"}, name="num_uses token"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="use 1"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="use 2 (last)"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="exhausted"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "period": "1h"}, save={"per": "auth.client_token"}, name="periodic"),
    S("GET", "/v1/auth/token/lookup-self", token="${per}", name="periodic lookup"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "5m"}, token="${per}", name="periodic renew resets to period"),
    S("POST", "/v1/auth/token/revoke-orphan", {"token": "${per}"}, name="revoke-orphan"),
    S("LIST", "/v1/auth/token/accessors", name="accessors list", compare="status"),
    S("POST", "/v1/auth/token/renew-self", {}, name="renew root"),
    S("DELETE", "/v1/sys/policies/acl/c-tok", compare=False),
])
C["055-token-roles"] = ("token roles", [
    S("PUT", "/v1/sys/policies/acl/c-role", {"policy": 'path "secret/data/c-role/*" { capabilities = ["read"] }\n'}, compare=False),
    S("POST", "/v1/auth/token/roles/c-ci", {"allowed_policies": ["c-role"], "orphan": True, "token_period": "1h"}, name="write role"),
    S("GET", "/v1/auth/token/roles/c-ci", name="read role"),
    S("LIST", "/v1/auth/token/roles", name="list roles"),
    S("POST", "/v1/auth/token/create/c-ci", {"policies": ["c-role"]}, save={"rt": "auth.client_token"}, name="create with role"),
    S("GET", "/v1/auth/token/lookup-self", token="${rt}", name="role token lookup"),
    S("GET", "/v1/auth/token/roles/c-missing", name="read missing role"),
    S("DELETE", "/v1/auth/token/roles/c-ci", name="delete role"),
    S("GET", "/v1/auth/token/roles/c-ci", name="read deleted role"),
    S("POST", "/v1/auth/token/revoke", {"token": "${rt}"}, compare=False),
    S("DELETE", "/v1/sys/policies/acl/c-role", compare=False),
])
M = "/v1/c-kv2"
C["060-kv2"] = ("KV version 2 end to end", [
    S("POST", "/v1/sys/mounts/c-kv2", {"type": "kv", "options": {"version": "2"}}, compare=False),
    S("GET", M + "/config", name="config read"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "one"}, "options": {"cas": 0}}, name="write cas 0"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "other"}, "options": {"cas": 0}}, name="cas 0 again"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "two"}, "options": {"cas": 1}}, name="write cas 1"),
    S("POST", M + "/data/app/config", {"data": {"password": "x"}, "options": {"cas": 5}}, name="cas mismatch"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "three", "port": 5432, "nested": {"a": [1, 2]}}}, name="write no cas"),
    S("POST", M + "/data/app/config", {"username": "x"}, name="missing data wrapper"),
    S("GET", M + "/data/app/config", name="read latest"),
    S("GET", M + "/data/app/config?version=1", name="read version 1"),
    S("GET", M + "/data/app/config?version=99", name="read version 99"),
    S("GET", M + "/data/app/missing", name="read missing"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "four", "port": None}}, headers={"Content-Type": "application/merge-patch+json"}, name="patch"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "x"}}, headers={"Content-Type": "application/x-www-form-urlencoded"}, name="patch wrong content type"),
    S("PATCH", M + "/data/app/nothing", {"data": {"password": "x"}}, headers={"Content-Type": "application/merge-patch+json"}, name="patch missing key"),
    S("GET", M + "/data/app/config", name="read after patch"),
    S("GET", M + "/subkeys/app/config", name="subkeys"),
    S("GET", M + "/subkeys/app/config?depth=1", name="subkeys depth 1"),
    S("GET", M + "/metadata/app/config", name="metadata read"),
    S("POST", M + "/metadata/app/config", {"max_versions": 7, "custom_metadata": {"k1": "v1", "k2": "v2"}}, name="metadata write"),
    S("GET", M + "/metadata/app/config", name="metadata after write"),
    S("POST", M + "/metadata/app/config", {"custom_metadata": {"env": "dev"}}, name="custom metadata only"),
    S("GET", M + "/metadata/app/config", name="custom metadata replaced, max_versions kept"),
    S("PATCH", M + "/metadata/app/config", {"custom_metadata": {"owner": "ops", "env": None}}, headers={"Content-Type": "application/merge-patch+json"}, name="metadata patch"),
    S("GET", M + "/metadata/app/config", name="metadata after patch"),
    S("POST", M + "/data/app/other", {"data": {"a": "b"}}, name="second key"),
    S("POST", M + "/data/app/nested/deep", {"data": {"a": "b"}}, name="nested key"),
    S("LIST", M + "/metadata/app", name="list verb"),
    S("GET", M + "/metadata/app?list=true", name="list query"),
    S("LIST", M + "/metadata/app/", name="list trailing slash"),
    S("LIST", M + "/metadata/nothing-here", name="list missing"),
    S("LIST", M + "/data/app", name="list on data path"),
    S("DELETE", M + "/data/app/config", name="soft delete latest"),
    S("GET", M + "/data/app/config", name="read soft-deleted"),
    S("POST", M + "/undelete/app/config", {"versions": [4]}, name="undelete"),
    S("GET", M + "/data/app/config", name="read undeleted"),
    S("POST", M + "/delete/app/config", {"versions": [1, 2]}, name="delete versions"),
    S("GET", M + "/data/app/config?version=1", name="read deleted version"),
    S("POST", M + "/destroy/app/config", {"versions": [2]}, name="destroy"),
    S("GET", M + "/data/app/config?version=2", name="read destroyed"),
    S("POST", M + "/undelete/app/config", {"versions": ["2"]}, name="undelete destroyed (string versions)"),
    S("GET", M + "/data/app/config?version=2", name="still destroyed"),
    S("GET", M + "/metadata/app/config", name="metadata shows deletions"),
    S("POST", M + "/delete/app/config", {}, name="delete without versions"),
    S("POST", M + "/metadata/app/pruned", {"max_versions": 2}, name="max_versions 2"),
    S("POST", M + "/data/app/pruned", {"data": {"v": 1}}, compare="status"),
    S("POST", M + "/data/app/pruned", {"data": {"v": 2}}, compare="status"),
    S("POST", M + "/data/app/pruned", {"data": {"v": 3}}, name="third write prunes"),
    S("GET", M + "/metadata/app/pruned", name="oldest_version advanced"),
    S("GET", M + "/data/app/pruned?version=1", name="pruned version gone"),
    S("POST", M + "/config", {"cas_required": True, "max_versions": 5}, name="config write"),
    S("GET", M + "/config", name="config read after write"),
    S("POST", M + "/data/app/needs-cas", {"data": {"a": "b"}}, name="cas required"),
    S("POST", M + "/data/app/needs-cas", {"data": {"a": "b"}, "options": {"cas": 0}}, name="cas satisfied"),
    S("DELETE", M + "/metadata/app/config", name="delete all versions"),
    S("GET", M + "/data/app/config", name="read after metadata delete"),
    S("LIST", M + "/metadata/app", name="list after metadata delete"),
    S("DELETE", "/v1/sys/mounts/c-kv2", compare=False),
])
K1 = "/v1/c-kv1"
C["070-kv1"] = ("KV version 1", [
    S("POST", "/v1/sys/mounts/c-kv1", {"type": "kv", "options": {"version": "1"}}, compare=False),
    S("POST", K1 + "/app/config", {"username": "admin", "n": 3}, name="write"),
    S("GET", K1 + "/app/config", name="read"),
    S("POST", K1 + "/app/config", {"only": "this"}, name="overwrite"),
    S("GET", K1 + "/app/config", name="read overwritten"),
    S("POST", K1 + "/app/ttl", {"ttl": "30m", "v": "x"}, name="write with ttl"),
    S("GET", K1 + "/app/ttl", name="read with ttl lease"),
    S("LIST", K1 + "/app", name="list"),
    S("GET", K1 + "/?list=true", name="list root"),
    S("LIST", K1 + "/nothing", name="list missing"),
    S("DELETE", K1 + "/app/config", name="delete"),
    S("GET", K1 + "/app/config", name="read deleted"),
    S("DELETE", K1 + "/app/never", name="delete missing"),
    S("DELETE", "/v1/sys/mounts/c-kv1", compare=False),
])
C["080-errors"] = ("errors and odd input", [
    S("GET", "/v1/nosuchmount/data/x", name="no handler"),
    S("GET", "/v1/sys/nonexistent", name="unsupported sys path"),
    S("POST", "/v1/secret/data/c-err", raw_body="{not json", name="malformed JSON", compare="status"),
    S("POST", "/v1/secret/data/c-err", raw_body="[1,2]", name="JSON array body", compare="status"),
    S("POST", "/v1/secret/data/c-err", {"data": "str"}, name="data of wrong type", compare="status"),
    S("POST", "/v1/auth/token/create", {"ttl": "forever"}, name="bad duration", compare="status"),
    S("POST", "/v1/sys/mounts/c-err", {"description": "no type"}, name="mount without type", compare="status"),
    S("GET", "/v1/secret/data/" + "a" * 2000, name="long key"),
    S("GET", "/v1/sys/policies/acl/" + "p" * 300, name="long policy name"),
])
os.makedirs("cases", exist_ok=True)
n = 0
for name, (desc, steps) in C.items():
    with open(f"cases/{name}.json", "w") as f:
        json.dump({"name": name, "description": desc, "steps": steps}, f, indent=1)
        f.write("\n")
    n += sum(1 for s in steps if s.get("compare", True) is not False)
print("compared steps:", n)
