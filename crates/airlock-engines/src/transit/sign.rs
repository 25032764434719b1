//! Sign and verify (Ed25519, ECDSA with any of Vault's hashes, prehashed input, ASN.1 or
//! JWS marshaling), HMAC and its verification, random bytes and hashes — single or batched
//! as Vault answers them (batch errors per item, status 200).

use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use serde_json::{json, Map, Value};

use super::crypto::{self, b64e, HashAlg};
use super::ops::{batch_array, go_type};
use super::policy::{KeyErr, Policy};
use super::rsa;
use super::rsa_policy::SigOpts;
use super::{internal, valid_name, Transit};

/// Batch items of sign, verify and HMAC: maps of strings (numbers are printed).
fn string_items(raw: Vec<Value>) -> ApiResult<Vec<Map<String, Value>>> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(internal(&format!(
                "failed to parse batch input: '[{i}]' expected a map, got '{}'",
                go_type(&v)
            )));
        };
        let mut clean = Map::new();
        for (k, v) in m {
            let s = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::Null => continue,
                other => {
                    return Err(internal(&format!(
                        "failed to parse batch input: '[{i}][{k}]' expected type 'string', got unconvertible type '{}'",
                        go_type(&other)
                    )))
                }
            };
            clean.insert(k, Value::String(s));
        }
        out.push(clean);
    }
    Ok(out)
}

fn item<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// The hash algorithm: the URL's, else `hash_algorithm` (default `sha2-256`).
fn hash_name(req: &Request) -> ApiResult<String> {
    let url = req.cap("urlalgorithm");
    if !url.is_empty() {
        return Ok(url.to_string());
    }
    let h = req.str_field("hash_algorithm")?.unwrap_or_default();
    if !h.is_empty() {
        return Ok(h);
    }
    let a = req.str_field("algorithm")?.unwrap_or_default();
    Ok(if a.is_empty() { "sha2-256".into() } else { a })
}

struct SignOpts {
    hash: HashAlg,
    jws: bool,
    prehashed: bool,
    /// Go's PSS salt length: 0 auto, -1 the hash's length, else bytes.
    salt: i64,
}

fn sign_opts(req: &Request) -> ApiResult<SignOpts> {
    let name = hash_name(req)?;
    let hash = HashAlg::parse(&name)
        .ok_or_else(|| ApiError::bad_request(format!("invalid hash algorithm \"{name}\"")))?;
    let marshaling = req.str_field("marshaling_algorithm")?.unwrap_or_default();
    let jws = match marshaling.as_str() {
        "asn1" => false,
        "jws" => true,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid marshaling type \"{marshaling}\""
            )))
        }
    };
    let salt = req
        .str_field("salt_length")?
        .unwrap_or_default()
        .to_lowercase();
    let salt = match salt.as_str() {
        "auto" => rsa::SALT_AUTO,
        "hash" => rsa::SALT_HASH,
        _ => match salt.parse::<i64>() {
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "salt length neither 'auto', 'hash', nor an int: {salt}"
                )))
            }
            Ok(n) if n < -1 => {
                return Err(ApiError::bad_request(format!(
                    "salt length is invalid: {n}"
                )))
            }
            Ok(n) => n,
        },
    };
    Ok(SignOpts {
        hash,
        jws,
        prehashed: req.bool_field("prehashed")?.unwrap_or(false),
        salt,
    })
}

/// What a signature covers: ECDSA and RSA sign a digest of the input, Ed25519 the input
/// itself.
fn signed_bytes(p: &Policy, o: &SignOpts, input: Vec<u8>) -> Vec<u8> {
    if (p.kind.curve().is_some() || p.kind.rsa_bits().is_some()) && !o.prehashed {
        o.hash.digest(&input).unwrap_or(input)
    } else {
        input
    }
}

fn context_of(m: &Map<String, Value>) -> Result<Vec<u8>, String> {
    match item(m, "context").filter(|c| !c.is_empty()) {
        None => Ok(Vec::new()),
        Some(c) => crypto::b64d(c)
            .map(|b| b.to_vec())
            .map_err(|_| "failed to base64-decode context".to_string()),
    }
}

fn input_of(m: &Map<String, Value>, missing: &str) -> Result<Vec<u8>, String> {
    let Some(raw) = item(m, "input") else {
        return Err(missing.to_string());
    };
    crypto::b64d(raw)
        .map(|b| b.to_vec())
        .map_err(|e| format!("unable to decode input as base64: {e}"))
}

/// The single request as one item.
fn single_item(req: &Request, keys: &[&str]) -> ApiResult<Map<String, Value>> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = req.str_field(k)? {
            m.insert((*k).to_string(), Value::String(v));
        }
    }
    Ok(m)
}

/// The items of a sign or verify: the batch, or the single request's `input` and `keys`.
/// Returns (is_batch, items); an empty batch is refused.
fn input_items(req: &Request, keys: &[&str]) -> ApiResult<(bool, Vec<Map<String, Value>>)> {
    let (is_batch, items) = match batch_array(req)? {
        Some(raw) => (true, string_items(raw)?),
        None => {
            let mut m = single_item(req, keys)?;
            m.insert(
                "input".into(),
                Value::String(req.str_field("input")?.unwrap_or_default()),
            );
            (false, vec![m])
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("missing batch input to process"));
    }
    Ok((is_batch, items))
}

/// Adds one item's answer; in a batch it carries the item's `reference`.
fn push_answer(
    results: &mut Vec<Value>,
    mut out: Map<String, Value>,
    m: &Map<String, Value>,
    is_batch: bool,
) {
    if is_batch {
        out.insert(
            "reference".into(),
            json!(item(m, "reference").unwrap_or_default()),
        );
    }
    results.push(Value::Object(out));
}

/// The answer: a single request's item, or `batch_results`.
fn answer(mut results: Vec<Value>, is_batch: bool) -> Response {
    if !is_batch {
        return Response::data(results.pop().unwrap_or(Value::Null));
    }
    Response::data(json!({"batch_results": results}))
}

pub async fn sign(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let ver = req.int_field("key_version")?.unwrap_or(0);
    let o = sign_opts(req)?;
    let sig_alg = req.str_field("signature_algorithm")?.unwrap_or_default();
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("signing key not found"));
    };
    if !p.kind.signing() {
        return Err(ApiError::bad_request(format!(
            "key type {} does not support signing",
            p.kind.name()
        )));
    }
    if o.hash == HashAlg::None && (!o.prehashed || sig_alg != "pkcs1v15") {
        return Err(ApiError::bad_request(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        ));
    }
    let rsa_opts = SigOpts {
        hash: o.hash,
        algorithm: &sig_alg,
        salt: o.salt,
    };
    let (is_batch, items) = input_items(req, &["context"])?;
    let mut results = Vec::with_capacity(items.len());
    for m in &items {
        let r = input_of(m, "missing input")
            .map_err(KeyErr::User)
            .and_then(|input| {
                let context = context_of(m).map_err(KeyErr::User)?;
                if p.kind.rsa_bits().is_some() {
                    let r = p
                        .rsa_sign(ver, &signed_bytes(&p, &o, input), &rsa_opts, o.jws)
                        .map(|(s, v)| (s, v, None));
                    // As below: a single request's signing failure is a 500 in Vault.
                    return match r {
                        Err(e) if !is_batch => Err(KeyErr::Internal(e.msg().to_string())),
                        r => r,
                    };
                }
                if !is_batch {
                    // Vault answers a signing failure of a single request with a 500.
                    return p
                        .sign(ver, &context, &signed_bytes(&p, &o, input), o.jws)
                        .map_err(|e| KeyErr::Internal(e.msg().to_string()));
                }
                p.sign(ver, &context, &signed_bytes(&p, &o, input), o.jws)
            });
        let mut out = Map::new();
        match r {
            Ok((sig, v, public)) => {
                out.insert("signature".into(), json!(sig));
                out.insert("key_version".into(), json!(v));
                if let Some(pk) = public {
                    let k = if is_batch { "publickey" } else { "public_key" };
                    out.insert(k.into(), json!(b64e(&pk)));
                }
            }
            Err(e) if !is_batch => return Err(e.into()),
            Err(e) => {
                out.insert("key_version".into(), json!(0));
                out.insert("error".into(), json!(e.msg()));
            }
        }
        push_answer(&mut results, out, m, is_batch);
    }
    Ok(answer(results, is_batch))
}

pub async fn verify(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let (is_batch, items) = input_items(req, &["signature", "hmac", "context"])?;
    let (mut sig_found, mut hmac_found, mut missing) = (false, false, false);
    for m in &items {
        if m.contains_key("signature") {
            sig_found = true;
        } else if m.contains_key("hmac") {
            hmac_found = true;
        } else {
            missing = true;
        }
    }
    let bad = |m: &str| Err(ApiError::bad_request(m));
    match () {
        _ if !is_batch && sig_found && hmac_found => {
            return bad("provide one of 'signature' or 'hmac'")
        }
        _ if !is_batch && !sig_found && !hmac_found => {
            return bad("neither a 'signature' nor an 'hmac' were given to verify")
        }
        _ if sig_found && hmac_found => {
            return bad(
                "elements of batch_input must all provide 'signature' or all provide 'hmac'",
            )
        }
        _ if missing && sig_found => {
            return bad("some elements of batch_input are missing 'signature'")
        }
        _ if missing && hmac_found => {
            return bad("some elements of batch_input are missing 'hmac'")
        }
        _ if missing => return bad("no batch_input elements have 'signature' or 'hmac'"),
        _ if hmac_found => return hmac_verify(t, ctx, req, items, is_batch).await,
        _ => {}
    }
    let name = valid_name(req.cap("name"))?;
    let o = sign_opts(req)?;
    let sig_alg = req.str_field("signature_algorithm")?.unwrap_or_default();
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request(
            "signature verification key not found",
        ));
    };
    if !p.kind.signing() {
        return Err(ApiError::bad_request(format!(
            "key type {} does not support verification",
            p.kind.name()
        )));
    }
    if o.hash == HashAlg::None && (!o.prehashed || sig_alg != "pkcs1v15") {
        return bad(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        );
    }
    let mut results = Vec::with_capacity(items.len());
    for m in &items {
        let r = input_of(m, "missing input").and_then(|input| {
            let sig = item(m, "signature").ok_or("missing signature")?;
            let context = context_of(m)?;
            if p.kind.rsa_bits().is_some() {
                let opts = SigOpts {
                    hash: o.hash,
                    algorithm: &sig_alg,
                    salt: o.salt,
                };
                return p
                    .rsa_verify(&signed_bytes(&p, &o, input), sig, &opts, o.jws)
                    .map_err(|e| e.msg().to_string());
            }
            p.verify(&context, &signed_bytes(&p, &o, input), sig, o.jws)
                .map_err(|e| e.msg().to_string())
        });
        let mut out = Map::new();
        match r {
            Ok(valid) => {
                out.insert("valid".into(), json!(valid));
            }
            Err(e) if !is_batch => return Err(ApiError::bad_request(e)),
            Err(e) => {
                out.insert("valid".into(), json!(false));
                out.insert("error".into(), json!(e));
            }
        }
        push_answer(&mut results, out, m, is_batch);
    }
    Ok(answer(results, is_batch))
}

/// Go's `%q` of the hash type Vault failed to look up (always its zero value).
const UNSUPPORTED_HMAC_ALG: &str = "unsupported algorithm '\\x00'";

pub async fn hmac(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let ver = req.int_field("key_version")?.unwrap_or(0);
    let url = req.cap("urlalgorithm");
    let alg = if url.is_empty() {
        req.str_field("algorithm")?.unwrap_or_default()
    } else {
        url.to_string()
    };
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let ver = if ver == 0 {
        p.latest_version as i64
    } else {
        ver
    };
    if ver != p.latest_version as i64
        && p.min_encryption_version > 0
        && ver < p.min_encryption_version as i64
    {
        return Err(ApiError::bad_request(
            "cannot generate HMAC: version is too old (disallowed by policy)",
        ));
    }
    if ver < 0 {
        return Err(ApiError::bad_request(
            "key version does not exist (cannot be negative)",
        ));
    }
    let key = p.hmac_key(ver as u64)?;
    let hash = HashAlg::parse(&alg)
        .filter(|h| *h != HashAlg::None)
        .ok_or_else(|| ApiError::bad_request(UNSUPPORTED_HMAC_ALG))?;
    let batch = batch_array(req)?;
    let is_batch = batch.is_some();
    let items = match batch {
        Some(raw) => string_items(raw)?,
        None => {
            if !req.has("input")? {
                return Err(ApiError::bad_request("missing input for HMAC"));
            }
            vec![single_item(req, &["input"])?]
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("missing batch input to process"));
    }
    let mut results = Vec::with_capacity(items.len());
    for m in &items {
        let r = input_of(m, "missing input for HMAC").and_then(|input| {
            let mac = hash
                .hmac(key, &input)
                .ok_or_else(|| UNSUPPORTED_HMAC_ALG.to_string())?;
            Ok(crypto::envelope(ver as u64, &b64e(&mac)))
        });
        let mut out = Map::new();
        match r {
            Ok(h) => {
                out.insert("hmac".into(), json!(h));
            }
            Err(e) if !is_batch => return Err(ApiError::bad_request(e)),
            Err(e) => {
                out.insert("error".into(), json!(e));
            }
        }
        push_answer(&mut results, out, m, is_batch);
    }
    Ok(answer(results, is_batch))
}

async fn hmac_verify(
    t: &Transit,
    ctx: &Ctx,
    req: &Request,
    items: Vec<Map<String, Value>>,
    is_batch: bool,
) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let alg = hash_name(req)?;
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::bad_request("encryption key not found"));
    };
    let hash = HashAlg::parse(&alg)
        .filter(|h| *h != HashAlg::None)
        .ok_or_else(|| ApiError::bad_request(format!("invalid hash algorithm \"{alg}\"")))?;
    let mut results = Vec::with_capacity(items.len());
    for m in &items {
        let r = input_of(m, "missing input").and_then(|input| hmac_check(&p, hash, m, &input));
        let mut out = Map::new();
        match r {
            Ok(valid) if is_batch => {
                // `valid` is omitted when false in Vault's batch items.
                if valid {
                    out.insert("valid".into(), json!(true));
                }
            }
            Ok(valid) => {
                out.insert("valid".into(), json!(valid));
            }
            Err(e) if !is_batch => return Err(ApiError::bad_request(e)),
            Err(e) => {
                out.insert("error".into(), json!(e));
            }
        }
        push_answer(&mut results, out, m, is_batch);
    }
    Ok(answer(results, is_batch))
}

fn hmac_check(
    p: &Policy,
    hash: HashAlg,
    m: &Map<String, Value>,
    input: &[u8],
) -> Result<bool, String> {
    let given = item(m, "hmac").ok_or("missing hmac")?;
    let rest = given
        .strip_prefix(crypto::PREFIX)
        .ok_or("invalid HMAC to verify: no prefix")?;
    let (v, body) = rest
        .split_once(':')
        .ok_or("invalid HMAC: wrong number of fields")?;
    let ver: i64 = v
        .parse()
        .map_err(|_| "invalid HMAC: version number could not be decoded")?;
    let mac = crypto::b64d(body)
        .map_err(|e| format!("unable to decode verification HMAC as base64: {e}"))?;
    if ver > p.latest_version as i64 {
        return Err("invalid HMAC: version is too new".into());
    }
    if ver < p.min_decryption_version as i64 {
        return Err("cannot verify HMAC: version is too old (disallowed by policy)".into());
    }
    let key = p
        .hmac_key(ver.max(0) as u64)
        .map_err(|e| e.msg().to_string())?;
    let want = hash.hmac(key, input).ok_or(UNSUPPORTED_HMAC_ALG)?;
    Ok(crypto::ct_eq(&want, &mac))
}

const RANDOM_MAX: i64 = 128 * 1024;

pub fn random(req: &Request) -> ApiResult<Response> {
    let (source_seg, bytes_seg) = (req.cap("source"), req.cap("urlbytes"));
    let valid_source = |s: &str| matches!(s, "" | "platform" | "seal" | "all");
    let parse = |s: &str| {
        s.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "error parsing url-set byte count: strconv.Atoi: parsing \"{s}\": invalid syntax"
            ))
        })
    };
    let (source, bytes) = if source_seg.is_empty() {
        ("platform", req.int_field("bytes")?.unwrap_or(32))
    } else if bytes_seg.is_empty() && valid_source(source_seg) {
        (source_seg, req.int_field("bytes")?.unwrap_or(32))
    } else if bytes_seg.is_empty() {
        ("platform", parse(source_seg)?)
    } else {
        (source_seg, parse(bytes_seg)?)
    };
    let format = req.str_field("format")?.unwrap_or_default();
    if bytes < 1 {
        return Err(ApiError::bad_request("'bytes' cannot be less than 1"));
    }
    if bytes > RANDOM_MAX {
        return Err(ApiError::bad_request(format!(
            "'bytes' should be less than {RANDOM_MAX}"
        )));
    }
    if format != "hex" && format != "base64" {
        return Err(ApiError::bad_request(format!(
            "unsupported encoding format \"{format}\"; must be \"hex\" or \"base64\""
        )));
    }
    if !valid_source(source) {
        return Err(ApiError::bad_request(format!(
            "unsupported entropy source \"{source}\"; must be \"platform\" or \"seal\", or \"all\""
        )));
    }
    let mut b = zeroize::Zeroizing::new(vec![0u8; bytes as usize]);
    rand::fill(&mut b[..]);
    let out = if format == "hex" {
        hex::encode(&*b)
    } else {
        b64e(&b)
    };
    let mut r = Response::data(json!({"random_bytes": out}));
    if source == "seal" {
        r.warnings
            .push("no seal/entropy augmentation available, using platform entropy source".into());
    }
    Ok(r)
}

pub fn hash(req: &Request) -> ApiResult<Response> {
    if !req.has("input")? {
        return Err(ApiError::bad_request("input missing"));
    }
    let input = req.str_field("input")?.unwrap_or_default();
    let format = req.str_field("format")?.unwrap_or_default();
    let url = req.cap("urlalgorithm");
    let alg = if url.is_empty() {
        req.str_field("algorithm")?.unwrap_or_default()
    } else {
        url.to_string()
    };
    let input = crypto::b64d(&input)
        .map_err(|e| ApiError::bad_request(format!("unable to decode input as base64: {e}")))?;
    if format != "hex" && format != "base64" {
        return Err(ApiError::bad_request(format!(
            "unsupported encoding format {format}; must be \"hex\" or \"base64\""
        )));
    }
    let sum = HashAlg::parse(&alg)
        .filter(|h| !matches!(h, HashAlg::None | HashAlg::Sha1))
        .and_then(|h| h.digest(&input))
        .ok_or_else(|| ApiError::bad_request(format!("unsupported algorithm {alg}")))?;
    let out = if format == "hex" {
        hex::encode(sum)
    } else {
        b64e(&sum)
    };
    Ok(Response::data(json!({"sum": out})))
}
