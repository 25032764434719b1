//! The engine interface.
//!
//! An engine (secrets engine or auth method) implements [`Engine`]: a static path table, one
//! `call` that dispatches on its own handler enum, and optional hooks — the existence check,
//! renew and revoke of the leases it issued, periodic work and cleanup when its mount is
//! disabled. The server holds engines as `Arc<dyn Backend>`; the blanket implementation
//! below does the routing, the operation check, field declaration and `?help=1`, so an
//! engine never parses its own paths.
//!
//! An auth method is an engine whose login paths are marked `.login()` in its table: those
//! requests arrive unauthenticated, and a successful one answers with
//! [`Response::login`](crate::Response) set; the server turns that into a token.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::framework::{self, PathSpec};
use crate::request::{Request, Response};
use crate::system::{Ctx, LeaseInfo};

/// What the server needs to know about a path before it runs the request.
#[derive(Clone, Debug, Default)]
pub struct PathInfo {
    pub login: bool,
    /// Read without a token.
    pub unauthenticated: bool,
    pub sudo: bool,
    pub existence: bool,
    pub sensitive: Vec<&'static str>,
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    type H: Copy + Send + Sync + 'static;

    fn paths(&self) -> &'static [PathSpec<Self::H>];

    /// Runs the handler the table chose. `req.fields` and `req.captures` are set.
    async fn call(&self, ctx: &Ctx, h: Self::H, req: &Request) -> ApiResult<Response>;

    /// The answer for a path outside the table.
    fn unknown_path(&self, _req: &Request) -> ApiResult<Response> {
        Err(ApiError::unsupported_path())
    }

    /// Whether the target of a write exists (only asked for paths marked `.existence()`;
    /// `None`: no opinion, the write stays an update).
    async fn exists(&self, _ctx: &Ctx, _h: Self::H, _req: &Request) -> ApiResult<Option<bool>> {
        Ok(None)
    }

    /// Who a login attempt on `rel` is for (rate limits count per subject): the `role`
    /// field by default.
    fn login_subject(&self, req: &Request, _rel: &str) -> String {
        req.data
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// The path (below the mount) whose `read` capability guards reading the secret at
    /// `rel` (KV v2: `data/<rel>`); `None`: `rel` itself.
    fn read_path(&self, _rel: &str) -> Option<String> {
        None
    }

    /// Revokes the secret behind a lease this engine issued.
    async fn revoke(&self, _ctx: &Ctx, _lease: &LeaseInfo<'_>) -> ApiResult<()> {
        Ok(())
    }

    /// Called after the lease manager extended a lease (e.g. to extend a database user).
    async fn renew(&self, _ctx: &Ctx, _lease: &LeaseInfo<'_>) -> ApiResult<()> {
        Ok(())
    }

    /// Background work, called about once a second while unsealed.
    async fn periodic(&self, _ctx: &Ctx) -> ApiResult<()> {
        Ok(())
    }

    /// The mount is being disabled: its leases are already revoked; drop connections and
    /// caches. The server clears the storage view afterwards.
    async fn cleanup(&self, _ctx: &Ctx) -> ApiResult<()> {
        Ok(())
    }

    /// Another node wrote `rel` (below the mount; empty: anything may have changed): drop
    /// whatever in-memory state came from it (connection pools, fetched keys). Storage
    /// reads need nothing: the server's caches below the view are already invalidated.
    async fn invalidate(&self, _ctx: &Ctx, _rel: &str) {}
}

/// An engine as the server holds it.
#[async_trait]
pub trait Backend: Send + Sync {
    fn describe(&self, rel: &str) -> Option<PathInfo>;
    /// Whether any path needs `sudo` (so the pipeline looks a path up only when it may).
    fn has_sudo_paths(&self) -> bool;
    /// Whether any path is read without a token (same reason).
    fn has_unauthenticated_paths(&self) -> bool;
    /// Serves a request for `rel`, the path below the mount.
    async fn handle(&self, ctx: &Ctx, req: &mut Request, rel: &str) -> ApiResult<Response>;
    async fn existence(&self, ctx: &Ctx, req: &mut Request, rel: &str) -> ApiResult<Option<bool>>;
    fn login_subject(&self, req: &Request, rel: &str) -> String;
    fn read_path(&self, rel: &str) -> Option<String>;
    async fn revoke(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()>;
    async fn renew(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()>;
    async fn periodic(&self, ctx: &Ctx) -> ApiResult<()>;
    async fn cleanup(&self, ctx: &Ctx) -> ApiResult<()>;
    async fn invalidate(&self, ctx: &Ctx, rel: &str);
}

fn prepare<H>(req: &mut Request, spec: &'static PathSpec<H>, caps: framework::Captures) {
    req.fields = Some(spec.fields);
    req.captures = caps;
    req.validation_prefix = !spec.existence;
}

#[async_trait]
impl<E: Engine> Backend for E {
    fn has_sudo_paths(&self) -> bool {
        self.paths().iter().any(|p| p.sudo)
    }

    fn has_unauthenticated_paths(&self) -> bool {
        self.paths().iter().any(|p| p.unauthenticated)
    }

    fn describe(&self, rel: &str) -> Option<PathInfo> {
        framework::find(self.paths(), rel).map(|(spec, _)| PathInfo {
            login: spec.login,
            unauthenticated: spec.unauthenticated,
            sudo: spec.sudo,
            existence: spec.existence,
            sensitive: spec.sensitive_fields(),
        })
    }

    async fn handle(&self, ctx: &Ctx, req: &mut Request, rel: &str) -> ApiResult<Response> {
        if req.query("help").is_some_and(|v| v == "1" || v == "true") {
            return match framework::find(self.paths(), rel) {
                Some((spec, _)) => Ok(Response::data(json!({
                    "help": spec.help_text(),
                    "see_also": Value::Null,
                }))),
                None => self.unknown_path(req),
            };
        }
        match framework::route(self.paths(), rel, req.op)? {
            Some((spec, h, caps)) => {
                prepare(req, spec, caps);
                self.call(ctx, h, req).await
            }
            None => self.unknown_path(req),
        }
    }

    async fn existence(&self, ctx: &Ctx, req: &mut Request, rel: &str) -> ApiResult<Option<bool>> {
        let Some((spec, caps)) = framework::find(self.paths(), rel) else {
            return Ok(None);
        };
        if !spec.existence {
            return Ok(None);
        }
        let Some(h) = spec.handler(req.op) else {
            return Ok(None);
        };
        prepare(req, spec, caps);
        let r = self.exists(ctx, h, req).await;
        req.fields = None;
        req.captures.clear();
        r
    }

    fn login_subject(&self, req: &Request, rel: &str) -> String {
        Engine::login_subject(self, req, rel)
    }
    fn read_path(&self, rel: &str) -> Option<String> {
        Engine::read_path(self, rel)
    }
    async fn revoke(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        Engine::revoke(self, ctx, lease).await
    }
    async fn renew(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        Engine::renew(self, ctx, lease).await
    }
    async fn periodic(&self, ctx: &Ctx) -> ApiResult<()> {
        Engine::periodic(self, ctx).await
    }
    async fn cleanup(&self, ctx: &Ctx) -> ApiResult<()> {
        Engine::cleanup(self, ctx).await
    }
    async fn invalidate(&self, ctx: &Ctx, rel: &str) {
        Engine::invalidate(self, ctx, rel).await
    }
}
