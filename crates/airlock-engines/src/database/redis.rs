//! The Redis plugin (`redis-database-plugin`): users are ACL users (`ACL SETUSER`), creation
//! statements are JSON lists of ACL rules, revocation is `ACL DELUSER`.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::plugin::{var, Plugin, Vars};
use super::redis_client::Redis;
use super::tls::TlsOptions;
use super::{DbConfig, Role};

pub struct RedisPlugin;

/// Vault's Redis TLS fields: `tls`, `ca_cert` (the only CA trusted when set), `insecure_tls`.
fn redis_tls(c: &DbConfig) -> Result<Option<TlsOptions>, String> {
    if !c.tls {
        if !c.ca_cert.is_empty() || c.insecure_tls {
            return Err("ca_cert and insecure_tls need tls=true".into());
        }
        return Ok(None);
    }
    Ok(Some(TlsOptions {
        ca_pem: c.ca_cert.clone(),
        skip_verify: c.insecure_tls,
        ..Default::default()
    }))
}

async fn redis_conn(c: &DbConfig) -> Result<Redis, String> {
    let tls = redis_tls(c)?;
    let mut r = Redis::connect(&c.host, c.port, tls.as_ref()).await?;
    r.auth(&c.username, &c.password).await?;
    Ok(r)
}

/// Redis creation statements are Vault's: a JSON list of ACL rules, e.g. `["~*", "+@read"]`.
fn redis_rules(stmts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in stmts {
        let v: Vec<String> = serde_json::from_str(s).map_err(|_| {
            "Redis creation statements must be a JSON list of ACL rules, e.g. [\"~*\", \"+@read\"]"
                .to_string()
        })?;
        for r in v {
            if r.starts_with('>')
                || r.starts_with('<')
                || r.starts_with('#')
                || r.starts_with('!')
                || r.eq_ignore_ascii_case("nopass")
                || r.eq_ignore_ascii_case("resetpass")
            {
                return Err("ACL rules may not set passwords; Airlock sets the password".into());
            }
            out.push(r);
        }
    }
    Ok(out)
}

#[async_trait]
impl Plugin for RedisPlugin {
    fn names(&self) -> &'static [&'static str] {
        &["redis-database-plugin"]
    }

    fn uses_host_port(&self) -> bool {
        true
    }

    fn check_config(&self, c: &DbConfig) -> Result<(), String> {
        if !c.tls_ca.is_empty()
            || !c.tls_certificate_key.is_empty()
            || !c.tls_server_name.is_empty()
            || c.tls_skip_verify
        {
            return Err("tls_ca, tls_certificate_key, tls_server_name and tls_skip_verify are MySQL options: for Redis use tls, ca_cert and insecure_tls".into());
        }
        if let Some(o) = redis_tls(c)? {
            super::tls::client_config(&o)?;
        }
        Ok(())
    }

    async fn verify(&self, c: &DbConfig) -> Result<(), String> {
        let mut r = redis_conn(c).await?;
        r.cmd(&["PING"]).await.map(|_| ())
    }

    async fn create_user(
        &self,
        _conn: &str,
        c: &DbConfig,
        role: &Role,
        vars: &Vars<'_>,
    ) -> Result<(), String> {
        let username = var(vars, "name");
        let password = var(vars, "password");
        let rules = redis_rules(&role.creation_statements)?;
        let mut r = redis_conn(c).await?;
        let pw = Zeroizing::new(format!(">{password}"));
        let mut args: Vec<&str> = vec!["ACL", "SETUSER", username, "reset", "on", pw.as_str()];
        args.extend(rules.iter().map(String::as_str));
        match r.cmd(&args).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = r.cmd(&["ACL", "DELUSER", username]).await;
                Err(e)
            }
        }
    }

    async fn revoke_user(
        &self,
        _conn: &str,
        c: &DbConfig,
        username: &str,
        _custom: &[String],
    ) -> Result<(), String> {
        let mut r = redis_conn(c).await?;
        r.cmd(&["ACL", "DELUSER", username]).await.map(|_| ())
    }

    async fn set_password(
        &self,
        _conn: &str,
        c: &DbConfig,
        username: &str,
        password: &str,
        _custom: &[String],
    ) -> Result<(), String> {
        let mut r = redis_conn(c).await?;
        let pw = Zeroizing::new(format!(">{password}"));
        r.cmd(&["ACL", "SETUSER", username, "resetpass", pw.as_str()])
            .await
            .map(|_| ())
    }
}
