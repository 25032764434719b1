//! The Airlock server: a faithful subset of the Vault/OpenBao HTTP API over an encrypted store.
//!
//! Request flow: `http` (parse, size limits, unauthenticated sys endpoints) → `pipeline`
//! (seal check, logins, token authentication, existence check, ACL, audit) → a system backend
//! in `sys` (`sys/*`, `auth/token/*`) or, through the `router`, the engine mounted at the path
//! (`airlock-engines`, seen through the logical SDK) → response wrapping → `http` renders the
//! Vault envelope. `core` holds the stores (tokens, policies, leases, the router), which own
//! their handles and never see it. Errors become HTTP responses only in
//! `http::error_response` from the [`error::ApiError`] every layer returns.

pub mod background;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod core;
pub mod event_hub;
pub mod event_stream;
pub mod events;
pub mod ha;
pub mod hmac;
mod honeytoken_cache;
pub mod http;
pub mod leases;
pub mod limiter;
pub mod metrics;
pub mod mounts;
pub mod pipeline;
pub mod policies;
pub mod router;
pub mod serve;
pub mod sys;
pub mod sysview;
pub mod tls;
pub mod token;
pub mod transit_seal;
pub mod ui;

/// The small outbound HTTPS client (the CLI and tests use it too).
pub use airlock_engines::http_client;
/// Errors and requests are the logical SDK's.
pub use airlock_logical::error;
pub use airlock_logical::request as logical;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;

pub use config::Config;
pub use core::Core;

/// Builds the storage, audit devices and core for `config`.
pub async fn build_core(config: Config) -> Result<Arc<Core>, String> {
    config.validate()?;
    let backend: Arc<dyn airlock_store::Backend> = if config.dev.is_some() {
        Arc::new(airlock_store::SqliteBackend::memory().map_err(|e| e.to_string())?)
    } else if config.storage.backend == "postgresql" {
        let url = config.storage.connection_url.clone().unwrap_or_default();
        Arc::new(
            airlock_store::PostgresBackend::connect(&url, &config.storage.table)
                .await
                .map_err(|e| format!("storage: {e}"))?,
        )
    } else {
        let sync = if config.storage.sync == "full" {
            airlock_store::SyncMode::Full
        } else {
            airlock_store::SyncMode::Normal
        };
        Arc::new(
            airlock_store::SqliteBackend::open(&config.storage.path, sync)
                .map_err(|e| format!("storage {}: {e}", config.storage.path.display()))?,
        )
    };
    let devices: Vec<airlock_audit::FileDeviceConfig> = config
        .audit
        .iter()
        .map(|a| airlock_audit::FileDeviceConfig {
            name: a.name.clone(),
            path: a.path.clone(),
            fsync: a.fsync,
            index: a.index,
        })
        .collect();
    let auditor = airlock_audit::Auditor::open(&devices).map_err(|e| e.to_string())?;
    Core::new(Arc::new(config), backend, auditor)
}

/// A bound, ready-to-serve server.
pub struct Server {
    pub core: Arc<Core>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What dev mode hands the operator.
pub struct DevInit {
    pub root_token: zeroize::Zeroizing<String>,
    pub unseal_key: zeroize::Zeroizing<Vec<u8>>,
}

impl Server {
    pub async fn bind(core: Arc<Core>) -> Result<Self, String> {
        let cfg = &core.config.listener;
        let listener = TcpListener::bind(&cfg.address)
            .await
            .map_err(|e| format!("listener {}: {e}", cfg.address))?;
        let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(c), Some(k)) => Some(tls::acceptor(c, k)?),
            _ => None,
        };
        let me = Self {
            core,
            listener,
            tls,
        };
        // On a shared store, subscribe before serving: a node starts with its change feed
        // up (or answers 503 until it is, if the database is slow to answer).
        me.core.start_cluster(me.node_info());
        me.core.ha.wait_coherent(Duration::from_secs(10)).await;
        Ok(me)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// How this node describes itself to the others on a shared store.
    fn node_info(&self) -> airlock_store::NodeInfo {
        let scheme = if self.is_tls() { "https" } else { "http" };
        let api_addr = self.core.config.api_addr.clone().unwrap_or_else(|| {
            self.local_addr()
                .map(|a| format!("{scheme}://{a}"))
                .unwrap_or_default()
        });
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        airlock_store::NodeInfo {
            hostname,
            cluster_addr: self
                .core
                .config
                .cluster_addr
                .clone()
                .unwrap_or_else(|| api_addr.clone()),
            api_addr,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Dev mode: initialise with one share and unseal at once.
    pub async fn dev_init(&self) -> Result<DevInit, String> {
        let root = self
            .core
            .config
            .dev
            .as_ref()
            .and_then(|d| d.root_token.clone());
        let (mut keys, token) = self
            .core
            .initialize(1, 1, root, true)
            .await
            .map_err(|e| e.errors.join("; "))?;
        Ok(DevInit {
            root_token: token,
            unseal_key: keys.pop().unwrap_or_default(),
        })
    }

    /// Serves until `shutdown` resolves, then drains connections for up to 10 s.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let housekeeping = self.core.spawn_housekeeping();
        let lease_expiry = self.core.spawn_lease_expiry();
        let sequencer = self.core.spawn_event_sequencer();
        let dispatcher = self.core.spawn_event_dispatcher();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let l = &self.core.config.listener;
        let admission = conn::Admission::new(
            conn::effective_max(l.max_connections, conn::open_file_limit()),
            l.max_connections_per_address,
        );
        let limits = Arc::new(conn::Limits {
            idle: Duration::from_secs(l.http_idle_timeout),
            first: Duration::from_secs(l.http_read_header_timeout),
        });
        let protocols = Arc::new(serve::Protocols::new(limits.first));
        let mut backoff = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(x) => {
                            backoff = Duration::ZERO;
                            x
                        }
                        Err(e) => {
                            // Out of descriptors (or another transient failure): wait, longer
                            // each time, instead of spinning.
                            backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                            tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    };
                    let permit = match admission.try_admit(remote.ip()) {
                        Ok(p) => p,
                        Err(why) => {
                            if self.tls.is_none() {
                                let _ = stream.try_write(conn::REFUSAL);
                            }
                            self.core.metrics.connection_refused();
                            tracing::debug!(?why, open = admission.open(), "connection refused");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let core = Arc::clone(&self.core);
                    let activity = conn::Activity::new();
                    let svc = {
                        let activity = Arc::clone(&activity);
                        service_fn(move |req| {
                            let in_flight = activity.request();
                            let core = Arc::clone(&core);
                            async move {
                                // Boxed: hyper keeps the slot for a connection's request
                                // future as long as the connection lives, so an idle
                                // keep-alive connection or an open event stream would
                                // hold the whole (large) request future's size.
                                let r = Box::pin(http::serve(core, req, Some(remote))).await;
                                drop(in_flight);
                                r
                            }
                        })
                    };
                    let tls = self.tls.clone();
                    let protocols = Arc::clone(&protocols);
                    let limits = Arc::clone(&limits);
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let ended = match tls {
                            None => {
                                let proto = match tokio::time::timeout(limits.first, serve::sniff(&stream)).await {
                                    Ok(Ok(p)) => p,
                                    _ => return,
                                };
                                let io = conn::ActivityIo::new(stream, Arc::clone(&activity));
                                Some(serve::serve(io, proto, &protocols, svc, &activity, &limits, stop).await)
                            }
                            // Boxed: a TLS session is large, and a plain connection's task
                            // should not carry room for one.
                            Some(acc) => Box::pin(async move {
                                let io = conn::ActivityIo::new(stream, Arc::clone(&activity));
                                let tls = match tokio::time::timeout(limits.first, acc.accept(io)).await {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        tracing::debug!(error = %e, "TLS handshake failed");
                                        return None;
                                    }
                                    Err(_) => return None,
                                };
                                let proto = serve::by_alpn(tls.get_ref().1.alpn_protocol());
                                Some(serve::serve(tls, proto, &protocols, svc, &activity, &limits, stop).await)
                            })
                            .await,
                        };
                        let Some(ended) = ended else {
                            return;
                        };
                        match ended {
                            conn::Ended::Done(Err(e)) => tracing::debug!(error = %e, "connection ended with error"),
                            conn::Ended::Done(Ok(())) => {}
                            conn::Ended::Idle => tracing::debug!("idle connection closed"),
                        }
                    });
                }
            }
        }
        drop(self.listener);
        housekeeping.abort();
        lease_expiry.abort();
        sequencer.abort();
        dispatcher.abort();
        // Every connection finishes what is in flight and ends; those still open after
        // 10 s are dropped with the runtime.
        let _ = stop_tx.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while admission.open() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    open = admission.open(),
                    "connections still open after 10s; closing"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
