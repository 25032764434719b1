#!/usr/bin/env python3
"""Two agents on one `airlock broker serve`, each with its own bindings (uses `requests`).

    python3 two_agents.py VOICE_ENV.json CODER_ENV.json

Each file is the output of `airlock broker env --agent NAME --format json --ca-file …`.
voice is bound to OpenAI only, coder to Anthropic only. Each agent's own placeholder works
through its own credential; the other agent's placeholder is blocked (403). Exit 0 only if all
checks pass. Values are never printed.
"""
import json
import sys

import requests

voice = json.load(open(sys.argv[1]))
coder = json.load(open(sys.argv[2]))
fails = 0


def call(env, url, headers):
    r = requests.get(url, headers=headers, timeout=15,
                     proxies={"https": env["HTTPS_PROXY"], "http": env["HTTP_PROXY"]},
                     verify=env["SSL_CERT_FILE"])
    try:
        body = r.json()
    except ValueError:
        body = {}
    return r.status_code, body


def check(name, ok, detail=""):
    global fails
    if ok:
        print(f"ok {name}")
    else:
        fails += 1
        print(f"FAIL {name}: {detail}")


s, b = call(voice, "https://api.openai.com/v1/echo", {"Authorization": "Bearer " + voice["OPENAI_API_KEY"]})
check("voice uses its OpenAI binding", s == 200 and b.get("auth_ok") is True, f"status {s}")
check("voice has no Anthropic placeholder", "ANTHROPIC_API_KEY" not in voice)
s, b = call(voice, "https://api.anthropic.com/v1/echo", {"x-api-key": coder["ANTHROPIC_API_KEY"]})
check("voice cannot spend coder's Anthropic key", s == 403 and b.get("blocked") is True, f"status {s}")
s, b = call(coder, "https://api.anthropic.com/v1/echo", {"x-api-key": coder["ANTHROPIC_API_KEY"]})
check("coder uses its Anthropic binding", s == 200 and b.get("auth_ok") is True, f"status {s}")
s, b = call(coder, "https://api.openai.com/v1/echo", {"Authorization": "Bearer " + voice["OPENAI_API_KEY"]})
check("coder cannot spend voice's OpenAI key", s == 403 and b.get("blocked") is True, f"status {s}")
# A credential is bound to its agent: coder's credential under voice's name is refused.
cred = coder["HTTPS_PROXY"].split("@")[0].split(":")[-1]
host = coder["HTTPS_PROXY"].split("@")[1]
mixed = dict(voice, HTTPS_PROXY=f"http://voice:{cred}@{host}", HTTP_PROXY=f"http://voice:{cred}@{host}")
try:
    s, b = call(mixed, "https://api.openai.com/v1/echo", {"Authorization": "Bearer " + voice["OPENAI_API_KEY"]})
    check("a credential works only for its own agent", False, f"status {s}")
except requests.exceptions.ProxyError as e:
    check("a credential works only for its own agent", "407" in str(e), "not a 407")
print(f"two-agents: {4 + 2 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
