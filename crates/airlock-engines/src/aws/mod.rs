//! The `aws` secrets engine (Vault's paths and answers): AWS credentials on demand.
//!
//! - `config/root`: the IAM credentials the engine calls AWS with, the region, custom IAM and
//!   STS endpoints and `max_retries`; the secret key is never read back.
//!   `config/rotate-root` replaces that access key with a new one only Airlock knows.
//!   `config/lease`: the lease (and maximum) of `iam_user` credentials.
//! - `roles/<name>`: what a credential is — `iam_user` (a new IAM user with managed and
//!   inline policies, groups, tags, a path and a permissions boundary), `assumed_role`
//!   (`sts:AssumeRole`), `federation_token` (`sts:GetFederationToken`) or `session_token`
//!   (`sts:GetSessionToken`).
//! - `creds/<name>` and `sts/<name>` (GET, or POST with `role_arn`, `ttl`): the credential.
//!   An IAM user lives under a renewable lease and is removed entirely when it ends (keys,
//!   policies, groups, the user); a failed removal is an error, so the lease manager keeps
//!   the lease and tries again with backoff. STS credentials get a lease as long as they
//!   live, which revokes nothing: AWS cannot cut them short (as in Vault).
//!
//! Storage in the mount's view: `config/root` (secret key encrypted like every value),
//! `config/lease`, `role/<name>`. Requests are signed by [`sigv4`] and sent by [`client`].

mod client;
mod creds;
pub use airlock_core::sigv4;

use airlock_logical::{
    ApiError, ApiResult, Ctx, Engine, Field, LeaseInfo, Op, PathSpec, Request, Response,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// `config/root`.
#[derive(Clone, Default, Serialize, Deserialize)]
struct RootConfig {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub iam_endpoint: String,
    pub sts_endpoint: String,
    /// -1: the AWS SDKs' default.
    pub max_retries: i64,
}

impl Drop for RootConfig {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_key.zeroize();
    }
}

impl RootConfig {
    fn region(&self) -> &str {
        if self.region.is_empty() {
            "us-east-1"
        } else {
            &self.region
        }
    }

    fn keys(&self) -> client::Keys<'_> {
        client::Keys {
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            session_token: None,
        }
    }

    fn iam(&self) -> client::Service {
        client::Service {
            name: "iam",
            version: "2010-05-08",
            url: if self.iam_endpoint.is_empty() {
                "https://iam.amazonaws.com/".into()
            } else {
                self.iam_endpoint.clone()
            },
            region: self.region().to_string(),
            max_retries: self.max_retries,
        }
    }

    fn sts(&self) -> client::Service {
        client::Service {
            name: "sts",
            version: "2011-06-15",
            url: if self.sts_endpoint.is_empty() {
                format!("https://sts.{}.amazonaws.com/", self.region())
            } else {
                self.sts_endpoint.clone()
            },
            region: self.region().to_string(),
            max_retries: self.max_retries,
        }
    }
}

/// `config/lease` (seconds; 0: the mount's TTLs).
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct LeaseConfig {
    lease: i64,
    lease_max: i64,
}

/// The credential types a role may name.
const IAM_USER: &str = "iam_user";
const ASSUMED_ROLE: &str = "assumed_role";
const FEDERATION_TOKEN: &str = "federation_token";
const SESSION_TOKEN: &str = "session_token";
const CREDENTIAL_TYPES: &[&str] = &[IAM_USER, ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN];

/// `role/<name>`.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Role {
    pub credential_type: String,
    pub policy_arns: Vec<String>,
    pub role_arns: Vec<String>,
    /// Compacted JSON.
    pub policy_document: String,
    pub iam_groups: Vec<String>,
    pub iam_tags: std::collections::BTreeMap<String, String>,
    pub default_sts_ttl: i64,
    pub max_sts_ttl: i64,
    pub user_path: String,
    pub permissions_boundary_arn: String,
}

/// The AWS engine. Stateless: every call reads its config (so a fixed config takes effect at
/// once, on every node, for retried revocations too).
#[derive(Default)]
pub struct Aws;

#[derive(Clone, Copy)]
pub enum H {
    RootRead,
    RootWrite,
    RotateRoot,
    LeaseRead,
    LeaseWrite,
    RoleList,
    RoleRead,
    RoleWrite,
    RoleDelete,
    Creds,
}

const ROOT_FIELDS: &[Field] = &[
    Field::str("access_key").help("Access key with permission to create IAM users and keys."),
    Field::str("secret_key")
        .sensitive()
        .help("Its secret key (never returned)."),
    Field::str("region").help("Region for API calls (default us-east-1)."),
    Field::str("iam_endpoint").help("A custom IAM endpoint URL."),
    Field::str("sts_endpoint").help("A custom STS endpoint URL."),
    Field::int("max_retries")
        .default("-1")
        .help("Retries of throttled or failed AWS calls (-1: the SDK default, 3)."),
    Field::str("username_template").help("Not supported: refused when set."),
];
const LEASE_FIELDS: &[Field] = &[
    Field::duration("lease").help("Lease of IAM user credentials."),
    Field::duration("lease_max").help("Maximum lease of IAM user credentials."),
];
const ROLE_FIELDS: &[Field] = &[
    Field::str("credential_type")
        .help("iam_user, assumed_role, federation_token or session_token."),
    Field::list("policy_arns").help("Managed policies: attached to the user, or STS filters."),
    Field::list("role_arns").help("Roles assumed_role credentials may assume."),
    Field::str("policy_document").help("An IAM policy (JSON): inline policy, or STS filter."),
    Field::list("iam_groups").help("Groups the IAM user is added to."),
    Field::new("iam_tags", airlock_logical::FieldKind::KvPairs).help("Tags of the IAM user."),
    Field::duration("default_sts_ttl"),
    Field::duration("max_sts_ttl"),
    Field::str("user_path").help("Path of the IAM user (default /)."),
    Field::str("permissions_boundary_arn"),
];
const CREDS_FIELDS: &[Field] = &[
    Field::str("role_arn").help("The role to assume, when the role lists several."),
    Field::duration("ttl").help("Lifetime of STS credentials (default: the role's, or 1h)."),
    Field::str("role_session_name").help("Session name for assumed_role (default generated)."),
    Field::str("region").help("Accepted for compatibility; the configured region is used."),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new(
        "config/root",
        &[(Op::Read, H::RootRead), (Op::Update, H::RootWrite)],
    )
    .fields(&[ROOT_FIELDS])
    .help(
        "The credentials Airlock calls AWS with; the secret key is never returned.",
        "",
    ),
    PathSpec::new("config/rotate-root", &[(Op::Update, H::RotateRoot)]).help(
        "Replaces the root access key with a new one only Airlock knows.",
        "",
    ),
    PathSpec::new(
        "config/lease",
        &[(Op::Read, H::LeaseRead), (Op::Update, H::LeaseWrite)],
    )
    .fields(&[LEASE_FIELDS])
    .help("Lease and maximum lease of IAM user credentials.", ""),
    PathSpec::new("roles/?", &[(Op::List, H::RoleList)]).help("Roles.", ""),
    PathSpec::new(
        "roles/{name}",
        &[
            (Op::Read, H::RoleRead),
            (Op::Update, H::RoleWrite),
            (Op::Delete, H::RoleDelete),
        ],
    )
    .fields(&[ROLE_FIELDS])
    .existence()
    .help(
        "A role: which AWS credential it issues, with which policies.",
        "",
    ),
    PathSpec::new(
        "creds/{name}",
        &[(Op::Read, H::Creds), (Op::Update, H::Creds)],
    )
    .fields(&[CREDS_FIELDS])
    .help("Issues a credential of the role.", ""),
    PathSpec::new(
        "sts/{name}",
        &[(Op::Read, H::Creds), (Op::Update, H::Creds)],
    )
    .fields(&[CREDS_FIELDS])
    .help("Issues STS credentials of the role.", ""),
];

/// A role name: letters, digits, `_ - . @` (Vault's generic name with `@`).
fn valid_name(n: &str) -> ApiResult<&str> {
    if n.is_empty()
        || n.len() > 128
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
    {
        return Err(ApiError::bad_request(format!("invalid role name {n:?}")));
    }
    Ok(n)
}

async fn load_root(ctx: &Ctx) -> ApiResult<RootConfig> {
    Ok(ctx
        .storage
        .get_json::<RootConfig>("config/root")
        .await?
        .unwrap_or_else(|| {
            let mut c = RootConfig::default();
            c.max_retries = -1;
            c
        }))
}

async fn load_lease(ctx: &Ctx) -> ApiResult<LeaseConfig> {
    Ok(ctx
        .storage
        .get_json("config/lease")
        .await?
        .unwrap_or_default())
}

async fn load_role(ctx: &Ctx, name: &str) -> ApiResult<Option<Role>> {
    ctx.storage.get_json(&format!("role/{name}")).await
}

fn check_endpoint(field: &str, url: &str) -> ApiResult<()> {
    if url.is_empty() {
        return Ok(());
    }
    crate::http_client::parse_url(url)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("invalid {field}: {e}")))
}

async fn root_write(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    if req
        .str_field("username_template")?
        .is_some_and(|t| !t.is_empty())
    {
        return Err(ApiError::bad_request(
            "username_template is not supported by Airlock's aws engine",
        ));
    }
    let old = load_root(ctx).await?;
    let pick = |k: &str, old: &str| -> ApiResult<String> {
        Ok(req.str_field(k)?.unwrap_or_else(|| old.to_string()))
    };
    let c = RootConfig {
        access_key: pick("access_key", &old.access_key)?,
        secret_key: pick("secret_key", &old.secret_key)?,
        region: pick("region", &old.region)?,
        iam_endpoint: pick("iam_endpoint", &old.iam_endpoint)?,
        sts_endpoint: pick("sts_endpoint", &old.sts_endpoint)?,
        max_retries: if req.has("max_retries")? {
            req.int_field("max_retries")?.unwrap_or(-1)
        } else {
            old.max_retries
        },
    };
    check_endpoint("iam_endpoint", &c.iam_endpoint)?;
    check_endpoint("sts_endpoint", &c.sts_endpoint)?;
    if c.max_retries < -1 {
        return Err(ApiError::bad_request("max_retries must be -1 or more"));
    }
    ctx.storage.put_json("config/root", &c).await?;
    Ok(Response::empty())
}

async fn root_read(ctx: &Ctx) -> ApiResult<Response> {
    let Some(c) = ctx.storage.get_json::<RootConfig>("config/root").await? else {
        return Err(ApiError::not_found());
    };
    Ok(Response::data(json!({
        "access_key": c.access_key,
        "region": c.region,
        "iam_endpoint": c.iam_endpoint,
        "sts_endpoint": c.sts_endpoint,
        "max_retries": c.max_retries,
        "username_template": "",
    })))
}

/// `config/rotate-root`: a new key for the configured IAM user, stored, then the old one
/// deleted (with the old key, as Vault does: a new key may take a moment to be accepted).
async fn rotate_root(ctx: &Ctx) -> ApiResult<Response> {
    let lock = ctx.storage.lock("config/root").await?;
    let mut c = load_root(ctx).await?;
    if c.access_key.is_empty() || c.secret_key.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot call config/rotate-root when either access_key or secret_key is empty",
        ));
    }
    let now = ctx.now_unix();
    let iam = c.iam();
    let aws_err =
        |what: &str, e: client::AwsError| ApiError::new(502, format!("error calling {what}: {e}"));
    let user = client::call(&c.keys(), &iam, "GetUser", &[], now)
        .await
        .map_err(|e| aws_err("GetUser", e))?;
    let user_name = client::need(&user, "UserName").map_err(|e| aws_err("GetUser", e))?;
    let created = client::call(
        &c.keys(),
        &iam,
        "CreateAccessKey",
        &[("UserName", &user_name)],
        now,
    )
    .await
    .map_err(|e| aws_err("CreateAccessKey", e))?;
    let new_id =
        client::need(&created, "AccessKeyId").map_err(|e| aws_err("CreateAccessKey", e))?;
    let new_secret =
        client::need(&created, "SecretAccessKey").map_err(|e| aws_err("CreateAccessKey", e))?;
    let old_id = std::mem::replace(&mut c.access_key, new_id.clone());
    let old_secret = zeroize::Zeroizing::new(std::mem::replace(&mut c.secret_key, new_secret));
    lock.put_json("config/root", &c).await?;
    let old_keys = client::Keys {
        access_key: &old_id,
        secret_key: &old_secret,
        session_token: None,
    };
    client::call(
        &old_keys,
        &iam,
        "DeleteAccessKey",
        &[("AccessKeyId", &old_id), ("UserName", &user_name)],
        now,
    )
    .await
    .map_err(|e| aws_err("DeleteAccessKey (the new key is stored)", e))?;
    Ok(Response::data(json!({ "access_key": new_id })))
}

async fn lease_write(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let lease = req
        .duration_field("lease")?
        .ok_or_else(|| ApiError::bad_request("'lease' is a required parameter"))?;
    let lease_max = req
        .duration_field("lease_max")?
        .ok_or_else(|| ApiError::bad_request("'lease_max' is a required parameter"))?;
    ctx.storage
        .put_json("config/lease", &LeaseConfig { lease, lease_max })
        .await?;
    Ok(Response::empty())
}

async fn lease_read(ctx: &Ctx) -> ApiResult<Response> {
    let Some(l) = ctx.storage.get_json::<LeaseConfig>("config/lease").await? else {
        return Err(ApiError::not_found());
    };
    let fmt = |s: i64| airlock_core::duration::format_go_duration(s.max(0) as u64);
    Ok(Response::data(json!({
        "lease": fmt(l.lease),
        "lease_max": fmt(l.lease_max),
    })))
}

#[async_trait]
impl Engine for Aws {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Option<bool>> {
        match h {
            H::RoleWrite => match valid_name(req.cap("name")) {
                Ok(n) => Ok(Some(ctx.storage.exists(&format!("role/{n}")).await?)),
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let name = req.cap("name");
        match h {
            H::RootRead => root_read(ctx).await,
            H::RootWrite => root_write(ctx, req).await,
            H::RotateRoot => rotate_root(ctx).await,
            H::LeaseRead => lease_read(ctx).await,
            H::LeaseWrite => lease_write(ctx, req).await,
            H::RoleList => ctx.storage.list_response("role/").await,
            H::RoleRead => creds::read_role(ctx, valid_name(name)?).await,
            H::RoleWrite => creds::write_role(ctx, valid_name(name)?, req).await,
            H::RoleDelete => {
                ctx.storage
                    .delete(&format!("role/{}", valid_name(name)?))
                    .await?;
                Ok(Response::empty())
            }
            H::Creds => {
                let sts_path = req.path.starts_with(&format!("{}sts/", ctx.mount.path));
                let lease = load_lease(ctx).await?;
                creds::issue(ctx, valid_name(name)?, req, sts_path, lease).await
            }
        }
    }

    /// Removes the IAM user behind a lease; STS credentials cannot be revoked (nothing to do).
    async fn revoke(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        creds::revoke(ctx, lease.internal).await
    }
}

#[cfg(test)]
mod tests;
