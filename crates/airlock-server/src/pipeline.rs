//! The request pipeline: seal check, logins (unauthenticated, rate-limited), token
//! authentication, the existence check (create vs update, answered by the engine), the ACL,
//! the audit log, dispatch (`sys/`, `auth/token/`, or the mounted engine the router finds),
//! then response wrapping.

use std::sync::Arc;

use airlock_core::policy::Operation;
use airlock_logical::CallerInfo;
use serde_json::{json, Map, Value};

use crate::core::{now_nanos, rfc3339_nanos, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::router::Route;

/// Paths that need `sudo` in addition to the operation's capability (Vault's root paths).
fn needs_sudo(path: &str, op: Op) -> bool {
    const EXACT: &[&str] = &[
        "sys/rotate",
        "sys/seal",
        "sys/key-status",
        "sys/audit",
        "sys/broker/keys",
        "sys/remount",
        "sys/storage/backup",
        "sys/storage/restore",
        "auth/token/revoke-orphan",
        "auth/token/accessors",
        "auth/token/accessors/",
    ];
    const PREFIX: &[&str] = &[
        "sys/auth/",
        "sys/audit/",
        "sys/audit-hash/",
        "sys/airlock/audit/",
        "sys/raw",
        "sys/leases/lookup/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/revoke-prefix/",
        "sys/revoke-force/",
        "auth/token/revoke-orphan/",
    ];
    if path == "sys/auth" && op != Op::Read {
        return true;
    }
    EXACT.contains(&path) || PREFIX.iter().any(|p| path.starts_with(p))
}

/// An audit device failed: the request is refused (fail closed).
pub fn audit_failure(e: airlock_audit::AuditError) -> ApiError {
    tracing::error!(error = %e, "audit failure: request refused");
    ApiError::new(500, "failed to audit request")
}

/// What an engine may know of the caller (never the ACL).
pub fn caller_info(caller: &Caller) -> Option<CallerInfo> {
    let e = caller.entry.as_ref()?;
    Some(CallerInfo {
        display_name: e.display_name.clone(),
        // What a batch token creates belongs to its parent (an orphan's simply expires).
        token_hash: if e.is_batch() {
            e.parent.clone()
        } else {
            Some(e.id_hash.clone())
        },
        token_expiry: e.expire_time,
        batch: e.is_batch(),
    })
}

impl Core {
    /// The existence check: POST/PUT on a path whose target does not exist is `create`.
    pub(crate) async fn resolve_op(
        self: &Arc<Self>,
        req: &mut Request,
        route: Option<&Route>,
        caller: &Caller,
    ) -> ApiResult<Op> {
        if req.op != Op::Update {
            return Ok(req.op);
        }
        let exists = if req.path.starts_with("sys/") {
            None
        } else if let Some(name) = req.path.strip_prefix("auth/token/roles/") {
            Some(self.tokens.role_exists(name).await?)
        } else if req.path.starts_with("auth/token/") {
            None
        } else {
            match route {
                Some(r) => {
                    let ctx = self.leases.ctx(r, caller_info(caller));
                    r.backend.existence(&ctx, req, &r.rel).await?
                }
                None => None,
            }
        };
        Ok(match exists {
            Some(false) => Op::Create,
            _ => Op::Update,
        })
    }

    /// Full pipeline for a logical request, then response wrapping when asked for.
    pub async fn handle(self: &Arc<Self>, req: Request) -> ApiResult<Response> {
        let wrap_ttl = req.wrap_ttl;
        let path = req.path.clone();
        let resp = self.handle_unwrapped(req).await?;
        match wrap_ttl {
            Some(ttl)
                if resp.wrap_info.is_none()
                    && resp.raw.is_none()
                    && resp.text.is_none()
                    && (resp.data.is_some() || resp.auth.is_some()) =>
            {
                crate::sys::wrapping::wrap(self, resp, ttl, &path).await
            }
            _ => Ok(resp),
        }
    }

    async fn handle_unwrapped(self: &Arc<Self>, mut req: Request) -> ApiResult<Response> {
        if self.is_sealed() {
            return Err(ApiError::sealed());
        }
        if !self.ha.is_coherent() {
            return Err(crate::ha::incoherent());
        }
        // Logins and the wrapping token's own endpoints carry their credential in the request.
        let logins = req.path.starts_with("auth/") && !req.path.starts_with("auth/token/");
        let login_route = match logins {
            true => self.route(&req.path).await,
            false => None,
        };
        if let Some(route) = login_route {
            if let Some(info) = route.backend.describe(&route.rel).filter(|i| i.login) {
                // The presented credential (the path's sensitive fields) is not audited, not
                // even as an HMAC.
                let mut logged = req.audit_copy();
                for k in &info.sensitive {
                    logged.data.remove(*k);
                }
                self.audit_request(&logged, None, None).await?;
                let result = crate::sys::auth::login(self, &route, &mut req).await;
                self.audit_response(&logged, None, &result).await?;
                return result;
            }
        }
        // Paths an engine serves without a token (a CA certificate, a CRL): read as nobody.
        if req.op == Op::Read && !req.path.starts_with("sys/") && !logins {
            if let Some(route) = self.route(&req.path).await.filter(|r| {
                r.backend.has_unauthenticated_paths()
                    && r.backend
                        .describe(&r.rel)
                        .is_some_and(|i| i.unauthenticated)
            }) {
                self.audit_request(&req, None, None).await?;
                let ctx = self.leases.ctx(&route, None);
                let result = route.backend.handle(&ctx, &mut req, &route.rel).await;
                self.audit_response(&req, None, &result).await?;
                return result;
            }
        }
        if crate::sys::wrapping::is_pre_auth(&req) {
            let mut logged = req.audit_copy();
            logged.data.remove("token");
            self.audit_request(&logged, None, None).await?;
            let result = crate::sys::wrapping::pre_auth(self, &req).await;
            self.audit_response(&logged, None, &result).await?;
            return result;
        }
        let caller = self
            .authenticate(
                req.token.as_ref().map(|t| t.as_str()),
                req.remote.map(|r| r.ip()),
            )
            .await;
        let caller = match caller {
            Ok(c) => c,
            Err(e) => {
                // A presented token that is not one may be a decoy taken from an agent.
                if let Some(t) = &req.token {
                    crate::sys::broker::honeytoken_presented(self, t, req.remote.map(|r| r.ip()))
                        .await;
                }
                self.audit_request(&req, None, Some(&e)).await?;
                return Err(e);
            }
        };
        // One lookup of the mount for the existence check and the dispatch.
        let route = if req.path.starts_with("sys/") || req.path.starts_with("auth/token/") {
            None
        } else {
            self.route(&req.path).await
        };
        req.op = self.resolve_op(&mut req, route.as_ref(), &caller).await?;
        if let Err(e) = self.authorize(&caller, &req, route.as_ref()) {
            self.audit_request(&req, Some(&caller), Some(&e)).await?;
            return Err(e);
        }
        self.audit_request(&req, Some(&caller), None).await?;
        let result = self.dispatch(&mut req, &caller, route.as_ref()).await;
        self.audit_response(&req, Some(&caller), &result).await?;
        if let Some(e) = &caller.entry {
            if e.num_uses == -1 {
                self.tokens.revoke_tree(&e.id_hash).await?;
            }
        }
        result
    }

    fn authorize(&self, caller: &Caller, req: &Request, route: Option<&Route>) -> ApiResult<()> {
        if caller.is_root {
            return Ok(());
        }
        let op = match req.op {
            Op::Read => Operation::Read,
            Op::Create => Operation::Create,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
            Op::List => Operation::List,
            Op::Patch => Operation::Patch,
        };
        let params = match req.op {
            Op::Create | Op::Update | Op::Patch => Some(&req.data),
            _ => None,
        };
        // `sys/internal/ui/mounts` answers any valid token (Vault checks access to the mount
        // itself in the handler); the CLIs call it before every KV command.
        if req.path.starts_with("sys/internal/ui/mounts") {
            return Ok(());
        }
        // A list is authorised on the folder: `metadata/app/*` permits listing `metadata/app`.
        let acl_path = if req.op == Op::List && !req.path.ends_with('/') {
            format!("{}/", req.path)
        } else {
            req.path.clone()
        };
        if caller.acl.allowed(&acl_path, op, params).is_err() {
            return Err(ApiError::policy_denied());
        }
        // Root paths: the server's own, and those an engine's path table marks `.sudo()`.
        let engine_sudo = || {
            route
                .filter(|r| r.backend.has_sudo_paths())
                .and_then(|r| r.backend.describe(&r.rel))
                .is_some_and(|i| i.sudo)
        };
        if (needs_sudo(&req.path, req.op) || engine_sudo()) && !caller.acl.has_sudo(&acl_path) {
            return Err(ApiError::policy_denied());
        }
        Ok(())
    }

    /// Runs the request; one that lost a read-modify-write race (a conflict: another
    /// request or node changed what it read) runs again from the start, reading afresh.
    async fn dispatch(
        self: &Arc<Self>,
        req: &mut Request,
        caller: &Caller,
        route: Option<&Route>,
    ) -> ApiResult<Response> {
        let mut tries = 0;
        loop {
            match self.dispatch_once(req, caller, route).await {
                Err(e) if e.is_conflict() && tries < airlock_logical::error::CONFLICT_RETRIES => {
                    tries += 1;
                    airlock_logical::error::conflict_backoff(tries).await;
                }
                other => return other,
            }
        }
    }

    async fn dispatch_once(
        self: &Arc<Self>,
        req: &mut Request,
        caller: &Caller,
        route: Option<&Route>,
    ) -> ApiResult<Response> {
        if let Some(rest) = req.path.strip_prefix("sys/") {
            return crate::sys::handle(self, req, caller, rest).await;
        }
        if req.path == "sys" {
            return Err(ApiError::unsupported_path());
        }
        if let Some(rest) = req.path.strip_prefix("auth/token/") {
            return crate::sys::token::handle(self, req, caller, rest).await;
        }
        match route {
            Some(r) => {
                let ctx = self.leases.ctx(r, caller_info(caller));
                r.backend.handle(&ctx, req, &r.rel).await
            }
            None => Err(ApiError::no_route(&req.path)),
        }
    }

    /// Mount type and mount point of a path, for audit entries.
    fn mount_of(&self, path: &str) -> (String, String) {
        if path.starts_with("sys/") {
            return ("system".into(), "sys/".into());
        }
        if path.starts_with("auth/token/") {
            return ("token".into(), "auth/token/".into());
        }
        self.router
            .route(path)
            .map(|r| (r.entry.kind.clone(), r.mount_point()))
            .unwrap_or_default()
    }

    fn audit_auth(&self, caller: Option<&Caller>) -> Value {
        let Some(e) = caller.and_then(|c| c.entry.as_ref()) else {
            return Value::Null;
        };
        json!({
            "accessor": self.audit.hash(&e.accessor),
            "display_name": e.display_name,
            "policies": e.policies,
            "token_policies": e.policies,
            "metadata": e.meta,
            "token_type": "service",
            "token_ttl": e.creation_ttl,
            "token_issue_time": rfc3339_nanos(e.creation_time as i128 * 1_000_000_000),
        })
    }

    async fn audit_request(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        err: Option<&ApiError>,
    ) -> ApiResult<()> {
        if !self.audit.enabled() {
            return Ok(());
        }
        let (mount_type, mount_point) = self.mount_of(&req.path);
        let mut data = Value::Object(req.data.clone());
        self.audit.hash_value(&mut data);
        let token_h = req.token.as_ref().and_then(|t| self.audit.hash(t));
        let mut auth = self.audit_auth(caller);
        if let (Value::Object(m), Some(h)) = (&mut auth, &token_h) {
            m.insert("client_token".into(), json!(h));
        }
        let entry = json!({
            "time": rfc3339_nanos(now_nanos()),
            "type": "request",
            "auth": auth,
            "request": {
                "id": req.id,
                "operation": req.op.as_str(),
                "mount_point": mount_point,
                "mount_type": mount_type,
                "client_token": token_h,
                "client_token_accessor": caller.and_then(|c| c.entry.as_ref()).and_then(|e| self.audit.hash(&e.accessor)),
                "namespace": {"id": "root"},
                "path": req.path,
                "data": if req.data.is_empty() { Value::Null } else { data },
                "remote_address": req.remote.map(|r| r.ip().to_string()),
                "remote_port": req.remote.map(|r| r.port()),
            },
            "error": err.map(|e| e.errors.join("; ")).unwrap_or_default(),
        });
        self.audit.log(&entry).await.map_err(audit_failure)?;
        Ok(())
    }

    async fn audit_response(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        result: &ApiResult<Response>,
    ) -> ApiResult<()> {
        if !self.audit.enabled() {
            return Ok(());
        }
        let (mount_type, mount_point) = self.mount_of(&req.path);
        let mut resp = Map::new();
        let mut error = String::new();
        let status = match result {
            Ok(r) => {
                let mut data = r
                    .audit_data
                    .clone()
                    .or_else(|| r.data.clone())
                    .or_else(|| r.raw.clone())
                    .unwrap_or(Value::Null);
                self.audit.hash_value(&mut data);
                resp.insert("data".into(), data);
                if let Some(a) = &r.auth {
                    let mut av = serde_json::to_value(a).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut av {
                        for k in ["client_token", "accessor"] {
                            if let Some(Value::String(s)) = m.get_mut(k) {
                                *s = self.audit.hash(s).unwrap_or_default();
                            }
                        }
                    }
                    resp.insert("auth".into(), av);
                }
                if !r.warnings.is_empty() {
                    resp.insert("warnings".into(), json!(r.warnings));
                }
                r.status.unwrap_or(if r.is_empty() { 204 } else { 200 })
            }
            Err(e) => {
                error = e.errors.join("; ");
                e.status
            }
        };
        resp.insert("mount_point".into(), json!(mount_point));
        resp.insert("mount_type".into(), json!(mount_type));
        resp.insert("status".into(), json!(status));
        let mut auth = self.audit_auth(caller);
        if let (Value::Object(m), Some(t)) = (&mut auth, req.token.as_ref()) {
            m.insert("client_token".into(), json!(self.audit.hash(t)));
        }
        let entry = json!({
            "time": rfc3339_nanos(now_nanos()),
            "type": "response",
            "auth": auth,
            "request": {
                "id": req.id,
                "operation": req.op.as_str(),
                "mount_point": mount_point,
                "mount_type": mount_type,
                "namespace": {"id": "root"},
                "path": req.path,
                "remote_address": req.remote.map(|r| r.ip().to_string()),
            },
            "response": Value::Object(resp),
            "error": error,
        });
        self.audit.log(&entry).await.map_err(audit_failure)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
