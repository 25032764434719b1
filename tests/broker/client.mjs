// Node through the credential broker (stdlib only). Node 20's fetch ignores proxy variables,
// so this does what proxy-aware agents do: CONNECT through HTTPS_PROXY with Basic proxy
// credentials, then TLS (SNI api.openai.com) with the default trust store, which
// NODE_EXTRA_CA_CERTS extends with the broker CA, then GET /v1/echo over HTTP/1.1 with
// `Authorization: Bearer $OPENAI_API_KEY` (a placeholder).
// Prints one JSON line {"status", "auth_ok", "scrubbed"} (plus "error" on failure);
// exit 0 only if auth_ok and scrubbed. Never prints the placeholder or a key.
import http from "node:http";
import https from "node:https";
import tls from "node:tls";

const HOST = "api.openai.com";
const TIMEOUT_MS = 15000;
const result = { status: null, auth_ok: false, scrubbed: false };

function finish(extra = {}) {
  const out = { ...result, ...extra };
  if (out.error) out.error = String(out.error).replace(/airlock-ph-[A-Za-z0-9_.-]+/g, (m) => m.slice(0, 12) + "…");
  console.log(JSON.stringify(out));
  process.exit(out.auth_ok && out.scrubbed && !out.error ? 0 : 1);
}

const timer = setTimeout(() => finish({ error: `timeout after ${TIMEOUT_MS} ms` }), TIMEOUT_MS);

const proxyUrl = process.env.HTTPS_PROXY || process.env.https_proxy;
const key = process.env.OPENAI_API_KEY;
if (!proxyUrl) finish({ error: "HTTPS_PROXY is not set" });
if (!key) finish({ error: "OPENAI_API_KEY is not set" });

let proxy;
try {
  proxy = new URL(proxyUrl);
} catch (e) {
  finish({ error: "HTTPS_PROXY is not a URL" });
}
const headers = { Host: `${HOST}:443` };
if (proxy.username) {
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  headers["Proxy-Authorization"] = `Basic ${Buffer.from(cred).toString("base64")}`;
}

const connect = http.request({
  host: proxy.hostname,
  port: Number(proxy.port) || 80,
  method: "CONNECT",
  path: `${HOST}:443`,
  headers,
  timeout: TIMEOUT_MS,
});
connect.on("timeout", () => connect.destroy(new Error("CONNECT timed out")));
connect.on("error", (e) => finish({ error: `CONNECT: ${e.message}` }));
connect.on("connect", (res, socket, head) => {
  if (res.statusCode !== 200) {
    result.status = res.statusCode;
    finish({ error: `CONNECT answered ${res.statusCode}` });
  }
  if (head && head.length) finish({ error: "proxy sent bytes after the CONNECT response" });
  const secure = tls.connect({ socket, servername: HOST, ALPNProtocols: ["http/1.1"] });
  secure.on("error", (e) => finish({ error: `TLS: ${e.message}` }));
  const req = https.request(
    {
      host: HOST,
      path: "/v1/echo",
      method: "GET",
      headers: { Authorization: `Bearer ${key}`, Connection: "close" },
      createConnection: () => secure,
      timeout: TIMEOUT_MS,
    },
    (r) => {
      result.status = r.statusCode;
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (d) => { body += d; });
      r.on("error", (e) => finish({ error: `response: ${e.message}` }));
      r.on("end", () => {
        let j;
        try {
          j = JSON.parse(body);
        } catch {
          finish({ error: `non-JSON response of ${body.length} chars` });
        }
        result.auth_ok = j.auth_ok === true;
        result.scrubbed = j.headers?.authorization === `Bearer ${key}`;
        finish(r.statusCode === 200 ? {} : { error: `status ${r.statusCode}` });
      });
    },
  );
  req.on("timeout", () => req.destroy(new Error("request timed out")));
  req.on("error", (e) => finish({ error: `request: ${e.message}` }));
  req.end();
});
connect.end();
