#!/usr/bin/env python3
"""Rotation without restart, run as the broker's child (stdlib only).

1. A request to api.openai.com/v1/models must succeed with the current key.
2. Writes $ROTATE_DIR/ready and waits (≤ 20 s) for $ROTATE_DIR/rotated, which the test creates
   after rotating the key in Airlock and telling the upstream to accept only the new one.
3. Requests again until one succeeds (≤ 15 s): the broker refreshed its cache and injects the
   new key while this process keeps running with the same placeholder.
Prints `rotation: ok after N.NN s` or `rotation: FAIL ...`; exit 0 only on success.
"""
import os
import sys
import time
import urllib.request

URL = "https://api.openai.com/v1/models"
D = os.environ["ROTATE_DIR"]
PH = os.environ["OPENAI_API_KEY"]


def call():
    req = urllib.request.Request(URL, headers={"Authorization": "Bearer " + PH})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


first = call()
if first != 200:
    print(f"rotation: FAIL first request got {first}")
    sys.exit(1)
open(os.path.join(D, "ready"), "w").close()
deadline = time.time() + 20
while not os.path.exists(os.path.join(D, "rotated")):
    if time.time() > deadline:
        print("rotation: FAIL the test never rotated")
        sys.exit(1)
    time.sleep(0.05)
t0 = time.time()
saw_401 = False
while time.time() - t0 < 15:
    s = call()
    if s == 200:
        print(f"rotation: ok after {time.time() - t0:.2f} s (saw a 401 first: {saw_401})")
        sys.exit(0)
    saw_401 = saw_401 or s == 401
    time.sleep(0.1)
print("rotation: FAIL the new key was never used")
sys.exit(1)
