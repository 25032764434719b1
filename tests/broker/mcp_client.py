#!/usr/bin/env python3
"""The official Python `mcp` SDK as an agent, run as the child of `airlock broker run --agent
coder`: an allowed tool call works (the server got the real token), a call with an argument
the policy does not allow and a denied tool get JSON-RPC errors. Prints `ok NAME` / `FAIL`.

With `MCP_URL=http://…` it speaks to a plain-HTTP MCP server through `HTTP_PROXY`, without a
token (the broker blocks a placeholder on plain HTTP): the same policy must hold there. With
`MCP_TRANSPORT=sse` it uses the older HTTP+SSE transport (`MCP_URL` is then the `/sse` URL):
the broker's JSON-RPC error for a denied call has to arrive on the event stream.
"""
import asyncio
import os
import sys

import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

PH = os.environ["GITHUB_TOKEN"]
URL = os.environ.get("MCP_URL", "https://mcp.test/mcp")
PLAIN = URL.startswith("http://")
SSE = os.environ.get("MCP_TRANSPORT") == "sse"
failed = 0


def report(name, ok, why=""):
    global failed
    if ok:
        print(f"ok {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why[:200]}", flush=True)


async def denied(s, tool, args):
    try:
        # Bounded: a denial that never arrives fails here instead of hanging.
        r = await asyncio.wait_for(s.call_tool(tool, args), 20)
    except Exception as e:  # noqa: BLE001 - the SDK raises on a JSON-RPC error
        return "denied" in str(e) and "airlock broker" in str(e), str(e)
    return False, f"not denied: {r}"


async def calls(read, write):
    async with ClientSession(read, write) as s:
        await s.initialize()
        names = [t.name for t in (await s.list_tools()).tools]
        report("list-tools", sorted(names) == ["create_issue", "delete_repo", "get_me"], str(names))
        r = await s.call_tool("create_issue", {"repo": "acme/site", "title": "hello"})
        text = r.content[0].text if r.content else ""
        report("allowed-call", "created acme/site#1" in text and not r.is_error, str(r)[:200])
        report("allowed-glob", not (await s.call_tool("get_me", {})).is_error)
        ok, why = await denied(s, "create_issue", {"repo": "evil/site", "title": "x"})
        report("denied-argument", ok, why)
        ok, why = await denied(s, "delete_repo", {"repo": "acme/site"})
        report("denied-tool", ok, why)
        # The session goes on after a denial.
        report("after-denial", not (await s.call_tool("get_me", {})).is_error)


async def main():
    if PLAIN:
        opts = {"proxy": os.environ["HTTP_PROXY"]}
    else:
        opts = {"headers": {"Authorization": f"Bearer {PH}"}, "proxy": os.environ["HTTPS_PROXY"],
                "verify": os.environ["SSL_CERT_FILE"]}
    if SSE:
        def factory(headers=None, timeout=None, auth=None):
            kw = dict(opts)
            kw["headers"] = {**opts.get("headers", {}), **(headers or {})}
            return httpx2.AsyncClient(timeout=timeout or 30, auth=auth, **kw)
        async with sse_client(URL, httpx_client_factory=factory) as (read, write):
            await calls(read, write)
        return
    async with httpx2.AsyncClient(timeout=30, **opts) as http:
        async with streamable_http_client(URL, http_client=http) as streams:
            await calls(streams[0], streams[1])


asyncio.run(main())
print(f"mcp: {failed} failed")
sys.exit(1 if failed else 0)
