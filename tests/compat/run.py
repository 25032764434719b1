#!/usr/bin/env python3
"""Differential compatibility runner for the Vault/OpenBao HTTP API.

Replays the request cases in tests/compat/cases/*.json against two servers in the same run
(A: the reference, a real OpenBao dev server; B: Airlock) and compares, for every step with
"compare" set, the status code, a few headers and the JSON body after normalisation.

  python3 tests/compat/run.py --a http://127.0.0.1:18211 --a-token root \
                              --b http://127.0.0.1:8200  --b-token root \
                              [--cases DIR] [--filter SUBSTR] [-v]

Snapshots (for developers without OpenBao):
  --update-snapshots          also write A's normalised responses to --snapshot-dir
                              (default tests/compat/snapshots/<case>.json); --b is optional then
  --snapshot-dir DIR          with --a and without --b: the same as --update-snapshots into DIR
  --b-snapshot                compare B against the snapshots instead of a live A

Ends with the line `compat: N passed, N failed`; exit code 1 if anything failed, 2 on usage
errors. Python 3.11 standard library only. Token values are never printed: every value the
runner knows to be a token or accessor is replaced by a marker before anything is shown.
See tests/compat/README.md for the case format and the normalisation rules.
"""
import argparse
import difflib
import glob
import http.client
import json
import os
import re
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

# =========================================================================================
# NORMALISATION RULES: the one table that decides what may differ between two servers.
#
# Applied to every JSON value in a response body, at any depth, by key name. A rule
# replaces a value only when it has the expected shape ("kind"); a value of any other
# shape is left as it is, so a wrong type or format still shows up as a difference
# (e.g. an RFC 3339 string where OpenBao has a unix integer, or null where it has "").
# "" and null are never replaced: empty vs set is always compared.
#
#   key                       kind          marker                      why
# -----------------------------------------------------------------------------------------
RULES = [
    ("request_id",             "uuid",       "<uuid>"),              # random per request
    ("uuid",                   "uuid",       "<uuid>"),              # mount entry uuid
    ("cluster_id",             "uuid",       "<uuid>"),              # health, seal-status
    ("cluster_name",           "nonempty",   "<cluster-name>"),      # vault-cluster-<random>
    ("client_token",           "nonempty",   "<token>"),             # auth.client_token
    ("id",                     "nonempty",   "<token>"),             # token lookup: the token
    ("token",                  "nonempty",   "<token>"),
    ("accessor",               "mount_acc",  "<mount-accessor:{0}>"),  # kv_1a2b3c4d: keeps prefix
    ("accessor",               "nonempty",   "<accessor>"),          # token accessors
    ("wrapped_accessor",       "nonempty",   "<accessor>"),          # wrap_info: token/secret-id accessor
    ("entity_id",              "uuid",       "<uuid>"),
    ("lease_id",               "lease",      "{0}<lease>"),          # keep the path, mask the tail
    ("creation_time",          "time",       None),                  # None: marker from kind
    ("issue_time",             "time",       None),
    ("expire_time",            "time",       None),
    ("created_time",           "time",       None),
    ("updated_time",           "time",       None),
    ("deletion_time",          "time",       None),                  # "" (not deleted) kept
    ("last_renewal",           "time",       None),
    ("last_renewal_time",      "time",       None),
    ("modified",               "time",       None),                  # policy read
    ("expiration_time",        "time",       None),                  # approle secret-id lookup
    ("last_updated_time",      "time",       None),                  # approle secret-id lookup
    ("server_time_utc",        "time",       None),                  # health
    ("commit_date",            "time",       None),                  # seal-status
    ("build_date",             "time",       None),
    ("version",                "semver",     "<server-version>"),    # health/seal-status only:
                                                                     # KV/policy versions are ints
    ("running_plugin_version", "builtin",    "<builtin-plugin-version>"),
    ("storage_type",           "nonempty",   "<storage-type>"),      # inmem vs sqlite
    ("nonce",                  "nonempty",   "<nonce>"),             # unseal progress nonce
]
# Keys whose value is replaced only on these request paths (regex on the step's path).
PATH_RULES = [
    (r"^/v1/sys/seal-status", "type", "nonempty", "<seal-type>"),    # shamir / auto-unseal kind
    (r"/creds/", "username", "nonempty", "<db-username>"),           # v-<name>-<role>-<random>-<time>
    (r"/creds/", "password", "nonempty", "<db-password>"),           # random
    (r"^/v1/sys/leases/lookup/", "keys", "marker_set", None),        # random lease ids
    (r"^/v1/auth/token/accessors", "keys", "marker_set", None),      # all accessors on the server
    (r"^/v1/auth/[^?]+/role/[^/?]+/secret-id/?(\?|$)", "keys", "marker_set", None),  # approle secret-id
                                                                     # accessors: random, listed in hash order
]
# Substrings inside any string value (error texts, warnings).
TEXT_RULES = [
    # Go duration remaining until a max TTL ticks between two servers:
    # (any Go duration: "2h" on one server can be "1h59m59s" on the other a second later)
    (re.compile(r'(?<=max_ttl of ")(?=\d)(?:\d+h)?(?:\d+m)?(?:\d+s)?(?=")'),
     "<duration>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    # The product's own name in "... printed to <server>'s server logs":
    (re.compile(r"\b(?:OpenBao|Airlock)(?='s server logs)"), "<server>"),
    # Deliberate: Airlock never quotes a request field's value back in an error (it would
    # reach the audit log in clear, past the HMAC). OpenBao's quoted value is dropped here.
    (re.compile(r'(?<=time: invalid duration) "(?:[^"\\]|\\.)*"'), ""),
    (re.compile(r'(?<=time: unknown unit) "(?:[^"\\]|\\.)*"(?= in duration)'), ""),
    (re.compile(r'(?<=in duration) "(?:[^"\\]|\\.)*"'), ""),
    (re.compile(r'(?<=invalid capability) "(?:[^"\\]|\\.)*"'), ""),
    (re.compile(r'(?<=plugin not found in the catalog): .*$'), ""),
    (re.compile(r'(?<=invalid CIDR address): [^\n]*'), ""),
]
# Integers that tick: equal when within this many seconds of each other (documented choice:
# tolerance rather than buckets; a bucket boundary would make a 1-second drift flaky).
TOLERANT_SECONDS = {"ttl": 5, "lease_duration": 5}
# Response headers compared between the servers (and stored in snapshots).
COMPARED_HEADERS = ["content-type", "cache-control", "location"]
# =========================================================================================

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
SEMVER_RE = re.compile(r"^v?\d+\.\d+\.\d+([-+.][0-9A-Za-z.+-]*)?$")
BUILTIN_RE = re.compile(r"^v\d+\.\d+\.\d+\S*\+builtin(\.\w+)?$")
MOUNT_ACC_RE = re.compile(r"^([a-z][a-z_]*?)_[0-9a-z]{8}$")
LEASE_RE = re.compile(r"^(.+/)[A-Za-z0-9.]{8,}$")
# Keys holding tokens: a value we know (e.g. the root token "root") is named there even when short.
TOKEN_KEYS = {"id", "client_token", "token", "accessor"}
TOKEN_SHAPE = re.compile(r"\b(?:s|b|r|hvs|hvb|hvr|alt|alb)[._][A-Za-z0-9_.-]{20,}")
STEP_KEYS = {"name", "method", "path", "token", "headers", "body", "raw_body", "save",
             "compare", "select", "match", "deviation", "note"}


def apply_kind(kind, value, marker):
    """Returns (True, replacement) when `value` has the shape `kind`, else (False, None)."""
    if value is None or value == "" or isinstance(value, bool):
        return False, None
    if kind == "nonempty":
        return (True, marker) if isinstance(value, (str, int)) else (False, None)
    if kind == "uuid":
        return (True, marker) if isinstance(value, str) and UUID_RE.match(value) else (False, None)
    if kind == "semver":
        return (True, marker) if isinstance(value, str) and SEMVER_RE.match(value) else (False, None)
    if kind == "builtin":
        return (True, marker) if isinstance(value, str) and BUILTIN_RE.match(value) else (False, None)
    if kind == "mount_acc":
        m = isinstance(value, str) and MOUNT_ACC_RE.match(value)
        return (True, marker.format(m.group(1))) if m else (False, None)
    if kind == "lease":
        m = isinstance(value, str) and LEASE_RE.match(value)
        return (True, marker.format(m.group(1))) if m else (False, None)
    if kind == "time":
        # RFC 3339 strings and unix seconds are both used by OpenBao; keep which one it was.
        if isinstance(value, str) and RFC3339_RE.match(value):
            if value.startswith("0001-01-01"):
                return False, None  # Go's zero time is a constant, compare it literally
            return True, "<time>"
        if isinstance(value, int) and value > 0:
            return True, "<unix-time>"
        return False, None
    raise ValueError(kind)


class Normaliser:
    """Normalises one response body of one server. `known` maps values this server gave
    us earlier (tokens, accessors saved by `save`) to their variable names, so that a value
    that must be *the same* token as before becomes "<$var>" on both sides."""

    def __init__(self, known, req_path):
        self.known = known
        self.path_rules = [(k, kind, mk) for rx, k, kind, mk in PATH_RULES if re.search(rx, req_path)]

    def value(self, v, key=None):
        if isinstance(v, str) and v in self.known and (key in TOKEN_KEYS or len(v) >= 12):
            return "<$%s>" % self.known[v]
        for k, kind, marker in self.path_rules:
            if key == k:
                if kind == "marker_set" and isinstance(v, list):
                    # A list of random ids: compare the *set* of markers (ours + "others").
                    return sorted({self.value(x, "accessor") for x in v})
                ok, rep = apply_kind(kind, v, marker)
                if ok:
                    return rep
        if key is not None:
            for k, kind, marker in RULES:
                if key == k:
                    ok, rep = apply_kind(kind, v, marker)
                    if ok:
                        return rep if rep is not None else marker
        if isinstance(v, dict):
            return {k: self.value(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, str):
            for rx, rep in TEXT_RULES:
                v = rx.sub(rep, v)
        return v


def tolerant_equal(a, b, key=None):
    if (key in TOLERANT_SECONDS and type(a) is int and type(b) is int):
        return abs(a - b) <= TOLERANT_SECONDS[key]
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(tolerant_equal(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(tolerant_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def dotted(obj, path):
    """Value at a dotted path ("auth.client_token", "data.keys.0"); None when absent."""
    cur = obj
    for part in path.split(".") if path else []:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def set_dotted(obj, path, value):
    parts = path.split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur[int(part)] if isinstance(cur, list) else cur.get(part)
        if cur is None:
            return
    last = parts[-1]
    if isinstance(cur, list) and last.isdigit() and int(last) < len(cur):
        cur[int(last)] = value
    elif isinstance(cur, dict) and last in cur:
        cur[last] = value


VAR_RE = re.compile(r"\$\{(repeat:([^:}]*):(\d+)|\w+)\}")


def subst(v, env):
    """${var} -> saved value; ${repeat:STR:N} -> STR repeated N times."""
    if isinstance(v, str):
        def one(m):
            if m.group(2) is not None:
                return m.group(2) * int(m.group(3))
            if m.group(1) not in env:
                raise KeyError("variable ${%s} was never saved (an earlier step failed?)" % m.group(1))
            val = env[m.group(1)]
            return val if isinstance(val, str) else json.dumps(val)
        # A string that is exactly one variable keeps the saved value's JSON type.
        m = VAR_RE.fullmatch(v)
        if m and m.group(2) is None and m.group(1) in env:
            return env[m.group(1)]
        return VAR_RE.sub(one, v)
    if isinstance(v, dict):
        return {subst(k, env): subst(x, env) for k, x in v.items()}
    if isinstance(v, list):
        return [subst(x, env) for x in v]
    return v


class Server:
    def __init__(self, label, url, token):
        u = urllib.parse.urlparse(url)
        self.label, self.url = label, url
        self.host, self.port = u.hostname, u.port or 80
        self.root = token

    def call(self, method, path, token, data, headers):
        h = {}
        if token is not None:
            h["X-Vault-Token"] = token
        h.update(headers or {})
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            payload = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            conn.close()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            return 0, {}, b"", {"<transport-error>": type(e).__name__ + ": " + str(e)}
        if not payload:
            body = None
        else:
            try:
                body = json.loads(payload)
            except ValueError:
                body = {"<non-json-body>": payload.decode("utf-8", "replace")[:300]}
        return status, hdrs, payload, body


class Side:
    """One server's state while a case runs: saved variables and the values to hide."""

    def __init__(self, server):
        self.server = server
        self.env = {}
        self.known = {}  # secret-ish value -> variable name (for markers and redaction)
        if server is not None and server.root:
            self.known[server.root] = "root"

    def run(self, step):
        tok = step.get("token", "root")
        if tok == "root":
            tok = self.server.root
        elif tok is not None:
            tok = subst(tok, self.env)
        path = subst(step["path"], self.env)
        headers = {k: str(v) for k, v in subst(step.get("headers", {}), self.env).items()}
        data = None
        if "raw_body" in step:
            data = subst(step["raw_body"], self.env).encode()
        elif "body" in step:
            data = json.dumps(subst(step["body"], self.env)).encode()
        status, hdrs, payload, body = self.server.call(step["method"], path, tok, data, headers)
        for var, p in step.get("save", {}).items():
            val = dotted(body, p)
            self.env[var] = val
            if isinstance(val, str) and len(val) >= 6:
                self.known[val] = var
        return status, hdrs, payload, body

    def redact(self, text):
        for val, var in sorted(self.known.items(), key=lambda kv: -len(kv[0])):
            if len(val) >= 8:
                text = text.replace(val, "<$%s>" % var)
        # Belt and braces: anything shaped like a Vault/OpenBao/Airlock token.
        return TOKEN_SHAPE.sub("<token-like>", text)


def observed(step, side, status, hdrs, payload, body):
    """The normalised, comparable view of one response."""
    n = Normaliser(side.known, step["path"])
    sel = step.get("select")
    b = dotted(body, sel) if sel else body
    b = n.value(b)
    for p, rx in step.get("match", {}).items():
        v = dotted(b, p)
        if isinstance(v, str) and re.search(rx, v):
            set_dotted(b, p, "<matches /%s/>" % rx)
    out = {"status": status,
           "headers": {h: hdrs[h] for h in COMPARED_HEADERS if h in hdrs},
           "body": b}
    if 300 <= status < 400:
        # Redirects: only where they point matters, not Go's little HTML body.
        out["headers"] = {"location": hdrs.get("location")}
        out["body"] = None
    if sel:
        out["select"] = sel
    if status == 204 or step["method"] == "HEAD":
        out["body_bytes"] = len(payload)
    return out


def header_problems(step, obs, label):
    """Absolute rules every compared response must follow (on both servers)."""
    p = []
    st, h = obs["status"], obs["headers"]
    if 300 <= st < 400 or st == 0:
        return p
    if h.get("cache-control") != "no-store":
        p.append(f"{label}: Cache-Control is {h.get('cache-control')!r}, want 'no-store'")
    if (h.get("content-type") or "").split(";")[0].strip() != "application/json":
        p.append(f"{label}: Content-Type is {h.get('content-type')!r}, want 'application/json'")
    if (st == 204 or step["method"] == "HEAD") and obs.get("body_bytes"):
        p.append(f"{label}: {st} {step['method']} response has a {obs['body_bytes']}-byte body, want empty")
    return p


def diff(a, b, la, lb):
    da = json.dumps(a, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    db = json.dumps(b, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    return "\n".join(difflib.unified_diff(da, db, la, lb, lineterm="", n=3))


def same(a, b):
    return tolerant_equal(a, b)


def deviation_ok(step, ob):
    """A documented, deliberate difference: B may answer the deviation's status with an
    {"errors": [...]} body instead of matching A."""
    dev = step.get("deviation")
    if not dev:
        return False
    body = ob["body"]
    return (ob["status"] == dev["status"] and isinstance(body, dict) and list(body) == ["errors"]
            and isinstance(body["errors"], list) and all(isinstance(e, str) for e in body["errors"]))


def step_label(case, i, step):
    return f'{case["name"]} #{i + 1} {step.get("name") or step["method"] + " " + step["path"][:60]}'


def validate(case, fname):
    errs = []
    for k in ("name", "steps"):
        if k not in case:
            errs.append(f"{fname}: missing {k!r}")
    for i, s in enumerate(case.get("steps", [])):
        extra = set(s) - STEP_KEYS
        if extra:
            errs.append(f"{fname} step {i + 1}: unknown keys {sorted(extra)}")
        if "method" not in s or "path" not in s:
            errs.append(f"{fname} step {i + 1}: needs method and path")
        if s.get("compare", True) not in (True, False):
            errs.append(f"{fname} step {i + 1}: compare must be true or false")
        if "body" in s and "raw_body" in s:
            errs.append(f"{fname} step {i + 1}: body and raw_body are exclusive")
    return errs


def run_case(case, a, b, snapshot, args):
    """Runs one case against A (live server or None) and B (live server or None).
    `snapshot` is the stored list of A observations when comparing B against snapshots.
    Returns (passed, failed, records) where records are A's observations for snapshots."""
    sa = Side(a) if a else None
    sb = Side(b) if b else None
    passed = failed = 0
    records = []
    snap_by_index = {r["index"]: r for r in (snapshot or [])}
    for i, step in enumerate(case["steps"]):
        label = step_label(case, i, step)
        res = {}
        try:
            for key, side in (("a", sa), ("b", sb)):
                if side:
                    res[key] = side.run(step)
        except KeyError as e:
            failed += 1
            print(f"FAIL {label}\n  {e.args[0]}")
            continue
        if step.get("compare", True) is False:
            continue
        oa = observed(step, sa, *res["a"]) if sa else None
        ob = observed(step, sb, *res["b"]) if sb else None
        if oa is not None and step.get("select") and oa["body"] is None and oa["status"] < 300:
            failed += 1
            print(f"FAIL {label}\n  select {step['select']!r} not found in A's response (case bug)")
            continue
        if oa is not None:
            records.append({"index": i, "name": step.get("name", ""), "method": step["method"],
                            "path": step["path"] if len(step["path"]) <= 200 else step["path"][:200] + "...",
                            **oa})
        if ob is None:  # only recording snapshots: still hold A to the absolute rules
            problems = header_problems(step, oa, "A")
            if problems:
                failed += 1
                print(f"FAIL {label}\n  " + "\n  ".join(problems))
            continue
        la, lb = "A " + a.url if a else "snapshot", "B " + b.url
        if oa is None:
            rec = snap_by_index.get(i)
            if rec is None:
                failed += 1
                print(f"FAIL {label}\n  no snapshot for this step (re-run with --update-snapshots)")
                continue
            oa = {k: rec[k] for k in ("status", "headers", "body", "select", "body_bytes") if k in rec}
        problems = []
        if sa:
            problems += header_problems(step, oa, "A")
        problems += header_problems(step, ob, "B")
        cmp_a = {k: v for k, v in oa.items()}
        cmp_b = {k: v for k, v in ob.items()}
        if not same(cmp_a, cmp_b):
            if deviation_ok(step, ob):
                print(f"note {label}: documented deviation, B answered {ob['status']} "
                      f"({step['deviation'].get('reason', '')})")
            else:
                text = diff(cmp_a, cmp_b, la, lb)
                if sa:
                    text = sa.redact(text)
                problems.append("response differs (- A, + B):\n" + sb.redact(text))
        if problems:
            failed += 1
            print(f"FAIL {label}\n  " + "\n  ".join("\n  ".join(p.splitlines()) for p in problems))
        else:
            passed += 1
            if args.verbose:
                print(f"ok   {label}")
    return passed, failed, records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", help="reference server URL (OpenBao)")
    ap.add_argument("--a-token", default="root")
    ap.add_argument("--b", help="server under test URL (Airlock)")
    ap.add_argument("--b-token", default="root")
    ap.add_argument("--cases", default=os.path.join(HERE, "cases"))
    ap.add_argument("--filter", default="", help="run only cases whose file name contains this")
    ap.add_argument("--snapshot-dir", default=None,
                    help="where snapshots live (default tests/compat/snapshots); with --a and "
                         "no --b this alone means --update-snapshots")
    ap.add_argument("--update-snapshots", action="store_true",
                    help="write A's normalised responses to --snapshot-dir")
    ap.add_argument("--b-snapshot", action="store_true",
                    help="compare B against --snapshot-dir instead of a live A")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    if args.snapshot_dir and args.a and not args.b and not args.b_snapshot:
        args.update_snapshots = True
    if args.snapshot_dir is None:
        args.snapshot_dir = os.path.join(HERE, "snapshots")
    if args.b_snapshot and (args.a or args.update_snapshots):
        ap.error("--b-snapshot compares B with stored snapshots: do not give --a/--update-snapshots")
    if args.b_snapshot and not args.b:
        ap.error("--b-snapshot needs --b")
    if not args.b_snapshot and not args.a:
        ap.error("--a is required (or use --b-snapshot)")
    if not args.b and not args.update_snapshots:
        ap.error("--b is required (only --update-snapshots may run A alone)")

    a = Server("A", args.a, args.a_token) if args.a else None
    b = Server("B", args.b, args.b_token) if args.b else None
    files = sorted(glob.glob(os.path.join(args.cases, "*.json")))
    files = [f for f in files if args.filter in os.path.basename(f)]
    if not files:
        print("compat: no case files found", file=sys.stderr)
        return 2
    cases = []
    errs = []
    for f in files:
        with open(f) as fh:
            case = json.load(fh)
        errs += validate(case, os.path.basename(f))
        cases.append((f, case))
    if errs:
        print("\n".join(errs), file=sys.stderr)
        return 2

    total_p = total_f = n_recorded = 0
    started = time.time()
    for f, case in cases:
        base = os.path.splitext(os.path.basename(f))[0]
        snap_path = os.path.join(args.snapshot_dir, base + ".json")
        snapshot = None
        if args.b_snapshot:
            if not os.path.exists(snap_path):
                print(f"FAIL {case['name']}: no snapshot {snap_path}")
                total_f += 1
                continue
            with open(snap_path) as fh:
                snapshot = json.load(fh)["steps"]
        p, fl, records = run_case(case, a, b, snapshot, args)
        n_recorded += len(records)
        total_p += p
        total_f += fl
        if args.update_snapshots:
            os.makedirs(args.snapshot_dir, exist_ok=True)
            with open(snap_path, "w") as fh:
                json.dump({"case": case["name"],
                           "reference": "normalised OpenBao responses; regenerate with run.py --update-snapshots",
                           "steps": records}, fh, indent=1, sort_keys=True, ensure_ascii=False)
                fh.write("\n")
    if args.verbose:
        print(f"({len(cases)} case files, {time.time() - started:.1f}s)")
    if args.update_snapshots:
        print(f"compat: {n_recorded} reference responses written to {args.snapshot_dir}")
    print(f"compat: {total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
