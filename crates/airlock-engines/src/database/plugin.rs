//! The database plugin interface: what the engine asks of a database, whatever it is.
//!
//! The engine owns roles, TTLs, leases, passwords and usernames; a plugin only talks to its
//! database: verify a connection, create a user from the role's statements (leaving nothing
//! behind when that fails), revoke one (ending its sessions first), extend one after a lease
//! renewal, set a password (static roles, root rotation), and forget pooled connections.
//! Plugins are looked up by `plugin_name`; the engine never branches on the name.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::{DbConfig, Role};

/// Template variables of a statement: `{{name}}`, `{{username}}`, `{{password}}`,
/// `{{expiration}}`.
pub type Vars<'a> = [(&'a str, &'a str)];

#[async_trait]
pub trait Plugin: Send + Sync {
    /// Every `plugin_name` this plugin answers to (the first is its own).
    fn names(&self) -> &'static [&'static str];

    /// The connection is a `host`/`port` pair rather than a `connection_url`.
    fn uses_host_port(&self) -> bool {
        false
    }

    /// The username when the connection has no `username_template`.
    fn default_username(&self, display: &str, role: &str, now: i64) -> String {
        super::generate_username(display, role, now)
    }

    /// What `{{password}}` becomes in creation statements (PostgreSQL can take a SCRAM
    /// verifier instead of the password).
    async fn password_in_statement(
        &self,
        _c: &DbConfig,
        password: &Zeroizing<String>,
    ) -> Result<Zeroizing<String>, String> {
        Ok(password.clone())
    }

    async fn verify(&self, c: &DbConfig) -> Result<(), String>;

    /// Creates the user; on failure nothing half-created stays (rollback statements run).
    async fn create_user(
        &self,
        conn: &str,
        c: &DbConfig,
        role: &Role,
        vars: &Vars<'_>,
    ) -> Result<(), String>;

    /// Drops the user (`custom`: the role's revocation statements, if any).
    async fn revoke_user(
        &self,
        conn: &str,
        c: &DbConfig,
        username: &str,
        custom: &[String],
    ) -> Result<(), String>;

    /// Extends a user after its lease was renewed (`valid_until`: the new end).
    async fn renew_user(
        &self,
        _conn: &str,
        _c: &DbConfig,
        _role: &Role,
        _username: &str,
        _valid_until: &str,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Sets a new password for an existing user (`custom`: rotation statements, if any).
    async fn set_password(
        &self,
        conn: &str,
        c: &DbConfig,
        username: &str,
        password: &str,
        custom: &[String],
    ) -> Result<(), String>;

    /// Forgets pooled connections of a connection config (changed, reset or deleted).
    async fn reset(&self, _conn: &str) {}
}

/// Splits statements on `;` (as Vault does) and fills the templates.
pub fn render(stmts: &[String], vars: &Vars<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for s in stmts {
        for part in s.split(';') {
            let t = part.trim();
            if t.is_empty() {
                continue;
            }
            let mut q = t.to_string();
            for (k, v) in vars {
                q = q.replace(&format!("{{{{{k}}}}}"), v);
            }
            out.push(q);
        }
    }
    out
}

pub fn var<'a>(vars: &Vars<'a>, k: &str) -> &'a str {
    vars.iter()
        .find(|(x, _)| *x == k)
        .map(|(_, v)| *v)
        .unwrap_or("")
}
