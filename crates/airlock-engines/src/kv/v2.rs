//! KV version 2: versioned secrets with metadata, soft delete, undelete, destroy,
//! check-and-set, patch and subkeys.

use std::collections::BTreeMap;

use airlock_logical::BarrierOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use airlock_logical::util::rfc3339_nanos;
use airlock_logical::{ApiError, ApiResult, Ctx, Locked, Op, Request, Response};

const DEFAULT_MAX_VERSIONS: u64 = 10;
const MAX_CUSTOM_METADATA_KEYS: usize = 64;

#[derive(Clone, Serialize, Deserialize, Default)]
struct VersionMeta {
    created: i128,
    deleted: Option<i128>,
    destroyed: bool,
}

#[derive(Clone, Serialize, Deserialize, Default)]
struct KeyMeta {
    created: i128,
    updated: i128,
    current_version: u64,
    oldest_version: u64,
    max_versions: u64,
    cas_required: bool,
    delete_version_after: i64,
    custom_metadata: Option<BTreeMap<String, String>>,
    versions: BTreeMap<u64, VersionMeta>,
    #[serde(default)]
    current_metadata_version: u64,
}

#[derive(Clone, Serialize, Deserialize, Default)]
struct MountConfig {
    max_versions: u64,
    cas_required: bool,
    delete_version_after: i64,
}

fn go_dur(secs: i64) -> String {
    airlock_core::duration::format_go_duration(secs.max(0) as u64)
}

fn ts(n: i128) -> String {
    rfc3339_nanos(n)
}

impl VersionMeta {
    /// Deleted explicitly, or past `delete_version_after`.
    fn is_deleted(&self, now: i128) -> bool {
        matches!(self.deleted, Some(d) if d <= now)
    }
    fn json(&self, version: u64, custom: &Option<BTreeMap<String, String>>) -> Value {
        json!({
            "created_time": ts(self.created),
            "custom_metadata": custom,
            "deletion_time": self.deleted.map(ts).unwrap_or_default(),
            "destroyed": self.destroyed,
            "version": version,
        })
    }
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

struct Paths {
    meta: String,
    versions: String,
    /// The key as the client names it (events name `data/<key>`).
    key: String,
}

fn paths(key: &str) -> Paths {
    Paths {
        meta: format!("metadata/{key}"),
        key: key.to_string(),
        versions: format!("versions/{}/", key_hash(key)),
    }
}

pub(super) fn validate_key(key: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(ApiError::unsupported_path());
    }
    if key.ends_with('/') {
        return Err(ApiError::not_found());
    }
    if key.len() > 4096 {
        return Err(ApiError::bad_request("key name is too long"));
    }
    Ok(())
}

/// OpenBao's answer to a path outside the KV v2 endpoints (or LIST on `config`): 404 with an
/// envelope whose warning names the CLI command to use.
pub(super) fn invalid_v2_path(op: Op) -> Response {
    let verb = match op {
        Op::Read => "get",
        Op::List => "list",
        Op::Delete => "delete",
        Op::Patch => "patch",
        Op::Create | Op::Update => "put",
    };
    Response {
        status: Some(404),
        warnings: vec![format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv {verb}' for this operation."
        )],
        ..Default::default()
    }
}

async fn mount_config(ctx: &Ctx) -> ApiResult<MountConfig> {
    Ok(ctx.storage.get_json("config").await?.unwrap_or_default())
}

pub(super) async fn config_read(ctx: &Ctx) -> ApiResult<Response> {
    let c = mount_config(ctx).await?;
    Ok(Response::data(json!({
        "cas_required": c.cas_required,
        "delete_version_after": go_dur(c.delete_version_after),
        "max_versions": c.max_versions,
        "metadata_cas_required": false,
    })))
}

pub(super) async fn config_write(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let key = "config";
    let g = ctx.storage.lock(key).await?;
    let mut c = mount_config(ctx).await?;
    if let Some(v) = req.int_field("max_versions")? {
        // Stored as a uint32 in OpenBao: -1 reads back as 4294967295.
        c.max_versions = u64::from(v as u32);
    }
    if let Some(v) = req.bool_field("cas_required")? {
        c.cas_required = v;
    }
    if let Some(v) = req.duration_field("delete_version_after")? {
        c.delete_version_after = v;
    }
    g.put_json(key, &c).await?;
    Ok(Response::empty())
}

async fn load_meta(ctx: &Ctx, p: &Paths) -> ApiResult<Option<KeyMeta>> {
    ctx.storage.get_json(&p.meta).await
}

fn effective_max_versions(meta: &KeyMeta, mc: &MountConfig) -> u64 {
    match meta.max_versions.max(mc.max_versions) {
        0 => DEFAULT_MAX_VERSIONS,
        n => n,
    }
}

fn meta_json(meta: &KeyMeta) -> Value {
    let versions: Map<String, Value> = meta
        .versions
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                json!({
                    "created_time": ts(v.created),
                    "deletion_time": v.deleted.map(ts).unwrap_or_default(),
                    "destroyed": v.destroyed,
                }),
            )
        })
        .collect();
    json!({
        "cas_required": meta.cas_required,
        "created_time": ts(meta.created),
        "current_metadata_version": meta.current_metadata_version,
        "current_version": meta.current_version,
        "custom_metadata": meta.custom_metadata,
        "delete_version_after": go_dur(meta.delete_version_after),
        "max_versions": meta.max_versions,
        "metadata_cas_required": false,
        "oldest_version": meta.oldest_version,
        "updated_time": ts(meta.updated),
        "versions": versions,
    })
}

fn requested_version(req: &Request) -> ApiResult<u64> {
    let field = req.value("version")?;
    match req
        .query("version")
        .or_else(|| field.as_deref().and_then(Value::as_str))
    {
        None | Some("") => Ok(field.as_deref().and_then(Value::as_u64).unwrap_or(0)),
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "Field validation failed: error converting input for field \"version\": '' cannot parse value as 'int': strconv.ParseInt: invalid syntax",
            )
        }),
    }
}

/// Reads the stored map of a live version; errors mirror Vault's 404 shapes.
async fn read_version(
    ctx: &Ctx,
    p: &Paths,
    meta: &KeyMeta,
    version: u64,
) -> ApiResult<(u64, VersionMeta, Option<Map<String, Value>>)> {
    let v = if version == 0 {
        meta.current_version
    } else {
        version
    };
    let Some(vm) = meta.versions.get(&v).cloned() else {
        return Err(ApiError::not_found());
    };
    let now = ctx.now_nanos();
    if vm.destroyed || vm.is_deleted(now) {
        return Ok((v, vm, None));
    }
    let data = ctx
        .storage
        .get_json::<Map<String, Value>>(&format!("{}{v}", p.versions))
        .await?;
    Ok((v, vm, data))
}

fn deleted_404(v: u64, vm: &VersionMeta, custom: &Option<BTreeMap<String, String>>) -> ApiError {
    ApiError::with_body(404, json!({"data": null, "metadata": vm.json(v, custom)}))
}

fn check_cas(req: &Request, meta: Option<&KeyMeta>, mc: &MountConfig) -> ApiResult<()> {
    let cas = match req.value("options")?.as_deref() {
        Some(Value::Object(o)) => match o.get("cas") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        ApiError::bad_request("error parsing check-and-set parameter")
                    })?,
            ),
        },
        None | Some(Value::Null) => None,
        Some(v) => return Err(map_type_error("options", v)),
    };
    let required = mc.cas_required || meta.map(|m| m.cas_required).unwrap_or(false);
    match cas {
        None if required => Err(ApiError::bad_request(
            "check-and-set parameter required for this call",
        )),
        None => Ok(()),
        Some(c) => {
            let current = meta.map(|m| m.current_version).unwrap_or(0);
            if c != current {
                Err(ApiError::bad_request(
                    "check-and-set parameter did not match the current version",
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Appends a version, prunes old ones, and commits atomically.
async fn put_version(
    ctx: &Ctx,
    g: &Locked<'_>,
    event_type: &str,
    p: &Paths,
    meta: Option<KeyMeta>,
    data: &Map<String, Value>,
) -> ApiResult<Response> {
    let mc = mount_config(ctx).await?;
    let now = ctx.now_nanos();
    let mut meta = meta.unwrap_or(KeyMeta {
        created: now,
        ..Default::default()
    });
    let v = meta.current_version + 1;
    let dva = if meta.delete_version_after > 0 {
        meta.delete_version_after
    } else {
        mc.delete_version_after
    };
    let vm = VersionMeta {
        created: now,
        deleted: if dva > 0 {
            Some(now + dva as i128 * 1_000_000_000)
        } else {
            None
        },
        destroyed: false,
    };
    meta.versions.insert(v, vm.clone());
    meta.current_version = v;
    meta.updated = now;
    let mut ops = vec![BarrierOp::Put(
        format!("{}{v}", p.versions),
        serde_json::to_vec(data).map_err(|e| ApiError::internal(&e))?,
    )];
    let max = effective_max_versions(&meta, &mc);
    while meta.versions.len() as u64 > max {
        let Some((&oldest, _)) = meta.versions.iter().next() else {
            break;
        };
        meta.versions.remove(&oldest);
        ops.push(BarrierOp::Delete(format!("{}{oldest}", p.versions)));
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(0);
    }
    ops.push(BarrierOp::Put(
        p.meta.clone(),
        serde_json::to_vec(&meta).map_err(|e| ApiError::internal(&e))?,
    ));
    ops.push(event(ctx, event_type, p, &meta));
    g.commit(ops).await?;
    Ok(Response::data(vm.json(v, &meta.custom_metadata)))
}

fn data_map(req: &Request) -> ApiResult<Map<String, Value>> {
    match req.value("data")?.as_deref() {
        Some(Value::Object(d)) => Ok(d.clone()),
        None | Some(Value::Null) => Err(ApiError::bad_request("no data provided")),
        Some(v) => Err(map_type_error("data", v)),
    }
}

fn map_type_error(field: &str, v: &Value) -> ApiError {
    let got = match v {
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        _ => "map",
    };
    ApiError::bad_request(format!(
        "error converting input for field \"{field}\": '' expected type 'map[string]interface {{}}', got unconvertible type '{got}'"
    ))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(tm) = target {
                for (k, v) in pm {
                    if v.is_null() {
                        tm.remove(k);
                    } else {
                        merge_patch(tm.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// GET `data/<key>`.
pub(super) async fn data_read(ctx: &Ctx, req: &Request, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let version = requested_version(req)?;
    let Some(meta) = load_meta(ctx, &p).await? else {
        return Err(ApiError::not_found());
    };
    let (v, vm, data) = read_version(ctx, &p, &meta, version).await?;
    match data {
        Some(d) => {
            let mut body = json!({"metadata": vm.json(v, &meta.custom_metadata)});
            body["data"] = match (req.query("field"), req.query("mask")) {
                // Airlock's additions for the web UI (Vault ignores both): one field, or
                // the keys with a fingerprint of each value and no value.
                (Some(f), _) => Value::Object(d.into_iter().filter(|(k, _)| k == f).collect()),
                (None, Some("true")) => {
                    body["fingerprints"] = fingerprints(ctx, &d)?;
                    Value::Object(d.into_iter().map(|(k, _)| (k, Value::Null)).collect())
                }
                _ => Value::Object(d),
            };
            Ok(Response::data(body))
        }
        None if vm.destroyed || vm.deleted.is_some() => {
            Err(deleted_404(v, &vm, &meta.custom_metadata))
        }
        None => Err(ApiError::not_found()),
    }
}

/// For a masked read: per key, 16 hex digits of an HMAC of the value under the server's
/// internal key, so a page can tell which values differ between versions without holding
/// them. The reader has read access to the values anyway; the HMAC keeps a fingerprint seen
/// on a screen from being checked against guesses.
fn fingerprints(ctx: &Ctx, d: &Map<String, Value>) -> ApiResult<Value> {
    let mut out = Map::new();
    for (k, v) in d {
        let h = ctx
            .sys
            .hmac(&format!("kv-fingerprint\0{}\0{v}", ctx.mount.uuid))?;
        out.insert(k.clone(), Value::String(h.chars().take(16).collect()));
    }
    Ok(Value::Object(out))
}

/// POST `data/<key>`: a new version.
pub(super) async fn data_write(ctx: &Ctx, req: &Request, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let d = data_map(req)?;
    let g = ctx.storage.lock(&p.meta).await?;
    let meta = load_meta(ctx, &p).await?;
    let mc = mount_config(ctx).await?;
    check_cas(req, meta.as_ref(), &mc)?;
    put_version(ctx, &g, "kv-v2/data-write", &p, meta, &d).await
}

/// PATCH `data/<key>`: a JSON merge patch of the current version.
pub(super) async fn data_patch(ctx: &Ctx, req: &Request, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let patch = match req.value("data")?.as_deref() {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => return Err(ApiError::bad_request("no data provided")),
    };
    let g = ctx.storage.lock(&p.meta).await?;
    let Some(meta) = load_meta(ctx, &p).await? else {
        return Err(ApiError::bare(404));
    };
    let mc = mount_config(ctx).await?;
    check_cas(req, Some(&meta), &mc)?;
    let (v, vm, cur) = read_version(ctx, &p, &meta, 0).await?;
    let Some(cur) = cur else {
        return Err(deleted_404(v, &vm, &meta.custom_metadata));
    };
    let mut merged = Value::Object(cur);
    merge_patch(&mut merged, &patch);
    let Value::Object(merged) = merged else {
        return Err(ApiError::bad_request("patch must produce an object"));
    };
    put_version(ctx, &g, "kv-v2/data-patch", &p, Some(meta), &merged).await
}

/// DELETE `data/<key>`: soft-deletes the current version.
pub(super) async fn data_delete(ctx: &Ctx, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let g = ctx.storage.lock(&p.meta).await?;
    let Some(mut meta) = load_meta(ctx, &p).await? else {
        return Ok(Response::empty());
    };
    let cur = meta.current_version;
    let now = ctx.now_nanos();
    if let Some(vm) = meta.versions.get_mut(&cur) {
        if !vm.destroyed && !vm.is_deleted(now) {
            vm.deleted = Some(now);
            meta.updated = now;
            let b = serde_json::to_vec(&meta).map_err(|e| ApiError::internal(&e))?;
            g.commit(vec![
                BarrierOp::Put(p.meta.clone(), b),
                event(ctx, "kv-v2/data-delete", &p, &meta),
            ])
            .await?;
        }
    }
    Ok(Response::empty())
}

/// `custom_metadata` from the request. With `allow_null` (PATCH), null values are skipped
/// here and removed by the caller.
fn custom_metadata(
    req: &Request,
    allow_null: bool,
) -> ApiResult<Option<Option<BTreeMap<String, String>>>> {
    match req.value("custom_metadata")?.as_deref() {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Object(o)) => {
            if o.len() > MAX_CUSTOM_METADATA_KEYS {
                return Err(ApiError::bad_request(format!(
                    "custom_metadata can only contain {MAX_CUSTOM_METADATA_KEYS} keys"
                )));
            }
            let mut out = BTreeMap::new();
            for (k, v) in o {
                // OpenBao decodes weakly: numbers print, booleans become "1"/"0".
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null if allow_null => continue,
                    Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "custom_metadata value for key \"{k}\" must be a string"
                        )))
                    }
                };
                if k.len() > 128 || s.len() > 512 {
                    return Err(ApiError::bad_request(
                        "custom_metadata keys are limited to 128 bytes and values to 512 bytes",
                    ));
                }
                out.insert(k.clone(), s);
            }
            // An empty map reads back as null.
            Ok(Some(if out.is_empty() && !allow_null {
                None
            } else {
                Some(out)
            }))
        }
        Some(v) => Err(map_type_error("custom_metadata", v)),
    }
}

/// LIST `metadata/<folder>`.
pub(super) async fn metadata_list(ctx: &Ctx, key: &str) -> ApiResult<Response> {
    let base = format!("metadata/{key}");
    let prefix = if key.is_empty() || key.ends_with('/') {
        base
    } else {
        format!("{base}/")
    };
    ctx.storage.list_response(&prefix).await
}

/// GET `metadata/<key>`.
pub(super) async fn metadata_read(ctx: &Ctx, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    match load_meta(ctx, &p).await? {
        Some(meta) => Ok(Response::data(meta_json(&meta))),
        None => Err(ApiError::not_found()),
    }
}

/// POST/PATCH `metadata/<key>`.
pub(super) async fn metadata_write(ctx: &Ctx, req: &Request, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let g = ctx.storage.lock(&p.meta).await?;
    let existing = load_meta(ctx, &p).await?;
    if req.op == Op::Patch && existing.is_none() {
        return Err(ApiError::bare(404));
    }
    let now = ctx.now_nanos();
    let mut meta = existing.unwrap_or(KeyMeta {
        created: now,
        updated: now,
        ..Default::default()
    });
    if let Some(v) = req.int_field("max_versions")? {
        if v < 0 {
            return Err(ApiError::bad_request("max_versions must be non-negative"));
        }
        meta.max_versions = v as u64;
    }
    if let Some(v) = req.bool_field("cas_required")? {
        meta.cas_required = v;
    }
    if let Some(v) = req.duration_field("delete_version_after")? {
        meta.delete_version_after = v;
    }
    match (custom_metadata(req, req.op == Op::Patch)?, req.op) {
        (Some(Some(cm)), Op::Patch) => {
            let mut cur = meta.custom_metadata.take().unwrap_or_default();
            if let Some(Value::Object(raw)) = req.value("custom_metadata")?.as_deref() {
                for (k, v) in raw {
                    if v.is_null() {
                        cur.remove(k);
                    }
                }
            }
            cur.extend(cm);
            meta.custom_metadata = if cur.is_empty() { None } else { Some(cur) };
        }
        (Some(cm), _) => meta.custom_metadata = cm,
        (None, _) => {}
    }
    meta.current_metadata_version += 1;
    meta.updated = now;
    // Lowering max_versions prunes on the next write, as OpenBao does.
    let kind = if req.op == Op::Patch {
        "kv-v2/metadata-patch"
    } else {
        "kv-v2/metadata-write"
    };
    let b = serde_json::to_vec(&meta).map_err(|e| ApiError::internal(&e))?;
    g.commit(vec![
        BarrierOp::Put(p.meta.clone(), b),
        event(ctx, kind, &p, &meta),
    ])
    .await?;
    Ok(Response::empty())
}

/// DELETE `metadata/<key>`: every version and the metadata.
pub(super) async fn metadata_delete(ctx: &Ctx, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let g = ctx.storage.lock(&p.meta).await?;
    let mut ops = vec![BarrierOp::Delete(p.meta.clone())];
    for v in ctx.storage.list(&p.versions).await? {
        ops.push(BarrierOp::Delete(format!("{}{v}", p.versions)));
    }
    ops.push(event(ctx, "kv-v2/metadata-delete", &p, &KeyMeta::default()));
    g.commit(ops).await?;
    Ok(Response::empty())
}

fn versions_param(req: &Request) -> ApiResult<Vec<u64>> {
    let raw = req.value("versions")?;
    let raw = raw.as_deref();
    let list: Vec<u64> = match raw {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| ApiError::bad_request("versions must be integers"))
            })
            .collect::<ApiResult<_>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| {
                x.trim()
                    .parse()
                    .map_err(|_| ApiError::bad_request("versions must be integers"))
            })
            .collect::<ApiResult<_>>()?,
        Some(Value::Number(n)) => vec![n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request("versions must be integers"))?],
        _ => Vec::new(),
    };
    if list.is_empty() {
        return Err(ApiError::bad_request("No version number provided"));
    }
    Ok(list)
}

pub(super) async fn versions_op(
    ctx: &Ctx,
    req: &Request,
    op: &str,
    key: &str,
) -> ApiResult<Response> {
    validate_key(key)?;
    let versions = versions_param(req).map_err(|e| {
        if op == "destroy" {
            ApiError::bad_request("no version number provided")
        } else {
            e
        }
    })?;
    let p = paths(key);
    let g = ctx.storage.lock(&p.meta).await?;
    let Some(mut meta) = load_meta(ctx, &p).await? else {
        return Ok(Response::empty());
    };
    let now = ctx.now_nanos();
    let mut ops = Vec::new();
    for v in versions {
        let Some(vm) = meta.versions.get_mut(&v) else {
            continue;
        };
        match op {
            "delete" if !vm.destroyed && !vm.is_deleted(now) => vm.deleted = Some(now),
            "undelete" if !vm.destroyed => vm.deleted = None,
            "destroy" if !vm.destroyed => {
                vm.destroyed = true;
                ops.push(BarrierOp::Delete(format!("{}{v}", p.versions)));
            }
            _ => {}
        }
    }
    meta.updated = now;
    ops.push(BarrierOp::Put(
        p.meta.clone(),
        serde_json::to_vec(&meta).map_err(|e| ApiError::internal(&e))?,
    ));
    ops.push(event(ctx, &format!("kv-v2/{op}"), &p, &meta));
    g.commit(ops).await?;
    Ok(Response::empty())
}

/// The event for a change of `p` (Vault's kv-v2 metadata: paths and versions, no value).
fn event(ctx: &Ctx, event_type: &str, p: &Paths, meta: &KeyMeta) -> BarrierOp {
    let data = format!("data/{}", p.key);
    let rel = if event_type.contains("metadata") {
        format!("metadata/{}", p.key)
    } else {
        data.clone()
    };
    ctx.event(
        event_type,
        &rel,
        &data,
        &[
            ("current_version", meta.current_version.to_string()),
            ("oldest_version", meta.oldest_version.to_string()),
            ("modified", "true".to_string()),
        ],
    )
}

fn to_subkeys(v: &Value, depth: u64, level: u64) -> Value {
    match v {
        Value::Object(m) if depth == 0 || level < depth => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), to_subkeys(x, depth, level + 1)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

pub(super) async fn subkeys(ctx: &Ctx, req: &Request, key: &str) -> ApiResult<Response> {
    validate_key(key)?;
    let p = paths(key);
    let Some(meta) = load_meta(ctx, &p).await? else {
        return Err(ApiError::not_found());
    };
    let depth = match req.query("depth") {
        Some(d) => d
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("invalid depth"))?,
        None => 0,
    };
    let (v, vm, data) = read_version(ctx, &p, &meta, requested_version(req)?).await?;
    match data {
        Some(d) => Ok(Response::data(json!({
            "metadata": vm.json(v, &meta.custom_metadata),
            "subkeys": to_subkeys(&Value::Object(d), depth, 0),
        }))),
        None => Err(ApiError::with_body(
            404,
            json!({"metadata": vm.json(v, &meta.custom_metadata), "subkeys": null}),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": "x"}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": "x"}));
    }

    #[test]
    fn subkeys_null_leaves() {
        let v = json!({"a": 1, "n": {"x": {"y": 2}}});
        assert_eq!(
            to_subkeys(&v, 0, 0),
            json!({"a": null, "n": {"x": {"y": null}}})
        );
        assert_eq!(to_subkeys(&v, 2, 0), json!({"a": null, "n": {"x": null}}));
    }
}
