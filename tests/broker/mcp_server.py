#!/usr/bin/env python3
"""A stand-in MCP server for the broker's MCP policy test, built with the official Python
`mcp` SDK (MCPServer, streamable HTTP) and served over TLS by uvicorn.

  mcp_server.py PORT CERT KEY     serves https://127.0.0.1:PORT/mcp
  mcp_server.py PORT CERT KEY sse serves the older HTTP+SSE transport instead
                                  (https://127.0.0.1:PORT/sse, POSTs to /messages/)
  mcp_server.py PORT plain        serves http://127.0.0.1:PORT/mcp (no token: plain HTTP never
                                  carries a credential through the broker)

Over TLS it refuses (401) any request whose Authorization is not `Bearer $MCP_SERVER_TOKEN`, so a
tool call that succeeds proves the broker injected the real token. Tools: create_issue(repo,
title), delete_repo(repo), get_me(); each call is appended to $MCP_SERVER_LOG, so the test
can check that a denied call never arrived.
"""
import os
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

PLAIN = sys.argv[2] == "plain"
TOKEN = None if PLAIN else os.environ["MCP_SERVER_TOKEN"]
LOG = os.environ["MCP_SERVER_LOG"]
server = MCPServer("airlock-test-github")


def record(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


@server.tool()
def create_issue(repo: str, title: str) -> str:
    record(f"create_issue {repo}")
    return f"created {repo}#1: {title}"


@server.tool()
def delete_repo(repo: str) -> str:
    record(f"delete_repo {repo}")
    return f"deleted {repo}"


@server.tool()
def get_me() -> str:
    record("get_me")
    return "octocat"


open_security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
if sys.argv[-1] == "sse":
    app = server.sse_app(transport_security=open_security)
else:
    app = server.streamable_http_app(transport_security=open_security)


async def guarded(scope, receive, send):
    if scope["type"] == "http" and not PLAIN:
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth != f"Bearer {TOKEN}":
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"error":"bad token"}'})
            return
    await app(scope, receive, send)


tls = {} if PLAIN else {"ssl_certfile": sys.argv[2], "ssl_keyfile": sys.argv[3]}
uvicorn.run(guarded, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="on", **tls)
