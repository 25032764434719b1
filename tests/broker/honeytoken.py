#!/usr/bin/env python3
"""Run as the child of `airlock broker run` with honeytokens in its environment: every use of
a decoy through the broker is blocked (403, `honeytoken`), while the real placeholder works.

Environment: OPENAI_API_KEY (placeholder), OPENAI_API_KEY_BACKUP (a profile decoy),
AIRLOCK_BACKUP_TOKEN (a decoy registered in Airlock). Prints `ok NAME` / `FAIL NAME: reason`.
"""
import os
import sys

import requests

T = 10
PH = os.environ["OPENAI_API_KEY"]
DECOY = os.environ["OPENAI_API_KEY_BACKUP"]
STORED = os.environ["AIRLOCK_BACKUP_TOKEN"]
URL = "https://api.openai.com/v1/echo"
failed = 0


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)


def hit(r):
    assert r.status_code == 403 and "honeytoken" in r.text, (r.status_code, r.text[:120])


check("real-placeholder-works", lambda: requests.get(URL, headers={"Authorization": f"Bearer {PH}"}, timeout=T).raise_for_status())
check("decoy-in-header", lambda: hit(requests.get(URL, headers={"Authorization": f"Bearer {DECOY}"}, timeout=T)))
check("decoy-in-query", lambda: hit(requests.get(URL, params={"key": DECOY}, timeout=T)))
check("decoy-in-body", lambda: hit(requests.post(URL, json={"k": DECOY}, timeout=T)))
check("stored-decoy-in-header", lambda: hit(requests.get(URL, headers={"X-Api-Key": STORED}, timeout=T)))
check("decoy-over-plain-http", lambda: hit(requests.get("http://tunnel.test/x", headers={"X-Key": DECOY}, timeout=T)))
print(f"honeytoken: {failed} failed")
sys.exit(1 if failed else 0)
