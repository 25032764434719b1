#!/usr/bin/env python3
"""Fail closed, and audit off the data path, run as the broker's child (stdlib only).

The test freezes the Airlock server (SIGSTOP) between steps, coordinated through files in
$SYNC_DIR:
1. a request succeeds; write `ready`, wait for `stopped`;
2. with Airlock frozen, a request still succeeds at once (the credential is cached and the
   audit events queue instead of blocking the request);
3. after the cache's max age, a request gets 503 (fail closed, no stale credential);
4. write `checked`, wait for `resumed`; requests succeed again once Airlock is back.
"""
import os
import sys
import time
import urllib.error
import urllib.request

D = os.environ["SYNC_DIR"]
PH = os.environ["OPENAI_API_KEY"]
fails = 0


def call():
    req = urllib.request.Request("https://api.openai.com/v1/models", headers={"Authorization": "Bearer " + PH})
    t = time.time()
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, time.time() - t
    except urllib.error.HTTPError as e:
        return e.code, time.time() - t


def wait_for(name, limit=30):
    end = time.time() + limit
    while not os.path.exists(os.path.join(D, name)):
        if time.time() > end:
            print(f"FAIL timed out waiting for {name}")
            sys.exit(1)
        time.sleep(0.05)


def check(name, ok, detail):
    global fails
    print(("ok " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    fails += 0 if ok else 1


st, _ = call()
check("request before the freeze", st == 200, st)
open(os.path.join(D, "ready"), "w").close()
wait_for("stopped")
st, dt = call()
check("request while Airlock is frozen uses the cache, without waiting on audit", st == 200 and dt < 1.0, f"{st} in {dt:.2f}s")
time.sleep(3.0)
st, _ = call()
check("after the max age the broker fails closed (503)", st == 503, st)
open(os.path.join(D, "checked"), "w").close()
wait_for("resumed")
end = time.time() + 15
while time.time() < end:
    st, _ = call()
    if st == 200:
        break
    time.sleep(0.2)
check("requests succeed again once Airlock is back", st == 200, st)
sys.exit(1 if fails else 0)
