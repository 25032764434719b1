#!/usr/bin/env python3
"""Approvals through the broker.

  approvals.py              as the child of `airlock broker run` (binding with approval,
                            timeout 4 s), while the test decides: the first request is
                            approved, the second (same path, another body) denied, the third
                            left to time out, and a replay of the first waits again (an
                            approval lets one request through) and times out.
  approvals.py once ENV N   one POST /v1/echo with body {"n": N} through a `broker serve`
                            whose environment (`broker env --format json`) is in ENV; prints
                            the status (or `error`).
Prints `ok NAME` / `FAIL NAME: reason`.
"""
import json
import os
import sys

import requests

T = 30
URL = "https://api.openai.com/v1/echo"

if len(sys.argv) > 3 and sys.argv[1] == "once":
    env = json.load(open(sys.argv[2]))
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"https": env["HTTPS_PROXY"]}
    s.verify = env["SSL_CERT_FILE"]
    try:
        r = s.post(URL, json={"n": int(sys.argv[3])}, timeout=T,
                   headers={"Authorization": "Bearer " + env["OPENAI_API_KEY"]})
        print(r.status_code, flush=True)
    except requests.RequestException:
        print("error", flush=True)
    sys.exit(0)

PH = os.environ["OPENAI_API_KEY"]
failed = 0


def post(n):
    return requests.post(URL, json={"n": n}, headers={"Authorization": f"Bearer {PH}"}, timeout=T)


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)


def approved():
    r = post(1)
    assert r.status_code == 200 and r.json()["auth_ok"] is True, r.status_code


def denied():
    r = post(2)
    assert r.status_code == 403 and "denied" in r.text and "not this one" in r.text, (r.status_code, r.text[:200])


def timed_out():
    r = post(3)
    assert r.status_code == 403 and "timed out" in r.text, (r.status_code, r.text[:200])


def replay():
    r = post(1)
    assert r.status_code == 403 and "timed out" in r.text, (r.status_code, r.text[:200])


for name, fn in [("approved", approved), ("other-body-denied", denied), ("timeout", timed_out),
                 ("replay-needs-a-new-approval", replay)]:
    check(name, fn)
print(f"approvals: {failed} failed")
sys.exit(1 if failed else 0)
