#!/usr/bin/env python3
"""Real clients through the credential broker, run as `airlock broker run`'s child.

Clients: curl (HTTP/1.1 and --http2), requests, httpx (HTTP/2), the official openai SDK
(models, chat, streaming chat over SSE), Node (via client.mjs), and a raw WebSocket client.
Exfiltration attempts must be blocked with 403 and a JSON body. The upstream is the e2e
test's stand-in (see README.md): it knows the real keys, says `auth_ok` when a request carried
the right one, and echoes requests back, so a missing scrub would show the key here.

Environment: OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY (placeholders), the proxy and
CA variables set by the broker, BROKER_TEST_MODE (tunnel|inspect), optional
BROKER_TEST_CHECKS (comma-separated name prefixes). Prints `ok NAME` / `FAIL NAME: reason`,
then `broker-clients: N passed, N failed`; exit 1 on any failure. Never prints a placeholder,
key or proxy credential in full (at most the first 12 characters).
"""
import base64
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
MODE = os.environ.get("BROKER_TEST_MODE", "tunnel")
ONLY = [c.strip() for c in os.environ.get("BROKER_TEST_CHECKS", "").split(",") if c.strip()]
OA = os.environ.get("OPENAI_API_KEY", "")
AN = os.environ.get("ANTHROPIC_API_KEY", "")
GE = os.environ.get("GEMINI_API_KEY", "")
BUNDLE = os.environ.get("SSL_CERT_FILE", "")
PROXY = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy", "")
T = 15  # every network operation's timeout, seconds
PH_RE = re.compile(r"^airlock-ph-[A-Za-z0-9][A-Za-z0-9_.-]*-[A-Za-z0-9]{24}$")
BROKER_CA_CN = "Airlock broker"
UPSTREAM_CA_CN = "airlock-test-upstream"
results = {"pass": 0, "fail": 0}

# Third-party clients are imported lazily so a missing one fails its checks, not the script.
try:
    import requests
except ImportError as e:  # pragma: no cover
    requests = None
    REQUESTS_ERR = str(e)


# ---------------------------------------------------------------------------- output

_SECRETS = [v for v in (OA, AN, GE) if v]
try:
    _pu = urllib.parse.urlsplit(PROXY)
    if _pu.password:
        _SECRETS += [_pu.password, urllib.parse.unquote(_pu.password)]
except ValueError:
    pass
_PH_ANY = re.compile(r"airlock-ph-[A-Za-z0-9_-]+")


def short(v):
    return (v[:12] + "…") if isinstance(v, str) and len(v) > 12 else v


def redact(text):
    """Cut every placeholder / proxy credential to its first 12 characters."""
    text = str(text)
    for s in sorted(set(_SECRETS), key=len, reverse=True):
        if len(s) >= 6:
            text = text.replace(s, short(s))
    return _PH_ANY.sub(lambda m: short(m.group(0)), text)


def out(line):
    print(redact(line), flush=True)


def check(name):
    def deco(fn):
        if ONLY and not any(name.startswith(o) for o in ONLY):
            return fn
        t0 = time.monotonic()
        try:
            fn()
            results["pass"] += 1
            out(f"ok {name} ({time.monotonic() - t0:.2f}s)")
        except AssertionError as e:
            results["fail"] += 1
            out(f"FAIL {name}: {e}")
        except Exception as e:  # noqa: BLE001 - report and go on
            results["fail"] += 1
            cause = e.__cause__ or e.__context__
            why = f" (caused by {type(cause).__name__}: {str(cause)[:200]})" if cause else ""
            out(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}{why}")
            for ln in traceback.format_exc(limit=3).rstrip().splitlines()[-8:]:
                out(f"   {ln}")
        return fn
    return deco


def need_requests():
    assert requests is not None, f"python package requests missing: {REQUESTS_ERR}"


# ---------------------------------------------------------------------------- helpers

def as_json(body):
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return None


def describe(status, body):
    """A safe summary of a response (never the body itself: it may hold an echoed key)."""
    j = as_json(body)
    if isinstance(j, dict):
        if "auth_ok" in j:
            return f"status {status}, reached the upstream (auth_ok={j.get('auth_ok')})"
        if "error" in j:
            return f"status {status}, error {str(j['error'])[:120]!r}"
        return f"status {status}, JSON keys {sorted(j)[:8]}"
    return f"status {status}, non-JSON body of {len(body or '')} chars"


def blocked(status, body):
    """A broker block: 403 with a JSON object holding "error" and naming the broker."""
    j = as_json(body)
    if status != 403 or not isinstance(j, dict) or "error" not in j:
        return False
    text = json.dumps(j).lower()
    return "blocked" in text or "airlock" in text


def expect_blocked(what, status, body):
    assert blocked(status, body), f"{what}: not blocked ({describe(status, body)})"


def echo_json(what, status, body):
    j = as_json(body)
    assert status == 200 and isinstance(j, dict) and "auth_ok" in j, \
        f"{what}: expected the upstream echo, got {describe(status, body)}"
    return j


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", str(T), "-w", "\n%{http_code}", *args],
                       capture_output=True, text=True, timeout=T + 5)
    assert p.returncode == 0, f"curl exit {p.returncode}: {p.stderr.strip()[:200]}"
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def req(method, url, **kw):
    need_requests()
    kw.setdefault("timeout", T)
    r = requests.request(method, url, **kw)
    return r


class Raw:
    """A socket through the proxy: CONNECT with Basic proxy auth, then (optionally) TLS."""

    def __init__(self, host, port=443):
        assert PROXY, "HTTPS_PROXY is not set"
        u = urllib.parse.urlsplit(PROXY)
        self.host, self.port = host, port
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=T)
        self.buf = b""
        hdrs = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if u.username is not None:
            cred = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
            hdrs += f"Proxy-Authorization: Basic {base64.b64encode(cred.encode()).decode()}\r\n"
        self.sock.sendall((hdrs + "\r\n").encode())
        self.status, self.headers = self.read_head()
        self.body = ""
        if self.status != 200:
            self.body = self.read_body().decode("utf-8", "replace")

    def recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("connection closed")
        return d

    def read_until(self, sep):
        while sep not in self.buf:
            self.buf += self.recv()
        head, _, self.buf = self.buf.partition(sep)
        return head

    def read_exact(self, n):
        while len(self.buf) < n:
            self.buf += self.recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[1].isdigit(), f"bad status line {lines[0][:80]!r}"
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(parts[1]), headers

    def read_body(self):
        n = self.headers.get("content-length")
        try:
            if n is not None:
                return self.read_exact(int(n))
            while True:  # until close (or timeout)
                self.buf += self.recv()
        except (ConnectionError, socket.timeout, OSError):
            pass
        data, self.buf = self.buf, b""
        return data

    def tls(self, alpn=("http/1.1",)):
        assert self.status == 200, f"CONNECT {self.host}:{self.port}: {describe(self.status, self.body)}"
        assert not self.buf, "proxy sent bytes after the CONNECT response"
        ctx = ssl.create_default_context(cafile=BUNDLE or None)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)
        return self

    def issuer_cn(self):
        issuer = dict(x[0] for x in self.sock.getpeercert()["issuer"])
        return issuer.get("commonName", "")

    def http1(self, method, path, headers=()):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "Connection: close", *headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status, self.headers = self.read_head()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                body += self.read_exact(size)
                self.read_until(b"\r\n")
                if size == 0:
                    break
        else:
            body = self.read_body()
        return self.status, body.decode("utf-8", "replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------- checks

out(f"broker-clients mode={MODE}" + (f" checks={','.join(ONLY)}" if ONLY else ""))


@check("env")
def _():
    for k, v in (("OPENAI_API_KEY", OA), ("ANTHROPIC_API_KEY", AN), ("GEMINI_API_KEY", GE)):
        assert v, f"{k} is not set"
        assert PH_RE.match(v), f"{k} is not a well-formed placeholder ({short(v)})"
    assert len({OA, AN, GE}) == 3, "two bindings share a placeholder"
    for k in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        v = os.environ.get(k, "")
        assert v, f"{k} is not set"
        u = urllib.parse.urlsplit(v)
        assert u.scheme == "http" and u.hostname == "127.0.0.1" and u.port, f"{k} is not http://…@127.0.0.1:PORT"
        assert u.username and u.password, f"{k} carries no proxy credentials"
    for k in ("NO_PROXY", "no_proxy"):
        v = os.environ.get(k, "")
        assert {"localhost", "127.0.0.1"} <= set(x.strip() for x in v.split(",")), f"{k}={v!r}"
    assert os.environ.get("NODE_USE_ENV_PROXY") == "1", "NODE_USE_ENV_PROXY is not 1"
    assert BUNDLE and os.path.isfile(BUNDLE), "SSL_CERT_FILE does not name an existing file"
    for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
              "AWS_CA_BUNDLE", "DENO_CERT"):
        assert os.environ.get(k) == BUNDLE, f"{k} is not the broker bundle"
    with open(BUNDLE, encoding="utf-8", errors="replace") as f:
        n = f.read().count("BEGIN CERTIFICATE")
    assert n > 10, f"bundle has {n} certificates: the system roots are missing"
    ctx = ssl.create_default_context(cafile=BUNDLE)  # raises if the bundle does not parse
    cns = [dict(x[0] for x in c.get("subject", ())).get("commonName", "") for c in ctx.get_ca_certs()]
    assert any(BROKER_CA_CN in cn for cn in cns), f"no '{BROKER_CA_CN}' CA in the bundle"
    assert MODE in ("tunnel", "inspect"), f"BROKER_TEST_MODE={MODE!r}"
    for k in ("AIRLOCK_TOKEN", "VAULT_TOKEN"):
        assert k not in os.environ, f"{k} leaked into the child"


@check("curl")
def _():
    auth = f"Authorization: Bearer {OA}"
    code, body = curl("--http1.1", "https://api.openai.com/v1/echo", "-H", auth)
    j = echo_json("http/1.1", code, body)
    assert j["auth_ok"] is True, "http/1.1: auth_ok false: the key was not injected"
    assert j["headers"].get("authorization") == f"Bearer {OA}", "http/1.1: echoed key not scrubbed back to the placeholder"
    code, body = curl("--http2", "https://api.openai.com/v1/echo", "-H", auth)
    j = echo_json("h2", code, body)
    assert j["auth_ok"] is True, "h2: auth_ok false"
    assert j["headers"].get("authorization") == f"Bearer {OA}", "h2: echoed key not scrubbed"
    assert j["http_version"] == "HTTP/2.0", f"h2: upstream saw {j['http_version']} for an HTTP/2 client"


@check("requests")
def _():
    r = req("GET", "https://api.openai.com/v1/echo", headers={"Authorization": f"Bearer {OA}"})
    j = echo_json("openai", r.status_code, r.text)
    assert j["auth_ok"] is True, "openai: auth_ok false"
    assert j["headers"].get("authorization") == f"Bearer {OA}", "openai: echo not scrubbed"
    # A small scrubbed response keeps a Content-Length, recomputed for the scrubbed body.
    assert r.headers.get("content-length") == str(len(r.content)), \
        f"openai: Content-Length {r.headers.get('content-length')!r} for a {len(r.content)}-byte scrubbed body"

    r = req("POST", "https://api.anthropic.com/v1/echo", headers={"x-api-key": AN}, json={"x": 1})
    j = echo_json("anthropic", r.status_code, r.text)
    assert j["auth_ok"] is True, "anthropic: auth_ok false"
    assert j["headers"].get("anthropic-version") == "2023-06-01", "anthropic: anthropic-version not added"
    assert j["headers"].get("x-api-key") == AN, "anthropic: echo not scrubbed"
    assert json.loads(j["body"]) == {"x": 1}, "anthropic: request body changed"

    r = req("GET", "https://generativelanguage.googleapis.com/v1/echo", params={"key": GE, "q": "x"})
    j = echo_json("gemini", r.status_code, r.text)
    assert j["auth_ok"] is True, "gemini: auth_ok false"
    q = urllib.parse.parse_qs(j["query"])
    assert q.get("key") == [GE], "gemini: echoed query holds something other than the placeholder"
    assert q.get("q") == ["x"], "gemini: other query parameters changed"


@check("no-placeholder")
def _():
    r = req("GET", "https://api.openai.com/v1/echo")
    j = echo_json("openai", r.status_code, r.text)
    assert j["auth_ok"] is False, "a credential was added without a placeholder"
    assert "authorization" not in j["headers"], "an Authorization header appeared"


@check("httpx-h2")
def _():
    import httpx

    with httpx.Client(http2=True, timeout=T) as c:
        r = c.get("https://api.openai.com/v1/echo", headers={"Authorization": f"Bearer {OA}"})
    assert r.http_version == "HTTP/2", f"client spoke {r.http_version} to the broker"
    j = echo_json("httpx", r.status_code, r.text)
    assert j["auth_ok"] is True, "auth_ok false"
    assert j["http_version"] == "HTTP/2.0", f"upstream saw {j['http_version']}"
    assert j["headers"].get("authorization") == f"Bearer {OA}", "echo not scrubbed"


@check("openai-sdk")
def _():
    import openai

    client = openai.OpenAI(base_url="https://api.openai.com/v1", timeout=T, max_retries=0)
    models = client.models.list()
    assert [m.id for m in models.data] == ["gpt-test"], "models.list"
    msgs = [{"role": "user", "content": "hi"}]
    c = client.chat.completions.create(model="gpt-test", messages=msgs)
    assert c.choices[0].message.content == "hello from upstream", "chat completion content"
    t0 = time.monotonic()
    times, text = [], ""
    stream = client.chat.completions.create(model="gpt-test", messages=msgs, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.monotonic() - t0)
            text += chunk.choices[0].delta.content
    assert len(times) == 5 and text == "abcde", f"stream: {len(times)} content chunks, text {text!r}"
    assert times[0] < 0.5, f"first chunk after {times[0]:.3f}s (> 0.5s)"
    assert times[-1] - times[0] >= 0.6, \
        f"chunks arrived together ({times[-1] - times[0]:.3f}s apart): the stream was buffered"
    out(f"   first SSE chunk after {times[0] * 1000:.1f} ms, last after {times[-1] * 1000:.0f} ms")


@check("upload")
def _():
    h = hashlib.sha256()
    size = 20 << 20

    def gen():
        block = os.urandom(1 << 20)
        for i in range(size >> 20):
            b = bytes([i]) + block[1:]
            h.update(b)
            yield b

    r = req("POST", "https://api.openai.com/v1/upload", data=gen(), headers={"Authorization": f"Bearer {OA}"})
    j = as_json(r.text)
    assert r.status_code == 200 and isinstance(j, dict) and "bytes" in j, describe(r.status_code, r.text)
    assert j["bytes"] == size, f"upstream got {j['bytes']} bytes of {size}"
    assert j["sha256"] == h.hexdigest(), "upload corrupted (sha256 differs)"


@check("leak")
def _():
    r = req("GET", "https://api.openai.com/v1/leak", headers={"Authorization": f"Bearer {OA}"})
    j = as_json(r.text)
    assert r.status_code == 200 and isinstance(j, dict), describe(r.status_code, r.text)
    assert j.get("echo") == OA, "echoed key in the body was not replaced by the placeholder"
    assert r.headers.get("x-leak") == OA, "echoed key in the x-leak header was not replaced"
    # A streamed response, the key split across chunks that arrive apart.
    r = req("GET", "https://api.openai.com/v1/leak-stream", headers={"Authorization": f"Bearer {OA}"})
    assert r.status_code == 200, describe(r.status_code, r.text)
    tail = r.text[100 << 10:]
    assert tail == f"key1={OA};key2={OA};end", \
        f"streamed echo not scrubbed across chunks ({len(r.text)} chars, tail {len(tail)} chars)"


def ws_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_frame_in(c):
    """One frame as (fin, opcode, payload), unmasked."""
    h = c.read_exact(2)
    n = h[1] & 0x7F
    if n == 126:
        n = int.from_bytes(c.read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(c.read_exact(8), "big")
    mask = c.read_exact(4) if h[1] & 0x80 else None
    data = c.read_exact(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bool(h[0] & 0x80), h[0] & 0x0F, data


def ws_read(c):
    _, op, data = ws_frame_in(c)
    return op, data


def ws_message(c):
    """One whole data message (fragments joined), as (opcode, payload)."""
    op, parts = None, b""
    while True:
        fin, code, data = ws_frame_in(c)
        if code >= 8:
            continue
        if op is None:
            op = code
        parts += data
        if fin:
            return op, parts


@check("websocket")
def _():
    c = Raw("api.openai.com").tls()
    try:
        cn = c.issuer_cn()
        assert BROKER_CA_CN in cn, f"bound host not intercepted: issuer {cn!r}"
        key = base64.b64encode(os.urandom(16)).decode()
        c.sock.sendall((
            "GET /v1/ws HTTP/1.1\r\nHost: api.openai.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {OA}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        ).encode())
        status, headers = c.read_head()
        assert status == 101, f"upgrade answered {status}"
        # Compression is negotiated away (its frames could not be checked), and an echo of
        # the credential in the 101 comes back as the placeholder.
        assert headers.get("x-saw-extensions") == "false", "permessage-deflate reached the upstream"
        assert headers.get("x-echo-authorization") == f"Bearer {OA}", "credential echoed in the 101 not scrubbed"
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert headers.get("sec-websocket-accept") == want, "bad Sec-WebSocket-Accept"
        op, data = ws_read(c)
        assert op == 1 and data == b"auth_ok:true", \
            f"first frame op {op} {data[:20]!r}: credential not injected on the upgrade"
        c.sock.sendall(ws_frame(1, b"ping-1"))
        op, data = ws_read(c)
        assert op == 1 and data == b"ping-1", f"echo op {op} {data[:20]!r}"
        # The credential echoed inside a message split over two frames.
        c.sock.sendall(ws_frame(1, b"echo-key"))
        op, data = ws_message(c)
        assert op == 1 and data == f"key=Bearer {OA}!".encode(), \
            f"echoed credential in a WebSocket message not scrubbed (op {op}, {len(data)} bytes)"
        c.sock.sendall(ws_frame(8, (1000).to_bytes(2, "big")))
        try:
            op, _ = ws_read(c)
            assert op == 8, f"expected a close frame, got op {op}"
        except (ConnectionError, socket.timeout, ssl.SSLError):
            pass  # the server may just drop the connection
    finally:
        c.close()


@check("block-plain-http")
def _():
    r = req("GET", "http://api.openai.com/v1/echo", headers={"Authorization": f"Bearer {OA}"})
    expect_blocked("plain http", r.status_code, r.text)


@check("block-port")
def _():
    need_requests()
    try:
        r = req("GET", "https://api.openai.com:8443/v1/echo", headers={"Authorization": f"Bearer {OA}"})
        expect_blocked(":8443", r.status_code, r.text)
    except requests.exceptions.ProxyError:
        # Refused at CONNECT: still must be the broker's 403 with a JSON error.
        c = Raw("api.openai.com", 8443)
        c.close()
        expect_blocked("CONNECT :8443", c.status, c.body)


def send_raw_path(raw):
    """requests, with the path sent exactly as given (no normalisation)."""
    s = requests.Session()
    url = "https://api.openai.com" + raw
    prep = s.prepare_request(requests.Request("GET", url, headers={"Authorization": f"Bearer {OA}"}))
    prep.url = url
    settings = s.merge_environment_settings(prep.url, {}, None, None, None)
    return s.send(prep, timeout=T, **settings)


@check("block-dotdot")
def _():
    need_requests()
    code, body = curl("--path-as-is", "https://api.openai.com/v1/../admin", "-H", f"Authorization: Bearer {OA}")
    expect_blocked("/v1/../admin", code, body)
    for raw in ("/v1/%2e%2e/admin", "/v1/%252e%252e/admin", "/v1%2f..%2fadmin", "/v1/..;/admin", "/v1/%2e%2e;x/admin"):
        r = send_raw_path(raw)
        expect_blocked(raw, r.status_code, r.text)


@check("block-header")
def _():
    r = req("GET", "https://api.openai.com/v1/echo", headers={"X-Other": OA})
    expect_blocked("X-Other", r.status_code, r.text)


@check("block-query")
def _():
    r = req("GET", "https://api.openai.com/v1/echo", params={"k": OA})
    expect_blocked("?k=", r.status_code, r.text)


@check("block-other-binding")
def _():
    r = req("GET", "https://api.anthropic.com/v1/echo", headers={"x-api-key": OA})
    expect_blocked("openai placeholder at anthropic", r.status_code, r.text)


@check("strict-der")
def _():
    # Every certificate the broker mints must be valid DER: a strict parser (cryptography
    # >= 50, as in mitmproxy 12) refuses, e.g., an explicit cA=FALSE in Basic Constraints.
    import cryptography
    from cryptography import x509
    major = int(cryptography.__version__.split(".")[0])
    assert major >= 50, f"cryptography {cryptography.__version__} is not a strict parser (need >= 50)"
    c = Raw("api.openai.com").tls()
    try:
        assert BROKER_CA_CN in c.issuer_cn(), "bound host not intercepted"
        leaf_der = c.sock.getpeercert(binary_form=True)
    finally:
        c.close()
    ctx = ssl.create_default_context(cafile=BUNDLE)
    cas = [der for info, der in zip(ctx.get_ca_certs(), ctx.get_ca_certs(binary_form=True))
           if BROKER_CA_CN in dict(x[0] for x in info.get("subject", ())).get("commonName", "")]
    assert cas, "no broker CA in the bundle"
    for name, der in [("leaf", leaf_der)] + [("ca", d) for d in cas]:
        cert = x509.load_der_x509_certificate(der)
        bc = None
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            pass
        if name == "leaf":
            assert bc is None or not bc.ca, "the leaf certificate claims to be a CA"
        else:
            assert bc is not None and bc.ca, "the broker CA has no CA basic constraint"
        p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"],
                           input=der, capture_output=True, timeout=10)
        assert p.returncode == 0, f"openssl x509 refused the {name}: {p.stderr[:200]!r}"


@check("unbound-host")
def _():
    c = Raw("tunnel.test").tls()
    try:
        cn = c.issuer_cn()
        if MODE == "tunnel":
            # Passed through unopened: TLS is end to end with the upstream's own certificate.
            assert UPSTREAM_CA_CN in cn, f"tunnel: TLS not end to end, issuer {cn!r}"
            status, body = c.http1("GET", "/v1/echo", [f"Authorization: Bearer {OA}"])
            j = echo_json("tunnel (raw)", status, body)
            assert j["auth_ok"] is False, "tunnel: a credential reached an unbound host"
        else:
            assert BROKER_CA_CN in cn, f"inspect: not intercepted, issuer {cn!r}"
    finally:
        c.close()
    r = req("GET", "https://tunnel.test/v1/echo", headers={"Authorization": f"Bearer {OA}"})
    if MODE == "tunnel":
        j = echo_json("tunnel", r.status_code, r.text)
        assert j["auth_ok"] is False, "tunnel: a credential reached an unbound host"
        assert j["headers"].get("authorization") == f"Bearer {OA}", \
            "tunnel: the placeholder should leave unchanged (worthless)"
    else:
        expect_blocked("inspect", r.status_code, r.text)
        r = req("GET", "https://tunnel.test/v1/echo")
        j = echo_json("inspect without placeholder", r.status_code, r.text)
        assert j["auth_ok"] is False, "inspect: a credential appeared without a placeholder"


@check("node")
def _():
    p = subprocess.run(["node", os.path.join(HERE, "client.mjs")], capture_output=True, text=True, timeout=20)
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.startswith("{")]
    j = as_json(lines[-1]) if lines else None
    assert isinstance(j, dict), f"exit {p.returncode}, no JSON line; stderr {p.stderr.strip()[:200]!r}"
    assert p.returncode == 0 and j.get("auth_ok") is True and j.get("scrubbed") is True, \
        f"exit {p.returncode}: {json.dumps(j)[:200]} {p.stderr.strip()[:200]}"


print(f"broker-clients: {results['pass']} passed, {results['fail']} failed", flush=True)
sys.exit(1 if results["fail"] else 0)
