//! CONNECT: the upstream choice for a whole tunnel. A host one of the agent's bindings names is
//! always intercepted; any other host is tunnelled, intercepted or refused as the agent's
//! egress policy says. A tunnel is dialled (through the SSRF guard) before the client is told
//! yes; an intercepted tunnel is answered over TLS with a leaf for the host, and each request
//! inside it goes through the phases in `intercept.rs`.

use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::log::elapsed_ms;
use super::{error_response, full, is_allowed, is_bound, Ctx, Phase};
use crate::config::Egress;
use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

/// What happens to a CONNECT the egress policy lets through.
enum Route {
    /// The TLS bytes pass through unopened.
    Tunnel,
    /// The broker terminates TLS and handles each request inside.
    Intercept,
}

impl Broker {
    /// A CONNECT request: the route is chosen, then the tunnel opened or intercepted.
    pub(super) async fn connect(
        self: Arc<Self>,
        agent: Arc<AgentRuntime>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let start = Instant::now();
        let Some(auth) = req.uri().authority().cloned() else {
            return error_response(400, "CONNECT needs host:port");
        };
        let host = auth
            .host()
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let Some(port) = auth.port_u16() else {
            return error_response(400, "CONNECT needs host:port");
        };
        match self.route(&agent, &host, port) {
            Continue(Route::Tunnel) => self.tunnel(agent, req, host, port, start).await,
            Continue(Route::Intercept) => self.intercept(agent, req, host, port),
            Break(refused) => refused,
        }
    }

    /// Upstream choice for a CONNECT: bound hosts are intercepted; other hosts are
    /// intercepted (`inspect`), tunnelled (`tunnel`), or tunnelled only when the agent's
    /// allowlist names them (`allowlist`; refused 403 and audited otherwise).
    fn route(&self, agent: &AgentRuntime, host: &str, port: u16) -> Phase<Route> {
        if is_bound(agent, host) {
            return Continue(Route::Intercept);
        }
        match agent.egress {
            Egress::Inspect => Continue(Route::Intercept),
            Egress::Tunnel => Continue(Route::Tunnel),
            Egress::Allowlist if is_allowed(agent, host) => Continue(Route::Tunnel),
            Egress::Allowlist => {
                let mut ev = self.event("deny", &agent.name, "CONNECT", host, port, "");
                ev.status = 403;
                ev.reason = Some("host not in the allowlist".into());
                self.audit.record(ev);
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                Break(error_response(
                    403,
                    &format!("{host} is not allowed by this agent's egress allowlist"),
                ))
            }
        }
    }

    /// A tunnel: the upstream is dialled first, so that a refusal (SSRF guard, unreachable)
    /// is a clear HTTP answer rather than a dead tunnel; then bytes are copied both ways and
    /// a `tunnel` event recorded when the tunnel closes.
    async fn tunnel(
        self: Arc<Self>,
        agent: Arc<AgentRuntime>,
        req: Request<Incoming>,
        host: String,
        port: u16,
        start: Instant,
    ) -> Response<Body> {
        let upstream = match self.upstream.dial(&host, port).await {
            Ok(s) => s,
            Err(e) => {
                let mut ev = self.event("deny", &agent.name, "CONNECT", &host, port, "");
                ev.status = e.status;
                ev.reason = Some(e.message.clone());
                self.audit.record(ev);
                return error_response(e.status, &e.message);
            }
        };
        let me = self;
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            let mut client = TokioIo::new(up);
            let mut upstream = upstream;
            let r = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            let mut ev = me.event("tunnel", &agent.name, "CONNECT", &host, port, "");
            if let Ok((a, b)) = r {
                ev.bytes_in = a;
                ev.bytes_out = b;
            }
            ev.status = 200;
            ev.latency_ms = elapsed_ms(start);
            me.audit.record(ev);
        });
        Response::new(full(Bytes::new()))
    }

    /// An intercepted tunnel: TLS is accepted with a leaf minted for `host` (HTTP/1.1 or
    /// HTTP/2 by ALPN), and each request inside is handled by [`Broker::intercepted`].
    fn intercept(
        self: Arc<Self>,
        agent: Arc<AgentRuntime>,
        req: Request<Incoming>,
        host: String,
        port: u16,
    ) -> Response<Body> {
        let tls_cfg = match self.ca.server_config(&host) {
            Ok(c) => c,
            Err(e) => return error_response(502, &format!("cannot mint a certificate: {e}")),
        };
        let me = self;
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_cfg);
            let tls = match tokio::time::timeout(
                Duration::from_secs(10),
                acceptor.accept(TokioIo::new(up)),
            )
            .await
            {
                Ok(Ok(t)) => t,
                _ => return,
            };
            let ctx = Arc::new(Ctx { agent, host, port });
            let svc = hyper::service::service_fn(move |req| {
                let me = me.clone();
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(me.intercepted(&ctx, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(60));
            builder
                .http2()
                .max_concurrent_streams(256)
                .timer(hyper_util::rt::TokioTimer::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        });
        Response::new(full(Bytes::new()))
    }
}
