#!/usr/bin/env python3
"""Broker behaviour beyond the client matrix, run as the broker's child (stdlib only).

Checks: body injection with JSON escaping (and the echo scrubbed), a placeholder in the body
of a request to a binding without body injection is blocked, a compressed response to a
request carrying a credential is refused, and the SSRF guard refuses loopback, link-local,
metadata and private destinations (CONNECT and plain HTTP). One line per check, exit 1 on
any failure. Values are never printed.
"""
import base64
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

PROXY = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
fails = 0
passed = 0


def check(name, ok, detail=""):
    global fails, passed
    if ok:
        passed += 1
        print(f"ok {name}")
    else:
        fails += 1
        print(f"FAIL {name}: {detail}")


def call(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def connect_status(target):
    s = socket.create_connection((PROXY.hostname, PROXY.port), timeout=10)
    auth = base64.b64encode(f"{PROXY.username}:{urllib.parse.unquote(PROXY.password)}".encode()).decode()
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
    line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    s.close()
    return int(line.split()[1])


tok = os.environ["BODY_TOKEN"]
st, body = call("https://body.test/v1/echo", json.dumps({"token": tok}).encode(),
                {"content-type": "application/json"})
b = json.loads(body or b"{}")
check("body injection (JSON-escaped credential)", st == 200 and b.get("auth_ok") is True, f"status {st}")
check("body echo scrubbed back to the placeholder", (b.get("body") or {}).get("token") == tok, "echo differs")

ph = os.environ["OPENAI_API_KEY"]
st, body = call("https://api.openai.com/v1/echo", json.dumps({"k": ph}).encode(),
                {"content-type": "application/json", "Authorization": "Bearer " + ph})
check("placeholder in a body the binding does not inject is blocked", st == 403 and b"blocked" in body, f"status {st}")

st, body = call("https://api.openai.com/v1/gzip", headers={"Authorization": "Bearer " + ph})
check("compressed response to a credentialed request is refused", st == 403 and b"compressed" in body, f"status {st}")

for target in ["127.0.0.1:1", "169.254.169.254:80", "[::1]:22", "localhost:8200", "10.1.2.3:443", "[fd00:ec2::254]:80"]:
    st = connect_status(target)
    check(f"SSRF guard refuses CONNECT {target}", st == 403, f"got {st}")

def plain_status(url):
    s = socket.create_connection((PROXY.hostname, PROXY.port), timeout=10)
    auth = base64.b64encode(f"{PROXY.username}:{urllib.parse.unquote(PROXY.password)}".encode()).decode()
    host = urllib.parse.urlsplit(url).netloc
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n".encode())
    line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    s.close()
    return int(line.split()[1])


for url in ["http://127.0.0.1:1/", "http://169.254.169.254/latest/meta-data/"]:
    st = plain_status(url)
    check(f"SSRF guard refuses plain HTTP to {url}", st == 403, f"status {st}")

print(f"broker-misc: {passed} passed, {fails} failed")
sys.exit(1 if fails else 0)
