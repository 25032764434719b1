#!/usr/bin/env python3
"""Differential compatibility runner: replays request cases against two Vault-API servers
(A: the reference OpenBao, B: Airlock) in the same run and compares status codes, headers
and JSON bodies after normalisation.

Usage:
  python3 tests/compat/run.py --a http://127.0.0.1:8210 --a-token root \
                              --b http://127.0.0.1:8200 --b-token root [--cases DIR] [--filter S]

Prints one line per compared step that differs (with a diff) and ends with
`compat: N passed, N failed`. Exit code 1 when anything failed. Standard library only.
"""
import argparse
import copy
import difflib
import glob
import http.client
import json
import os
import re
import sys
import urllib.parse

# ---------------------------------------------------------------------------------------
# Normalisation rules, one table. A key listed here has its value replaced by a marker
# wherever it appears in a response body (any depth), because it is random or time-based.
# ---------------------------------------------------------------------------------------
VOLATILE = {
    "request_id": "<request_id>",
    "accessor": "<accessor>",
    "client_token": "<token>",
    "id": "<token>",                  # token lookups
    "token": "<token>",
    "creation_time": "<time>",
    "issue_time": "<time>",
    "expire_time": "<time>",
    "created_time": "<time>",
    "updated_time": "<time>",
    "last_renewal": "<time>",
    "last_renewal_time": "<time>",
    "modified": "<time>",
    "server_time_utc": "<time>",
    "install_time": "<time>",
    "cluster_name": "<cluster>",
    "cluster_id": "<cluster>",
    "uuid": "<uuid>",
    "running_plugin_version": "<version>",
    "commit_date": "<version>",
    "build_date": "<version>",
    "storage_type": "<storage>",
    "nonce": "<nonce>",
    "root_token": "<token>",
}
# Version strings only where they are server versions (top level of health/seal-status).
TOP_LEVEL_VOLATILE = {"version": "<version>"}
# Time fields that are "" when unset must stay "" vs non-empty: only non-empty values are masked.
KEEP_EMPTY = {"deletion_time", "expire_time", "last_renewal"}
TIME_WHEN_SET = {"deletion_time": "<time>"}
# Numbers that tick between the two requests: equal when within this many seconds.
TOLERANT = {"ttl": 3, "lease_duration": 3, "token_ttl": 3}


def normalise(v, top=True):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if top and k in TOP_LEVEL_VOLATILE and isinstance(x, str):
                out[k] = TOP_LEVEL_VOLATILE[k]
            elif k in TIME_WHEN_SET:
                out[k] = TIME_WHEN_SET[k] if x not in ("", None) else x
            elif k in VOLATILE and x not in ("", None) and not isinstance(x, (dict, list, bool)):
                out[k] = VOLATILE[k]
            elif k in ("keys_accessors",):
                out[k] = ["<accessor>"] * len(x)
            else:
                out[k] = normalise(x, False)
        return out
    if isinstance(v, list):
        return [normalise(x, False) for x in v]
    if isinstance(v, str):
        # Mount accessors like kv_1a2b3c4d and any UUID inside strings.
        v = re.sub(r"\b(kv|system|auth_token|token|identity|cubbyhole)_[0-9a-z]{8}\b", r"\1_<acc>", v)
        v = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", v)
    return v


def tolerant_equal(a, b, key=None):
    if key in TOLERANT and isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        return abs(a - b) <= TOLERANT[key]
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(tolerant_equal(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(tolerant_equal(x, y, key) for x, y in zip(a, b))
    return a == b


def select(body, path):
    cur = body
    for part in path.split(".") if path else []:
        if isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def subst(v, env):
    if isinstance(v, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: str(env.get(m.group(1), m.group(0))), v)
    if isinstance(v, dict):
        return {subst(k, env): subst(x, env) for k, x in v.items()}
    if isinstance(v, list):
        return [subst(x, env) for x in v]
    return v


class Server:
    def __init__(self, url, token):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.root = token

    def call(self, method, path, token, body, raw_body, headers):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"X-Vault-Request": "true"}
        if token is not None:
            h["X-Vault-Token"] = token
        h.update(headers or {})
        data = None
        if raw_body is not None:
            data = raw_body.encode()
        elif body is not None:
            data = json.dumps(body).encode()
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = {"<non-json>": payload.decode("utf-8", "replace")[:200]}
        return r.status, hdrs, parsed


def run_case(case, a, b, verbose):
    env = {"a": {}, "b": {}}
    passed = failed = 0
    for i, step in enumerate(case["steps"]):
        results = {}
        for side, srv in (("a", a), ("b", b)):
            e = env[side]
            tok = step.get("token", "root")
            tok = srv.root if tok == "root" else (None if tok is None else subst(tok, e))
            status, hdrs, body = srv.call(
                step["method"], subst(step["path"], e), tok,
                subst(step.get("body"), e), subst(step.get("raw_body"), e) if "raw_body" in step else None,
                subst(step.get("headers", {}), e))
            for var, p in step.get("save", {}).items():
                e[var] = select(body, p)
            results[side] = (status, hdrs, body)
        mode = step.get("compare", True)
        if mode is False:
            continue
        name = f'{case["name"]} #{i + 1} {step.get("name", step["method"] + " " + step["path"])}'
        (sa, ha, ba), (sb, hb, bb) = results["a"], results["b"]
        problems = []
        if sa != sb:
            problems.append(f"status {sa} (reference) vs {sb} (airlock)")
        if mode != "status":
            sel = step.get("select")
            na = normalise(select(ba, sel) if sel else ba)
            nb = normalise(select(bb, sel) if sel else bb)
            if not tolerant_equal(na, nb):
                da = json.dumps(na, indent=1, sort_keys=True).splitlines()
                db = json.dumps(nb, indent=1, sort_keys=True).splitlines()
                problems.append("body differs:\n" + "\n".join(difflib.unified_diff(da, db, "reference", "airlock", lineterm="", n=2)))
            if sb != 204 and sa != 204 and ba is not None:
                if hb.get("content-type", "") != "application/json":
                    problems.append(f"content-type {hb.get('content-type')!r}")
            if hb.get("cache-control") != ha.get("cache-control"):
                problems.append(f"cache-control {ha.get('cache-control')!r} vs {hb.get('cache-control')!r}")
        if problems:
            failed += 1
            print(f"FAIL {name}\n  " + "\n  ".join(problems))
        else:
            passed += 1
            if verbose:
                print(f"ok   {name}")
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--a-token", default="root")
    ap.add_argument("--b", required=True)
    ap.add_argument("--b-token", default="root")
    ap.add_argument("--cases", default=os.path.join(os.path.dirname(__file__), "cases"))
    ap.add_argument("--filter", default="")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    a, b = Server(args.a, args.a_token), Server(args.b, args.b_token)
    total_p = total_f = 0
    files = sorted(glob.glob(os.path.join(args.cases, "*.json")))
    if not files:
        print("compat: no case files found", file=sys.stderr)
        return 2
    for f in files:
        with open(f) as fh:
            case = json.load(fh)
        if args.filter and args.filter not in case["name"]:
            continue
        p, fl = run_case(case, a, b, args.verbose)
        total_p += p
        total_f += fl
    print(f"compat: {total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
