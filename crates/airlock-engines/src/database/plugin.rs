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

    /// Checks a config before it is stored: options this plugin does not implement (TLS
    /// ones above all) are refused rather than ignored.
    fn check_config(&self, c: &DbConfig) -> Result<(), String> {
        let _ = c;
        Ok(())
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

/// Every variable a statement may use.
pub const STATEMENT_VARS: [&str; 4] = ["name", "username", "password", "expiration"];

/// Fills `{{var}}` (whitespace inside the braces allowed: `{{ name }}`) in one pass, so a
/// value that itself holds braces is never expanded again. An unknown or unclosed `{{` is
/// left as it is; [`check_statement`] refuses such statements when a role is written.
fn fill(t: &str, vars: &Vars<'_>) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = after[..j].trim();
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[i..i + 2 + j + 2]),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

/// Refuses a statement that would still hold `{{` once its variables are filled: an
/// unknown variable or an unclosed brace would otherwise reach the database literally (a
/// role named `{{ nme }}`). The error names the variable only when it looks like one.
pub fn check_statement(stmt: &str) -> Result<(), String> {
    let empty: Vec<(&str, &str)> = STATEMENT_VARS.iter().map(|k| (*k, "")).collect();
    let filled = fill(stmt, &empty);
    let Some(i) = filled.find("{{") else {
        return Ok(());
    };
    let known = STATEMENT_VARS.map(|v| format!("{{{{{v}}}}}")).join(", ");
    let inner = filled[i + 2..].split("}}").next().unwrap_or("").trim();
    if filled[i + 2..].contains("}}")
        && !inner.is_empty()
        && inner.len() <= 32
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        Err(format!(
            "unknown template variable {{{{{inner}}}}}; statements may use {known}"
        ))
    } else {
        Err(format!(
            "a template is malformed (\"{{{{\" without a variable name and \"}}}}\"); statements may use {known}"
        ))
    }
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
            out.push(fill(t, vars));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_inside_braces_is_accepted() {
        let vars = [("name", "v-app-1"), ("password", "p{{name}}w")];
        assert_eq!(
            render(
                &[
                    r#"CREATE ROLE "{{ name }}" PASSWORD '{{password}}'; GRANT x TO "{{name }}""#
                        .into()
                ],
                &vars
            ),
            [
                r#"CREATE ROLE "v-app-1" PASSWORD 'p{{name}}w'"#,
                r#"GRANT x TO "v-app-1""#
            ]
        );
        assert_eq!(fill("{{\tname\n}}", &vars), "v-app-1");
    }

    #[test]
    fn statements_that_would_keep_braces_are_refused() {
        for ok in [
            "CREATE ROLE \"{{name}}\"",
            "CREATE ROLE \"{{ name }}\" VALID UNTIL '{{ expiration }}'",
            "SELECT 1",
        ] {
            assert_eq!(check_statement(ok), Ok(()), "{ok}");
        }
        let e = check_statement("CREATE ROLE \"{{ nme }}\"").unwrap_err();
        assert!(e.contains("{{nme}}") && e.contains("{{username}}"), "{e}");
        for bad in [
            "CREATE ROLE \"{{name\"",
            "x {{}} y",
            "{{ a b }}",
            "{{{{name}}",
        ] {
            assert!(check_statement(bad).is_err(), "{bad}");
        }
        // A long unknown "variable" is not quoted back.
        let e = check_statement(&format!("{{{{{}}}}}", "s".repeat(40))).unwrap_err();
        assert!(!e.contains("sssss"), "{e}");
    }
}
