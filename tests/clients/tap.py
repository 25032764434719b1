#!/usr/bin/env python3
"""Tiny logging reverse proxy for seeing which HTTP calls a Vault client makes.

    python3 tests/clients/tap.py --listen 127.0.0.1:18232 --upstream http://127.0.0.1:18231 [--log FILE] [--bodies]

Point the client at the listen address (VAULT_ADDR=http://127.0.0.1:18232) and read the log:
one line per request, `METHOD /path?query -> STATUS [req content-type] [X-Vault-* headers present]`.
With --bodies it also logs the JSON *keys* of request and response bodies (not values: this is a
secrets server); --values logs full request bodies instead (test data only: it prints secrets). Any method is forwarded as-is (LIST, PATCH, HEAD, OPTIONS ...). Loopback/test use only.
"""
import argparse
import http.client
import http.server
import json
import socketserver
import sys
import threading
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
       "transfer-encoding", "upgrade", "host", "content-length"}


def shape(raw):
    """Keys of a JSON body, recursively one level into `data`/`auth`; never values."""
    if not raw:
        return "-"
    try:
        obj = json.loads(raw)
    except ValueError:
        return f"<{len(raw)} bytes non-json>"
    if not isinstance(obj, dict):
        return type(obj).__name__
    out = []
    for k, v in obj.items():
        if k in ("data", "auth", "options") and isinstance(v, dict):
            out.append(f"{k}{{{','.join(sorted(v.keys()))}}}")
        else:
            out.append(k)
    return "{" + ",".join(out) + "}"


def make_handler(upstream, log, bodies, values, lock):
    up = urllib.parse.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # silence default stderr logging
            pass

        def _proxy(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=60)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if body:
                hdrs["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response_only(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()
            vault_hdrs = sorted(k for k in self.headers.keys() if k.lower().startswith("x-vault-"))
            line = f"{self.command} {self.path} -> {resp.status}"
            ct = self.headers.get("Content-Type")
            if ct:
                line += f" ct={ct}"
            if vault_hdrs:
                line += " hdr=" + ",".join(vault_hdrs)
            if values:
                line += f" req={body.decode('utf-8', 'replace') or '-'} resp={shape(data)}"
            elif bodies:
                line += f" req={shape(body)} resp={shape(data)}"
            with lock:
                log.write(line + "\n")
                log.flush()

        def __getattr__(self, name):
            if name.startswith("do_"):
                return self._proxy
            raise AttributeError(name)

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:18232")
    ap.add_argument("--upstream", default="http://127.0.0.1:8200")
    ap.add_argument("--log", default="-")
    ap.add_argument("--bodies", action="store_true")
    ap.add_argument("--values", action="store_true", help="log full request bodies (prints secrets)")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    log = sys.stdout if a.log == "-" else open(a.log, "a", buffering=1)
    srv = Server((host, int(port)), make_handler(a.upstream, log, a.bodies, a.values, threading.Lock()))
    srv.serve_forever()


if __name__ == "__main__":
    main()
