#!/usr/bin/env python3
"""Run as the child of `airlock broker run --agent tokens`, whose agent allows 5 requests a
minute and whose binding allows 30 LLM tokens a day: two streamed chats (15 tokens each, read
from the stream's `usage`) spend the binding's budget, so the next request with its credential
gets 429; a burst of requests without it runs into the agent's per-minute limit. Every 429
carries Retry-After. Prints `ok NAME` / `FAIL NAME: reason`.
"""
import json
import os
import sys
import time

import requests

T = 15
PH = os.environ["OPENAI_API_KEY"]
URL = "https://api.openai.com/v1"
AUTH = {"Authorization": f"Bearer {PH}"}
failed = 0


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)


def limited(r, which):
    assert r.status_code == 429, r.status_code
    assert which in r.json()["error"], r.text[:200]
    ra = int(r.headers["Retry-After"])
    assert 1 <= ra <= 86400, ra
    return ra


def stream():
    body = {"model": "gpt-test", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}]}
    with requests.post(f"{URL}/chat/completions", json=body, headers=AUTH, stream=True, timeout=T) as r:
        assert r.status_code == 200, r.status_code
        text = b"".join(r.iter_content(None))
    assert b'"usage"' in text and b"[DONE]" in text


def tokens_spent():
    # Stay clear of a minute boundary, so the per-minute window holds the whole test.
    while time.time() % 60 > 40:
        time.sleep(1)
    stream()
    stream()
    time.sleep(0.3)  # the second stream's usage is charged when its body ends
    limited(requests.get(f"{URL}/models", headers=AUTH, timeout=T), "tokens_per_day")


def requests_per_minute():
    codes = []
    for _ in range(6):
        r = requests.get(f"{URL}/models", timeout=T)  # no credential: only the agent's budget
        codes.append(r.status_code)
        if r.status_code == 429:
            ra = limited(r, "requests_per_minute")
            assert ra <= 60, ra
            break
    # Forwarded (the stand-in answers 401 without a key) until the limit, then 429.
    assert 429 in codes and codes[0] != 429, codes


check("tokens-per-day", tokens_spent)
check("requests-per-minute", requests_per_minute)
print(f"budget: {failed} failed")
sys.exit(1 if failed else 0)
