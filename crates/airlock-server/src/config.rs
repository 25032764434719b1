//! Server configuration: parsed once (from TOML by the binary, or built for `--dev`) into this
//! validated struct and passed explicitly.

use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;
/// Vault's system default and maximum lease TTL: 768h.
pub const SYSTEM_MAX_TTL: i64 = 768 * 3600;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listener: ListenerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub seal: SealFileConfig,
    #[serde(default)]
    pub audit: Vec<AuditDeviceConfig>,
    /// Default TTL of tokens and leases, seconds (768h when unset).
    #[serde(default)]
    pub default_lease_ttl: Option<i64>,
    /// Maximum TTL of tokens and leases, seconds (768h when unset).
    #[serde(default)]
    pub max_lease_ttl: Option<i64>,
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// The address clients reach this node at, as the other nodes report it
    /// (`sys/leader`, `sys/ha-status`); default: the listener's address.
    #[serde(default)]
    pub api_addr: Option<String>,
    /// Reported as the node's cluster address (nodes do not talk to each other: they share
    /// the database); default: the API address.
    #[serde(default)]
    pub cluster_addr: Option<String>,
    /// Serve `sys/metrics` without a token.
    #[serde(default)]
    pub unauthenticated_metrics_access: bool,
    /// Login rate limits (per auth mount, role or user, and client address).
    #[serde(default)]
    pub auth: AuthLimits,
    /// The event log's retention.
    #[serde(default)]
    pub events: EventsConfig,
    /// Set by `--dev`: in-memory store, initialised and unsealed at start.
    #[serde(skip)]
    pub dev: Option<DevConfig>,
}

/// `[auth]`: login attempts are limited per (auth mount, role or user, client address).
/// Every attempt takes from `login_rate`/`login_burst`; failed ones also from
/// `failed_login_rate`/`failed_login_burst`, so guessing stops long before normal use would.
/// A rate of 0 turns that limit off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLimits {
    #[serde(default = "default_login_rate")]
    pub login_rate: f64,
    #[serde(default = "default_login_burst")]
    pub login_burst: f64,
    #[serde(default = "default_failed_rate")]
    pub failed_login_rate: f64,
    #[serde(default = "default_failed_burst")]
    pub failed_login_burst: f64,
}

fn default_login_rate() -> f64 {
    2000.0
}
fn default_login_burst() -> f64 {
    4000.0
}
fn default_failed_rate() -> f64 {
    1.0
}
fn default_failed_burst() -> f64 {
    20.0
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            login_rate: default_login_rate(),
            login_burst: default_login_burst(),
            failed_login_rate: default_failed_rate(),
            failed_login_burst: default_failed_burst(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DevConfig {
    /// The root token to create (random when `None`).
    pub root_token: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    #[serde(default = "default_address")]
    pub address: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    #[serde(default = "default_max_request_size")]
    pub max_request_size: usize,
    /// Body limit of requests that are not (yet) authenticated: `sys/init`, `sys/unseal`,
    /// logins, `sys/wrapping/*`, and any request whose token is not valid. A larger body is
    /// read only once its token is known to be valid.
    #[serde(default = "default_max_unauthenticated_request_size")]
    pub max_unauthenticated_request_size: usize,
    /// Open connections, overall (kept below the process's open-file limit) and per client
    /// address; 0 is no cap. Behind a proxy or load balancer every connection comes from its
    /// address: raise `max_connections_per_address` there.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A connection with no request in flight that moves no byte for this long is closed
    /// (an HTTP/1.1 keep-alive connection waits for its next request's headers at most
    /// `http_read_header_timeout`).
    #[serde(default = "default_idle_timeout", deserialize_with = "de_secs")]
    pub http_idle_timeout: u64,
    /// Time to read a request's headers; also how long a new connection may wait before
    /// sending its first request, and an HTTP/1.1 keep-alive connection its next one.
    #[serde(default = "default_header_timeout", deserialize_with = "de_secs")]
    pub http_read_header_timeout: u64,
    /// A request body must arrive within this time plus one second per
    /// `http_read_min_rate` bytes.
    #[serde(default = "default_read_timeout", deserialize_with = "de_secs")]
    pub http_read_timeout: u64,
    #[serde(default = "default_read_min_rate")]
    pub http_read_min_rate: u64,
}

/// A duration as seconds or a Go duration string (`"30s"`, `"5m"`).
fn de_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Secs {
        N(u64),
        S(String),
    }
    match Secs::deserialize(d)? {
        Secs::N(n) => Ok(n),
        Secs::S(s) => airlock_core::duration::parse_duration(&s)
            .map_err(|_| serde::de::Error::custom("not a duration (e.g. \"30s\" or 30)")),
    }
}

fn default_max_unauthenticated_request_size() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_address() -> usize {
    256
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_header_timeout() -> u64 {
    10
}
fn default_read_timeout() -> u64 {
    10
}
fn default_read_min_rate() -> u64 {
    1024
}

fn default_address() -> String {
    "127.0.0.1:8200".into()
}
fn default_max_request_size() -> usize {
    DEFAULT_MAX_REQUEST_SIZE
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            tls_cert_file: None,
            tls_key_file: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_unauthenticated_request_size: default_max_unauthenticated_request_size(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            http_idle_timeout: default_idle_timeout(),
            http_read_header_timeout: default_header_timeout(),
            http_read_timeout: default_read_timeout(),
            http_read_min_rate: default_read_min_rate(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite` (embedded default) or `postgresql`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// PostgreSQL connection string (`host=... user=... dbname=...` or a `postgresql://` URL).
    /// `AIRLOCK_PG_CONNECTION_URL` in the environment wins over it.
    pub connection_url: Option<String>,
    /// A file holding the connection string (a mounted Kubernetes Secret), read at start
    /// when `connection_url` is not given.
    pub connection_url_file: Option<PathBuf>,
    /// PostgreSQL table (created if missing).
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// `normal` (survives a process crash) or `full` (fsync per commit; survives power loss).
    #[serde(default = "default_sync")]
    pub sync: String,
}

fn default_backend() -> String {
    "sqlite".into()
}
fn default_table() -> String {
    "airlock_store".into()
}
fn default_path() -> PathBuf {
    PathBuf::from("airlock-data/airlock.db")
}
fn default_sync() -> String {
    "normal".into()
}

/// The connection URL may carry a password: never formatted.
impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("backend", &self.backend)
            .field(
                "connection_url",
                &self.connection_url.as_ref().map(|_| "***"),
            )
            .field("connection_url_file", &self.connection_url_file)
            .field("table", &self.table)
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish()
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: default_backend(),
            connection_url: None,
            connection_url_file: None,
            table: default_table(),
            path: default_path(),
            sync: default_sync(),
        }
    }
}

/// `[events]`: how long the event log keeps events: the smaller of a count and an age.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Seconds (default 24 h).
    #[serde(default = "default_events_max_age")]
    pub max_age: i64,
}

fn default_max_events() -> u64 {
    100_000
}
fn default_events_max_age() -> i64 {
    24 * 3600
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_events: default_max_events(),
            max_age: default_events_max_age(),
        }
    }
}

/// Auto-unseal source. With nothing set, the Shamir seal is used.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealFileConfig {
    /// `shamir`, `keyfile` (implied by key_file/key_env) or `transit`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// File holding a 32-byte key as 64 hex characters or base64.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key.
    pub key_env: Option<String>,
    /// Transit seal: the server holding the key (`https://vault.internal:8200`).
    pub address: Option<String>,
    /// Transit seal: a token allowed to use the key (or `token_file`, or
    /// `AIRLOCK_TRANSIT_SEAL_TOKEN`).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Transit seal: the key's name and the engine's mount (default `transit`).
    pub key_name: Option<String>,
    pub mount_path: Option<String>,
    /// Transit seal: a PEM bundle to trust for an `https` address.
    pub tls_ca_cert: Option<PathBuf>,
}

/// The transit token is never formatted.
impl std::fmt::Debug for SealFileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealFileConfig")
            .field("type", &self.kind)
            .field("key_file", &self.key_file)
            .field("key_env", &self.key_env)
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("key_name", &self.key_name)
            .field("mount_path", &self.mount_path)
            .field("tls_ca_cert", &self.tls_ca_cert)
            .finish()
    }
}

impl SealFileConfig {
    /// Whether this is the transit seal.
    pub fn is_transit(&self) -> bool {
        self.kind.as_deref() == Some("transit")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDeviceConfig {
    #[serde(default = "default_audit_name")]
    pub name: String,
    /// Only `file`.
    #[serde(rename = "type", default = "default_audit_type")]
    pub kind: String,
    pub path: PathBuf,
    #[serde(default)]
    pub fsync: bool,
    /// Keep a query index beside the log (`<path>.index`) for `sys/airlock/audit/query`
    /// and the web UI's audit page (default on).
    #[serde(default = "default_true")]
    pub index: bool,
}

fn default_true() -> bool {
    true
}

fn default_audit_name() -> String {
    "file".into()
}
fn default_audit_type() -> String {
    "file".into()
}

impl Config {
    pub fn dev(root_token: Option<String>) -> Self {
        Self {
            listener: ListenerConfig::default(),
            storage: StorageConfig::default(),
            seal: SealFileConfig::default(),
            audit: Vec::new(),
            default_lease_ttl: None,
            max_lease_ttl: None,
            cluster_name: None,
            api_addr: None,
            cluster_addr: None,
            unauthenticated_metrics_access: false,
            auth: AuthLimits::default(),
            events: EventsConfig::default(),
            dev: Some(DevConfig { root_token }),
        }
    }

    /// Checks what serde cannot. Errors name the setting.
    /// What the environment gives, as Vault's `VAULT_API_ADDR`, `VAULT_CLUSTER_ADDR` and
    /// `VAULT_PG_CONNECTION_URL` do: `AIRLOCK_API_ADDR`, `AIRLOCK_CLUSTER_ADDR` and
    /// `AIRLOCK_PG_CONNECTION_URL` win over the file; then `connection_url_file` is read
    /// when no connection string is set. `get` reads a variable (the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(a) = set(get("AIRLOCK_API_ADDR")) {
            self.api_addr = Some(a);
        }
        if let Some(a) = set(get("AIRLOCK_CLUSTER_ADDR")) {
            self.cluster_addr = Some(a);
        }
        if let Some(u) = set(get("AIRLOCK_PG_CONNECTION_URL")) {
            self.storage.connection_url = Some(u);
        }
        if self.storage.connection_url.is_none() {
            if let Some(f) = &self.storage.connection_url_file {
                let text = std::fs::read(f)
                    .map_err(|e| format!("storage.connection_url_file {}: {e}", f.display()))?;
                // Never quote the content: it holds a password.
                let text = String::from_utf8(text).map_err(|_| {
                    format!("storage.connection_url_file {}: not UTF-8", f.display())
                })?;
                let url = text.trim_end_matches(['\n', '\r']);
                if url.is_empty() || url.chars().any(char::is_control) {
                    return Err(format!(
                        "storage.connection_url_file {}: empty, or holds a line break or another control character",
                        f.display()
                    ));
                }
                self.storage.connection_url = Some(url.to_string());
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            ("auth.login_rate", self.auth.login_rate),
            ("auth.login_burst", self.auth.login_burst),
            ("auth.failed_login_rate", self.auth.failed_login_rate),
            ("auth.failed_login_burst", self.auth.failed_login_burst),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{k}: must be a number >= 0"));
            }
        }
        match self.storage.backend.as_str() {
            "sqlite" => {}
            "postgresql" if self.storage.connection_url.is_none() => {
                return Err("storage.connection_url: required for the postgresql backend".into())
            }
            "postgresql" => {}
            other => {
                return Err(format!(
                    "storage.backend: unknown backend \"{other}\" (supported: sqlite, postgresql)"
                ))
            }
        }
        if !matches!(self.storage.sync.as_str(), "normal" | "full") {
            return Err(format!(
                "storage.sync: must be \"normal\" or \"full\", not \"{}\"",
                self.storage.sync
            ));
        }
        if self.listener.tls_cert_file.is_some() != self.listener.tls_key_file.is_some() {
            return Err("listener: tls_cert_file and tls_key_file must be set together".into());
        }
        if self.listener.max_request_size == 0 {
            return Err("listener.max_request_size: must be positive".into());
        }
        let l = &self.listener;
        if l.max_unauthenticated_request_size == 0
            || l.max_unauthenticated_request_size > l.max_request_size
        {
            return Err(
                "listener.max_unauthenticated_request_size: must be positive and at most max_request_size"
                    .into(),
            );
        }
        if l.http_idle_timeout == 0 || l.http_read_header_timeout == 0 || l.http_read_timeout == 0 {
            return Err("listener: http_idle_timeout, http_read_header_timeout and http_read_timeout must be positive".into());
        }
        if l.http_read_min_rate == 0 {
            return Err("listener.http_read_min_rate: must be positive (bytes per second)".into());
        }
        match self.seal.kind.as_deref() {
            None | Some("shamir") | Some("keyfile") | Some("transit") => {}
            Some(o) => {
                return Err(format!(
                    "seal.type: unknown seal {o:?} (shamir, keyfile, transit)"
                ))
            }
        }
        let transit_fields = self.seal.address.is_some()
            || self.seal.key_name.is_some()
            || self.seal.token.is_some()
            || self.seal.token_file.is_some();
        if self.seal.is_transit() && (self.seal.key_file.is_some() || self.seal.key_env.is_some()) {
            return Err("seal: type \"transit\" takes no key_file or key_env".into());
        }
        if !self.seal.is_transit() && transit_fields {
            return Err("seal: address, token and key_name are for type = \"transit\"".into());
        }
        if self.seal.key_file.is_some() && self.seal.key_env.is_some() {
            return Err("seal: set key_file or key_env, not both".into());
        }
        for a in &self.audit {
            if a.kind != "file" {
                return Err(format!("audit \"{}\": unknown type \"{}\"", a.name, a.kind));
            }
        }
        for (name, v) in [
            ("default_lease_ttl", self.default_lease_ttl),
            ("max_lease_ttl", self.max_lease_ttl),
        ] {
            if let Some(v) = v {
                if v <= 0 {
                    return Err(format!("{name}: must be positive seconds"));
                }
            }
        }
        Ok(())
    }

    pub fn max_ttl(&self) -> i64 {
        self.max_lease_ttl.unwrap_or(SYSTEM_MAX_TTL)
    }

    pub fn default_ttl(&self) -> i64 {
        self.default_lease_ttl
            .unwrap_or(SYSTEM_MAX_TTL)
            .min(self.max_ttl())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_and_a_url_file_fill_the_config() {
        let dir = std::env::temp_dir().join(format!("airlock-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("url");
        std::fs::write(&f, "host=db user=app password=p@ss\n").unwrap();
        let mut c = Config::dev(None);
        c.dev = None;
        c.api_addr = Some("http://file:8200".into());
        c.storage.backend = "postgresql".into();
        c.storage.connection_url_file = Some(f.clone());
        let env = |k: &str| (k == "AIRLOCK_API_ADDR").then(|| "http://pod-1:8200".to_string());
        c.apply_env(env).unwrap();
        assert_eq!(c.api_addr.as_deref(), Some("http://pod-1:8200"));
        assert_eq!(
            c.storage.connection_url.as_deref(),
            Some("host=db user=app password=p@ss")
        );
        c.validate().unwrap();
        // The environment's connection string wins over the file.
        let mut c2 = c.clone();
        c2.storage.connection_url = None;
        c2.apply_env(|k| (k == "AIRLOCK_PG_CONNECTION_URL").then(|| "host=other".into()))
            .unwrap();
        assert_eq!(c2.storage.connection_url.as_deref(), Some("host=other"));
        // A broken file is refused without quoting it.
        std::fs::write(&f, "host=db\npassword=secret-part\n").unwrap();
        let mut c3 = c.clone();
        c3.storage.connection_url = None;
        let e = c3.apply_env(|_| None).unwrap_err();
        assert!(
            e.contains("line break") && !e.contains("secret-part"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
