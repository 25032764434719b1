#!/usr/bin/env python3
"""Writes cases/*.json. The JSON files are the cases (run.py reads only them); this script is
a convenient way to edit many at once. If you edit a JSON file by hand, port the change here
or stop using this script. Run from anywhere: python3 tests/compat/gen_cases.py

Conventions: every case file uses its own names (mounts `c-<topic>...`, policies `c-<topic>...`,
token roles `c-<topic>...`), does its set-up with compare=false steps, and removes everything
it created at the end, so the two servers stay comparable and files are independent.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
C = {}
MP = {"Content-Type": "application/merge-patch+json"}


def S(method, path, body=None, name=None, token="root", compare=True, save=None, select=None,
      headers=None, raw_body=None, match=None, deviation=None, note=None):
    s = {"name": name or f"{method} {path}"[:80], "method": method, "path": path}
    if token != "root":
        s["token"] = token
    if headers:
        s["headers"] = headers
    if body is not None:
        s["body"] = body
    if raw_body is not None:
        s["raw_body"] = raw_body
    if save:
        s["save"] = save
    if select:
        s["select"] = select
    if match:
        s["match"] = match
    if deviation:
        s["deviation"] = deviation
    if note:
        s["note"] = note
    s["compare"] = compare
    return s


def setup(method, path, body=None, **kw):
    return S(method, path, body, compare=False, name=kw.pop("name", "setup: " + method + " " + path), **kw)


def cleanup(method, path, body=None, **kw):
    return S(method, path, body, compare=False, name=kw.pop("name", "cleanup: " + method + " " + path), **kw)


def policy(name, hcl):
    return setup("PUT", f"/v1/sys/policies/acl/{name}", {"policy": hcl}, name=f"setup: policy {name}")


def drop_policy(name):
    return cleanup("DELETE", f"/v1/sys/policies/acl/{name}")


def mount(path, version):
    return setup("POST", f"/v1/sys/mounts/{path}", {"type": "kv", "options": {"version": version}},
                 name=f"setup: mount {path} (kv v{version})")


def unmount(path):
    return cleanup("DELETE", f"/v1/sys/mounts/{path}")


# ------------------------------------------------------------------------------------------
C["010-sys-health"] = ("sys/health (GET, HEAD, status-code query parameters), seal-status, "
                       "leader, init status; all unauthenticated", [
    S("GET", "/v1/sys/health", name="health"),
    S("HEAD", "/v1/sys/health", name="health HEAD: status only, empty body"),
    S("GET", "/v1/sys/health", token=None, name="health without a token"),
    S("GET", "/v1/sys/health", token="c-not-a-token", name="health ignores a bad token"),
    S("GET", "/v1/sys/health?standbycode=200&sealedcode=200&uninitcode=200&perfstandbyok=true",
      name="health with standby/sealed/uninit codes (active node: 200)"),
    S("GET", "/v1/sys/health?activecode=299", name="activecode overrides the 200"),
    S("HEAD", "/v1/sys/health?activecode=299", name="HEAD with activecode"),
    S("GET", "/v1/sys/health?activecode=204", name="activecode=204: empty body"),
    S("GET", "/v1/sys/health?activecode=abc", name="non-numeric code: 400 with empty errors"),
    S("GET", "/v1/sys/health?standbyok=maybe", name="non-boolean standbyok: 400"),
    S("GET", "/v1/sys/health?perfstandbyok=maybe", name="perfstandbyok=maybe is ignored"),
    S("POST", "/v1/sys/health", {}, name="POST health: 405"),
    S("GET", "/v1/sys/seal-status", name="seal-status"),
    S("GET", "/v1/sys/seal-status", token=None, name="seal-status without a token"),
    S("POST", "/v1/sys/seal-status", {}, name="POST seal-status: 405"),
    S("GET", "/v1/sys/leader", name="leader (dev server: only ha_enabled)"),
    S("GET", "/v1/sys/init", token=None, name="init status"),
])

# ------------------------------------------------------------------------------------------
C["020-sys-mounts"] = ("secrets engine mounts: enable kv v1/v2, errors, read, list entries, "
                       "tune read/write, internal/ui/mounts, disable", [
    S("POST", "/v1/sys/mounts/c-mnt-kv2", {"type": "kv", "options": {"version": "2"}, "description": "compat kv2"},
      name="enable kv v2"),
    S("POST", "/v1/sys/mounts/c-mnt-kv1", {"type": "kv", "options": {"version": "1"}, "description": "compat kv1"},
      name="enable kv v1"),
    S("POST", "/v1/sys/mounts/c-mnt-slash/", {"type": "kv", "options": {"version": "1"}},
      name="enable with a trailing slash in the URL: 400"),
    S("POST", "/v1/sys/mounts/c-mnt-cfg", {"type": "kv", "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}},
      name="enable with config TTLs and no version option"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2", {"type": "kv", "options": {"version": "2"}}, name="enable duplicate: 400"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/sub", {"type": "kv"}, name="enable under an existing mount: 400"),
    S("POST", "/v1/sys/mounts/c-mnt-bad", {"type": "c-no-such-engine"}, name="enable unknown type: 400"),
    S("POST", "/v1/sys/mounts/c-mnt-notype", {"description": "no type"}, name="enable without type: 400"),
    S("POST", "/v1/sys/mounts/sys", {"type": "kv"}, name="enable at sys/: 400"),
    S("POST", "/v1/sys/mounts/cubbyhole", {"type": "kv"}, name="enable at cubbyhole/: 400"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2", name="read one mount (kv v2)"),
    S("GET", "/v1/sys/mounts/c-mnt-kv1", name="read one mount (kv v1)"),
    S("GET", "/v1/sys/mounts/c-mnt-cfg", name="read one mount with config TTLs"),
    S("GET", "/v1/sys/mounts/c-mnt-missing", name="read a missing mount: 400"),
    S("GET", "/v1/sys/mounts", name="mount list: the whole response", compare=False,
      note="Airlock has no cubbyhole/ and identity/ mounts; the entries it has are compared below"),
    S("GET", "/v1/sys/mounts", name="mount list: kv v2 entry under data", select="data.c-mnt-kv2/"),
    S("GET", "/v1/sys/mounts", name="mount list: kv v1 entry (top-level copy)", select="c-mnt-kv1/"),
    S("GET", "/v1/sys/mounts", name="mount list: secret/ entry", select="data.secret/"),
    S("GET", "/v1/sys/mounts", name="mount list: sys/ entry", select="data.sys/"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2/tune", name="tune read"),
    S("GET", "/v1/sys/mounts/c-mnt-kv1/tune", name="tune read kv v1"),
    S("GET", "/v1/sys/mounts/c-mnt-missing/tune", name="tune read of a missing mount: 400"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/tune", {"default_lease_ttl": "1h", "max_lease_ttl": "24h"}, name="tune write TTLs"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2/tune", name="tune read after TTL write"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/tune", {"description": "changed"}, name="tune write description"),
    S("POST", "/v1/sys/mounts/c-mnt-kv2/tune", {"default_lease_ttl": "48h"}, name="tune default above max: 400"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2", name="read mount after tune"),
    S("GET", "/v1/sys/mounts", name="mount list entry after tune", select="data.c-mnt-kv2/"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-kv2/app/config", name="internal/ui/mounts on a kv v2 key"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-kv1/app", name="internal/ui/mounts on a kv v1 key"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-kv2", name="internal/ui/mounts on the mount itself"),
    S("GET", "/v1/sys/internal/ui/mounts/secret/x", name="internal/ui/mounts secret/"),
    S("GET", "/v1/sys/internal/ui/mounts/c-mnt-missing/x", name="internal/ui/mounts on no mount: 403 preflight"),
    S("GET", "/v1/sys/internal/ui/mounts/secret/x", token=None, name="internal/ui/mounts without a token: 403"),
    S("DELETE", "/v1/sys/mounts/c-mnt-kv2", name="disable kv v2"),
    S("DELETE", "/v1/sys/mounts/c-mnt-kv1", name="disable kv v1"),
    S("DELETE", "/v1/sys/mounts/c-mnt-cfg", name="disable the third mount"),
    S("GET", "/v1/c-mnt-kv1/x", name="read from a disabled mount: 404 no handler"),
    S("DELETE", "/v1/sys/mounts/c-mnt-never", name="disable a mount that never existed: 204"),
    S("GET", "/v1/sys/mounts/c-mnt-kv2", name="read a disabled mount: 400"),
])

# ------------------------------------------------------------------------------------------
POL = 'path "secret/data/c-pol/*" {\n  capabilities = ["read", "list"]\n}\n'
C["030-sys-policies"] = ("ACL policies: CRUD, LIST verb and ?list=true, legacy sys/policy, name "
                         "case folding, parse errors, root/default protection", [
    S("PUT", "/v1/sys/policies/acl/c-pol", {"policy": POL}, name="write"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read"),
    S("LIST", "/v1/sys/policies/acl", name="list verb"),
    S("GET", "/v1/sys/policies/acl?list=true", name="list with ?list=true"),
    S("LIST", "/v1/sys/policies/acl/", name="list with trailing slash"),
    S("GET", "/v1/sys/policies/acl", name="GET without list=true: 405"),
    S("GET", "/v1/sys/policy", name="legacy list"),
    S("GET", "/v1/sys/policy/c-pol", name="legacy read"),
    S("PUT", "/v1/sys/policies/acl/c-pol", {"policy": POL + '\npath "sys/mounts" { capabilities = ["read"] }\n'},
      name="update"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read after update (version)"),
    S("POST", "/v1/sys/policies/acl/c-pol", {"policy": POL}, name="POST works like PUT"),
    S("PUT", "/v1/sys/policies/acl/C-Pol-Upper", {"policy": POL}, name="write with upper-case name"),
    S("GET", "/v1/sys/policies/acl/c-pol-upper", name="name was lower-cased"),
    S("GET", "/v1/sys/policies/acl/C-POL-UPPER", name="read with other case"),
    S("DELETE", "/v1/sys/policies/acl/C-POL-UPPER", name="delete with other case"),
    S("PUT", "/v1/sys/policies/acl/c-pol-bad", {"policy": 'path "secret/*" { capabilities = ["read" }'},
      name="bad HCL: 400"),
    S("PUT", "/v1/sys/policies/acl/c-pol-bad", {"policy": 'path "secret/*" { capabilities = ["reed"] }'},
      name="bad capability: 400"),
    S("PUT", "/v1/sys/policies/acl/c-pol-bad", {"policy": 'path "secret/*" { policy = "write" }'},
      name="legacy policy = \"write\" form"),
    S("GET", "/v1/sys/policies/acl/c-pol-bad", name="read legacy-form policy"),
    S("DELETE", "/v1/sys/policies/acl/c-pol-bad", name="delete legacy-form policy"),
    S("PUT", "/v1/sys/policies/acl/c-pol-empty", {}, name="no policy parameter: 400"),
    S("PUT", "/v1/sys/policies/acl/c-pol-empty", {"policy": ""}, name="empty policy: 400"),
    S("GET", "/v1/sys/policies/acl/c-pol-missing", name="read missing: 404"),
    S("GET", "/v1/sys/policy/c-pol-missing", name="legacy read missing: 404"),
    S("GET", "/v1/sys/policies/acl/default", name="read default policy"),
    S("GET", "/v1/sys/policies/acl/root", name="read root policy"),
    S("PUT", "/v1/sys/policies/acl/root", {"policy": POL}, name="update root: 400"),
    S("DELETE", "/v1/sys/policies/acl/root", name="delete root: 400"),
    S("DELETE", "/v1/sys/policies/acl/default", name="delete default: 400"),
    S("DELETE", "/v1/sys/policies/acl/c-pol", name="delete"),
    S("GET", "/v1/sys/policies/acl/c-pol", name="read after delete: 404"),
    S("DELETE", "/v1/sys/policies/acl/c-pol-missing", name="delete missing: 204"),
    S("PUT", "/v1/sys/policy/c-pol-legacy", {"rules": POL}, name="legacy write with rules"),
    S("PUT", "/v1/sys/policy/c-pol-legacy2", {"policy": POL}, name="legacy write with policy"),
    S("GET", "/v1/sys/policies/acl/c-pol-legacy", name="legacy-written policy read"),
    S("GET", "/v1/sys/policy/c-pol-legacy", name="legacy read of legacy-written policy"),
    S("DELETE", "/v1/sys/policy/c-pol-legacy", name="legacy delete"),
    S("DELETE", "/v1/sys/policy/c-pol-legacy2", name="legacy delete 2"),
    S("LIST", "/v1/sys/policies/acl", name="list after clean-up"),
])

# ------------------------------------------------------------------------------------------
CAPPOL = ('path "secret/data/c-cap/*" { capabilities = ["update", "read", "list", "create", "delete", "patch"] }\n'
          'path "secret/data/c-cap/admin" { capabilities = ["deny"] }\n'
          'path "secret/data/c-cap/team/+/config" { capabilities = ["read"] }\n'
          'path "secret/metadata/c-cap/*" { capabilities = ["read", "list"] }\n'
          'path "secret/data/c-cap/sudo" { capabilities = ["sudo", "read", "list", "update"] }\n'
          'path "secret/data/c-cap-pre*" { capabilities = ["read"] }\n')
CAPPOL2 = 'path "secret/data/c-cap/*" { capabilities = ["sudo"] }\npath "sys/mounts" { capabilities = ["read"] }\n'
PATHS = ["secret/data/c-cap/config", "secret/data/c-cap/admin", "secret/data/c-cap/team/x/config",
         "secret/data/c-cap/team/x/y/config", "secret/metadata/c-cap/a", "secret/data/c-cap/sudo",
         "secret/data/c-cap-prefix/x", "sys/mounts", "auth/token/lookup-self", "nothing/here"]
C["040-capabilities"] = ("sys/capabilities, capabilities-self, capabilities-accessor: result "
                         "shapes, sorting, union of two policies, errors", [
    policy("c-cap", CAPPOL),
    policy("c-cap2", CAPPOL2),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-cap"], "ttl": "1h"},
          save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="setup: token with c-cap"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-cap", "c-cap2"], "ttl": "1h"},
          save={"tok2": "auth.client_token"}, name="setup: token with c-cap + c-cap2"),
    S("POST", "/v1/sys/capabilities", {"token": "${tok}", "paths": PATHS}, name="capabilities (sorted lists)"),
    S("POST", "/v1/sys/capabilities-self", {"paths": PATHS}, token="${tok}", name="capabilities-self"),
    S("POST", "/v1/sys/capabilities-accessor", {"accessor": "${acc}", "paths": PATHS}, name="capabilities-accessor"),
    S("POST", "/v1/sys/capabilities", {"token": "${tok2}", "paths": PATHS}, name="two policies, same pattern: capabilities unioned (sudo added)"),
    S("POST", "/v1/sys/capabilities", {"token": "${tok}", "path": "secret/data/c-cap/x"},
      name="single `path` adds a `capabilities` key"),
    S("POST", "/v1/sys/capabilities-self", {"path": ["secret/data/c-cap/x", "sys/mounts"]}, token="${tok}",
      name="`path` given as a list"),
    S("POST", "/v1/sys/capabilities-self", {"paths": ["secret/data/anything", "sys/mounts"]}, name="root token: root"),
    S("POST", "/v1/sys/capabilities-self", {}, token="${tok}", name="no paths: 400"),
    S("POST", "/v1/sys/capabilities", {"token": "c-not-a-token", "paths": ["x"]}, name="unknown token: 400"),
    S("POST", "/v1/sys/capabilities-accessor", {"accessor": "c-not-an-accessor", "paths": ["x"]},
      name="unknown accessor: 400"),
    S("POST", "/v1/sys/capabilities", {"token": "${tok}", "paths": ["x"]}, token="${tok}",
      name="sys/capabilities needs a policy: 403"),
    S("POST", "/v1/sys/capabilities-self", {"paths": ["x"]}, token="c-not-a-token", name="capabilities-self with a bad token: 403"),
    S("POST", "/v1/secret/data/c-cap/x", {"data": {"k": "v"}}, token="${tok}", name="allowed write"),
    S("GET", "/v1/secret/data/c-cap/x", token="${tok}", name="allowed read"),
    S("GET", "/v1/secret/data/c-cap/nothing", token="${tok}", name="allowed read of a missing key: 404"),
    S("GET", "/v1/secret/data/c-cap/admin", token="${tok}", name="explicit deny: 403"),
    S("GET", "/v1/sys/mounts", token="${tok}", name="no rule: 403"),
    S("LIST", "/v1/secret/metadata/c-cap", token="${tok}", name="list with a folder rule"),
    S("GET", "/v1/secret/data/c-cap/team/a/config", token="${tok}", name="+ segment read of a missing key: 404"),
    S("POST", "/v1/secret/data/c-cap/team/a/config", {"data": {"a": 1}}, token="${tok}", name="+ segment write: 403"),
    S("GET", "/v1/secret/data/c-cap/team/a/b/config", token="${tok}", name="+ is one segment: deeper path falls back to the * rule"),
    S("GET", "/v1/secret/data/c-cap-prefix/x", token="${tok}", name="glob in the middle of a name: 404 (allowed)"),
    cleanup("DELETE", "/v1/secret/metadata/c-cap/x"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok2}"}),
    drop_policy("c-cap"),
    drop_policy("c-cap2"),
])

# ------------------------------------------------------------------------------------------
TPOL = ('path "secret/data/c-tok/*" { capabilities = ["read"] }\n'
        'path "auth/token/create" { capabilities = ["update"] }\n'
        'path "auth/token/create-orphan" { capabilities = ["update"] }\n')
C["050-token-create"] = ("auth/token/create with every option, create-orphan, lookup, "
                         "lookup-self, lookup-accessor: field sets", [
    policy("c-tok", TPOL),
    S("GET", "/v1/auth/token/lookup-self", name="lookup-self as root"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": "1h", "explicit_max_ttl": "2h",
                                        "display_name": "Compat App", "meta": {"team": "a", "env": "dev"}},
      save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="create with ttl, max, display_name, meta"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="lookup-self"),
    S("POST", "/v1/auth/token/lookup", {"token": "${tok}"}, name="lookup"),
    S("GET", "/v1/auth/token/lookup/${tok}", name="lookup with the token in the URL"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "${acc}"}, name="lookup-accessor (id is empty)"),
    S("POST", "/v1/auth/token/lookup-self", {}, token="${tok}", name="lookup-self with POST: 403 (default policy grants read only)"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "num_uses": 5, "ttl": "10m"},
      save={"nu": "auth.client_token"}, name="create with num_uses"),
    S("POST", "/v1/auth/token/lookup", {"token": "${nu}"}, name="lookup of num_uses token"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "period": "30m"},
      save={"per": "auth.client_token"}, name="create periodic"),
    S("POST", "/v1/auth/token/lookup", {"token": "${per}"}, name="lookup periodic"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": "5m", "renewable": False},
      save={"nr": "auth.client_token"}, name="create renewable=false"),
    S("POST", "/v1/auth/token/lookup", {"token": "${nr}"}, name="lookup non-renewable"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "no_default_policy": True, "ttl": "5m"},
      save={"nd": "auth.client_token"}, name="create without the default policy"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok", "c-tok"], "ttl": "5m"},
      save={"dup": "auth.client_token"}, name="duplicate policies are merged"),
    S("POST", "/v1/auth/token/create", {"policies": ["zeta-c-tok", "C-Tok", "a-c-tok"], "ttl": "5m"},
      save={"sorted": "auth.client_token"}, name="policies lower-cased, sorted, missing ones warned"),
    S("POST", "/v1/auth/token/create", {"ttl": "5m"}, save={"inh": "auth.client_token"},
      name="no policies: inherits root"),
    S("POST", "/v1/auth/token/create", {"policies": ["root"], "ttl": "5m"},
      save={"rootpol": "auth.client_token"}, name="root policy"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": "forever"}, name="bad duration: 400"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": 90}, save={"num": "auth.client_token"},
      name="ttl as a number of seconds"),
    S("POST", "/v1/auth/token/lookup", {"token": "${num}"}, name="lookup ttl-as-number token"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "ttl": "10m", "explicit_max_ttl": "5m"},
      save={"cap": "auth.client_token"}, name="ttl above explicit_max_ttl is capped"),
    S("POST", "/v1/auth/token/lookup", {"token": "${cap}"}, name="lookup capped token"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"]}, token="${tok}",
      save={"child": "auth.client_token"}, name="non-root creates a child with a subset"),
    S("POST", "/v1/auth/token/lookup", {"token": "${child}"}, name="child lookup: TTL is not capped by the parent's"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok", "c-other"]}, token="${tok}",
      name="non-root: policies not a subset: 400"),
    S("POST", "/v1/auth/token/create", {"policies": ["root"]}, token="${tok}", name="non-root asks for root: 400"),
    S("POST", "/v1/auth/token/create-orphan", {"policies": ["c-tok"], "ttl": "10m"},
      save={"orph": "auth.client_token"}, name="create-orphan as root"),
    S("POST", "/v1/auth/token/lookup", {"token": "${orph}"}, name="orphan lookup"),
    S("POST", "/v1/auth/token/create-orphan", {"policies": ["c-tok"]}, token="${tok}",
      save={"orph2": "auth.client_token"}, name="create-orphan as non-root"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "no_parent": True}, token="${tok}",
      name="no_parent as non-root: 400"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-tok"], "type": "batch", "ttl": "5m"},
      save={"batch": "auth.client_token"}, name="batch token"),
    S("POST", "/v1/auth/token/lookup", {"token": "${batch}"}, name="batch token lookup"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${nu}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${per}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${nr}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${nd}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${dup}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${inh}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${sorted}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${rootpol}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${num}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${cap}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${orph}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${orph2}"}),
    drop_policy("c-tok"),
])

# ------------------------------------------------------------------------------------------
RPOL = 'path "secret/data/c-ren/*" { capabilities = ["read"] }\n'
C["051-token-renew"] = ("renew, renew-self, capping by explicit_max_ttl with a warning, "
                        "periodic tokens, non-renewable tokens", [
    policy("c-ren", RPOL),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-ren"], "ttl": "1h", "explicit_max_ttl": "2h"},
          save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="setup: token ttl 1h max 2h"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "30m"}, token="${tok}", name="renew-self within max"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "10h"}, token="${tok}", name="renew-self capped: warning"),
    S("POST", "/v1/auth/token/renew", {"token": "${tok}", "increment": "30m"}, name="renew by token"),
    S("POST", "/v1/auth/token/renew", {"token": "${tok}", "increment": 600}, name="renew with increment in seconds"),
    S("POST", "/v1/auth/token/renew-self", {}, token="${tok}", name="renew-self without increment"),
    S("POST", "/v1/auth/token/renew-accessor", {"accessor": "${acc}", "increment": "20m"}, name="renew-accessor"),
    S("POST", "/v1/auth/token/lookup", {"token": "${tok}"}, name="lookup after renewals"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-ren"], "period": "1h"},
      save={"per": "auth.client_token"}, name="periodic token"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "5m"}, token="${per}", name="periodic renew resets to the period"),
    S("POST", "/v1/auth/token/create", {"policies": ["c-ren"], "renewable": False, "ttl": "5m"},
      save={"nr": "auth.client_token"}, name="non-renewable token"),
    S("POST", "/v1/auth/token/renew-self", {}, token="${nr}", name="renew a non-renewable token: 400"),
    S("POST", "/v1/auth/token/renew", {"token": "c-not-a-token"}, name="renew an unknown token: 400"),
    S("POST", "/v1/auth/token/renew", {}, name="renew without token: 400"),
    S("POST", "/v1/auth/token/renew-self", {}, name="renew-self as root"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${per}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${nr}"}),
    drop_policy("c-ren"),
])

# ------------------------------------------------------------------------------------------
VPOL = ('path "auth/token/create" { capabilities = ["update"] }\n'
        'path "secret/data/c-rev/*" { capabilities = ["read"] }\n')
C["052-token-revoke"] = ("revoke (tree), revoke-self, revoke-accessor, revoke-orphan "
                         "(children become orphans)", [
    policy("c-rev", VPOL),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"], "ttl": "1h"},
          save={"parent": "auth.client_token"}, name="setup: parent token"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"]}, token="${parent}",
          save={"child": "auth.client_token"}, name="setup: child token"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"]}, token="${child}",
          save={"grandchild": "auth.client_token"}, name="setup: grandchild token"),
    S("POST", "/v1/auth/token/revoke", {"token": "${parent}"}, name="revoke parent: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${child}", name="child revoked with parent: 403"),
    S("POST", "/v1/auth/token/lookup", {"token": "${grandchild}"}, name="grandchild too: 403 bad token"),
    S("GET", "/v1/auth/token/lookup-self", token="${parent}", name="revoked token: 403"),
    S("POST", "/v1/auth/token/revoke", {"token": "${parent}"}, name="revoke again: 204"),
    S("POST", "/v1/auth/token/revoke", {"token": "c-not-a-token"}, name="revoke an unknown token: 204"),
    S("POST", "/v1/auth/token/revoke", {}, name="revoke without token: 400"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"], "ttl": "1h"},
          save={"p2": "auth.client_token"}, name="setup: second parent"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"]}, token="${p2}",
          save={"c2": "auth.client_token"}, name="setup: its child"),
    S("POST", "/v1/auth/token/revoke-orphan", {"token": "${p2}"}, name="revoke-orphan: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${p2}", name="parent gone"),
    S("GET", "/v1/auth/token/lookup-self", token="${c2}", name="child survives as an orphan"),
    S("POST", "/v1/auth/token/revoke-orphan", {"token": "${c2}"}, token="${c2}", name="revoke-orphan needs sudo: 403"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"], "ttl": "1h"},
          save={"self": "auth.client_token"}, name="setup: token for revoke-self"),
    S("POST", "/v1/auth/token/revoke-self", token="${self}", name="revoke-self: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${self}", name="after revoke-self: 403"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-rev"], "ttl": "1h"},
          save={"byacc": "auth.client_token", "byacc_acc": "auth.accessor"}, name="setup: token for revoke-accessor"),
    S("POST", "/v1/auth/token/revoke-accessor", {"accessor": "${byacc_acc}"}, name="revoke-accessor: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${byacc}", name="after revoke-accessor: 403"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "${byacc_acc}"}, name="lookup a revoked accessor: 400"),
    S("POST", "/v1/auth/token/revoke-accessor", {"accessor": "c-not-an-accessor"}, name="revoke an unknown accessor: 200 with a warning"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${c2}"}),
    drop_policy("c-rev"),
])

# ------------------------------------------------------------------------------------------
C["053-token-errors"] = ("num_uses exhaustion, bad and missing tokens, Authorization: Bearer, "
                         "accessor used as a token, the two 403 texts", [
    policy("c-terr", 'path "secret/data/c-terr/*" { capabilities = ["read"] }\n'),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-terr"], "num_uses": 3, "ttl": "10m"},
          save={"nu": "auth.client_token"}, name="setup: token with num_uses 3"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="use 1 of 3 (shows 2 left)"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="use 2 of 3"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="use 3 of 3 (shows -1)"),
    S("GET", "/v1/auth/token/lookup-self", token="${nu}", name="exhausted: 403"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-terr"], "ttl": "10m"},
          save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="setup: plain token"),
    S("GET", "/v1/auth/token/lookup-self", token=None, headers={"Authorization": "Bearer ${tok}"},
      name="Authorization: Bearer"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", headers={"Authorization": "Bearer c-not-a-token"},
      name="X-Vault-Token wins over Authorization"),
    S("GET", "/v1/auth/token/lookup-self", token=None, headers={"Authorization": "Basic Zm9vOmJhcg=="},
      name="Authorization: Basic is not a token: 403"),
    S("GET", "/v1/auth/token/lookup-self", token="${acc}", name="accessor used as a token: 403"),
    S("GET", "/v1/auth/token/lookup-self", token="c-not-a-token", name="bad token: 403 permission denied"),
    S("GET", "/v1/auth/token/lookup-self", token=None, name="no token: 403"),
    S("GET", "/v1/secret/data/c-terr/x", token="c-not-a-token", name="bad token on KV: 403"),
    S("GET", "/v1/secret/data/c-terr/x", token=None, name="no token on KV: 403"),
    S("GET", "/v1/secret/data/c-terr/x", token="", name="empty X-Vault-Token: 403"),
    S("GET", "/v1/sys/mounts", token="${tok}", name="valid token, policy denies: 403 (multierror text)"),
    S("GET", "/v1/secret/data/c-terr/x", token="${tok}", name="valid token, allowed, missing key: 404"),
    S("POST", "/v1/auth/token/lookup", {"token": "c-not-a-token"}, name="lookup a bad token: 403 bad token"),
    S("POST", "/v1/auth/token/lookup", {}, name="lookup with an empty body looks up the caller"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "c-not-an-accessor"}, name="lookup-accessor bad: 400"),
    S("GET", "/v1/auth/token/nonexistent", name="unknown token endpoint: 404"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
    drop_policy("c-terr"),
])

# ------------------------------------------------------------------------------------------
C["054-token-accessors"] = ("LIST auth/token/accessors needs sudo", [
    policy("c-acc", 'path "auth/token/accessors" { capabilities = ["list"] }\n'),
    policy("c-acc-sudo", 'path "auth/token/accessors" { capabilities = ["list", "sudo"] }\n'),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-acc"], "ttl": "10m"},
          save={"nosudo": "auth.client_token", "acc1": "auth.accessor"}, name="setup: token with list only"),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-acc-sudo"], "ttl": "10m"},
          save={"sudo": "auth.client_token", "acc2": "auth.accessor"}, name="setup: token with list+sudo"),
    S("LIST", "/v1/auth/token/accessors", name="root lists accessors (set of markers)"),
    S("GET", "/v1/auth/token/accessors?list=true", name="GET ?list=true"),
    S("LIST", "/v1/auth/token/accessors", token="${nosudo}", name="list without sudo: 403"),
    S("LIST", "/v1/auth/token/accessors", token="${sudo}", name="list with sudo"),
    S("GET", "/v1/auth/token/accessors", name="GET without list: 405"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${nosudo}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${sudo}"}),
    drop_policy("c-acc"),
    drop_policy("c-acc-sudo"),
])

# ------------------------------------------------------------------------------------------
C["055-token-roles"] = ("token roles: write, read, list, create/<role>, delete", [
    policy("c-role", 'path "secret/data/c-role/*" { capabilities = ["read"] }\n'),
    policy("c-role2", 'path "secret/data/c-role2/*" { capabilities = ["read"] }\n'),
    S("POST", "/v1/auth/token/roles/c-ci", {"allowed_policies": ["c-role", "c-role2"], "orphan": True,
                                            "token_period": "1h", "renewable": True}, name="write role"),
    S("GET", "/v1/auth/token/roles/c-ci", name="read role (full field set)"),
    S("POST", "/v1/auth/token/roles/c-ttl", {"allowed_policies": ["c-role"], "token_explicit_max_ttl": "2h",
                                             "token_no_default_policy": True, "path_suffix": "sfx"},
      name="write second role"),
    S("GET", "/v1/auth/token/roles/c-ttl", name="read second role"),
    S("LIST", "/v1/auth/token/roles", name="list roles"),
    S("GET", "/v1/auth/token/roles?list=true", name="list roles with ?list=true"),
    S("POST", "/v1/auth/token/create/c-ci", {"policies": ["c-role"]}, save={"rt": "auth.client_token"},
      name="create with role"),
    S("GET", "/v1/auth/token/lookup-self", token="${rt}", name="role token lookup (orphan, period, path)"),
    S("POST", "/v1/auth/token/create/c-ci", {}, save={"rt2": "auth.client_token"},
      name="create with role, no policies: all allowed"),
    S("POST", "/v1/auth/token/create/c-ci", {"policies": ["c-other"]}, name="policy not allowed by role: 400"),
    S("POST", "/v1/auth/token/create/c-ttl", {"ttl": "5h"}, save={"rt3": "auth.client_token"},
      name="role explicit max caps ttl"),
    S("POST", "/v1/auth/token/lookup", {"token": "${rt3}"}, name="lookup of role token with suffix"),
    S("POST", "/v1/auth/token/create/c-missing", {}, name="create with a missing role: 400"),
    S("GET", "/v1/auth/token/roles/c-missing", name="read missing role: 404"),
    S("DELETE", "/v1/auth/token/roles/c-ci", name="delete role"),
    S("DELETE", "/v1/auth/token/roles/c-ttl", name="delete second role"),
    S("GET", "/v1/auth/token/roles/c-ci", name="read deleted role: 404"),
    S("LIST", "/v1/auth/token/roles", name="list with no roles: 404"),
    S("DELETE", "/v1/auth/token/roles/c-missing", name="delete missing role: 204"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${rt}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${rt2}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${rt3}"}),
    drop_policy("c-role"),
    drop_policy("c-role2"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2w"
C["060-kv2-write-read"] = ("KV v2 writes, reads, versions, check-and-set, JSON merge patch", [
    mount("c-kv2w", "2"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "one"}, "options": {"cas": 0}},
      name="write with cas=0 (create only)"),
    S("POST", M + "/data/app/config", {"data": {"password": "other"}, "options": {"cas": 0}},
      name="cas=0 when it exists: 400"),
    S("POST", M + "/data/app/config", {"data": {"username": "admin", "password": "two"}, "options": {"cas": 1}},
      name="write with cas=1"),
    S("POST", M + "/data/app/config", {"data": {"password": "x"}, "options": {"cas": 5}}, name="cas mismatch: 400"),
    S("PUT", M + "/data/app/config", {"data": {"username": "admin", "password": "three", "port": 5432,
                                               "ratio": 0.5, "on": True, "none": None, "nested": {"a": [1, "2"]}}},
      name="PUT without cas, JSON types"),
    S("POST", M + "/data/app/config", {"username": "x"}, name="missing data wrapper: 400"),
    S("POST", M + "/data/app/config", {}, name="empty body: 400"),
    S("POST", M + "/data/app/config", {"data": "a string"}, name="data is a string: 400"),
    S("POST", M + "/data/app/config", {"data": {"a": "b"}, "options": {"cas": "one"}}, name="cas is not a number"),
    S("POST", M + "/data/app/empty", {"data": {}}, name="empty data map is a valid version"),
    S("GET", M + "/data/app/empty", name="read empty data"),
    S("GET", M + "/data/app/config", name="read latest"),
    S("GET", M + "/data/app/config?version=1", name="read version 1"),
    S("GET", M + "/data/app/config?version=0", name="version=0 means latest"),
    S("GET", M + "/data/app/config?version=99", name="version 99: 404"),
    S("GET", M + "/data/app/config?version=abc", name="version not a number: 400"),
    S("GET", M + "/data/app/missing", name="read missing: 404"),
    S("GET", M + "/data/app", name="read a folder: 404"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "four", "port": None, "nested": {"b": 2}}},
      headers=MP, name="merge patch (null removes, objects merge)"),
    S("GET", M + "/data/app/config", name="read after patch"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "x"}}, name="PATCH without Content-Type: 400 mime: no media type"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "x"}}, headers={"Content-Type": "application/json"},
      name="PATCH with application/json: 415"),
    S("PATCH", M + "/data/app/nothing", {"data": {"password": "x"}}, headers=MP, name="patch a missing key: 404 with an EMPTY body"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "five"}, "options": {"cas": 1}}, headers=MP,
      name="patch with stale cas: 400"),
    S("PATCH", M + "/data/app/config", {"data": {"password": "five"}, "options": {"cas": 4}}, headers=MP,
      name="patch with current cas"),
    S("PATCH", M + "/data/app/config", {"password": "x"}, headers=MP, name="patch without data wrapper: 400"),
    S("GET", M + "/subkeys/app/config", name="subkeys"),
    S("GET", M + "/subkeys/app/config?depth=1", name="subkeys depth=1"),
    S("GET", M + "/subkeys/app/config?version=1", name="subkeys of version 1"),
    S("GET", M + "/subkeys/app/missing", name="subkeys of a missing key: 404"),
    S("GET", M + "/data/app/con", name="prefix of a key name: 404"),
    S("GET", M + "/app/config", name="path outside data/: 404 with warning envelope"),
    S("POST", M + "/app/config", {"data": {"a": "b"}}, name="write outside data/: 404 with warning"),
    unmount("c-kv2w"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2m"
C["061-kv2-metadata"] = ("KV v2 metadata: field sets, write/patch semantics, custom_metadata "
                         "replace vs merge, max_versions pruning, cas_required on a key", [
    mount("c-kv2m", "2"),
    setup("POST", M + "/data/app/config", {"data": {"a": "1"}}),
    setup("POST", M + "/data/app/config", {"data": {"a": "2"}}),
    S("GET", M + "/metadata/app/config", name="metadata read (field set)"),
    S("GET", M + "/metadata/app/missing", name="metadata of a missing key: 404"),
    S("POST", M + "/metadata/app/config", {"max_versions": 7, "custom_metadata": {"k1": "v1", "k2": "v2"},
                                           "delete_version_after": "1h"}, name="metadata write"),
    S("GET", M + "/metadata/app/config", name="metadata after write"),
    S("POST", M + "/metadata/app/config", {"custom_metadata": {"env": "dev"}}, name="write only custom_metadata"),
    S("GET", M + "/metadata/app/config", name="custom_metadata replaced, max_versions kept"),
    S("PATCH", M + "/metadata/app/config", {"custom_metadata": {"owner": "ops", "env": None}}, headers=MP,
      name="metadata patch"),
    S("GET", M + "/metadata/app/config", name="custom_metadata merged, null removed"),
    S("PATCH", M + "/metadata/app/config", {"max_versions": 3}, name="metadata PATCH without Content-Type: 400"),
    S("PATCH", M + "/metadata/app/nothing", {"max_versions": 3}, headers=MP, name="metadata patch of a missing key: 404 empty body"),
    S("POST", M + "/metadata/app/config", {"custom_metadata": {"n": 1, "b": True}},
      name="custom_metadata values not strings: accepted"),
    S("GET", M + "/metadata/app/config", name="non-string custom_metadata values read back"),
    S("POST", M + "/metadata/app/config", {"delete_version_after": "0s", "custom_metadata": {}},
      name="reset delete_version_after, empty custom_metadata"),
    S("GET", M + "/metadata/app/config", name="metadata after reset"),
    S("POST", M + "/metadata/app/new", {"max_versions": 2, "cas_required": True}, name="metadata for a key without data"),
    S("GET", M + "/metadata/app/new", name="metadata of a key with no versions"),
    S("GET", M + "/data/app/new", name="data of a key with no versions: 404"),
    S("POST", M + "/data/app/new", {"data": {"v": 1}}, name="cas_required on the key: 400"),
    S("POST", M + "/data/app/new", {"data": {"v": 1}, "options": {"cas": 0}}, name="version 1 with cas"),
    S("POST", M + "/data/app/new", {"data": {"v": 2}, "options": {"cas": 1}}, name="version 2"),
    S("POST", M + "/data/app/new", {"data": {"v": 3}, "options": {"cas": 2}}, name="version 3 prunes version 1"),
    S("GET", M + "/metadata/app/new", name="oldest_version advanced, 2 versions kept"),
    S("GET", M + "/data/app/new?version=1", name="pruned version: 404"),
    S("GET", M + "/data/app/new?version=2", name="version 2 still there"),
    S("POST", M + "/metadata/app/new", {"max_versions": 1}, name="lower max_versions"),
    S("GET", M + "/metadata/app/new", name="metadata after lowering (pruned on next write)"),
    S("POST", M + "/data/app/new", {"data": {"v": 4}, "options": {"cas": 3}}, name="write after lowering"),
    S("GET", M + "/metadata/app/new", name="only one version left"),
    S("DELETE", M + "/metadata/app/new", name="delete metadata (all versions)"),
    S("GET", M + "/metadata/app/new", name="metadata gone: 404"),
    S("DELETE", M + "/metadata/app/never", name="delete metadata of a missing key: 204"),
    unmount("c-kv2m"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2d"
C["062-kv2-delete"] = ("KV v2 soft delete, undelete, destroy: the 404-with-envelope bodies", [
    mount("c-kv2d", "2"),
    setup("POST", M + "/data/app/config", {"data": {"v": "1"}}),
    setup("POST", M + "/data/app/config", {"data": {"v": "2"}}),
    setup("POST", M + "/data/app/config", {"data": {"v": "3"}}),
    S("DELETE", M + "/data/app/config", name="soft-delete latest: 204"),
    S("GET", M + "/data/app/config", name="read soft-deleted latest: 404 with envelope"),
    S("GET", M + "/data/app/config?version=2", name="earlier version still readable"),
    S("GET", M + "/subkeys/app/config", name="subkeys of a deleted latest version"),
    S("POST", M + "/undelete/app/config", {"versions": [3]}, name="undelete: 204"),
    S("GET", M + "/data/app/config", name="read after undelete"),
    S("POST", M + "/delete/app/config", {"versions": [1, 2]}, name="delete versions 1 and 2"),
    S("GET", M + "/data/app/config?version=1", name="read deleted version: 404 with envelope"),
    S("POST", M + "/destroy/app/config", {"versions": [2]}, name="destroy version 2"),
    S("GET", M + "/data/app/config?version=2", name="read destroyed: 404, destroyed=true"),
    S("POST", M + "/undelete/app/config", {"versions": ["2", "1"]}, name="undelete with string versions"),
    S("GET", M + "/data/app/config?version=2", name="destroyed stays destroyed"),
    S("GET", M + "/data/app/config?version=1", name="version 1 undeleted"),
    S("GET", M + "/metadata/app/config", name="metadata shows deletion and destruction"),
    S("POST", M + "/delete/app/config", {}, name="delete without versions: 400"),
    S("POST", M + "/undelete/app/config", {}, name="undelete without versions: 400"),
    S("POST", M + "/destroy/app/config", {}, name="destroy without versions: 400"),
    S("POST", M + "/delete/app/config", {"versions": [42]}, name="delete a version that does not exist: 204"),
    S("POST", M + "/destroy/app/missing", {"versions": [1]}, name="destroy on a missing key: 204"),
    S("DELETE", M + "/data/app/missing", name="soft-delete a missing key: 204"),
    S("GET", M + "/delete/app/config", name="GET on delete/: 405"),
    S("DELETE", M + "/metadata/app/config", name="delete all versions"),
    S("GET", M + "/data/app/config", name="read after metadata delete: 404"),
    S("GET", M + "/data/app/config?version=1", name="old version after metadata delete: 404"),
    unmount("c-kv2d"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2l"
C["063-kv2-list"] = ("KV v2 listing: LIST verb vs GET ?list=true vs trailing slash, 404 on "
                     "empty, 405 on data/", [
    mount("c-kv2l", "2"),
    S("LIST", M + "/metadata", name="list an empty mount: 404"),
    setup("POST", M + "/data/app/config", {"data": {"a": "b"}}),
    setup("POST", M + "/data/app/other", {"data": {"a": "b"}}),
    setup("POST", M + "/data/app/nested/deep", {"data": {"a": "b"}}),
    setup("POST", M + "/data/app/Zeta", {"data": {"a": "b"}}),
    setup("POST", M + "/data/team/x/config", {"data": {"a": "b"}}),
    S("LIST", M + "/metadata/app", name="LIST verb"),
    S("GET", M + "/metadata/app?list=true", name="GET ?list=true"),
    S("LIST", M + "/metadata/app/", name="LIST with trailing slash"),
    S("GET", M + "/metadata/app/?list=true", name="GET ?list=true with trailing slash"),
    S("GET", M + "/metadata/app?list=1", name="list=1"),
    S("GET", M + "/metadata/app?list=false", name="list=false reads metadata of key app: 404"),
    S("LIST", M + "/metadata", name="list the mount root"),
    S("LIST", M + "/metadata/", name="list the mount root with slash"),
    S("LIST", M + "/metadata/nothing-here", name="list missing: 404"),
    S("LIST", M + "/metadata/app/config", name="list a leaf key: 404"),
    S("LIST", M + "/data/app", name="LIST on data/: 405"),
    S("GET", M + "/data/app?list=true", name="GET ?list=true on data/: 405"),
    S("DELETE", M + "/data/app/other", name="soft-delete one key"),
    S("LIST", M + "/metadata/app", name="soft-deleted keys are still listed"),
    S("DELETE", M + "/metadata/app/other", name="delete metadata"),
    S("DELETE", M + "/metadata/app/nested/deep", name="delete the only nested key"),
    S("LIST", M + "/metadata/app", name="deleted keys and empty folders vanish"),
    unmount("c-kv2l"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2c"
C["064-kv2-config"] = ("KV v2 mount config: read, write, cas_required and max_versions from "
                       "the mount", [
    mount("c-kv2c", "2"),
    S("GET", M + "/config", name="config read (defaults)"),
    S("POST", M + "/config", {"cas_required": True, "max_versions": 2, "delete_version_after": "1h"},
      name="config write"),
    S("GET", M + "/config", name="config read after write"),
    S("POST", M + "/data/k", {"data": {"a": "b"}}, name="mount cas_required: write without cas: 400"),
    S("POST", M + "/data/k", {"data": {"v": 1}, "options": {"cas": 0}}, name="write with cas"),
    S("POST", M + "/data/k", {"data": {"v": 2}, "options": {"cas": 1}}, compare=False),
    S("POST", M + "/data/k", {"data": {"v": 3}, "options": {"cas": 2}}, name="third version"),
    S("GET", M + "/metadata/k", name="metadata: mount max_versions applied, mount cas_required not copied"),
    S("POST", M + "/config", {"max_versions": -1}, name="negative max_versions"),
    S("GET", M + "/config", name="config after negative max_versions"),
    S("POST", M + "/config", {"cas_required": False, "max_versions": 0, "delete_version_after": "0s"},
      name="reset config"),
    S("GET", M + "/config", name="config after reset"),
    S("LIST", M + "/config", name="LIST config: 404 with a bao kv list warning"),
    S("DELETE", M + "/config", name="DELETE config: 405"),
    unmount("c-kv2c"),
])

# ------------------------------------------------------------------------------------------
M = "/v1/c-kv2p"
KPOL = ('path "c-kv2p/data/app/*" { capabilities = ["read", "update"] }\n'
        'path "c-kv2p/data/new/*" { capabilities = ["create"] }\n'
        'path "c-kv2p/metadata/app/*" { capabilities = ["list"] }\n'
        'path "c-kv2p/delete/app/*" { capabilities = ["update"] }\n')
C["065-kv2-policy"] = ("KV v2 under a policy: create vs update, patch capability, metadata "
                       "and delete paths, 403 vs 404", [
    mount("c-kv2p", "2"),
    policy("c-kv2p", KPOL),
    setup("POST", "/v1/auth/token/create", {"policies": ["c-kv2p"], "ttl": "10m"},
          save={"tok": "auth.client_token"}, name="setup: token"),
    S("POST", M + "/data/app/k", {"data": {"a": "b"}}, token="${tok}", name="new key needs create: 403"),
    setup("POST", M + "/data/app/k", {"data": {"a": "b"}}),
    S("POST", M + "/data/app/k", {"data": {"a": "c"}}, token="${tok}", name="existing key: update suffices"),
    S("GET", M + "/data/app/k", token="${tok}", name="read allowed"),
    S("PATCH", M + "/data/app/k", {"data": {"a": "d"}}, token="${tok}", headers=MP, name="patch needs patch: 403"),
    S("POST", M + "/data/new/k", {"data": {"a": "b"}}, token="${tok}", name="create-only path: new key ok"),
    S("POST", M + "/data/new/k", {"data": {"a": "c"}}, token="${tok}", name="create-only path: update 403"),
    S("GET", M + "/data/new/k", token="${tok}", name="create-only path: read 403"),
    S("LIST", M + "/metadata/app", token="${tok}", name="list allowed on metadata/app/*? (folder itself)"),
    S("LIST", M + "/metadata/app/", token="${tok}", name="list metadata/app/ with slash"),
    S("GET", M + "/metadata/app/k", token="${tok}", name="metadata read: 403"),
    S("DELETE", M + "/data/app/k", token="${tok}", name="DELETE data needs delete: 403"),
    S("POST", M + "/delete/app/k", {"versions": [1]}, token="${tok}", name="delete/ endpoint with update"),
    S("GET", M + "/data/app/missing", token="${tok}", name="allowed path, missing key: 404"),
    S("GET", M + "/data/other", token="${tok}", name="not allowed: 403"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
    drop_policy("c-kv2p"),
    unmount("c-kv2p"),
])

# ------------------------------------------------------------------------------------------
K1 = "/v1/c-kv1"
C["070-kv1"] = ("KV v1: write, read, overwrite, ttl key, list, delete", [
    mount("c-kv1", "1"),
    S("POST", K1 + "/app/config", {"username": "admin", "n": 3, "nested": {"a": [1, None]}}, name="write: 204"),
    S("GET", K1 + "/app/config", name="read (lease_duration from the mount)"),
    S("PUT", K1 + "/app/config", {"only": "this"}, name="overwrite with PUT"),
    S("GET", K1 + "/app/config", name="read overwritten: whole map replaced"),
    S("POST", K1 + "/app/ttl", {"ttl": "30m", "v": "x"}, name="write with a ttl key"),
    S("GET", K1 + "/app/ttl", name="read: ttl key sets lease_duration"),
    S("POST", K1 + "/app/ttl2", {"ttl": 90, "v": "x"}, name="ttl as a number"),
    S("GET", K1 + "/app/ttl2", name="read ttl-as-number"),
    S("POST", K1 + "/app/badttl", {"ttl": "soon"}, name="unparsable ttl"),
    S("GET", K1 + "/app/badttl", name="read after unparsable ttl"),
    S("POST", K1 + "/app/nested/one", {"a": "b"}, name="nested key"),
    S("POST", K1 + "/app/empty", {}, name="write an empty map"),
    S("GET", K1 + "/app/empty", name="read an empty map"),
    S("LIST", K1 + "/app", name="LIST"),
    S("GET", K1 + "/app?list=true", name="GET ?list=true"),
    S("LIST", K1 + "/app/", name="LIST with trailing slash"),
    S("GET", K1 + "/?list=true", name="list the mount root"),
    S("LIST", K1 + "/nothing", name="list missing: 404"),
    S("GET", K1 + "/app/missing", name="read missing: 404"),
    S("PATCH", K1 + "/app/config", {"x": "y"}, headers=MP, name="PATCH on kv v1: 405"),
    S("DELETE", K1 + "/app/config", name="delete: 204"),
    S("GET", K1 + "/app/config", name="read deleted: 404"),
    S("DELETE", K1 + "/app/never", name="delete missing: 204"),
    S("POST", K1 + "/app/raw", raw_body="not json", name="malformed JSON on kv v1: 400",
      match={"errors.0": "^failed to decode JSON input: "}),
    unmount("c-kv1"),
])

# ------------------------------------------------------------------------------------------
C["080-errors"] = ("routing errors, malformed and mistyped JSON bodies, unsupported "
                   "operations", [
    mount("c-err", "2"),
    S("GET", "/v1/c-err-nosuchmount/data/x", name="no mount: 404 no handler for route"),
    S("POST", "/v1/c-err-nosuchmount/x", {"a": 1}, name="write to no mount: 404"),
    S("GET", "/v1/sys/c-err-nonexistent", name="unknown sys path: 404 unsupported path"),
    S("GET", "/v1/auth/c-err-nomethod/login", name="unknown auth mount: 404"),
    S("GET", "/v2/sys/health", name="not under /v1: 404"),
    S("GET", "/v1/", name="/v1/ itself"),
    S("POST", "/v1/c-err/data/x", raw_body="{not json", name="malformed JSON: 400",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/c-err/data/x", raw_body="[1,2]", name="JSON array body: 400",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/c-err/data/x", raw_body='"just a string"', name="JSON string body",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/c-err/data/x", raw_body="", name="empty body on a write: 400 no data"),
    S("POST", "/v1/c-err/data/x", raw_body="null", name="null body: 400 no data"),
    S("POST", "/v1/c-err/data/x", raw_body="{bad", token=None, name="malformed JSON without a token: 400, not 403",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/c-err/data/x", raw_body="{bad", token="c-not-a-token",
      name="malformed JSON with a bad token: 400, not 403", match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/c-err-nosuchmount/x", raw_body="{bad", name="malformed JSON to no mount: 400, not 404",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("GET", "/v1/c-err/data/x", raw_body="{bad", name="GET ignores a malformed body: 404"),
    S("POST", "/v1/c-err/data/two", raw_body='{"data": {"a": 1}} {"data": {"b": 2}}',
      name="two JSON values: the first is used",
      deviation={"status": 400, "reason": "Airlock refuses a body with more than one JSON value instead of using the first"}),
    S("POST", "/v1/c-err/data/dup", raw_body='{"data": {"a": 1}, "data": {"b": 2}}', name="duplicate keys: last wins"),
    S("GET", "/v1/c-err/data/dup", name="read duplicate-key write"),
    S("POST", "/v1/c-err/data/x", raw_body='{"data": {"a": 1}} trailing', name="trailing garbage after JSON",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("PUT", "/v1/sys/policies/acl/c-err", raw_body="{bad", name="malformed JSON on sys: 400",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/auth/token/create", raw_body="{bad", name="malformed JSON on token create: 400",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("POST", "/v1/auth/token/create", {"policies": "c-err-a,c-err-b", "ttl": "1m"}, token="root",
      save={"t": "auth.client_token"}, name="policies as a comma string"),
    S("POST", "/v1/auth/token/create", {"num_uses": "three"}, name="num_uses as a word: 400"),
    S("POST", "/v1/auth/token/create", {"meta": "x"}, name="meta not a map: 400"),
    S("POST", "/v1/auth/token/create", {"renewable": "yes"}, name="renewable as a word: 400"),
    S("POST", "/v1/auth/token/create", {"renewable": "false", "ttl": "1m"}, save={"t2": "auth.client_token"},
      name="renewable as the string false"),
    S("POST", "/v1/sys/mounts/c-err2", {"type": 42}, name="mount type is a number: 400"),
    S("PUT", "/v1/sys/policies/acl/c-err", {"policy": 42}, name="policy is a number"),
    S("POST", "/v1/c-err/data/x", {"data": {"a": 1}, "options": "x"}, name="options not a map"),
    S("DELETE", "/v1/sys/policies/acl/c-err", compare=False),
    S("POST", "/v1/sys/mounts", {"type": "kv"}, name="POST sys/mounts without a path: 405"),
    S("PATCH", "/v1/sys/policies/acl/c-err", {"policy": "x"}, headers=MP, name="PATCH on a missing policy: 400 policy not found"),
    S("POST", "/v1/auth/token/lookup-self", raw_body="{bad", name="malformed JSON on lookup-self",
      match={"errors.0": "^failed to decode JSON input: "}),
    S("GET", "/v1/sys/health", headers={"X-Vault-Request": "true"}, token=None, name="X-Vault-Request header accepted"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${t}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${t2}"}),
    unmount("c-err"),
])

# ------------------------------------------------------------------------------------------
DOT = {"status": 400, "reason": "Airlock refuses dot segments and empty segments with 400 "
                                "instead of OpenBao's 307 redirect to the cleaned path"}
LONG = {"status": 414, "reason": "Airlock caps request paths at 8192 bytes (414); OpenBao has no "
                                 "limit and gets quadratically slower (100 kB path: ~16 s)"}
M = "/v1/c-path"
C["090-odd-paths"] = ("paths with .., ., //, encoded slashes and very long paths", [
    mount("c-path", "2"),
    setup("POST", M + "/data/a/b", {"data": {"k": "v"}}),
    S("GET", M + "/data/a/../a/b", name="'..' segment: 307 to the cleaned path", deviation=DOT),
    S("GET", M + "/data/a/./b", name="'.' segment: 307", deviation=DOT),
    S("GET", "/v1/c-path//data/a/b", name="'//' empty segment: 307", deviation=DOT),
    S("GET", "/v1//sys/health", name="'//' right after /v1: 307", deviation=DOT),
    S("GET", "/v1/c-path/data/../../sys/mounts", name="'..' escaping the mount: 307 to /v1/sys/mounts",
      deviation=DOT),
    S("GET", "/v1/sys/../sys/health", name="'..' in sys: 307", deviation=DOT),
    S("GET", M + "/data/a/..", name="trailing '..': 307", deviation=DOT),
    S("GET", M + "/data/a%2F..%2Fa/b", name="encoded ..: 400 relative paths not supported"),
    S("GET", M + "/data/a/%2e%2e/b", name="%2e%2e segment: 400"),
    S("GET", M + "/data/a%2Fb", name="%2F is a slash: reads a/b"),
    S("GET", M + "/data/a/b/", name="trailing slash on a kv v2 read: 500 (OpenBao bug)",
      deviation={"status": 404, "reason": "OpenBao answers 500 'could not find version data'; 404 is acceptable"}),
    S("GET", M + "/data/a%20b", name="encoded space: 404"),
    S("POST", M + "/data/${repeat:k:4000}", {"data": {"long": True}}, name="write a 4000-char key"),
    S("GET", M + "/data/${repeat:k:4000}", name="read the 4000-char key"),
    S("GET", M + "/data/${repeat:d/:1500}x", name="1500 path segments: 404"),
    S("GET", M + "/data/${repeat:x:9000}", name="9000-char path: 404 on OpenBao", deviation=LONG),
    S("GET", "/v1/c-path-nomount/${repeat:y:2000}", name="long path on no mount: 404 quoting the path"),
    cleanup("DELETE", M + "/metadata/${repeat:k:4000}"),
    unmount("c-path"),
])


def main():
    d = os.path.join(HERE, "cases")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".json"):
            os.remove(os.path.join(d, f))
    n = 0
    for name, (desc, steps) in C.items():
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump({"name": name, "description": desc, "steps": steps}, f, indent=1)
            f.write("\n")
        n += sum(1 for s in steps if s.get("compare", True) is not False)
    print(f"{len(C)} case files, {n} compared steps")


if __name__ == "__main__":
    main()
