//! Encrypt, decrypt, rewrap and data keys, single or batched (`batch_input`), with Vault's
//! per-item errors and status codes: a batch with a bad item answers 400 (or
//! `partial_failure_response_code`) with every item's result in the body; a single request
//! answers the item's error alone.

use airlock_logical::{ApiError, ApiResult, Ctx, Op, Request, Response};
use serde_json::{json, Map, Value};

use super::crypto::{self, b64e};
use super::keys;
use super::policy::{KeyErr, KeyType, NewKey};
use super::{internal, valid_name, Transit, MAX_BATCH};

/// One item of `batch_input` (or the single request's fields).
#[derive(Default)]
pub struct Item {
    pub context: String,
    pub plaintext: Option<String>,
    pub ciphertext: String,
    pub key_version: i64,
    pub associated_data: String,
    pub reference: String,
}

/// Go's name for a JSON value's decoded type.
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The raw `batch_input` array, bounded; `None` when the request has none.
pub fn batch_array(req: &Request) -> ApiResult<Option<Vec<Value>>> {
    match req.value("batch_input")?.map(|v| v.into_owned()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            if a.len() > MAX_BATCH {
                return Err(ApiError::bad_request(format!(
                    "batch_input holds {} items; at most {MAX_BATCH} are allowed",
                    a.len()
                )));
            }
            Ok(Some(a))
        }
        Some(v) => Err(internal(&format!(
            "failed to parse batch input: source data must be an array or slice, got {}",
            go_type(&v)
        ))),
    }
}

/// Decodes items as Vault's fast decoder does (its error texts, all errors joined).
pub fn decode_items(raw: Vec<Value>, need_plain: bool, need_cipher: bool) -> ApiResult<Vec<Item>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut errs = Vec::new();
    for (i, v) in raw.into_iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(internal(&format!(
                "failed to parse batch input: [{i}] expected a map, got '{}'",
                go_type(&v)
            )));
        };
        let mut it = Item::default();
        let mut s = |k: &str, dst: &mut String| match m.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(x)) => *dst = x.clone(),
            Some(o) => errs.push(format!(
                "'[{i}].{k}' expected type 'string', got unconvertible type '{}'",
                go_type(o)
            )),
        };
        s("context", &mut it.context);
        s("ciphertext", &mut it.ciphertext);
        s("associated_data", &mut it.associated_data);
        s("reference", &mut it.reference);
        if need_cipher && !m.contains_key("ciphertext") {
            errs.push(format!("'[{i}].ciphertext' missing ciphertext to decrypt"));
        }
        match m.get("plaintext") {
            Some(Value::String(x)) => it.plaintext = Some(x.clone()),
            Some(o) => errs.push(format!(
                "'[{i}].plaintext' expected type 'string', got unconvertible type '{}'",
                go_type(o)
            )),
            None if need_plain => {
                errs.push(format!("'[{i}].plaintext' missing plaintext to encrypt"))
            }
            None => {}
        }
        match m.get("key_version") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => match n.as_i64() {
                Some(n) => it.key_version = n,
                None => errs.push(format!(
                    "error decoding json.Number into [{i}].key_version: strconv.ParseInt: parsing \"{n}\": invalid syntax"
                )),
            },
            Some(o) => errs.push(format!(
                "'[{i}].key_version' expected type 'int', got unconvertible type '{}'",
                go_type(o)
            )),
        }
        out.push(it);
    }
    if !errs.is_empty() {
        return Err(internal(&format!(
            "failed to parse batch input: {}",
            errs.join("\n")
        )));
    }
    Ok(out)
}

/// Vault's rule: a context in every item or in none.
fn check_context_consistency(items: &[Item]) -> ApiResult<()> {
    let set = items.first().is_some_and(|i| !i.context.is_empty());
    if items.iter().any(|i| i.context.is_empty() == set) {
        return Err(ApiError::bad_request(
            "context should be set either in all the request blocks or in none",
        ));
    }
    Ok(())
}

/// The status of a batch answer (Vault's `batchRequestResponse`).
fn batch_status(
    req: &Request,
    resp: &mut Response,
    ok: bool,
    user_err: bool,
    internal_err: bool,
) -> ApiResult<()> {
    if !user_err && !internal_err {
        return Ok(());
    }
    let mut code = if user_err { 400 } else { 500 };
    if ok {
        if let Some(c) = req.int_field("partial_failure_response_code")? {
            if (1..=599).contains(&c) {
                code = c as u16;
            } else {
                resp.warnings.push(format!(
                    "invalid HTTP response code override from partial_failure_response_code, reverting to {code}"
                ));
            }
        }
    }
    resp.status = Some(code);
    Ok(())
}

fn single_error(e: &str, internal_err: bool) -> ApiError {
    if internal_err {
        internal(e)
    } else {
        ApiError::bad_request(e)
    }
}

fn decoded_aad(p_kind: KeyType, i: usize, aad: &str) -> Result<Vec<u8>, (String, bool)> {
    if aad.is_empty() {
        return Ok(Vec::new());
    }
    if p_kind.aead().is_none() {
        return Err((
            format!(
                "'[{i}].associated_data' provided for non-AEAD cipher suite {}",
                p_kind.name()
            ),
            false,
        ));
    }
    crypto::b64d(aad).map(|b| b.to_vec()).map_err(|e| {
        (
            format!("unable to get associated_data/additional_data from factory[0]: {e}"),
            true,
        )
    })
}

fn key_err(e: KeyErr) -> (String, bool) {
    match e {
        KeyErr::User(m) => (m, false),
        KeyErr::Internal(m) => (m, true),
    }
}

pub async fn encrypt(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let batch = batch_array(req)?;
    let is_batch = batch.is_some();
    let items = match batch {
        Some(raw) => {
            let items = decode_items(raw, true, false)?;
            if items.is_empty() {
                return Err(ApiError::bad_request("missing batch input to process"));
            }
            items
        }
        None => {
            if !req.has("plaintext")? {
                return Err(ApiError::bad_request("missing plaintext to encrypt"));
            }
            vec![Item {
                plaintext: Some(req.str_field("plaintext")?.unwrap_or_default()),
                context: req.str_field("context")?.unwrap_or_default(),
                key_version: req.int_field("key_version")?.unwrap_or(0),
                associated_data: req.str_field("associated_data")?.unwrap_or_default(),
                ..Default::default()
            }]
        }
    };
    let context_set = items.first().is_some_and(|i| !i.context.is_empty());
    let mut errors: Vec<Option<(String, bool)>> = vec![None; items.len()];
    let mut plains = Vec::with_capacity(items.len());
    let mut contexts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if it.context.is_empty() == context_set {
            return Err(ApiError::bad_request(
                "context should be set either in all the request blocks or in none",
            ));
        }
        let plain = crypto::b64d(it.plaintext.as_deref().unwrap_or_default());
        let context = if it.context.is_empty() {
            Ok(Default::default())
        } else {
            crypto::b64d(&it.context)
        };
        match (&plain, &context) {
            (Err(e), _) | (_, Err(e)) => errors[i] = Some((e.clone(), false)),
            _ => {}
        }
        plains.push(plain.unwrap_or_default());
        contexts.push(context.unwrap_or_default());
    }
    let settings = if req.op == Op::Create {
        let convergent = req.bool_field("convergent_encryption")?.unwrap_or(false);
        if convergent && !context_set {
            return Err(ApiError::bad_request(
                "convergent encryption requires derivation to be enabled, so context is required",
            ));
        }
        let ty = req.str_field("type")?.unwrap_or_default();
        let kind = match KeyType::parse(&ty) {
            Some(k) if k.aead().is_some() => k,
            Some(KeyType::EcdsaP256 | KeyType::EcdsaP384) => {
                return Err(ApiError::bad_request(format!(
                    "key type {ty} not supported for this operation"
                )))
            }
            _ => return Err(ApiError::bad_request(format!("unknown key type {ty}"))),
        };
        (!keys::upsert_disabled(ctx).await?).then_some(NewKey {
            kind,
            derived: context_set,
            convergent,
            exportable: false,
            allow_plaintext_backup: false,
            auto_rotate_secs: 0,
            key_size: 0,
        })
    } else {
        None
    };
    let Some(p) = keys::upsert(t, ctx, name, settings.as_ref()).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let mut results = Vec::with_capacity(items.len());
    let (mut ok, mut user_err, mut internal_err) = (false, false, false);
    for (i, it) in items.iter().enumerate() {
        let r = match errors[i].take() {
            Some(e) => Err(e),
            None => decoded_aad(p.kind, i, &it.associated_data).and_then(|aad| {
                p.encrypt(it.key_version, &contexts[i], &plains[i], &aad)
                    .map_err(key_err)
            }),
        };
        let mut m = Map::new();
        match r {
            Ok((ct, ver)) => {
                ok = true;
                m.insert("ciphertext".into(), json!(ct));
                m.insert("key_version".into(), json!(ver));
            }
            Err((e, internal_e)) => {
                if internal_e {
                    internal_err = true;
                } else {
                    user_err = true;
                }
                if !is_batch {
                    return Err(single_error(&e, internal_e));
                }
                m.insert("error".into(), json!(e));
            }
        }
        m.insert("reference".into(), json!(it.reference));
        results.push(Value::Object(m));
    }
    if !is_batch {
        let mut m = match results.pop() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        m.remove("reference");
        return Ok(Response::data(Value::Object(m)));
    }
    let mut resp = Response::data(json!({"batch_results": results}));
    batch_status(req, &mut resp, ok, user_err, internal_err)?;
    Ok(resp)
}

/// Which operation reads ciphertexts: they take different single-request fields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Decrypt,
    Rewrap,
}

/// The items of a decrypt or rewrap: the batch, or the single request's ciphertext with its
/// `context` and `associated_data` (decrypt) or `key_version` (rewrap). Returns
/// (is_batch, items); an empty batch or a missing ciphertext is refused.
fn ciphertext_items(req: &Request, op: Reading) -> ApiResult<(bool, Vec<Item>)> {
    if let Some(raw) = batch_array(req)? {
        let items = decode_items(raw, false, op == Reading::Decrypt)?;
        if items.is_empty() {
            return Err(ApiError::bad_request("missing batch input to process"));
        }
        return Ok((true, items));
    }
    let ciphertext = req.str_field("ciphertext")?.unwrap_or_default();
    if ciphertext.is_empty() {
        return Err(ApiError::bad_request("missing ciphertext to decrypt"));
    }
    let mut it = Item {
        ciphertext,
        context: req.str_field("context")?.unwrap_or_default(),
        ..Default::default()
    };
    match op {
        Reading::Decrypt => {
            it.associated_data = req.str_field("associated_data")?.unwrap_or_default()
        }
        Reading::Rewrap => it.key_version = req.int_field("key_version")?.unwrap_or(0),
    }
    Ok((false, vec![it]))
}

pub async fn decrypt(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let (is_batch, items) = ciphertext_items(req, Reading::Decrypt)?;
    check_context_consistency(&items)?;
    let mut errors: Vec<Option<(String, bool)>> = vec![None; items.len()];
    let mut contexts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let mut context = Vec::new();
        if it.ciphertext.is_empty() {
            errors[i] = Some(("missing ciphertext to decrypt".into(), false));
        } else if !it.context.is_empty() {
            match crypto::b64d(&it.context) {
                Ok(c) => context = c.to_vec(),
                Err(e) => errors[i] = Some((e, false)),
            }
        }
        contexts.push(context);
    }
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let mut results = Vec::with_capacity(items.len());
    let (mut ok, mut user_err, mut internal_err) = (false, false, false);
    for (i, it) in items.iter().enumerate() {
        let r = match errors[i].take() {
            Some(e) => Err(e),
            None => decoded_aad(p.kind, i, &it.associated_data).and_then(|aad| {
                p.decrypt(&contexts[i], &it.ciphertext, &aad)
                    .map_err(key_err)
            }),
        };
        let mut m = Map::new();
        match r {
            Ok(plain) => {
                ok = true;
                m.insert("plaintext".into(), json!(b64e(&plain)));
            }
            Err((e, internal_e)) => {
                if internal_e {
                    internal_err = true;
                } else {
                    user_err = true;
                }
                if !is_batch {
                    return Err(single_error(&e, internal_e));
                }
                m.insert("plaintext".into(), json!(""));
                m.insert("error".into(), json!(e));
            }
        }
        m.insert("reference".into(), json!(it.reference));
        results.push(Value::Object(m));
    }
    if !is_batch {
        let plain = results
            .pop()
            .and_then(|v| v.get("plaintext").cloned())
            .unwrap_or(Value::Null);
        return Ok(Response::data(json!({"plaintext": plain})));
    }
    let mut resp = Response::data(json!({"batch_results": results}));
    batch_status(req, &mut resp, ok, user_err, internal_err)?;
    Ok(resp)
}

pub async fn rewrap(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let (is_batch, items) = ciphertext_items(req, Reading::Rewrap)?;
    check_context_consistency(&items)?;
    let mut errors: Vec<Option<String>> = vec![None; items.len()];
    let mut contexts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let mut context = Vec::new();
        if it.ciphertext.is_empty() {
            errors[i] = Some("missing ciphertext to decrypt".into());
        } else if !it.context.is_empty() {
            match crypto::b64d(&it.context) {
                Ok(c) => context = c.to_vec(),
                Err(e) => errors[i] = Some(e),
            }
        }
        contexts.push(context);
    }
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let mut results = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let r = match errors[i].take() {
            Some(e) => Err(e),
            None => match p.decrypt(&contexts[i], &it.ciphertext, &[]) {
                Err(KeyErr::User(e)) => Err(e),
                Err(KeyErr::Internal(e)) => return Err(internal(&e)),
                Ok(plain) => match p.encrypt(it.key_version, &contexts[i], &plain, &[]) {
                    Err(KeyErr::User(e)) => Err(e),
                    Err(KeyErr::Internal(e)) => return Err(internal(&e)),
                    Ok(x) => Ok(x),
                },
            },
        };
        let mut m = Map::new();
        match r {
            Ok((ct, ver)) => {
                m.insert("ciphertext".into(), json!(ct));
                m.insert("key_version".into(), json!(ver));
            }
            Err(e) if !is_batch => return Err(ApiError::bad_request(e)),
            Err(e) => {
                m.insert("error".into(), json!(e));
            }
        }
        if is_batch {
            m.insert("reference".into(), json!(it.reference));
        }
        results.push(Value::Object(m));
    }
    if !is_batch {
        return Ok(Response::data(results.pop().unwrap_or(Value::Null)));
    }
    Ok(Response::data(json!({"batch_results": results})))
}

pub async fn datakey(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let ver = req.int_field("key_version")?.unwrap_or(0);
    let with_plain = match req.cap("plaintext") {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(ApiError::bad_request(
                "Invalid path, must be 'plaintext' or 'wrapped'",
            ))
        }
    };
    let context = match req.str_field("context")?.filter(|c| !c.is_empty()) {
        Some(c) => crypto::b64d(&c)
            .map_err(|_| ApiError::bad_request("failed to base64-decode context"))?
            .to_vec(),
        None => Vec::new(),
    };
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let len = match req.int_field("bits")?.unwrap_or(256) {
        128 => 16,
        256 => 32,
        512 => 64,
        _ => return Err(ApiError::bad_request("invalid bit length")),
    };
    let mut key = zeroize::Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut key[..]);
    let aad_text = req.str_field("associated_data")?.unwrap_or_default();
    let aad = if aad_text.is_empty() {
        Vec::new()
    } else {
        if p.kind.aead().is_none() {
            return Err(ApiError::bad_request(format!(
                "'associated_data' provided for non-AEAD cipher suite {}",
                p.kind.name()
            )));
        }
        crypto::b64d(&aad_text).map_err(|e| internal(&e))?.to_vec()
    };
    let (ct, ver) = p.encrypt(ver, &context, &key, &aad)?;
    let mut d = json!({"ciphertext": ct, "key_version": ver});
    if with_plain {
        d["plaintext"] = json!(b64e(&key));
    }
    Ok(Response::data(d))
}
