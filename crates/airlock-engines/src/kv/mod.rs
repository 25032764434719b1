//! Key/value secrets engines: KV version 1 (one map per path, this file) and version 2
//! (versioned, with metadata, soft delete, undelete, destroy, check-and-set, patch and
//! subkeys: [`v2`]). Both keep their data in the mount's storage view: v1 at the secret's
//! path, v2 at `metadata/<key>` and `versions/<sha256(key)>/<n>`, plus `config`.

mod v2;

pub use v2::merge_patch;

use airlock_logical::BarrierOp;
use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Field, Op, PathSpec, Request, Response};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// KV version 1.
pub struct KvV1;

#[derive(Clone, Copy)]
pub enum V1 {
    Read,
    Write,
    Delete,
    List,
}

/// Every path of a v1 mount is a secret; its data is free-form (any field is stored).
static V1_PATHS: &[PathSpec<V1>] = &[PathSpec::new(
    "{key*}",
    &[
        (Op::Read, V1::Read),
        (Op::Update, V1::Write),
        (Op::Delete, V1::Delete),
        (Op::List, V1::List),
    ],
)
.existence()
.help(
    "Pass-through secret storage.",
    "Stores any JSON object at the path; a `ttl` field sets the lease duration readers see.",
)];

#[async_trait]
impl Engine for KvV1 {
    type H = V1;

    fn paths(&self) -> &'static [PathSpec<V1>] {
        V1_PATHS
    }

    async fn exists(&self, ctx: &Ctx, _h: V1, req: &Request) -> ApiResult<Option<bool>> {
        let rel = req.cap("key");
        if rel.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx.storage.exists(rel).await?))
    }

    async fn call(&self, ctx: &Ctx, h: V1, req: &Request) -> ApiResult<Response> {
        let rel = req.cap("key");
        if rel.is_empty() || rel.ends_with('/') {
            if let V1::List = h {
                return ctx.storage.list_response(rel).await;
            }
            return Err(ApiError::unsupported_path());
        }
        match h {
            V1::List => ctx.storage.list_response(&format!("{rel}/")).await,
            V1::Read => {
                let Some(v) = ctx.storage.get_json::<Map<String, Value>>(rel).await? else {
                    return Err(ApiError::not_found());
                };
                let mut lease = ctx.default_lease_ttl();
                if let Some(t) = v.get("ttl").or_else(|| v.get("lease")) {
                    if let Ok(s) = airlock_core::duration::parse_duration_value(t) {
                        lease = s as i64;
                    }
                }
                let mut r = Response::data(Value::Object(v));
                r.lease_duration = lease;
                Ok(r)
            }
            V1::Write => {
                v2::validate_key(rel)?;
                if req.data.is_empty() {
                    return Err(ApiError::bad_request("missing data fields"));
                }
                // An unparsable `ttl` is stored as data; reads then use the default lease.
                let b = serde_json::to_vec(&req.data).map_err(|e| ApiError::internal(&e))?;
                ctx.storage
                    .commit(vec![
                        BarrierOp::Put(rel.to_string(), b),
                        ctx.event("kv-v1/write", rel, rel, &[("modified", "true".into())]),
                    ])
                    .await?;
                Ok(Response::empty())
            }
            V1::Delete => {
                ctx.storage
                    .commit(vec![
                        BarrierOp::Delete(rel.to_string()),
                        ctx.event("kv-v1/delete", rel, rel, &[("modified", "true".into())]),
                    ])
                    .await?;
                Ok(Response::empty())
            }
        }
    }
}

/// KV version 2.
pub struct KvV2;

#[derive(Clone, Copy)]
pub enum V2 {
    ConfigRead,
    ConfigWrite,
    /// LIST on `config`: OpenBao's "invalid path" answer.
    Invalid,
    DataRead,
    DataWrite,
    DataPatch,
    DataDelete,
    MetaList,
    MetaRead,
    MetaWrite,
    MetaDelete,
    Delete,
    Undelete,
    Destroy,
    Subkeys,
}

const CONFIG_FIELDS: &[Field] = &[
    Field::int("max_versions").help("The number of versions kept per key (0: 10)."),
    Field::bool("cas_required").help("Writes must carry a check-and-set version."),
    Field::duration("delete_version_after")
        .help("Versions are soft-deleted this long after they are written."),
];
const DATA_FIELDS: &[Field] = &[
    Field::json("data").help("The secret: a JSON object."),
    Field::json("options").help("Write options: `cas`, the version the write expects to replace."),
    Field::int("version").help("The version to read (0: the current one)."),
];
const META_FIELDS: &[Field] = &[
    Field::int("max_versions"),
    Field::bool("cas_required"),
    Field::duration("delete_version_after"),
    Field::json("custom_metadata").help("Up to 64 string pairs kept with the key."),
];
const VERSIONS_FIELDS: &[Field] = &[Field::json("versions").help("The versions to act on.")];
const SUBKEYS_FIELDS: &[Field] = &[Field::int("version"), Field::int("depth")];

static V2_PATHS: &[PathSpec<V2>] = &[
    PathSpec::new(
        "config",
        &[
            (Op::Read, V2::ConfigRead),
            (Op::Update, V2::ConfigWrite),
            (Op::List, V2::Invalid),
        ],
    )
    .fields(&[CONFIG_FIELDS])
    .help("Mount-wide settings of the versioned store.", ""),
    PathSpec::new(
        "data/{key*}",
        &[
            (Op::Read, V2::DataRead),
            (Op::Update, V2::DataWrite),
            (Op::Patch, V2::DataPatch),
            (Op::Delete, V2::DataDelete),
        ],
    )
    .fields(&[DATA_FIELDS])
    .existence()
    .help("Read, write, patch or soft-delete a secret's versions.", ""),
    PathSpec::new(
        "metadata/{key*}",
        &[
            (Op::List, V2::MetaList),
            (Op::Read, V2::MetaRead),
            (Op::Update, V2::MetaWrite),
            (Op::Patch, V2::MetaWrite),
            (Op::Delete, V2::MetaDelete),
        ],
    )
    .fields(&[META_FIELDS])
    .existence()
    .help(
        "A key's metadata and version history; DELETE removes every version.",
        "",
    ),
    PathSpec::new("delete/{key*}", &[(Op::Update, V2::Delete)])
        .fields(&[VERSIONS_FIELDS])
        .help("Soft-deletes versions.", ""),
    PathSpec::new("undelete/{key*}", &[(Op::Update, V2::Undelete)])
        .fields(&[VERSIONS_FIELDS])
        .help("Restores soft-deleted versions.", ""),
    PathSpec::new("destroy/{key*}", &[(Op::Update, V2::Destroy)])
        .fields(&[VERSIONS_FIELDS])
        .help("Destroys versions for good.", ""),
    PathSpec::new("subkeys/{key*}", &[(Op::Read, V2::Subkeys)])
        .fields(&[SUBKEYS_FIELDS])
        .help("The keys of a secret, without values.", ""),
];

#[async_trait]
impl Engine for KvV2 {
    type H = V2;

    fn paths(&self) -> &'static [PathSpec<V2>] {
        V2_PATHS
    }

    fn unknown_path(&self, req: &Request) -> ApiResult<Response> {
        Ok(v2::invalid_v2_path(req.op))
    }

    fn read_path(&self, rel: &str) -> Option<String> {
        Some(format!("data/{rel}"))
    }

    async fn exists(&self, ctx: &Ctx, _h: V2, req: &Request) -> ApiResult<Option<bool>> {
        let key = req.cap("key");
        if key.is_empty() {
            return Ok(None);
        }
        Ok(Some(ctx.storage.exists(&format!("metadata/{key}")).await?))
    }

    async fn call(&self, ctx: &Ctx, h: V2, req: &Request) -> ApiResult<Response> {
        let key = req.cap("key");
        match h {
            V2::ConfigRead => v2::config_read(ctx).await,
            V2::ConfigWrite => v2::config_write(ctx, req).await,
            V2::Invalid => Ok(v2::invalid_v2_path(req.op)),
            V2::DataRead => v2::data_read(ctx, req, key).await,
            V2::DataWrite => v2::data_write(ctx, req, key).await,
            V2::DataPatch => v2::data_patch(ctx, req, key).await,
            V2::DataDelete => v2::data_delete(ctx, key).await,
            V2::MetaList => v2::metadata_list(ctx, key).await,
            V2::MetaRead => v2::metadata_read(ctx, key).await,
            V2::MetaWrite => v2::metadata_write(ctx, req, key).await,
            V2::MetaDelete => v2::metadata_delete(ctx, key).await,
            V2::Delete => v2::versions_op(ctx, req, "delete", key).await,
            V2::Undelete => v2::versions_op(ctx, req, "undelete", key).await,
            V2::Destroy => v2::versions_op(ctx, req, "destroy", key).await,
            V2::Subkeys => v2::subkeys(ctx, req, key).await,
        }
    }
}

#[cfg(test)]
mod tests;
