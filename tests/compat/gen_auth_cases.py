#!/usr/bin/env python3
"""Writes the auth-method and response-wrapping cases: cases/110-sys-auth.json,
111-auth-approle.json, 112-auth-userpass.json, 113-wrapping.json, 114-auth-jwt.json.

Only these five files are written (gen_cases.py owns the others). The JSON files are the cases:
run.py reads only them and needs nothing from here at run time. This script also signs the JWTs
of 114 with the throwaway keys in keys/ (test-only, see keys/README.md) using the `openssl`
command-line tool, so it needs `openssl` on PATH; the signed strings are written into the case.

  python3 tests/compat/gen_auth_cases.py            # from anywhere
  python3 tests/compat/gen_auth_cases.py --new-keys # regenerate the key pairs first

RS256 (PKCS#1 v1.5) signatures are deterministic; ES256 ones are not, so re-running the script
changes the ES256 token strings in 114 (not its snapshot: responses do not echo them).
"""
import base64
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "keys")
C = {}


# The step builders are gen_cases.py's (one definition of the case format).
sys.path.insert(0, HERE)
from gen_cases import S, cleanup, drop_policy, policy, setup  # noqa: E402


def enable_auth(path, typ, **extra):
    return setup("POST", f"/v1/sys/auth/{path}", dict({"type": typ}, **extra), name=f"setup: enable {typ} at {path}")


def disable_auth(path):
    return cleanup("DELETE", f"/v1/sys/auth/{path}")


# The remaining max TTL in this warning is "1h" when the renewal lands in the same second as the
# login and "59m59s" (normalised to <duration>) a second later: accept both, nothing else.
CAPPED = r'^TTL of "{}" exceeded the effective max_ttl of "(1h|<duration>)"; TTL value is capped accordingly$'


def wrap(ttl):
    return {"X-Vault-Wrap-TTL": ttl}


# ------------------------------------------------------------------------------------------
# JWT signing (114). Keys: keys/test-only-*.pem, throwaway, never used for anything else.
RSA_KEY = "test-only-rsa.key.pem"
RSA_PUB = "test-only-rsa.pub.pem"
RSA_OTHER_KEY = "test-only-rsa-other.key.pem"   # not configured on the mount: bad-signature case
EC_KEY = "test-only-ec-p256.key.pem"
EC_PUB = "test-only-ec-p256.pub.pem"


def new_keys():
    os.makedirs(KEYS, exist_ok=True)
    k = lambda n: os.path.join(KEYS, n)  # noqa: E731
    for key, args in ((RSA_KEY, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      (RSA_OTHER_KEY, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      (EC_KEY, ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        subprocess.run(["openssl", "genpkey", *args, "-out", k(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", k(RSA_KEY), "-pubout", "-out", k(RSA_PUB)], check=True)
    subprocess.run(["openssl", "pkey", "-in", k(EC_KEY), "-pubout", "-out", k(EC_PUB)], check=True)


def read_key(name):
    with open(os.path.join(KEYS, name)) as f:
        return f.read()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def seg(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def ecdsa_der_to_raw(der, n=32):
    """openssl writes ECDSA signatures as DER SEQUENCE { r INTEGER, s INTEGER }; JWS wants r || s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        ln = der[i + 1]
        out += der[i + 2:i + 2 + ln].lstrip(b"\0").rjust(n, b"\0")
        i += 2 + ln
    return out


def jwt(claims, alg="RS256", key=RSA_KEY, header=None):
    h = dict({"alg": alg, "typ": "JWT"}, **(header or {}))
    signing_input = seg(h) + "." + seg(claims)
    if alg == "none":
        return signing_input + "."
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(KEYS, key)],
                         input=signing_input.encode(), capture_output=True, check=True).stdout
    if alg == "ES256":
        sig = ecdsa_der_to_raw(sig)
    return signing_input + "." + b64u(sig)


# ------------------------------------------------------------------------------------------
C["110-sys-auth"] = ("sys/auth: enable approle/userpass/jwt at custom paths, list, read one, tune "
                     "read/write, errors, disable; mount TTLs reach login tokens", [
    S("GET", "/v1/sys/auth", name="list before: token/ only"),
    S("POST", "/v1/sys/auth/c-sa-approle", {"type": "approle"}, name="enable approle: 204"),
    S("POST", "/v1/sys/auth/c-sa-userpass", {"type": "userpass", "description": "Compat users",
                                              "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}},
      name="enable userpass with description and config TTLs"),
    S("POST", "/v1/sys/auth/c-ci-jwt", {"type": "jwt", "description": "CI JWTs"}, name="enable jwt at c-ci-jwt"),
    S("GET", "/v1/sys/auth", name="list: token/ plus the three (data and top level)"),
    S("GET", "/v1/sys/auth", select="data.c-sa-approle/", name="list entry: approle"),
    S("GET", "/v1/sys/auth", select="data.c-sa-userpass/", name="list entry: userpass (raw config TTLs)"),
    S("GET", "/v1/sys/auth", select="data.c-ci-jwt/", name="list entry: jwt"),
    S("GET", "/v1/sys/auth", select="data.token/", name="list entry: token"),
    S("LIST", "/v1/sys/auth", name="LIST sys/auth: 404 unsupported path"),
    S("GET", "/v1/sys/auth/c-sa-approle", name="read one: approle"),
    S("GET", "/v1/sys/auth/c-sa-userpass", name="read one: userpass"),
    S("GET", "/v1/sys/auth/c-ci-jwt", name="read one: jwt"),
    S("GET", "/v1/sys/auth/token", name="read one: token"),
    S("GET", "/v1/sys/auth/c-sa-missing", name="read a missing auth mount: 400 No auth engine"),
    S("POST", "/v1/sys/auth/c-sa-approle", {"type": "approle"}, name="enable the same path twice: 400"),
    S("POST", "/v1/sys/auth/c-sa-approle", {"type": "userpass"}, name="enable another type on a used path: 400"),
    S("POST", "/v1/sys/auth/c-sa-approle/nested", {"type": "approle"}, name="enable under a mount: 400 in use"),
    S("POST", "/v1/sys/auth/token", {"type": "approle"}, name="enable at token/: 400 in use"),
    S("POST", "/v1/sys/auth/c-sa-bad", {"type": "c-no-such-auth"}, name="unknown type: 400 plugin not found"),
    S("POST", "/v1/sys/auth/c-sa-bad", {"type": "kv"}, name="secrets engine type as auth: 400 plugin not found"),
    S("POST", "/v1/sys/auth/c-sa-bad", {}, name="no type: 400"),
    S("POST", "/v1/sys/auth/c-sa-bad/", {"type": "approle"}, name="trailing slash in the URL: 400"),
    S("GET", "/v1/sys/auth/c-sa-approle/tune", name="tune read: TTLs resolved to the system default"),
    S("POST", "/v1/sys/auth/c-sa-approle/tune", {"default_lease_ttl": "1h", "max_lease_ttl": "2h"},
      name="tune write default/max: 204"),
    S("GET", "/v1/sys/auth/c-sa-approle/tune", name="tune read after write"),
    S("GET", "/v1/sys/auth/c-sa-approle", name="read one after tune: config has the TTLs"),
    S("POST", "/v1/sys/auth/c-sa-approle/tune", {"default_lease_ttl": "3h"}, name="tune default above max: 400"),
    S("POST", "/v1/sys/auth/c-sa-approle/tune", {"max_lease_ttl": "abc"}, name="tune bad duration: 400"),
    S("POST", "/v1/sys/auth/c-sa-approle/tune", {"description": "tuned"}, name="tune description: 204"),
    S("GET", "/v1/sys/auth/c-sa-approle/tune", name="tune read: description changed, TTLs kept"),
    S("POST", "/v1/sys/auth/c-sa-approle/tune", {"default_lease_ttl": "system", "max_lease_ttl": "system"},
      name="tune back to system: 204"),
    S("GET", "/v1/sys/auth/c-sa-approle/tune", name="tune read after reset"),
    S("GET", "/v1/sys/auth/c-sa-userpass/tune", name="tune read: TTLs from enable config"),
    S("GET", "/v1/sys/auth/token/tune", name="tune read: token"),
    S("GET", "/v1/sys/auth/c-sa-missing/tune", name="tune read of a missing mount: 400"),
    S("POST", "/v1/sys/auth/c-sa-missing/tune", {"default_lease_ttl": "1h"}, name="tune write of a missing mount: 400"),
    setup("POST", "/v1/auth/c-sa-userpass/users/c-sa-user", {"password": "c-sa-pw"}, name="setup: user without token_ttl"),
    S("POST", "/v1/auth/c-sa-userpass/login/c-sa-user", {"password": "c-sa-pw"}, token=None,
      save={"tok": "auth.client_token"}, name="login: lease_duration is the mount default (1h)"),
    S("POST", "/v1/sys/auth/c-sa-userpass/tune", {"max_lease_ttl": "30m", "default_lease_ttl": "20m"},
      name="tune userpass down to 20m/30m"),
    S("POST", "/v1/auth/c-sa-userpass/login/c-sa-user", {"password": "c-sa-pw"}, token=None,
      name="login after tune: 1200"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="token of the first login still valid"),
    S("DELETE", "/v1/sys/auth/token", name="disable token/: 400"),
    S("DELETE", "/v1/sys/auth/c-sa-userpass", name="disable userpass: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="its tokens are revoked: 403"),
    S("POST", "/v1/auth/c-sa-userpass/login/c-sa-user", {"password": "c-sa-pw"}, token=None,
      name="login on the disabled path without a token: 403"),
    S("POST", "/v1/auth/c-sa-userpass/login/c-sa-user", {"password": "c-sa-pw"},
      name="the same with the root token: 404 no handler"),
    S("DELETE", "/v1/sys/auth/c-sa-userpass", name="disable again: 204"),
    S("DELETE", "/v1/sys/auth/c-sa-never", name="disable a path never enabled: 204"),
    S("GET", "/v1/sys/auth/c-sa-userpass", name="read after disable: 400"),
    S("DELETE", "/v1/sys/auth/c-sa-approle", name="disable approle: 204"),
    S("DELETE", "/v1/sys/auth/c-ci-jwt", name="disable jwt: 204"),
    S("GET", "/v1/sys/auth", name="list after: token/ only"),
])

# ------------------------------------------------------------------------------------------
AR = "/v1/auth/c-ar"
ARPOL = 'path "secret/data/c-ar/*" { capabilities = ["read"] }\n'
C["111-auth-approle"] = ("AppRole: roles, role-id, secret-id (generated, custom, lookup, accessors, "
                         "destroy, LIST), login and its errors, num_uses, token TTLs, CIDR bindings, tidy", [
    enable_auth("c-ar", "approle"),
    policy("c-ar-read", ARPOL),
    S("LIST", AR + "/role", name="LIST roles with none: 404"),
    S("POST", AR + "/role/c-web", {"token_policies": ["c-ar-read"], "token_ttl": "20m", "token_max_ttl": "1h",
                                   "secret_id_ttl": "10m", "secret_id_num_uses": 5},
      name="write role: 204"),
    S("GET", AR + "/role/c-web", name="read role: field set"),
    S("POST", AR + "/role/C-Upper", {"token_policies": "c-b, c-a ,C-C", "secret_id_num_uses": 3},
      name="role name lower-cased, token_policies as a comma string"),
    S("GET", AR + "/role/c-upper", name="read it: policies split and trimmed, case kept"),
    setup("POST", AR + "/role/c-upper/role-id", {"role_id": "c-upper-role-id"}),
    setup("POST", AR + "/role/c-upper/custom-secret-id", {"secret_id": "c-upper-secret"}),
    S("POST", AR + "/login", {"role_id": "c-upper-role-id", "secret_id": "c-upper-secret"}, token=None,
      name="login: the token's policies are lower-cased and sorted"),
    S("LIST", AR + "/role", name="LIST roles: sorted"),
    S("GET", AR + "/role/c-missing", name="read a missing role: 404"),
    S("GET", AR + "/role/c-web/secret-id-num-uses", name="per-field read: secret-id-num-uses"),
    S("GET", AR + "/role/c-web/token-ttl", name="per-field read: token-ttl"),
    S("GET", AR + "/role/c-web/role-id", save={"rid": "data.role_id"}, name="read role-id (generated UUID)"),
    S("GET", AR + "/role/c-web/role-id", name="read role-id again: the same"),
    S("POST", AR + "/role/c-web/role-id", {"role_id": "c-web-role-id"}, name="write a custom role-id: 204"),
    S("GET", AR + "/role/c-web/role-id", name="read role-id: the custom one"),
    S("POST", AR + "/role/c-web/role-id", {}, name="write role-id without role_id: 400"),
    S("POST", AR + "/role/c-upper/role-id", {"role_id": "c-web-role-id"}, name="role-id used by another role: 500"),
    S("POST", AR + "/role/c-web/secret-id", {"metadata": "{\"owner\":\"ci\",\"team\":\"c\"}"},
      save={"sid": "data.secret_id", "sacc": "data.secret_id_accessor"},
      name="generate secret-id with metadata (JSON string)"),
    S("POST", AR + "/role/c-web/secret-id", {"metadata": {"owner": "ci"}}, name="metadata as an object: 400"),
    S("POST", AR + "/role/c-web/secret-id", {"metadata": "not json"}, name="metadata not JSON: 400"),
    S("POST", AR + "/role/c-web/secret-id", {"num_uses": 9}, name="num_uses above the role's: 400"),
    S("POST", AR + "/role/c-web/secret-id", {"num_uses": 0}, name="num_uses 0 (unlimited) on a limited role: 400"),
    S("POST", AR + "/role/c-web/secret-id", {"cidr_list": ["bogus"]}, name="bad cidr_list: 500"),
    S("POST", AR + "/role/c-missing/secret-id", {}, name="secret-id for a missing role: 404 with a message"),
    S("POST", AR + "/role/c-web/secret-id", {"ttl": "5m", "num_uses": 2, "cidr_list": ["127.0.0.1/32"]},
      save={"sid2": "data.secret_id", "sacc2": "data.secret_id_accessor"},
      name="generate secret-id with ttl, num_uses, cidr_list"),
    S("POST", AR + "/role/c-web/custom-secret-id", {"secret_id": "c-web-custom-secret", "metadata": "{\"k\":\"v\"}"},
      save={"cacc": "data.secret_id_accessor"}, name="custom-secret-id with metadata"),
    S("POST", AR + "/role/c-web/custom-secret-id", {"secret_id": "c-web-custom-secret"},
      name="custom-secret-id already registered: 500"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {"secret_id": "${sid}"}, name="secret-id/lookup: field set"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {"secret_id": "${sid2}"},
      name="secret-id/lookup of the one with ttl/num_uses/cidr_list"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {"secret_id": "c-web-custom-secret"},
      name="secret-id/lookup of the custom one"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {"secret_id": "c-no-such-secret"},
      name="secret-id/lookup unknown: 204"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {}, name="secret-id/lookup without secret_id: 400"),
    S("POST", AR + "/role/c-missing/secret-id/lookup", {"secret_id": "x"}, name="secret-id/lookup on a missing role: 500"),
    S("POST", AR + "/role/c-web/secret-id-accessor/lookup", {"secret_id_accessor": "${sacc}"},
      name="secret-id-accessor/lookup: same field set"),
    S("POST", AR + "/role/c-web/secret-id-accessor/lookup", {"secret_id_accessor": "c-no-such-accessor"},
      name="secret-id-accessor/lookup unknown: 404 with data.error"),
    S("POST", AR + "/role/c-web/secret-id-accessor/lookup", {}, name="secret-id-accessor/lookup without accessor: 400"),
    S("LIST", AR + "/role/c-web/secret-id", name="LIST secret-id: the three accessors (order not compared)"),
    S("GET", AR + "/role/c-web/secret-id?list=true", name="GET ?list=true: the same"),
    S("GET", AR + "/role/c-web/secret-id", name="GET secret-id without list: 405"),
    S("POST", AR + "/login", {"role_id": "${rid}", "secret_id": "${sid}"}, token=None,
      name="login with the replaced role-id: 400"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "${sid}"}, token=None,
      save={"tok": "auth.client_token", "tacc": "auth.accessor"},
      name="login: auth block, metadata from the secret-id plus role_name"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="login token lookup-self"),
    S("POST", "/v1/auth/token/lookup-accessor", {"accessor": "${tacc}"}, name="lookup-accessor of the login token"),
    S("GET", "/v1/secret/data/c-ar/missing", token="${tok}", name="login token under its policy: 404 (allowed)"),
    S("GET", "/v1/sys/mounts", token="${tok}", name="login token outside its policy: 403"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "2h"}, token="${tok}",
      match={"warnings.0": CAPPED.format("2h")},
      name="renew-self beyond token_max_ttl: capped with a warning"),
    S("POST", AR + "/role/c-web/secret-id/lookup", {"secret_id": "${sid}"}, name="secret-id after a login: 4 uses left"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "c-no-such-secret"}, token=None,
      name="bad secret_id: 400"),
    S("POST", AR + "/login", {"role_id": "c-no-such-role-id", "secret_id": "${sid}"}, token=None,
      name="bad role_id: 400"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id"}, token=None, name="missing secret_id: 400"),
    S("POST", AR + "/login", {"secret_id": "${sid}"}, token=None, name="missing role_id: 500 (sic)"),
    S("POST", AR + "/login", {}, token=None, name="empty body: 500 missing role_id"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "c-web-custom-secret"}, token=None,
      name="login with the custom secret-id"),
    S("POST", AR + "/role/c-web/secret-id-accessor/destroy", {"secret_id_accessor": "${cacc}"},
      name="secret-id-accessor/destroy: 204"),
    S("POST", AR + "/role/c-web/secret-id-accessor/destroy", {"secret_id_accessor": "${cacc}"},
      name="secret-id-accessor/destroy again: 500"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "c-web-custom-secret"}, token=None,
      name="login with the destroyed secret-id: 400"),
    S("POST", AR + "/role/c-web/secret-id/destroy", {"secret_id": "${sid}"}, name="secret-id/destroy: 204"),
    S("POST", AR + "/role/c-web/secret-id/destroy", {"secret_id": "${sid}"}, name="secret-id/destroy again: 204"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "${sid}"}, token=None,
      name="login with the destroyed secret-id: 400"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "${sid2}"}, token=None,
      name="login with the cidr_list 127.0.0.1/32 secret-id: 200"),
    S("LIST", AR + "/role/c-web/secret-id", name="LIST secret-id: one accessor left"),
    S("POST", AR + "/role/c-web/secret-id-accessor/destroy", {"secret_id_accessor": "${sacc2}"},
      name="destroy the last one by accessor"),
    S("LIST", AR + "/role/c-web/secret-id", name="LIST secret-id with none: 404"),
    S("POST", AR + "/role/c-web/custom-secret-id", {"secret_id": "c-web-far-secret", "cidr_list": ["10.0.0.0/8"]},
      name="custom-secret-id bound to 10.0.0.0/8"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "c-web-far-secret"}, token=None,
      match={"errors.0": r'^source address "127\.0\.0\.1" unauthorized by CIDR restrictions on the secret ID'},
      name="login from 127.0.0.1 with it: 400 (OpenBao's text ends in a Go %!w(<nil>))"),
    # secret_id_num_uses and token_num_uses
    S("POST", AR + "/role/c-once", {"secret_id_num_uses": 2, "token_num_uses": 2, "token_policies": ["c-ar-read"],
                                    "token_ttl": "5m", "token_max_ttl": "10m"},
      name="role with secret_id_num_uses 2, token_num_uses 2"),
    S("GET", AR + "/role/c-once", name="read it"),
    setup("POST", AR + "/role/c-once/role-id", {"role_id": "c-once-role-id"}),
    S("POST", AR + "/role/c-once/custom-secret-id", {"secret_id": "c-once-secret"}, name="custom-secret-id: 2 uses, no ttl"),
    S("POST", AR + "/role/c-once/secret-id/lookup", {"secret_id": "c-once-secret"},
      name="lookup: expiration_time is Go's zero time"),
    S("POST", AR + "/login", {"role_id": "c-once-role-id", "secret_id": "c-once-secret"}, token=None,
      save={"once": "auth.client_token"}, name="login 1 of 2 (num_uses 2 in auth)"),
    S("POST", AR + "/login", {"role_id": "c-once-role-id", "secret_id": "c-once-secret"}, token=None,
      name="login 2 of 2"),
    S("POST", AR + "/login", {"role_id": "c-once-role-id", "secret_id": "c-once-secret"}, token=None,
      name="login 3: secret-id used up: 400"),
    S("POST", AR + "/role/c-once/secret-id/lookup", {"secret_id": "c-once-secret"},
      name="used-up secret-id is gone: 204"),
    S("GET", "/v1/auth/token/lookup-self", token="${once}", name="token_num_uses 2: use 1 (shows 1)"),
    S("GET", "/v1/auth/token/lookup-self", token="${once}", name="use 2 (shows -1)"),
    S("GET", "/v1/auth/token/lookup-self", token="${once}", name="use 3: 403"),
    # bind_secret_id=false and CIDR bindings
    S("POST", AR + "/role/c-nosecret", {"bind_secret_id": False}, name="bind_secret_id=false, no constraint: 500"),
    S("POST", AR + "/role/c-nosecret", {"bind_secret_id": False, "secret_id_bound_cidrs": ["127.0.0.1/32"],
                                        "token_bound_cidrs": ["127.0.0.1/32", "10.0.0.0/8"],
                                        "token_policies": ["c-ar-read"], "token_ttl": "10m"},
      name="bind_secret_id=false with secret_id_bound_cidrs and token_bound_cidrs"),
    S("GET", AR + "/role/c-nosecret", name="read it: a /32 token CIDR is shown as a bare address"),
    setup("POST", AR + "/role/c-nosecret/role-id", {"role_id": "c-nosecret-role-id"}),
    S("POST", AR + "/login", {"role_id": "c-nosecret-role-id"}, token=None,
      save={"ns": "auth.client_token"}, name="login with the role_id only"),
    S("GET", "/v1/auth/token/lookup-self", token="${ns}", name="lookup-self: bound_cidrs"),
    S("POST", AR + "/role/c-far", {"bind_secret_id": False, "secret_id_bound_cidrs": ["10.0.0.0/8"]},
      name="role bound to 10.0.0.0/8"),
    setup("POST", AR + "/role/c-far/role-id", {"role_id": "c-far-role-id"}),
    S("POST", AR + "/login", {"role_id": "c-far-role-id"}, token=None,
      match={"errors.0": r'^source address "127\.0\.0\.1" unauthorized by CIDR restrictions on the role'},
      name="login from 127.0.0.1: 400"),
    S("POST", AR + "/role/c-fartoken", {"bind_secret_id": False, "token_bound_cidrs": ["10.0.0.0/8"]},
      name="role with token_bound_cidrs 10.0.0.0/8 only"),
    setup("POST", AR + "/role/c-fartoken/role-id", {"role_id": "c-fartoken-role-id"}),
    S("POST", AR + "/login", {"role_id": "c-fartoken-role-id"}, token=None,
      save={"ft": "auth.client_token"}, name="login works"),
    S("GET", "/v1/auth/token/lookup-self", token="${ft}", name="but the token is unusable from 127.0.0.1: 403"),
    # role validation
    S("POST", AR + "/role/c-bad", {"token_ttl": "2h", "token_max_ttl": "1h"}, name="token_ttl > token_max_ttl: 400"),
    S("POST", AR + "/role/c-bad", {"secret_id_num_uses": -1}, name="negative secret_id_num_uses: 400"),
    S("POST", AR + "/role/c-bad", {"token_type": "weird"}, name="bad token_type: 400"),
    S("GET", AR + "/role/c-bad", name="nothing was written: 404"),
    # tidy, delete
    S("POST", AR + "/tidy/secret-id", name="tidy/secret-id: 202 with a warning"),
    S("DELETE", AR + "/role/c-web", name="delete role: 204"),
    S("GET", AR + "/role/c-web", name="read deleted role: 404"),
    S("GET", AR + "/role/c-web/role-id", name="role-id of a deleted role: 404"),
    S("DELETE", AR + "/role/c-web", name="delete again: 204"),
    S("POST", AR + "/login", {"role_id": "c-web-role-id", "secret_id": "x"}, token=None,
      name="login with the deleted role's role_id: 400"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="tokens of a deleted role stay valid"),
    S("LIST", AR + "/role", name="LIST roles after delete"),
    disable_auth("c-ar"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="disabling the mount revokes its tokens: 403"),
    drop_policy("c-ar-read"),
])

# ------------------------------------------------------------------------------------------
UP = "/v1/auth/c-up"
C["112-auth-userpass"] = ("userpass: users CRUD, login, wrong password, unknown user, password and "
                          "policy updates, token_policies/token_ttl", [
    enable_auth("c-up", "userpass"),
    policy("c-up-read", 'path "secret/data/c-up/*" { capabilities = ["read"] }\n'),
    S("LIST", UP + "/users", name="LIST users with none: 404"),
    S("POST", UP + "/users/c-alice", {"password": "c-alice-pw-1", "token_policies": ["c-up-read"],
                                      "token_ttl": "15m", "token_max_ttl": "1h"}, name="write user: 204"),
    S("GET", UP + "/users/c-alice", name="read user: no password in the response"),
    S("POST", UP + "/users/C-Bob", {"password": "c-bob-pw", "token_policies": "c-up-read,c-up-other"},
      name="mixed-case name, policies as a comma string"),
    S("GET", UP + "/users/c-bob", name="read c-bob"),
    S("GET", UP + "/users/C-BOB", name="read in another case"),
    S("LIST", UP + "/users", name="LIST users: lower-cased, sorted"),
    S("GET", UP + "/users?list=true", name="GET ?list=true"),
    S("POST", UP + "/users/c-nopw", {"token_policies": ["c-up-read"]}, name="new user without password: 400"),
    S("GET", UP + "/users/c-nopw", name="read a missing user: 404"),
    S("POST", UP + "/login/c-alice", {"password": "c-alice-pw-1"}, token=None,
      save={"tok": "auth.client_token", "acc": "auth.accessor"}, name="login: auth block"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="lookup-self: display_name, path, meta"),
    S("GET", "/v1/secret/data/c-up/missing", token="${tok}", name="allowed by policy: 404"),
    S("GET", "/v1/sys/mounts", token="${tok}", name="denied by policy: 403"),
    S("POST", "/v1/auth/token/renew-self", {"increment": "3h"}, token="${tok}",
      match={"warnings.0": CAPPED.format("3h")},
      name="renew-self beyond token_max_ttl: capped with a warning"),
    S("POST", UP + "/login/C-ALICE", {"password": "c-alice-pw-1"}, token=None,
      name="login with the name in another case: 200"),
    S("POST", UP + "/login/c-bob", {"password": "c-bob-pw"}, token=None,
      name="login c-bob: policies split, no TTLs: system default"),
    S("POST", UP + "/login/c-alice", {"password": "wrong"}, token=None, name="wrong password: 400"),
    S("POST", UP + "/login/c-nobody", {"password": "c-alice-pw-1"}, token=None, name="unknown user: 400 (same text)"),
    S("POST", UP + "/login/c-alice", {}, token=None, name="missing password: 500"),
    S("POST", UP + "/login", {"username": "c-alice", "password": "c-alice-pw-1"}, token=None,
      name="login without the name in the path: 403"),
    S("POST", UP + "/users/c-alice/password", {"password": "c-alice-pw-2"}, name="password update: 204"),
    S("POST", UP + "/login/c-alice", {"password": "c-alice-pw-1"}, token=None, name="old password: 400"),
    S("POST", UP + "/login/c-alice", {"password": "c-alice-pw-2"}, token=None, name="new password: 200"),
    S("POST", UP + "/users/c-alice/password", {}, name="password update without password: 400"),
    S("POST", UP + "/users/c-nobody/password", {"password": "x"}, name="password update of a missing user: 500"),
    S("POST", UP + "/users/c-alice/policies", {"token_policies": ["c-up-z", "c-up-read"]},
      name="policies update: 204"),
    S("POST", UP + "/users/c-alice", {"token_ttl": "5m"}, name="update token_ttl without password: 204"),
    S("GET", UP + "/users/c-alice", name="read: policies sorted, token_ttl 300, max kept"),
    S("POST", UP + "/login/c-alice", {"password": "c-alice-pw-2"}, token=None,
      save={"tok2": "auth.client_token"}, name="login: new policies and TTL"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok2}", name="lookup-self of the new token"),
    S("DELETE", UP + "/users/c-alice", name="delete user: 204"),
    S("GET", UP + "/users/c-alice", name="read deleted: 404"),
    S("POST", UP + "/login/c-alice", {"password": "c-alice-pw-2"}, token=None, name="login deleted user: 400"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok2}", name="the deleted user's token stays valid"),
    S("DELETE", UP + "/users/c-alice", name="delete again: 204"),
    S("LIST", UP + "/users", name="LIST after delete"),
    cleanup("DELETE", UP + "/users/c-bob"),
    disable_auth("c-up"),
    S("GET", "/v1/auth/token/lookup-self", token="${tok2}", name="disabling the mount revokes its tokens: 403"),
    drop_policy("c-up-read"),
])

# ------------------------------------------------------------------------------------------
WK = "/v1/c-wrap"
WA = "/v1/auth/c-wrap-ar"
C["113-wrapping"] = ("response wrapping: X-Vault-Wrap-TTL on KV, token create and AppRole, "
                     "sys/wrapping/{lookup,unwrap,wrap,rewrap}, single use, TTL parsing", [
    setup("POST", "/v1/sys/mounts/c-wrap", {"type": "kv", "options": {"version": "2"}}, name="setup: mount c-wrap (kv v2)"),
    setup("POST", WK + "/data/app", {"data": {"api_key": "wrapped-value"}}),
    S("GET", WK + "/data/app", headers=wrap("120"), save={"w1": "wrap_info.token", "w1acc": "wrap_info.accessor"},
      name="KV read wrapped: only wrap_info, request_id empty"),
    S("POST", "/v1/sys/wrapping/lookup", {"token": "${w1}"}, token=None, name="lookup without auth"),
    S("POST", "/v1/sys/wrapping/lookup", token="${w1}", name="lookup with the wrapping token as X-Vault-Token"),
    S("GET", "/v1/sys/wrapping/lookup", token="${w1}", name="lookup with GET"),
    S("POST", "/v1/auth/token/lookup", {"token": "${w1}"}, name="auth/token/lookup of a wrapping token (root)"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${w1}", name="unwrap with the wrapping token: the KV read"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${w1}", name="unwrap again: 400"),
    S("POST", "/v1/sys/wrapping/lookup", {"token": "${w1}"}, token=None, name="lookup after unwrap: 400"),
    S("GET", WK + "/data/app", headers=wrap("5m"), save={"w2": "wrap_info.token"}, name="wrap TTL as a duration: 300"),
    S("POST", "/v1/sys/wrapping/unwrap", {"token": "${w2}"}, name="unwrap with the token in the body (root auth)"),
    S("POST", "/v1/sys/wrapping/unwrap", {"token": "${w2}"}, name="body unwrap again: 400"),
    S("GET", WK + "/data/app", headers=wrap("60"), save={"w3": "wrap_info.token"}, name="wrap for the no-auth unwrap"),
    S("POST", "/v1/sys/wrapping/unwrap", {"token": "${w3}"}, token=None, name="token in body without X-Vault-Token: 403"),
    S("POST", "/v1/sys/wrapping/unwrap", token=None, name="unwrap with no token at all: 403"),
    S("POST", "/v1/sys/wrapping/unwrap", {"token": "c-not-a-wrapping-token"}, name="unwrap an unknown token: 400"),
    S("POST", "/v1/sys/wrapping/lookup", {"token": "c-not-a-wrapping-token"}, token=None, name="lookup unknown: 400"),
    S("POST", "/v1/sys/wrapping/lookup", {}, token=None, name="lookup with no token at all: 403"),
    S("POST", "/v1/sys/wrapping/lookup", {}, name="lookup of root (not a wrapping token): 400"),
    S("GET", WK + "/data/app", headers=wrap("60"), save={"w4": "wrap_info.token"}, name="wrap for the misuse test"),
    S("GET", "/v1/auth/token/lookup-self", token="${w4}", name="wrapping token used as a normal token: 403"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${w4}", name="that burnt its only use: unwrap 400"),
    # sys/wrapping/wrap and rewrap
    S("POST", "/v1/sys/wrapping/wrap", {"hello": "world", "n": 1, "nested": {"a": [1, 2]}}, headers=wrap("5m"),
      save={"w5": "wrap_info.token"}, name="wrap arbitrary data"),
    S("POST", "/v1/sys/wrapping/lookup", {"token": "${w5}"}, token=None, name="lookup: creation_path sys/wrapping/wrap"),
    S("POST", "/v1/sys/wrapping/rewrap", {"token": "${w5}"}, save={"w6": "wrap_info.token"},
      name="rewrap: new token, same TTL and creation_path"),
    S("POST", "/v1/sys/wrapping/unwrap", {"token": "${w5}"}, name="the old token is gone: 400"),
    S("POST", "/v1/sys/wrapping/rewrap", {"token": "${w5}"}, name="rewrap it again: 400"),
    S("POST", "/v1/sys/wrapping/rewrap", {"token": "${w6}"}, headers=wrap("30"), save={"w7": "wrap_info.token"},
      name="rewrap with X-Vault-Wrap-TTL 30: the new token has TTL 30"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${w7}", name="unwrap the rewrapped data: JSON types kept"),
    S("POST", "/v1/sys/wrapping/wrap", {"hello": "world"}, name="wrap without the header: 400"),
    S("POST", "/v1/sys/wrapping/wrap", {}, headers=wrap("60"), save={"w8": "wrap_info.token"}, name="wrap an empty object"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${w8}", name="unwrap it: data {}"),
    S("POST", "/v1/sys/wrapping/wrap", {"a": "b"}, token=None, headers=wrap("60"), name="wrap without a token: 403"),
    # TTL parsing
    S("GET", WK + "/data/app", headers=wrap("abc"), name="invalid wrap TTL: 400"),
    S("GET", WK + "/data/app", headers=wrap("-5"), name="negative wrap TTL: 400"),
    S("GET", WK + "/data/app", headers=wrap("0"), name="wrap TTL 0: not wrapped"),
    S("GET", WK + "/data/app", headers=wrap("1000h"), save={"wlong": "wrap_info.token"},
      name="wrap TTL 1000h: accepted (3600000)"),
    S("GET", WK + "/data/missing", headers=wrap("60"), name="wrapped 404: not wrapped"),
    S("POST", WK + "/data/app", {"data": {"api_key": "v2"}}, headers=wrap("60"), save={"wwr": "wrap_info.token"},
      name="KV write wrapped"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${wwr}", name="unwrap the write response"),
    S("GET", "/v1/sys/health", headers=wrap("60"), name="sys/health ignores the header"),
    # token create wrapped
    S("POST", "/v1/auth/token/create", {"policies": ["default"], "ttl": "10m"}, headers=wrap("60"),
      save={"wt": "wrap_info.token", "wtacc": "wrap_info.wrapped_accessor"},
      name="token create wrapped: wrapped_accessor is the new token's accessor"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${wt}", save={"ut": "auth.client_token"},
      name="unwrap: the auth block, same accessor"),
    S("GET", "/v1/auth/token/lookup-self", token="${ut}", name="the unwrapped token works"),
    # AppRole secret-id wrapped, then login with it
    setup("POST", "/v1/sys/auth/c-wrap-ar", {"type": "approle"}, name="setup: enable approle at c-wrap-ar"),
    setup("POST", WA + "/role/c-wrapped", {"token_ttl": "20m", "secret_id_num_uses": 5, "secret_id_ttl": "10m"}),
    setup("POST", WA + "/role/c-wrapped/role-id", {"role_id": "c-wrapped-role-id"}),
    S("POST", WA + "/role/c-wrapped/secret-id", {}, headers=wrap("60"),
      save={"ws": "wrap_info.token", "wsacc": "wrap_info.wrapped_accessor"},
      name="secret-id wrapped: wrapped_accessor is the secret_id_accessor"),
    S("POST", "/v1/sys/wrapping/lookup", {"token": "${ws}"}, token=None, name="lookup the wrapped secret-id"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${ws}", save={"sid": "data.secret_id"},
      name="unwrap: secret_id with the wrapped accessor"),
    S("POST", WA + "/login", {"role_id": "c-wrapped-role-id", "secret_id": "${sid}"}, token=None,
      name="login with the unwrapped secret-id"),
    S("POST", WA + "/login", {"role_id": "c-wrapped-role-id", "secret_id": "${sid}"}, token=None,
      headers=wrap("60"), save={"wl": "wrap_info.token", "wlacc": "wrap_info.wrapped_accessor"},
      name="login wrapped: wrapped_accessor is the token accessor"),
    S("POST", "/v1/sys/wrapping/unwrap", token="${wl}", save={"lt": "auth.client_token"},
      name="unwrap the login: auth block"),
    S("GET", "/v1/auth/token/lookup-self", token="${lt}", name="the unwrapped login token works"),
    S("POST", WA + "/login", {"role_id": "c-wrapped-role-id", "secret_id": "c-bad"}, token=None,
      headers=wrap("60"), name="failed login with the header: 400, not wrapped"),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${ut}"}),
    cleanup("POST", "/v1/auth/token/revoke", {"token": "${wlong}"}),
    cleanup("DELETE", "/v1/sys/auth/c-wrap-ar"),
    cleanup("DELETE", "/v1/sys/mounts/c-wrap"),
])

# ------------------------------------------------------------------------------------------
JA = "/v1/auth/c-jwt"
ISS = "https://c-issuer.compat.test"
FAR = 4102444800      # 2100-01-01: valid for the life of the suite
PAST = 1700000600     # 2023-11-14: expired
BASE = {"iss": ISS, "aud": "c-aud", "sub": "c-subject-1", "repo": "c-org/app", "ref": "refs/heads/main",
        "env": "prod", "iat": 1700000000, "nbf": 1700000000, "exp": FAR}


def claims(**over):
    c = dict(BASE, **over)
    return {k: v for k, v in c.items() if v is not None}


def jwt_case():
    good = jwt(claims())
    parts = good.split(".")
    # Same header and payload, signature bytes changed.
    sig = base64.urlsafe_b64decode(parts[2] + "==")
    bad_sig = parts[0] + "." + parts[1] + "." + b64u(bytes([sig[0] ^ 1]) + sig[1:])
    # Payload changed after signing (the signature is for the original payload).
    tampered = parts[0] + "." + seg(claims(repo="c-org/evil")) + "." + parts[2]
    hs256 = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()) + "." + parts[1] + "." + parts[2]

    def login(j, name, role="c-ci", save=None, match=None):
        return S("POST", JA + "/login", {"role": role, "jwt": j}, token=None, name=name, save=save, match=match)

    return ("JWT auth with jwt_validation_pubkeys (RSA and EC P-256, test-only keys in keys/), bound_issuer, "
            "role with bound_audiences/bound_subject/glob bound_claims/claim_mappings; login and rejections", [
        enable_auth("c-jwt", "jwt"),
        policy("c-jwt-read", 'path "secret/data/c-jwt/*" { capabilities = ["read"] }\n'),
        S("GET", JA + "/config", name="config before it is written: 404"),
        login(good, "login before config: 400 could not load configuration"),
        S("POST", JA + "/config", {"jwt_validation_pubkeys": ["not a pem"]}, name="config with a bad PEM: 400"),
        S("POST", JA + "/config", {}, name="config with no key source: 400"),
        S("POST", JA + "/config", {"jwt_validation_pubkeys": [read_key(RSA_PUB)], "jwks_url": "http://127.0.0.1:1/jwks"},
          name="config with two key sources: 400"),
        S("POST", JA + "/config", {"jwt_validation_pubkeys": [read_key(RSA_PUB), read_key(EC_PUB)], "bound_issuer": ISS},
          name="config: RSA and EC public keys, bound_issuer"),
        S("GET", JA + "/config", name="read config"),
        S("POST", JA + "/role/c-ci", {"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["c-aud"],
                                      "bound_subject": "c-subject-1", "bound_claims_type": "glob",
                                      "bound_claims": {"repo": "c-org/*", "ref": ["refs/heads/main", "refs/tags/v*"]},
                                      "claim_mappings": {"repo": "repository", "env": "environment"},
                                      "token_policies": ["c-jwt-read"], "token_ttl": "10m"},
          name="role: glob bound_claims, claim_mappings, bound_subject"),
        S("GET", JA + "/role/c-ci", name="read role: field set"),
        S("LIST", JA + "/role", name="LIST roles"),
        S("GET", JA + "/role/c-missing", name="read a missing role: 404"),
        S("POST", JA + "/role/c-bad", {"role_type": "jwt", "user_claim": "sub"}, name="role with no bound constraint: 400"),
        S("POST", JA + "/role/c-bad", {"role_type": "jwt", "bound_audiences": ["c-aud"]}, name="role without user_claim: 400"),
        S("POST", JA + "/role/c-bad", {"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["c-aud"],
                                       "bound_claims_type": "regex"}, name="bad bound_claims_type: 400"),
        S("POST", JA + "/role/c-bad", {"role_type": "saml", "user_claim": "sub", "bound_audiences": ["c-aud"]},
          name="bad role_type: 400"),
        S("POST", JA + "/role/c-bad", {"user_claim": "sub", "bound_audiences": ["c-aud"]},
          name="role_type defaults to oidc: needs allowed_redirect_uris: 400"),
        login(good, "login RS256: metadata from claim_mappings plus role", save={"tok": "auth.client_token"}),
        S("GET", "/v1/auth/token/lookup-self", token="${tok}", name="lookup-self: display_name from user_claim"),
        S("GET", "/v1/secret/data/c-jwt/missing", token="${tok}", name="allowed by policy: 404"),
        login(jwt(claims(), alg="ES256", key=EC_KEY), "login ES256 (EC P-256 key)"),
        login(jwt(claims(aud=["c-other", "c-aud"])), "aud as a list containing the bound audience: 200"),
        login(jwt(claims(ref="refs/tags/v1.2.3")), "glob on the second bound value: 200"),
        login(jwt(claims(aud="c-wrong-aud")), "wrong audience: 400"),
        login(jwt(claims(iss="https://c-wrong-issuer.compat.test")), "wrong issuer: 400"),
        login(jwt(claims(exp=PAST)), "expired: 400"),
        login(jwt(claims(exp=None)), "no exp: 400 (treated as expired)"),
        login(jwt(claims(nbf=FAR - 1000)), "nbf in the future: 400"),
        login(jwt(claims(iat=FAR - 1000)), "iat in the future: 400"),
        login(jwt(claims(sub="c-subject-2")), "wrong subject: 400"),
        login(jwt(claims(repo="c-other-org/app")), "bound claim (glob) mismatch: 400"),
        login(jwt(claims(ref="refs/heads/dev")), "bound claim list mismatch: 400"),
        login(jwt(claims(repo=None)), "bound claim missing: 400"),
        login(bad_sig, "tampered signature: 400"),
        login(tampered, "payload changed after signing: 400"),
        login(jwt(claims(), key=RSA_OTHER_KEY), "signed by an unknown key: 400"),
        login(jwt(claims(), alg="none"), "alg none: 400"),
        login(hs256, "alg HS256 header on an RS256 signature: 400"),
        login("not.a.jwt", "garbage jwt (three parts): 400",
              match={"errors.0": "^error validating token: error verifying token signature: "}),
        login("garbage", "garbage jwt (one part): 400",
              match={"errors.0": "^error validating token: error verifying token signature: "}),
        login("", "empty jwt: 400 missing token"),
        S("POST", JA + "/login", {"role": "c-ci"}, token=None, name="no jwt field: 400 missing token"),
        login(good, "unknown role: 400", role="c-nope"),
        S("POST", JA + "/login", {"jwt": good}, token=None, name="no role and no default_role: 400"),
        S("POST", JA + "/role/c-email", {"role_type": "jwt", "user_claim": "email", "bound_audiences": ["c-aud"]},
          name="role whose user_claim is absent from the token"),
        login(good, "user_claim missing from the token: 400", role="c-email"),
        S("DELETE", JA + "/role/c-email", name="delete role: 204"),
        S("DELETE", JA + "/role/c-email", name="delete again: 204"),
        login(good, "login to the deleted role: 400", role="c-email"),
        cleanup("POST", "/v1/auth/token/revoke", {"token": "${tok}"}),
        disable_auth("c-jwt"),
        drop_policy("c-jwt-read"),
    ])


# Client errors OpenBao answers with 500 and Airlock with 400 (steps numbered from 1).
DEVIATION_REASON = ("OpenBao answers this client error with 500; Airlock answers 400 "
                    "(the request is wrong, the server is fine)")
DEVIATIONS = {
    "111-auth-approle": [20, 26, 30, 36, 54, 55, 58, 81],
    "112-auth-userpass": [22, 28],
}


def main():
    if "--new-keys" in sys.argv[1:]:
        new_keys()
    C["114-auth-jwt"] = jwt_case()
    for name, steps_1based in DEVIATIONS.items():
        for i in steps_1based:
            C[name][1][i - 1]["deviation"] = {"status": 400, "reason": DEVIATION_REASON}
    d = os.path.join(HERE, "cases")
    os.makedirs(d, exist_ok=True)
    n = 0
    for name in sorted(C):
        desc, steps = C[name]
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump({"name": name, "description": desc, "steps": steps}, f, indent=1)
            f.write("\n")
        k = sum(1 for s in steps if s.get("compare", True) is not False)
        n += k
        print(f"{name}: {len(steps)} steps, {k} compared")
    print(f"{len(C)} case files, {n} compared steps")


if __name__ == "__main__":
    main()
