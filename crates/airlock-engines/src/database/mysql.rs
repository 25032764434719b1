//! The MySQL/MariaDB plugin (`mysql-database-plugin`, `mysql-legacy-database-plugin`), over
//! the small wire-protocol client in `mysql_client`. MySQL DDL commits as it goes, so a failed
//! creation is undone explicitly (the role's rollback statements, or `DROP USER`).

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::mysql_client::{MySql, Outcome};
use super::plugin::{render, var, Plugin, Vars};
use super::tls::TlsOptions;
use super::{DbConfig, Role};

pub struct MySqlPlugin;

/// Where a MySQL DSN (`user:pass@tcp(host:port)/db`) points, after templating.
fn mysql_target(c: &DbConfig) -> Result<(String, u16, String, Zeroizing<String>), String> {
    let dsn = Zeroizing::new(
        c.connection_url
            .replace("{{username}}", &c.username)
            .replace("{{password}}", &c.password),
    );
    let (userinfo, rest) = match dsn.rfind("@tcp(") {
        Some(i) => (dsn.get(..i).unwrap_or(""), dsn.get(i + 1..).unwrap_or("")),
        None => ("", dsn.as_str()),
    };
    let inner = rest
        .strip_prefix("tcp(")
        .and_then(|r| r.split_once(')'))
        .map(|(a, _)| a)
        .ok_or("connection_url must look like {{username}}:{{password}}@tcp(host:port)/")?;
    let (host, port) = match inner.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse().map_err(|_| "invalid port in connection_url")?,
        ),
        None => (inner.to_string(), 3306),
    };
    let (user, pass) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (userinfo.to_string(), String::new()),
    };
    let user = if user.is_empty() {
        c.username.clone()
    } else {
        user
    };
    Ok((host, port, user, Zeroizing::new(pass)))
}

/// The TLS a MySQL config asks for: the DSN's `tls=` parameter (Go driver values) and
/// Vault's `tls_ca`, `tls_certificate_key` (either turns TLS on), `tls_server_name`,
/// `tls_skip_verify`. `None`: plain TCP. Anything not implemented is an error, so a config
/// that asks for TLS never runs in plaintext.
pub(super) fn mysql_tls(c: &DbConfig) -> Result<Option<TlsOptions>, String> {
    let dsn = c.connection_url.as_str();
    let query = dsn
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("");
    let mut tls = None::<bool>;
    let mut skip = c.tls_skip_verify;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "tls" => match v {
                "true" | "1" => tls = Some(true),
                "false" | "0" => tls = Some(false),
                "skip-verify" => {
                    tls = Some(true);
                    skip = true;
                }
                "preferred" => {
                    return Err("tls=preferred (TLS when the server offers it, else plaintext) is not supported: use tls=true".into())
                }
                _ => {
                    return Err("tls=<custom config name> is not supported: use tls=true with tls_ca (and tls_certificate_key)".into())
                }
            },
            "allowFallbackToPlaintext" | "serverPubKey" | "allowCleartextPasswords"
            | "allowOldPasswords" | "allowNativePasswords" => {
                return Err(format!(
                    "the DSN parameter {k} is not supported (TLS or authentication options are never ignored)"
                ))
            }
            _ => {}
        }
    }
    let by_fields = !c.tls_ca.trim().is_empty() || !c.tls_certificate_key.trim().is_empty();
    let on = match tls {
        Some(false) if by_fields => {
            return Err("tls=false contradicts tls_ca / tls_certificate_key".into())
        }
        Some(v) => v,
        None => by_fields || c.tls_skip_verify,
    };
    if !on {
        if !c.tls_server_name.is_empty() {
            return Err("tls_server_name needs TLS (tls=true in the DSN, or tls_ca)".into());
        }
        return Ok(None);
    }
    Ok(Some(TlsOptions {
        ca_pem: c.tls_ca.clone(),
        client_pem: c.tls_certificate_key.clone(),
        server_name: c.tls_server_name.clone(),
        skip_verify: skip,
    }))
}

async fn mysql_conn(c: &DbConfig) -> Result<MySql, String> {
    let (host, port, user, pass) = mysql_target(c)?;
    let tls = mysql_tls(c)?;
    MySql::connect(&host, port, &user, &pass, tls.as_ref()).await
}

/// MySQL user names are limited to 32 characters.
fn short_username(display: &str, role: &str) -> String {
    let short = |x: &str, n: usize| -> String {
        x.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(n)
            .collect()
    };
    format!(
        "v-{}-{}-{}",
        short(display, 4),
        short(role, 4),
        airlock_logical::util::random_base62(20)
    )
}

#[async_trait]
impl Plugin for MySqlPlugin {
    fn names(&self) -> &'static [&'static str] {
        &["mysql-database-plugin", "mysql-legacy-database-plugin"]
    }

    fn default_username(&self, display: &str, role: &str, _now: i64) -> String {
        short_username(display, role)
    }

    fn check_config(&self, c: &DbConfig) -> Result<(), String> {
        if c.tls || !c.ca_cert.is_empty() || c.insecure_tls {
            return Err("tls, ca_cert and insecure_tls are Redis options: for MySQL use tls=true in the DSN, tls_ca, tls_certificate_key, tls_server_name or tls_skip_verify".into());
        }
        let tls = mysql_tls(c)?;
        if let Some(o) = &tls {
            super::tls::client_config(o)?;
        }
        Ok(())
    }

    async fn verify(&self, c: &DbConfig) -> Result<(), String> {
        let mut m = mysql_conn(c).await?;
        m.query("SELECT 1").await.map(|_| ())
    }

    async fn create_user(
        &self,
        _conn: &str,
        c: &DbConfig,
        role: &Role,
        vars: &Vars<'_>,
    ) -> Result<(), String> {
        let username = var(vars, "name");
        let stmts = render(&role.creation_statements, vars);
        let mut my = mysql_conn(c).await?;
        for q in &stmts {
            if let Err(e) = my.query(q).await {
                // MySQL DDL commits as it goes: undo explicitly.
                let rb = render(&role.rollback_statements, vars);
                let rb = if rb.is_empty() {
                    vec![format!(
                        "DROP USER IF EXISTS '{}'@'%'",
                        username.replace('\'', "''")
                    )]
                } else {
                    rb
                };
                for q in rb {
                    let _ = my.query(&q).await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn revoke_user(
        &self,
        _conn: &str,
        c: &DbConfig,
        username: &str,
        custom: &[String],
    ) -> Result<(), String> {
        let stmts = if custom.is_empty() {
            vec![format!(
                "DROP USER IF EXISTS '{}'@'%'",
                username.replace('\'', "''")
            )]
        } else {
            render(custom, &[("name", username), ("username", username)])
        };
        let mut my = mysql_conn(c).await?;
        // End the user's open sessions too: dropping a MySQL user does not.
        let lit = username.replace('\\', "\\\\").replace('\'', "''");
        if let Ok(Outcome::Rows(rows)) = my
            .query(&format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{lit}'"
            ))
            .await
        {
            for id in rows
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
            {
                if id.bytes().all(|b| b.is_ascii_digit()) {
                    let _ = my.query(&format!("KILL CONNECTION {id}")).await;
                }
            }
        }
        for q in stmts {
            my.query(&q).await?;
        }
        Ok(())
    }

    async fn set_password(
        &self,
        _conn: &str,
        c: &DbConfig,
        username: &str,
        password: &str,
        custom: &[String],
    ) -> Result<(), String> {
        let vars = [
            ("name", username),
            ("username", username),
            ("password", password),
        ];
        let stmts = if custom.is_empty() {
            vec![format!(
                "ALTER USER '{}'@'%' IDENTIFIED BY '{}'",
                username.replace('\'', "''"),
                password.replace('\'', "''")
            )]
        } else {
            render(custom, &vars)
        };
        let mut my = mysql_conn(c).await?;
        for q in stmts {
            my.query(&q).await?;
        }
        Ok(())
    }
}
