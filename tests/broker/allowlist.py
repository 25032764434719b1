#!/usr/bin/env python3
"""Egress `allowlist`: bound hosts and listed hosts are reachable, every other host is refused
with 403 at CONNECT time. Run as the broker's child with `--egress allowlist` (stdlib only)."""
import base64
import os
import socket
import sys
import urllib.parse

P = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
AUTH = base64.b64encode(f"{P.username}:{urllib.parse.unquote(P.password)}".encode()).decode()
fails = 0
for target, want in [("api.openai.com:443", 200), ("tunnel.test:443", 403), ("example.org:443", 403)]:
    s = socket.create_connection((P.hostname, P.port), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {AUTH}\r\n\r\n".encode())
    got = int(s.recv(4096).split(b"\r\n", 1)[0].split()[1])
    s.close()
    ok = got == want
    fails += 0 if ok else 1
    print(("ok" if ok else "FAIL") + f" CONNECT {target} -> {got} (want {want})")
sys.exit(1 if fails else 0)
