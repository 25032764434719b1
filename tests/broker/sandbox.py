#!/usr/bin/env python3
"""Run as the child of `airlock broker run --sandbox`: everything that ignores the proxy
fails closed, everything that honours it works, and the hidden token file cannot be read.

Environment: OPENAI_API_KEY (placeholder), the proxy and CA variables, UPSTREAM_PORT (the
stand-in upstream's port on the host's loopback), TOKEN_FILE, HIDDEN_DIR. Prints `ok NAME` /
`FAIL NAME: reason`; exit 1 on any failure. Never prints a placeholder or credential.
"""
import os
import socket
import subprocess
import sys

import requests

T = 10
OA = os.environ["OPENAI_API_KEY"]
UP = int(os.environ["UPSTREAM_PORT"])
failed = 0


def check(name, fn):
    global failed
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - a check's failure, reported by name
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)


def must_fail(fn, what):
    try:
        fn()
    except OSError as e:
        return e
    raise AssertionError(f"{what} succeeded inside the sandbox")


def raw_tcp_upstream():
    # The upstream listens on the host's 127.0.0.1:UP; the sandbox's loopback is its own.
    must_fail(lambda: socket.create_connection(("127.0.0.1", UP), timeout=T), "raw TCP to the upstream")


def raw_tcp_outside():
    e = must_fail(lambda: socket.create_connection(("192.0.2.1", 443), timeout=T), "raw TCP out")
    assert "unreachable" in str(e).lower(), e


def raw_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    must_fail(lambda: s.sendto(b"\0" * 12, ("192.0.2.1", 53)), "UDP out")


def dns():
    for name in ("example.com", "api.openai.com"):
        try:
            socket.getaddrinfo(name, 443)
        except socket.gaierror:
            continue
        raise AssertionError(f"{name} resolved inside the sandbox")


def curl_noproxy():
    for extra in ([], ["--resolve", f"api.openai.com:443:127.0.0.1"]):
        r = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "--max-time", str(T), *extra,
             "-H", f"Authorization: Bearer {OA}", "https://api.openai.com/v1/models"],
            capture_output=True, text=True, timeout=T + 5)
        assert r.returncode != 0, "curl --noproxy '*' reached the API"


def through_proxy():
    r = requests.get("https://api.openai.com/v1/echo", headers={"Authorization": f"Bearer {OA}"}, timeout=T)
    assert r.status_code == 200, r.status_code
    assert r.json()["auth_ok"] is True, "the upstream did not get the real key"


def curl_through_proxy():
    r = subprocess.run(
        ["curl", "-sS", "--max-time", str(T), "-o", "/dev/null", "-w", "%{http_code}",
         "-H", f"Authorization: Bearer {OA}", "https://api.openai.com/v1/models"],
        capture_output=True, text=True, timeout=T + 5)
    assert r.stdout.strip() == "200", (r.returncode, r.stdout.strip())


def token_hidden():
    path = os.environ["TOKEN_FILE"]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except PermissionError:
        data = b""
    assert data == b"", "the token file is readable"
    r = subprocess.run(["umount", path], capture_output=True, timeout=T)
    assert r.returncode != 0, "umount of the hidden token file succeeded"


def token_still_hidden():
    path = os.environ["TOKEN_FILE"]
    try:
        data = open(path, "rb").read()
    except PermissionError:
        data = b""
    assert data == b"", "the token file is readable after umount"


def dir_hidden():
    must_fail(lambda: os.listdir(os.environ["HIDDEN_DIR"]), "listing the hidden directory")


def no_capabilities():
    with open("/proc/self/status") as f:
        caps = {l.split(":")[0]: l.split(":")[1].strip() for l in f if l.startswith("Cap")}
    assert int(caps["CapEff"], 16) == 0 and int(caps["CapPrm"], 16) == 0, caps
    assert os.getuid() != 0


for name, fn in [
    ("raw-tcp-upstream", raw_tcp_upstream),
    ("raw-tcp-outside", raw_tcp_outside),
    ("raw-udp", raw_udp),
    ("dns", dns),
    ("curl-noproxy", curl_noproxy),
    ("requests-through-proxy", through_proxy),
    ("curl-through-proxy", curl_through_proxy),
    ("no-capabilities", no_capabilities),
    ("token-hidden", token_hidden),
    ("token-still-hidden", token_still_hidden),
    ("dir-hidden", dir_hidden),
]:
    check(name, fn)
print(f"sandbox: {failed} failed")
sys.exit(1 if failed else 0)
