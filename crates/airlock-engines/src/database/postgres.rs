//! The PostgreSQL plugin (`postgresql-database-plugin`): tokio-postgres with pooled
//! connections per connection config.
//!
//! Creation runs the role's statements in one transaction; if any fails the transaction is
//! rolled back (PostgreSQL DDL is transactional), the rollback statements run, and no
//! half-created user is left. Revocation first terminates the user's sessions, then runs the
//! revocation statements (default: reassign and drop owned objects, drop the role). With
//! `password_authentication = "scram-sha-256"` the statements get a SCRAM verifier computed
//! here instead of the password.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::plugin::{render, Plugin, Vars};
use super::{DbConfig, Role};

/// Pooled connections per connection config. Idle clients wait here; a dropped connection is
/// noticed (`is_closed`) and replaced, and one older than `max_connection_lifetime` is closed.
#[derive(Default)]
pub struct PostgresPlugin {
    idle: Mutex<HashMap<String, Vec<Pooled>>>,
}

/// A PostgreSQL connection and when it was opened.
pub struct Pooled {
    cl: tokio_postgres::Client,
    born: std::time::Instant,
}

impl std::ops::Deref for Pooled {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.cl
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.cl
    }
}

/// `{{username}}`/`{{password}}` filled in; the result is a secret.
fn connection_string(c: &DbConfig) -> Zeroizing<String> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let url = c.connection_url.trim();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (u, p) = if is_url {
        (enc(&c.username), enc(&c.password))
    } else {
        (c.username.clone(), c.password.clone())
    };
    Zeroizing::new(url.replace("{{username}}", &u).replace("{{password}}", &p))
}

async fn connect(c: &DbConfig) -> Result<tokio_postgres::Client, String> {
    let cs = connection_string(c);
    // TLS as libpq's options in the URL say (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
    let target =
        airlock_logical::pg_tls::parse(&cs).map_err(|e| format!("invalid connection_url: {e}"))?;
    let (client, conn) = target
        .connect()
        .await
        .map_err(|e| format!("error verifying connection: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A PostgreSQL error without anything the statement carried (no passwords).
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => "connection failed".into(),
    }
}

fn too_old(c: &DbConfig, p: &Pooled) -> bool {
    c.max_connection_lifetime > 0 && p.born.elapsed().as_secs() >= c.max_connection_lifetime as u64
}

impl PostgresPlugin {
    async fn checkout(&self, conn: &str, c: &DbConfig) -> Result<Pooled, String> {
        {
            let mut idle = self.idle.lock().await;
            if let Some(list) = idle.get_mut(conn) {
                while let Some(p) = list.pop() {
                    if !p.is_closed() && !too_old(c, &p) {
                        return Ok(p);
                    }
                }
            }
        }
        Ok(Pooled {
            cl: connect(c).await?,
            born: std::time::Instant::now(),
        })
    }

    async fn checkin(&self, conn: &str, c: &DbConfig, cl: Pooled) {
        if cl.is_closed() || too_old(c, &cl) {
            return;
        }
        // Idle connections kept: max_idle_connections, else max_open_connections, else 4.
        let max = match (c.max_idle_connections, c.max_open_connections) {
            (0, 0) => 4,
            (0, open) => open as usize,
            (idle, open) if open > 0 => idle.min(open) as usize,
            (idle, _) => idle as usize,
        };
        let mut idle = self.idle.lock().await;
        let list = idle.entry(conn.to_string()).or_default();
        if list.len() < max {
            list.push(cl);
        }
    }

    /// Runs statements in one pooled transaction.
    async fn run(&self, conn: &str, c: &DbConfig, stmts: &[String]) -> Result<(), String> {
        let mut cl = self.checkout(conn, c).await?;
        let r = run_tx(&mut cl, stmts).await;
        self.checkin(conn, c, cl).await;
        r
    }
}

/// Runs statements in one transaction.
async fn run_tx(cl: &mut tokio_postgres::Client, stmts: &[String]) -> Result<(), String> {
    let tx = cl.transaction().await.map_err(|e| pg_error(&e))?;
    for q in stmts {
        tx.batch_execute(q).await.map_err(|e| pg_error(&e))?;
    }
    tx.commit().await.map_err(|e| pg_error(&e))
}

/// Runs the statements as one transaction in a single round trip. `relaxed`: commit without
/// waiting for the WAL flush. Used only for *creating* short-lived users: if PostgreSQL
/// crashed right after, the new user would vanish, which is harmless. Revocations always
/// wait for a durable commit.
async fn run_tx_batched(
    cl: &mut tokio_postgres::Client,
    stmts: &[String],
    relaxed: bool,
) -> Result<(), String> {
    let mut q = String::from("BEGIN;");
    if relaxed {
        q.push_str(" SET LOCAL synchronous_commit TO OFF;");
    }
    for s in stmts {
        q.push(' ');
        q.push_str(s);
        q.push(';');
    }
    q.push_str(" COMMIT;");
    let r = cl.batch_execute(&q).await.map_err(|e| pg_error(&e));
    use zeroize::Zeroize;
    q.zeroize();
    if r.is_err() {
        // The transaction is aborted; end it so the pooled connection is usable again.
        let _ = cl.batch_execute("ROLLBACK").await;
    }
    r
}

/// A PostgreSQL SCRAM-SHA-256 verifier (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`,
/// RFC 5802/7677), which PostgreSQL stores as given instead of hashing the password itself.
/// The PostgreSQL protocol crate's implementation, as libpq does it: the password is
/// SASLprep-normalised first (RFC 4013), so a password that normalisation changes (a
/// non-ASCII space, a ligature) still logs in; a random 16-byte salt.
pub fn scram_sha256_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

async fn role_exists(cl: &tokio_postgres::Client, name: &str) -> Result<bool, String> {
    cl.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .map(|r| r.is_some())
        .map_err(|e| pg_error(&e))
}

/// The default revocation, which works for a least-privilege admin (a non-superuser with
/// CREATEROLE, PostgreSQL 15 and later) as well as for a superuser:
/// 1. `NOLOGIN`, so no new session starts;
/// 2. the admin takes membership of the user if it lacks it (what `REASSIGN OWNED` and
///    ending the user's sessions need without `pg_signal_backend`);
/// 3. the user's sessions end;
/// 4. one transaction: what the user owns goes to the admin, its privileges go, the role
///    goes.
async fn revoke_default(
    cl: &mut tokio_postgres::Client,
    username: &str,
    q: &str,
) -> Result<(), String> {
    if !role_exists(cl, username).await? {
        return Ok(());
    }
    cl.batch_execute(&format!("ALTER ROLE {q} NOLOGIN"))
        .await
        .map_err(|e| pg_error(&e))?;
    let member = cl
        .query_one(
            "SELECT pg_has_role(current_user, $1, 'USAGE')",
            &[&username],
        )
        .await
        .map_err(|e| pg_error(&e))?
        .try_get::<_, bool>(0)
        .map_err(|e| pg_error(&e))?;
    if !member {
        cl.batch_execute(&format!("GRANT {q} TO CURRENT_USER"))
            .await
            .map_err(|e| pg_error(&e))?;
    }
    cl.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
        &[&username],
    )
    .await
    .map_err(|e| pg_error(&e))?;
    run_tx(
        cl,
        &[
            format!("REASSIGN OWNED BY {q} TO CURRENT_USER"),
            format!("DROP OWNED BY {q}"),
            format!("DROP ROLE IF EXISTS {q}"),
        ],
    )
    .await
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[async_trait]
impl Plugin for PostgresPlugin {
    fn names(&self) -> &'static [&'static str] {
        &["postgresql-database-plugin"]
    }

    fn check_config(&self, c: &DbConfig) -> Result<(), String> {
        if c.tls
            || c.insecure_tls
            || !c.ca_cert.is_empty()
            || !c.tls_ca.is_empty()
            || !c.tls_certificate_key.is_empty()
            || !c.tls_server_name.is_empty()
            || c.tls_skip_verify
        {
            return Err("TLS fields (tls, ca_cert, tls_ca, ...) belong to the MySQL and Redis plugins; PostgreSQL TLS is set with sslmode in connection_url".into());
        }
        Ok(())
    }

    async fn password_in_statement(
        &self,
        c: &DbConfig,
        password: &Zeroizing<String>,
    ) -> Result<Zeroizing<String>, String> {
        if c.password_authentication != "scram-sha-256" {
            return Ok(password.clone());
        }
        // 4096 PBKDF2 rounds: computed on the blocking pool.
        let pw = password.clone();
        tokio::task::spawn_blocking(move || Zeroizing::new(scram_sha256_verifier(&pw)))
            .await
            .map_err(|e| e.to_string())
    }

    async fn verify(&self, c: &DbConfig) -> Result<(), String> {
        let cl = connect(c).await?;
        cl.simple_query("SELECT 1")
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(())
    }

    async fn create_user(
        &self,
        conn: &str,
        c: &DbConfig,
        role: &Role,
        vars: &Vars<'_>,
    ) -> Result<(), String> {
        let stmts = render(&role.creation_statements, vars);
        let mut cl = self.checkout(conn, c).await?;
        let r = run_tx_batched(&mut cl, &stmts, true).await;
        if r.is_err() {
            let rb = render(&role.rollback_statements, vars);
            if !rb.is_empty() {
                let _ = run_tx(&mut cl, &rb).await;
            }
        }
        self.checkin(conn, c, cl).await;
        r
    }

    async fn revoke_user(
        &self,
        conn: &str,
        c: &DbConfig,
        username: &str,
        custom: &[String],
    ) -> Result<(), String> {
        let q = quote_ident(username);
        let mut cl = self.checkout(conn, c).await?;
        let r = if custom.is_empty() {
            revoke_default(&mut cl, username, &q).await
        } else {
            let stmts = render(custom, &[("name", username), ("username", username)]);
            // End the user's sessions first, so it cannot keep working on an open connection.
            let _ = cl
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    &[&username],
                )
                .await;
            match role_exists(&cl, username).await {
                Ok(true) => run_tx(&mut cl, &stmts).await,
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            }
        };
        self.checkin(conn, c, cl).await;
        r
    }

    async fn renew_user(
        &self,
        conn: &str,
        c: &DbConfig,
        role: &Role,
        username: &str,
        valid_until: &str,
    ) -> Result<(), String> {
        let stmts = if role.renew_statements.is_empty() {
            // Keep VALID UNTIL in step with the lease, as Vault's default renewal does.
            vec![format!(
                "ALTER ROLE {} VALID UNTIL '{valid_until}'",
                quote_ident(username)
            )]
        } else {
            render(
                &role.renew_statements,
                &[
                    ("name", username),
                    ("username", username),
                    ("expiration", valid_until),
                ],
            )
        };
        self.run(conn, c, &stmts).await
    }

    async fn set_password(
        &self,
        conn: &str,
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
                "ALTER ROLE {} WITH PASSWORD '{}'",
                quote_ident(username),
                password.replace('\'', "''")
            )]
        } else {
            render(custom, &vars)
        };
        self.run(conn, c, &stmts).await
    }

    async fn reset(&self, conn: &str) {
        self.idle.lock().await.remove(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};

    /// StoredKey of `password` with the verifier's own salt and iterations, computed here
    /// without any normalisation.
    fn stored_key(verifier: &str, password: &str) -> (String, String) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
        let (iters, rest) = rest.split_once(':').unwrap();
        let (salt, keys) = rest.split_once('$').unwrap();
        let (stored, _) = keys.split_once(':').unwrap();
        let mut salted = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iters.parse().unwrap(),
            &b64.decode(salt).unwrap(),
            password.as_bytes(),
            &mut salted,
        );
        let mut m = Hmac::<Sha256>::new_from_slice(&salted).unwrap();
        m.update(b"Client Key");
        let mine = b64.encode(Sha256::digest(m.finalize().into_bytes()));
        (stored.to_string(), mine)
    }

    #[test]
    fn scram_verifiers_are_saslprep_normalised() {
        let v = scram_sha256_verifier("plain-Password1");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        let (stored, mine) = stored_key(&v, "plain-Password1");
        assert_eq!(stored, mine);
        // A no-break space maps to a space, a ligature to its letters, a soft hyphen to
        // nothing (RFC 4013): the verifier is that of the normalised password, which is what
        // libpq sends when the user types the original.
        let v = scram_sha256_verifier("a\u{00A0}\u{FB01}x\u{00AD}y");
        let (stored, raw) = stored_key(&v, "a\u{00A0}\u{FB01}x\u{00AD}y");
        assert_ne!(stored, raw);
        let (stored, normalised) = stored_key(&v, "a fixy");
        assert_eq!(stored, normalised);
        // Two verifiers of one password differ (random salt).
        assert_ne!(scram_sha256_verifier("p"), scram_sha256_verifier("p"));
    }
}
