#!/usr/bin/env python3
"""End-to-end checks of a Vault-API server through the real hvac client (PyPI `hvac`).

Usage:  VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> python3 tests/clients/hvac_flow.py

Needs a root token. Creates a KV v2 and a KV v1 mount, a few policies and tokens, all with a
random suffix, and removes them at the end. Prints one line per check, then
`hvac: N passed, N failed`; exits 1 if any check failed. Failure reasons never contain secret
values (only key names, versions, status codes and the server's error strings).
Every HTTP call has a 10 s timeout.
"""
import os
import re
import secrets
import signal
import sys
import time
import traceback

try:
    import hvac
    import hvac.exceptions as hx
except ImportError:  # pragma: no cover
    print("hvac: not installed (python3 -m pip install hvac)", file=sys.stderr)
    sys.exit(2)

ADDR = os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200")
ROOT = os.environ.get("VAULT_TOKEN", "")
TIMEOUT = 10
SFX = secrets.token_hex(4)
M2 = f"hvac-kv2-{SFX}"  # KV v2 mount
M1 = f"hvac-kv1-{SFX}"  # KV v1 mount
POL = f"hvac-pol-{SFX}"  # policy for the restricted token
POL_TMP = f"hvac-tmp-{SFX}"  # policy created and deleted in the policy checks
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

POLICY_HCL = f"""
path "{M2}/data/allowed/*" {{
  capabilities = ["create", "read", "update"]
}}
path "{M2}/data/allowed/blocked" {{
  capabilities = ["deny"]
}}
path "{M2}/metadata/allowed/*" {{
  capabilities = ["list", "read"]
}}
path "{M2}/metadata/allowed" {{
  capabilities = ["list"]
}}
path "auth/token/create" {{
  capabilities = ["create", "update"]
}}
path "auth/token/create-orphan" {{
  capabilities = ["create", "update"]
}}
"""


def client(token=ROOT, **kw):
    return hvac.Client(url=ADDR, token=token, timeout=TIMEOUT, **kw)


root = client()
S = {}  # state shared between checks
CREATED_TOKENS = []  # accessors of tokens to revoke at cleanup


GENERATED = []  # every secret value made by val(); masked out of failure messages


def val(tag):
    """A fresh secret value; never printed."""
    v = f"{tag}-{secrets.token_urlsafe(12)}"
    GENERATED.append(v)
    return v


def mask(text):
    for v in GENERATED:
        text = text.replace(v, "***")
    return text


# ---------------------------------------------------------------- assertion helpers
class CheckFailed(AssertionError):
    pass


def eq(actual, expected, what):
    """Equality for non-secret values (versions, names, TTLs): the message shows both."""
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def secret_eq(actual, expected, what):
    """Equality for secret maps: the message shows key names and types only, never values."""
    if actual != expected:
        if isinstance(actual, dict) and isinstance(expected, dict):
            diff = sorted(k for k in set(actual) | set(expected) if actual.get(k) != expected.get(k))
            detail = f"keys expected {sorted(expected)}, got {sorted(actual)}; differing keys {diff}"
            for k in diff:
                if k in actual and k in expected and type(actual[k]) is not type(expected[k]):
                    detail += f"; {k}: type {type(actual[k]).__name__} != {type(expected[k]).__name__}"
        else:
            detail = f"got {type(actual).__name__}"
        raise CheckFailed(f"{what}: secret data differs ({detail})")


def true(cond, what):
    if not cond:
        raise CheckFailed(what)


def raises(exc, fn, what):
    """fn() must raise hvac exception `exc` (status-mapped); returns the exception."""
    try:
        fn()
    except exc as e:
        return e
    except hx.VaultError as e:
        raise CheckFailed(f"{what}: expected {exc.__name__}, got {type(e).__name__} {short_errors(e)}")
    raise CheckFailed(f"{what}: expected {exc.__name__}, call succeeded")


def short_errors(e):
    errs = getattr(e, "errors", None)
    s = "; ".join(str(x) for x in errs) if errs else (e.args[0] if e.args and e.args[0] else "")
    s = mask(str(s)).replace("\n", " ").replace("\t", " ")
    return f"[{s[:160]}]" if s else "[]"


def status_of(resp):
    """hvac returns a dict for 200-with-JSON, a requests.Response otherwise."""
    return 200 if isinstance(resp, dict) else resp.status_code


def envelope(resp, what):
    """Check the standard Vault response envelope keys."""
    true(isinstance(resp, dict), f"{what}: expected a JSON body")
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        true(k in resp, f"{what}: envelope key {k!r} missing")
    true(isinstance(resp["request_id"], str) and resp["request_id"], f"{what}: request_id not a non-empty string")
    eq(resp["wrap_info"], None, f"{what}: wrap_info")


def kv2(c=root):
    return c.secrets.kv.v2


def kv1(c=root):
    return c.secrets.kv.v1


def read2(path, version=None, c=root):
    return kv2(c).read_secret_version(path, version=version, mount_point=M2, raise_on_deleted_version=True)


def new_token(**kw):
    kw.setdefault("ttl", "30m")
    r = root.auth.token.create(**kw)
    CREATED_TOKENS.append(r["auth"]["accessor"])
    return r["auth"]["client_token"], r["auth"]["accessor"], r


# ---------------------------------------------------------------- sys
def sys_init_status():
    eq(root.sys.is_initialized(), True, "is_initialized")
    eq(root.sys.read_init_status().get("initialized"), True, "sys/init initialized")


def sys_seal_status():
    st = root.sys.read_seal_status()
    eq(st.get("sealed"), False, "sealed")
    eq(st.get("initialized"), True, "initialized")
    for k in ("t", "n", "progress"):
        true(isinstance(st.get(k), int), f"seal-status {k} not an int")
    true(isinstance(st.get("type"), str) and st["type"], "seal-status type missing")
    true(isinstance(st.get("version"), str) and st["version"], "seal-status version missing")
    eq(root.sys.is_sealed(), False, "is_sealed")


def sys_health_head():
    r = root.sys.read_health_status()  # HEAD /v1/sys/health
    eq(r.status_code, 200, "HEAD sys/health status")
    eq(r.content, b"", "HEAD sys/health body")


def sys_health_get():
    h = root.sys.read_health_status(method="GET")
    true(isinstance(h, dict), f"GET sys/health: expected JSON 200, got {status_of(h)}")
    eq(h.get("initialized"), True, "health initialized")
    eq(h.get("sealed"), False, "health sealed")
    eq(h.get("standby"), False, "health standby")
    true(isinstance(h.get("version"), str) and h["version"], "health version missing")
    t = h.get("server_time_utc")
    true(isinstance(t, int) and abs(t - time.time()) < 300, "health server_time_utc not a current unix time")
    r = root.sys.read_health_status(method="GET", active_code=299)  # ?activecode=299
    eq(status_of(r), 299, "GET sys/health?activecode=299 status")


def auth_is_authenticated():
    eq(root.is_authenticated(), True, "root is_authenticated")
    eq(client(token="not-a-real-token-" + SFX).is_authenticated(), False, "bogus token is_authenticated")
    raises(hx.Forbidden, lambda: client(token="bogus-" + SFX).auth.token.lookup_self(), "bogus token lookup_self")


# ---------------------------------------------------------------- mounts
def mount_enable_kv2():
    r = root.sys.enable_secrets_engine("kv", path=M2, options={"version": "2"}, description="hvac e2e kv2")
    eq(status_of(r), 204, "enable kv2 status")


def mount_enable_kv1():
    r = root.sys.enable_secrets_engine("kv", path=M1, options={"version": "1"}, description="hvac e2e kv1")
    eq(status_of(r), 204, "enable kv1 status")


def mount_enable_duplicate_rejected():
    raises(hx.InvalidRequest, lambda: root.sys.enable_secrets_engine("kv", path=M1), "enable on a used path")


def mount_list():
    r = root.sys.list_mounted_secrets_engines()
    envelope(r, "sys/mounts")
    d = r["data"]
    for path, ver, desc in ((M2, "2", "hvac e2e kv2"), (M1, "1", "hvac e2e kv1")):
        e = d.get(path + "/")
        true(isinstance(e, dict), f"sys/mounts: {path}/ missing")
        eq(e.get("type"), "kv", f"{path}/ type")
        eq((e.get("options") or {}).get("version"), ver, f"{path}/ options.version")
        eq(e.get("description"), desc, f"{path}/ description")
        true(isinstance(e.get("accessor"), str) and e["accessor"], f"{path}/ accessor missing")
        true(isinstance(e.get("config"), dict), f"{path}/ config missing")
    true("sys/" in d, "sys/mounts: sys/ missing")
    # Backwards-compatible copy of data at the top level (Vault does this for sys/mounts).
    true(M2 + "/" in r, "sys/mounts: mount entries not duplicated at top level")


def mount_tune_and_read():
    r = root.sys.tune_mount_configuration(M2, default_lease_ttl="1h", max_lease_ttl="2h", description="hvac e2e tuned")
    eq(status_of(r), 204, "tune status")
    cfg = root.sys.read_mount_configuration(M2)
    d = cfg["data"]
    eq(d.get("default_lease_ttl"), 3600, "tune default_lease_ttl")
    eq(d.get("max_lease_ttl"), 7200, "tune max_lease_ttl")
    eq(d.get("description"), "hvac e2e tuned", "tune description")
    eq(d.get("force_no_cache"), False, "tune force_no_cache")
    m = root.sys.list_mounted_secrets_engines()["data"][M2 + "/"]
    eq(m["config"].get("max_lease_ttl"), 7200, "sys/mounts config.max_lease_ttl after tune")
    eq(m["config"].get("default_lease_ttl"), 3600, "sys/mounts config.default_lease_ttl after tune")
    eq(m.get("description"), "hvac e2e tuned", "sys/mounts description after tune")


# ---------------------------------------------------------------- KV v2
def kv2_write_v1():
    S["k"] = "app/config"
    S["v1"] = {"user": "svc-e2e", "password": val("pw1"), "port": 5432, "on": True,
               "nested": {"list": [1, "two", None], "obj": {"deep": val("deep")}}}
    r = kv2().create_or_update_secret(S["k"], S["v1"], mount_point=M2)
    envelope(r, "kv2 write")
    d = r["data"]
    eq(d.get("version"), 1, "first write version")
    eq(d.get("destroyed"), False, "destroyed")
    eq(d.get("deletion_time"), "", "deletion_time")
    eq(d.get("custom_metadata"), None, "custom_metadata")
    true(isinstance(d.get("created_time"), str) and RFC3339.match(d["created_time"]), "created_time not RFC3339")
    eq(r["lease_duration"], 0, "kv2 write lease_duration")


def kv2_write_v2():
    S["v2"] = {"user": "svc-e2e", "password": val("pw2")}
    r = kv2().create_or_update_secret(S["k"], S["v2"], mount_point=M2)
    eq(r["data"].get("version"), 2, "second write version")


def kv2_read_latest():
    r = read2(S["k"])
    envelope(r, "kv2 read")
    secret_eq(r["data"]["data"], S["v2"], "latest data")
    eq(r["data"]["metadata"].get("version"), 2, "latest metadata.version")
    eq(r["data"]["metadata"].get("deletion_time"), "", "latest deletion_time")
    eq(r["lease_duration"], 0, "kv2 read lease_duration")
    eq(r["lease_id"], "", "kv2 read lease_id")


def kv2_read_by_version():
    r = read2(S["k"], version=1)
    secret_eq(r["data"]["data"], S["v1"], "version 1 data (JSON types must survive)")
    eq(r["data"]["metadata"].get("version"), 1, "version 1 metadata.version")
    raises(hx.InvalidPath, lambda: read2(S["k"], version=99), "read of a version that never existed")
    raises(hx.InvalidPath, lambda: read2("no/such/key"), "read of a missing key")


def kv2_cas_success():
    S["v3"] = {"user": "svc-e2e", "password": val("pw3")}
    r = kv2().create_or_update_secret(S["k"], S["v3"], cas=2, mount_point=M2)
    eq(r["data"].get("version"), 3, "cas=2 write version")


def kv2_cas_mismatch():
    raises(hx.InvalidRequest, lambda: kv2().create_or_update_secret(S["k"], {"x": val("x")}, cas=1, mount_point=M2),
           "cas=1 on version 3")
    raises(hx.InvalidRequest, lambda: kv2().create_or_update_secret(S["k"], {"x": val("x")}, cas=0, mount_point=M2),
           "cas=0 on an existing key")
    eq(read2(S["k"])["data"]["metadata"]["version"], 3, "version after rejected CAS writes")


def kv2_cas_zero_new_key():
    r = kv2().create_or_update_secret("app/cas0", {"a": val("a")}, cas=0, mount_point=M2)
    eq(r["data"].get("version"), 1, "cas=0 on a new key")


def kv2_cas_required():
    k = "app/casreq"
    kv2().create_or_update_secret(k, {"a": val("a")}, mount_point=M2)
    kv2().update_metadata(k, cas_required=True, mount_point=M2)
    eq(kv2().read_secret_metadata(k, mount_point=M2)["data"].get("cas_required"), True, "metadata cas_required")
    raises(hx.InvalidRequest, lambda: kv2().create_or_update_secret(k, {"a": val("a")}, mount_point=M2),
           "write without cas on a cas_required key")
    r = kv2().create_or_update_secret(k, {"a": val("a")}, cas=1, mount_point=M2)
    eq(r["data"].get("version"), 2, "write with cas on a cas_required key")


def kv2_patch_hvac():
    # hvac's patch() = GET latest, merge locally, POST with cas=<read version>.
    extra = val("extra")
    r = kv2().patch(S["k"], {"extra": extra}, mount_point=M2)
    eq(r["data"].get("version"), 4, "hvac patch version")
    S["v4"] = dict(S["v3"], extra=extra)
    secret_eq(read2(S["k"])["data"]["data"], S["v4"], "data after hvac patch")


def kv2_patch_http():
    # A real HTTP PATCH (what `bao kv patch` sends): JSON merge patch, null deletes a key.
    r = root.adapter.request("PATCH", f"/v1/{M2}/data/{S['k']}", json={"data": {"extra": None, "added": "yes"}},
                             headers={"Content-Type": "application/merge-patch+json"}, raise_exception=False)
    eq(status_of(r), 200, "PATCH merge-patch status")
    eq(r["data"].get("version"), 5, "PATCH version")
    S["v5"] = dict(S["v3"], added="yes")
    secret_eq(read2(S["k"])["data"]["data"], S["v5"], "data after PATCH")
    r = root.adapter.request("PATCH", f"/v1/{M2}/data/{S['k']}", json={"data": {"z": "1"}},
                             headers={"Content-Type": "application/json"}, raise_exception=False)
    eq(status_of(r), 415, "PATCH with application/json content type")


def kv2_list():
    kv2().create_or_update_secret("app/dir/leaf", {"a": val("a")}, mount_point=M2)
    keys = kv2().list_secrets("app", mount_point=M2)["data"]["keys"]
    eq(keys, ["cas0", "casreq", "config", "dir/"], "list app/")
    eq(kv2().list_secrets("app/dir/", mount_point=M2)["data"]["keys"], ["leaf"], "list app/dir/")
    eq(kv2().list_secrets("", mount_point=M2)["data"]["keys"], ["app/"], "list mount root")
    raises(hx.InvalidPath, lambda: kv2().list_secrets("nothing-here", mount_point=M2), "list of an empty prefix")


def kv2_list_get_query():
    # strict_http: hvac sends GET ...?list=true instead of the LIST verb (like the Go client).
    c = client(strict_http=True)
    eq(kv2(c).list_secrets("app", mount_point=M2)["data"]["keys"], ["cas0", "casreq", "config", "dir/"],
       "GET ?list=true app/")


def kv2_read_metadata():
    r = kv2().read_secret_metadata(S["k"], mount_point=M2)
    envelope(r, "kv2 metadata")
    d = r["data"]
    eq(d.get("current_version"), 5, "current_version")
    eq(d.get("max_versions"), 0, "max_versions")
    eq(d.get("cas_required"), False, "cas_required")
    eq(d.get("custom_metadata"), None, "custom_metadata")
    eq(d.get("delete_version_after"), "0s", "delete_version_after")
    true(isinstance(d.get("oldest_version"), int), "oldest_version not an int")
    eq(sorted(d.get("versions", {}), key=int), ["1", "2", "3", "4", "5"], "versions keys")
    for n, v in d["versions"].items():
        eq(v.get("deletion_time"), "", f"versions[{n}].deletion_time")
        eq(v.get("destroyed"), False, f"versions[{n}].destroyed")
        true(RFC3339.match(v.get("created_time", "")), f"versions[{n}].created_time not RFC3339")
    eq(d.get("created_time"), d["versions"]["1"]["created_time"], "created_time = version 1 created_time")
    true(RFC3339.match(d.get("updated_time", "")), "updated_time not RFC3339")


def kv2_update_metadata():
    cm = {"owner": "team-e2e", "ticket": "SEC-1"}
    r = kv2().update_metadata(S["k"], max_versions=3, custom_metadata=cm, mount_point=M2)
    eq(status_of(r), 204, "update_metadata status")
    d = kv2().read_secret_metadata(S["k"], mount_point=M2)["data"]
    eq(d.get("max_versions"), 3, "max_versions after update")
    eq(d.get("custom_metadata"), cm, "custom_metadata after update")
    eq(read2(S["k"])["data"]["metadata"].get("custom_metadata"), cm, "custom_metadata in data read")


def kv2_max_versions_trim():
    S["v6"] = {"password": val("pw6")}
    eq(kv2().create_or_update_secret(S["k"], S["v6"], mount_point=M2)["data"]["version"], 6, "version 6")
    d = kv2().read_secret_metadata(S["k"], mount_point=M2)["data"]
    eq(sorted(d["versions"], key=int), ["4", "5", "6"], "versions kept with max_versions=3")
    eq(d.get("oldest_version"), 4, "oldest_version")
    eq(d.get("current_version"), 6, "current_version")
    raises(hx.InvalidPath, lambda: read2(S["k"], version=1), "read of a trimmed version")


def kv2_delete_latest():
    r = kv2().delete_latest_version_of_secret(S["k"], mount_point=M2)
    eq(status_of(r), 204, "delete latest status")
    raises(hx.InvalidPath, lambda: read2(S["k"]), "read after soft delete")
    # The 404 carries the full envelope with data.data=null and the deletion_time.
    r = kv2().read_secret_version(S["k"], mount_point=M2, raise_on_deleted_version=False)
    eq(r["data"]["data"], None, "soft-deleted data.data")
    eq(r["data"]["metadata"].get("version"), 6, "soft-deleted metadata.version")
    true(RFC3339.match(r["data"]["metadata"].get("deletion_time") or ""), "soft-deleted deletion_time not set")
    eq(r["data"]["metadata"].get("destroyed"), False, "soft-deleted destroyed")
    d = kv2().read_secret_metadata(S["k"], mount_point=M2)["data"]
    true(d["versions"]["6"]["deletion_time"] != "", "metadata versions[6].deletion_time not set")
    secret_eq(read2(S["k"], version=5)["data"]["data"], S["v5"], "older version still readable")


def kv2_undelete():
    r = kv2().undelete_secret_versions(S["k"], [6], mount_point=M2)
    eq(status_of(r), 204, "undelete status")
    r = read2(S["k"])
    secret_eq(r["data"]["data"], S["v6"], "data after undelete")
    eq(r["data"]["metadata"].get("deletion_time"), "", "deletion_time after undelete")


def kv2_delete_versions():
    r = kv2().delete_secret_versions(S["k"], [5], mount_point=M2)
    eq(status_of(r), 204, "delete versions status")
    raises(hx.InvalidPath, lambda: read2(S["k"], version=5), "read of soft-deleted version 5")
    secret_eq(read2(S["k"])["data"]["data"], S["v6"], "latest unaffected")


def kv2_destroy():
    r = kv2().destroy_secret_versions(S["k"], [6], mount_point=M2)
    eq(status_of(r), 204, "destroy status")
    raises(hx.InvalidPath, lambda: read2(S["k"]), "read after destroy")
    raw = root.adapter.get(f"/v1/{M2}/data/{S['k']}", raise_exception=False)
    eq(raw.status_code, 404, "raw read of destroyed version status")
    body = raw.json()
    eq(body["data"]["data"], None, "destroyed data.data")
    eq(body["data"]["metadata"].get("destroyed"), True, "destroyed metadata.destroyed")
    eq(kv2().read_secret_metadata(S["k"], mount_point=M2)["data"]["versions"]["6"]["destroyed"], True,
       "metadata versions[6].destroyed")
    kv2().undelete_secret_versions(S["k"], [6], mount_point=M2)
    raises(hx.InvalidPath, lambda: read2(S["k"]), "read after undelete of a destroyed version")


def kv2_delete_metadata():
    r = kv2().delete_metadata_and_all_versions(S["k"], mount_point=M2)
    eq(status_of(r), 204, "delete metadata status")
    raises(hx.InvalidPath, lambda: kv2().read_secret_metadata(S["k"], mount_point=M2), "metadata after delete")
    raises(hx.InvalidPath, lambda: read2(S["k"]), "read after metadata delete")
    raises(hx.InvalidPath, lambda: read2(S["k"], version=4), "old version after metadata delete")
    eq(kv2().list_secrets("app", mount_point=M2)["data"]["keys"], ["cas0", "casreq", "dir/"], "list after delete")


def kv2_configure():
    r = kv2().configure(max_versions=7, cas_required=False, mount_point=M2)
    eq(status_of(r), 204, "configure status")
    d = kv2().read_configuration(mount_point=M2)["data"]
    eq(d.get("max_versions"), 7, "config max_versions")
    eq(d.get("cas_required"), False, "config cas_required")
    kv2().configure(max_versions=0, mount_point=M2)
    eq(kv2().read_configuration(mount_point=M2)["data"].get("max_versions"), 0, "config max_versions reset")


# ---------------------------------------------------------------- KV v1
def kv1_write_read():
    S["k1"] = {"token": val("t"), "n": 7}
    r = kv1().create_or_update_secret("svc/a", S["k1"], mount_point=M1)
    eq(status_of(r), 204, "kv1 write status")
    r = kv1().read_secret("svc/a", mount_point=M1)
    envelope(r, "kv1 read")
    secret_eq(r["data"], S["k1"], "kv1 data")
    eq(r["lease_id"], "", "kv1 lease_id")
    true(isinstance(r["lease_duration"], int), "kv1 lease_duration not an int")


def kv1_overwrite_replaces():
    S["k1b"] = {"other": val("o")}
    kv1().create_or_update_secret("svc/a", S["k1b"], mount_point=M1)
    secret_eq(kv1().read_secret("svc/a", mount_point=M1)["data"], S["k1b"], "kv1 data after overwrite")


def kv1_list():
    kv1().create_or_update_secret("svc/b", {"x": val("x")}, mount_point=M1)
    kv1().create_or_update_secret("top", {"x": val("x")}, mount_point=M1)
    eq(kv1().list_secrets("", mount_point=M1)["data"]["keys"], ["svc/", "top"], "kv1 list root")
    eq(kv1().list_secrets("svc", mount_point=M1)["data"]["keys"], ["a", "b"], "kv1 list svc/")
    raises(hx.InvalidPath, lambda: kv1().list_secrets("none", mount_point=M1), "kv1 list of an empty prefix")


def kv1_delete():
    eq(status_of(kv1().delete_secret("svc/a", mount_point=M1)), 204, "kv1 delete status")
    raises(hx.InvalidPath, lambda: kv1().read_secret("svc/a", mount_point=M1), "kv1 read after delete")
    eq(status_of(kv1().delete_secret("svc/never", mount_point=M1)), 204, "kv1 delete of a missing key")
    eq(kv1().list_secrets("svc", mount_point=M1)["data"]["keys"], ["b"], "kv1 list after delete")
    kv1().delete_secret("svc/b", mount_point=M1)
    kv1().delete_secret("top", mount_point=M1)
    raises(hx.InvalidPath, lambda: kv1().list_secrets("", mount_point=M1), "kv1 list of an emptied mount")


# ---------------------------------------------------------------- policies
def policy_write_read():
    r = root.sys.create_or_update_acl_policy(POL, POLICY_HCL)
    eq(status_of(r), 204, "policy write status")
    d = root.sys.read_acl_policy(POL)["data"]
    eq(d.get("name"), POL, "policy name")
    eq(d.get("policy"), POLICY_HCL, "policy text round-trip")


def policy_list():
    root.sys.create_or_update_acl_policy(POL_TMP, 'path "nothing/*" { capabilities = ["read"] }')
    keys = root.sys.list_acl_policies()["data"]["keys"]
    for k in (POL, POL_TMP, "default", "root"):
        true(k in keys, f"policy list lacks {k!r}")


def policy_invalid_rejected():
    raises(hx.InvalidRequest,
           lambda: root.sys.create_or_update_acl_policy(f"hvac-bad-{SFX}", 'path "x" { capabilities = ["reed"] }'),
           "policy with an unknown capability")
    raises(hx.InvalidRequest, lambda: root.sys.create_or_update_acl_policy(f"hvac-bad-{SFX}", 'path "x" {'),
           "policy with broken HCL")
    raises(hx.InvalidPath, lambda: root.sys.read_acl_policy(f"hvac-bad-{SFX}"), "read of a rejected policy")


def policy_delete():
    eq(status_of(root.sys.delete_acl_policy(POL_TMP)), 204, "policy delete status")
    raises(hx.InvalidPath, lambda: root.sys.read_acl_policy(POL_TMP), "read of a deleted policy")
    true(POL_TMP not in root.sys.list_acl_policies()["data"]["keys"], "deleted policy still listed")


# ---------------------------------------------------------------- tokens
def token_create():
    meta = {"purpose": "e2e", "suffix": SFX}
    tok, acc, r = new_token(policies=[POL], ttl="1h", num_uses=10, meta=meta, display_name="hvac-e2e")
    S["tok"], S["acc"] = tok, acc
    envelope(r, "token create")
    a = r["auth"]
    true(isinstance(tok, str) and tok, "client_token missing")
    true(isinstance(acc, str) and acc and acc != tok, "accessor missing or equal to the token")
    eq(sorted(a.get("policies") or []), sorted(["default", POL]), "auth.policies")
    eq(sorted(a.get("token_policies") or []), sorted(["default", POL]), "auth.token_policies")
    eq(a.get("metadata"), meta, "auth.metadata")
    eq(a.get("lease_duration"), 3600, "auth.lease_duration")
    eq(a.get("renewable"), True, "auth.renewable")
    eq(a.get("orphan"), False, "auth.orphan")
    eq(a.get("token_type"), "service", "auth.token_type")
    eq(a.get("num_uses"), 10, "auth.num_uses")


def token_lookup():
    d = root.auth.token.lookup(S["tok"])["data"]
    true(d.get("id") == S["tok"], "lookup id is not the token")
    eq(d.get("accessor"), S["acc"], "lookup accessor")
    eq(sorted(d.get("policies") or []), sorted(["default", POL]), "lookup policies")
    eq(d.get("meta"), {"purpose": "e2e", "suffix": SFX}, "lookup meta")
    eq(d.get("num_uses"), 10, "lookup num_uses (root lookup must not consume a use)")
    eq(d.get("display_name"), "token-hvac-e2e", "lookup display_name")
    eq(d.get("path"), "auth/token/create", "lookup path")
    eq(d.get("creation_ttl"), 3600, "lookup creation_ttl")
    true(isinstance(d.get("ttl"), int) and 3500 <= d["ttl"] <= 3600, f"lookup ttl {d.get('ttl')!r} not ~3600")
    eq(d.get("explicit_max_ttl"), 0, "lookup explicit_max_ttl")
    eq(d.get("orphan"), False, "lookup orphan")
    eq(d.get("renewable"), True, "lookup renewable")
    eq(d.get("type"), "service", "lookup type")
    true(isinstance(d.get("creation_time"), int), "lookup creation_time not a unix int")
    true(RFC3339.match(d.get("expire_time") or ""), "lookup expire_time not RFC3339")
    true(RFC3339.match(d.get("issue_time") or ""), "lookup issue_time not RFC3339")


def token_lookup_self():
    d = client(S["tok"]).auth.token.lookup_self()["data"]
    true(d.get("id") == S["tok"], "lookup-self id is not the token")
    eq(d.get("accessor"), S["acc"], "lookup-self accessor")
    eq(d.get("num_uses"), 9, "lookup-self num_uses after one use")
    r = root.auth.token.lookup_self()["data"]
    eq(r.get("policies"), ["root"], "root lookup-self policies")
    eq(r.get("ttl"), 0, "root ttl")
    eq(r.get("expire_time"), None, "root expire_time")


def token_renew():
    a = root.auth.token.renew(S["tok"], increment="2h")["auth"]
    eq(a.get("lease_duration"), 7200, "renew lease_duration")
    eq(a.get("accessor"), S["acc"], "renew accessor")
    eq(a.get("renewable"), True, "renew renewable")
    ttl = root.auth.token.lookup(S["tok"])["data"]["ttl"]
    true(7100 <= ttl <= 7200, f"ttl after renew {ttl!r} not ~7200")


def token_renew_self():
    a = client(S["tok"]).auth.token.renew_self(increment="30m")["auth"]
    eq(a.get("lease_duration"), 1800, "renew-self lease_duration")
    raises(hx.InvalidRequest, lambda: root.auth.token.renew_self(), "renew-self of the (non-renewable) root token")


def token_renew_non_renewable():
    tok, _, _ = new_token(policies=["default"], renewable=False)
    raises(hx.InvalidRequest, lambda: root.auth.token.renew(tok), "renew of a renewable=false token")


def token_num_uses_exhausted():
    tok, _, _ = new_token(policies=["default"], num_uses=2)
    c = client(tok)
    eq(c.auth.token.lookup_self()["data"]["num_uses"], 1, "num_uses after first use")
    c.auth.token.lookup_self()
    raises(hx.Forbidden, lambda: c.auth.token.lookup_self(), "third use of a num_uses=2 token")


def token_child_revoked_with_parent():
    parent, _, _ = new_token(policies=[POL])
    pc = client(parent)
    child = pc.auth.token.create(ttl="10m")["auth"]  # created by the parent: a child, inherits POL
    CREATED_TOKENS.append(child["accessor"])
    eq(child.get("orphan"), False, "child orphan")
    eq(sorted(child.get("policies") or []), sorted(["default", POL]), "child inherited policies")
    orphan = pc.auth.token.create_orphan(ttl="10m")["auth"]  # created by the parent, but an orphan
    CREATED_TOKENS.append(orphan["accessor"])
    eq(orphan.get("orphan"), True, "orphan created by parent: orphan flag")
    eq(status_of(root.auth.token.revoke(parent)), 204, "revoke parent status")
    raises(hx.Forbidden, lambda: root.auth.token.lookup(parent), "lookup of the revoked parent")
    raises(hx.Forbidden, lambda: root.auth.token.lookup(child["client_token"]), "lookup of the child of a revoked parent")
    eq(root.auth.token.lookup(orphan["client_token"])["data"].get("orphan"), True,
       "orphan survives revocation of its creator")


def token_create_orphan():
    r = root.auth.token.create_orphan(policies=["default"], ttl="10m", meta={"k": "v"})
    CREATED_TOKENS.append(r["auth"]["accessor"])
    eq(r["auth"].get("orphan"), True, "create-orphan auth.orphan")
    eq(r["auth"].get("lease_duration"), 600, "create-orphan lease_duration")
    d = root.auth.token.lookup(r["auth"]["client_token"])["data"]
    eq(d.get("orphan"), True, "create-orphan lookup orphan")
    eq(d.get("path"), "auth/token/create-orphan", "create-orphan lookup path")


def token_lookup_accessor():
    d = root.auth.token.lookup_accessor(S["acc"])["data"]
    eq(d.get("accessor"), S["acc"], "lookup-accessor accessor")
    eq(d.get("id"), "", "lookup-accessor must hide the token id")
    eq(sorted(d.get("policies") or []), sorted(["default", POL]), "lookup-accessor policies")
    eq(d.get("display_name"), "token-hvac-e2e", "lookup-accessor display_name")


def token_list_accessors():
    keys = root.auth.token.list_accessors()["data"]["keys"]
    true(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "accessors not a list of strings")
    true(S["acc"] in keys, "live token's accessor not listed")


def token_revoke_accessor():
    tok, acc, _ = new_token(policies=["default"])
    eq(status_of(root.auth.token.revoke_accessor(acc)), 204, "revoke-accessor status")
    raises(hx.Forbidden, lambda: root.auth.token.lookup(tok), "lookup of a token revoked by accessor")
    raises(hx.InvalidRequest, lambda: root.auth.token.lookup_accessor(acc), "lookup-accessor of a revoked accessor")
    true(acc not in root.auth.token.list_accessors()["data"]["keys"], "revoked accessor still listed")


# ---------------------------------------------------------------- policy enforcement
def acl_setup():
    tok, acc, _ = new_token(policies=[POL], ttl="30m")
    S["rtok"], S["racc"] = tok, acc
    S["rc"] = client(tok)
    S["allowed"] = {"k": val("allowed")}
    kv2().create_or_update_secret("allowed/x", S["allowed"], mount_point=M2)
    kv2().create_or_update_secret("allowed/blocked", {"k": val("blocked")}, mount_point=M2)
    kv2().create_or_update_secret("other/x", {"k": val("other")}, mount_point=M2)


def acl_allowed_read():
    secret_eq(read2("allowed/x", c=S["rc"])["data"]["data"], S["allowed"], "restricted read of an allowed path")


def acl_allowed_write():
    r = kv2(S["rc"]).create_or_update_secret("allowed/new", {"k": val("n")}, mount_point=M2)
    eq(r["data"].get("version"), 1, "restricted write version")


def acl_denied_read():
    raises(hx.Forbidden, lambda: read2("other/x", c=S["rc"]), "restricted read outside the policy")


def acl_denied_write():
    raises(hx.Forbidden, lambda: kv2(S["rc"]).create_or_update_secret("other/y", {"k": val("k")}, mount_point=M2),
           "restricted write outside the policy")


def acl_explicit_deny():
    raises(hx.Forbidden, lambda: read2("allowed/blocked", c=S["rc"]), "read of an explicitly denied path")


def acl_missing_allowed_is_404():
    raises(hx.InvalidPath, lambda: read2("allowed/missing", c=S["rc"]), "allowed read of a missing key")


def acl_list():
    eq(kv2(S["rc"]).list_secrets("allowed", mount_point=M2)["data"]["keys"], ["blocked", "new", "x"],
       "restricted list of allowed/")
    raises(hx.Forbidden, lambda: kv2(S["rc"]).list_secrets("", mount_point=M2), "restricted list of the mount root")


def acl_sys_denied():
    raises(hx.Forbidden, lambda: S["rc"].sys.list_mounted_secrets_engines(), "restricted sys/mounts")
    raises(hx.Forbidden, lambda: S["rc"].sys.create_or_update_acl_policy(f"hvac-x-{SFX}", 'path "x" {capabilities=["read"]}'),
           "restricted policy write")
    raises(hx.Forbidden, lambda: S["rc"].auth.token.list_accessors(), "restricted token accessors list")


def _caps_expect():
    return {f"{M2}/data/allowed/x": ["create", "read", "update"],
            f"{M2}/data/other/x": ["deny"],
            f"{M2}/data/allowed/blocked": ["deny"],
            f"{M2}/metadata/allowed/x": ["list", "read"]}


def _check_caps(r, what):
    exp = _caps_expect()
    for p, caps in exp.items():
        eq(r["data"].get(p), caps, f"{what} {p}")


def caps_self():
    r = S["rc"].sys.get_capabilities(list(_caps_expect()))  # POST sys/capabilities-self {"paths":[...]}
    _check_caps(r, "capabilities-self")


def caps_token():
    _check_caps(root.sys.get_capabilities(list(_caps_expect()), token=S["rtok"]), "capabilities(token)")


def caps_accessor():
    _check_caps(root.sys.get_capabilities(list(_caps_expect()), accessor=S["racc"]), "capabilities-accessor")


def caps_root():
    r = root.sys.get_capabilities([f"{M2}/data/anything", "sys/mounts"])
    eq(r["data"].get(f"{M2}/data/anything"), ["root"], "root capabilities")
    eq(r["data"].get("sys/mounts"), ["root"], "root capabilities on sys/mounts")


def caps_single_path_legacy():
    # The Go CLI (`bao token capabilities`) posts {"path": "<one path>", "token": ...}; the answer
    # carries the path key and the legacy "capabilities" key.
    p = f"{M2}/data/allowed/x"
    r = S["rc"].adapter.post("/v1/sys/capabilities-self", json={"path": p})
    eq(r["data"].get(p), ["create", "read", "update"], "single-path capabilities-self [path]")
    eq(r["data"].get("capabilities"), ["create", "read", "update"], "single-path capabilities-self [capabilities]")


def token_revoke():
    tok = S["tok"]
    eq(status_of(root.auth.token.revoke(tok)), 204, "revoke status")
    raises(hx.Forbidden, lambda: root.auth.token.lookup(tok), "lookup of a revoked token")
    c = client(tok)
    eq(c.is_authenticated(), False, "revoked token is_authenticated")
    raises(hx.Forbidden, lambda: read2("allowed/x", c=c), "revoked token reading an allowed path")


def mount_disable():
    for m in (M2, M1):
        eq(status_of(root.sys.disable_secrets_engine(m)), 204, f"disable {m}")
    d = root.sys.list_mounted_secrets_engines()["data"]
    true(M2 + "/" not in d and M1 + "/" not in d, "disabled mounts still listed")
    raises(hx.InvalidPath, lambda: read2("allowed/x"), "read on a disabled mount")
    S["mounts_gone"] = True


# ---------------------------------------------------------------- runner
CHECKS = [
    sys_init_status, sys_seal_status, sys_health_head, sys_health_get, auth_is_authenticated,
    mount_enable_kv2, mount_enable_kv1, mount_enable_duplicate_rejected, mount_list, mount_tune_and_read,
    kv2_write_v1, kv2_write_v2, kv2_read_latest, kv2_read_by_version, kv2_cas_success, kv2_cas_mismatch,
    kv2_cas_zero_new_key, kv2_cas_required, kv2_patch_hvac, kv2_patch_http, kv2_list, kv2_list_get_query,
    kv2_read_metadata, kv2_update_metadata, kv2_max_versions_trim, kv2_delete_latest, kv2_undelete,
    kv2_delete_versions, kv2_destroy, kv2_delete_metadata, kv2_configure,
    kv1_write_read, kv1_overwrite_replaces, kv1_list, kv1_delete,
    policy_write_read, policy_list, policy_invalid_rejected, policy_delete,
    token_create, token_lookup, token_lookup_self, token_renew, token_renew_self, token_renew_non_renewable,
    token_num_uses_exhausted, token_child_revoked_with_parent, token_create_orphan, token_lookup_accessor,
    token_list_accessors, token_revoke_accessor,
    acl_setup, acl_allowed_read, acl_allowed_write, acl_denied_read, acl_denied_write, acl_explicit_deny,
    acl_missing_allowed_is_404, acl_list, acl_sys_denied,
    caps_self, caps_token, caps_accessor, caps_root, caps_single_path_legacy,
    token_revoke, mount_disable,
]


def describe(e):
    if isinstance(e, CheckFailed):
        return str(e)
    if isinstance(e, hx.VaultError):
        url = (e.url or "").replace(ADDR, "")
        return f"unexpected {type(e).__name__} on {(e.method or '').upper()} {url} {short_errors(e)}"
    # Unexpected Python error: type and location only (the message could quote data).
    # A KeyError on shared state usually means an earlier check failed.
    if isinstance(e, KeyError):
        return f"KeyError {e.args[0]!r} (missing field, or an earlier check failed)"
    tb = traceback.extract_tb(e.__traceback__)
    here = next((f for f in reversed(tb) if f.filename == __file__), tb[-1] if tb else None)
    where = f" at line {here.lineno}" if here else ""
    return f"{type(e).__name__}{where}"


def cleanup():
    """Best effort; returns a list of problems."""
    problems = []
    for acc in CREATED_TOKENS:
        try:
            root.auth.token.revoke_accessor(acc)
        except hx.InvalidRequest:
            pass  # already revoked
        except Exception as e:  # noqa: BLE001
            problems.append(f"revoke accessor: {type(e).__name__}")
    for p in (POL, POL_TMP, f"hvac-bad-{SFX}", f"hvac-x-{SFX}"):
        try:
            root.sys.delete_acl_policy(p)
        except Exception as e:  # noqa: BLE001
            problems.append(f"delete policy {p}: {type(e).__name__}")
    if not S.get("mounts_gone"):
        for m in (M2, M1):
            try:
                root.sys.disable_secrets_engine(m)
            except Exception as e:  # noqa: BLE001
                problems.append(f"disable {m}: {type(e).__name__}")
    return problems


def main():
    if not ROOT:
        print("hvac: VAULT_TOKEN is not set", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up when killed
    passed, failed = 0, []
    try:
        for fn in CHECKS:
            name = fn.__name__
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                failed.append(name)
                print(f"FAIL {name}: {mask(describe(e))}", flush=True)
            else:
                passed += 1
                print(f"ok   {name}", flush=True)
    finally:
        problems = cleanup()
    if problems:
        failed.append("cleanup")
        print(f"FAIL cleanup: {'; '.join(problems)}")
    else:
        passed += 1
        print("ok   cleanup")
    print(f"hvac: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
