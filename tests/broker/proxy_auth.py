#!/usr/bin/env python3
"""The broker's proxy port is useless without the agent's proxy credential (stdlib only).

Run as the broker's child. Sends CONNECT to the proxy with no credential, a wrong one, and
another agent's name with this agent's credential; each must get 407. Then the real one must
get 200. Exit 0 only if all hold.
"""
import base64
import os
import socket
import sys
import urllib.parse

u = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
fails = 0


def connect(auth):
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    hdr = f"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n"
    if auth is not None:
        hdr += "Proxy-Authorization: Basic " + base64.b64encode(auth.encode()).decode() + "\r\n"
    s.sendall((hdr + "\r\n").encode())
    line = s.recv(4096).split(b"\r\n", 1)[0].decode()
    s.close()
    return int(line.split()[1])


cases = [
    ("no credential", None, 407),
    ("wrong credential", f"{u.username}:123.deadbeef", 407),
    ("other agent", f"someone-else:{urllib.parse.unquote(u.password)}", 407),
    ("right credential", f"{u.username}:{urllib.parse.unquote(u.password)}", 200),
]
for name, auth, want in cases:
    got = connect(auth)
    if got == want:
        print(f"ok {name}")
    else:
        fails += 1
        print(f"FAIL {name}: got {got}, want {want}")
sys.exit(1 if fails else 0)
