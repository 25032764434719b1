//! Cubbyhole: per-token private storage, mounted at `cubbyhole/` on every server (it cannot
//! be disabled, moved or mounted elsewhere). Each service token sees only its own entries,
//! root included; they are destroyed with the token (the server clears the token's prefix
//! when it revokes it). Batch tokens have no cubbyhole.
//!
//! Storage below the mount prefix: `<token id>/<path>` → the JSON object written, where the
//! token id is the HMAC the token store keys the token by (never the token itself).

use airlock_logical::error::multierror;
use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Op, PathSpec, Request, Response};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// The cubbyhole engine.
pub struct Cubbyhole;

#[derive(Clone, Copy)]
pub enum H {
    Read,
    Write,
    Delete,
    List,
}

/// Every path is an entry; its data is free-form.
static PATHS: &[PathSpec<H>] = &[PathSpec::new(
    "{path*}",
    &[
        (Op::Read, H::Read),
        (Op::Update, H::Write),
        (Op::Delete, H::Delete),
        (Op::List, H::List),
    ],
)
.existence()
.help(
    "Per-token private secret storage.",
    "Any JSON object, readable only with the token that wrote it, and destroyed with it.",
)];

/// The storage prefix of a token's cubbyhole (the token id the token store uses).
pub fn token_prefix(token_id: &str) -> String {
    format!("{token_id}/")
}

/// The caller's own prefix, or the refusal a token without a cubbyhole gets.
fn own_prefix(ctx: &Ctx) -> ApiResult<String> {
    let caller = ctx
        .caller
        .as_ref()
        .ok_or_else(ApiError::permission_denied)?;
    if caller.batch {
        return Err(ApiError::bad_request(
            "cubbyhole operations are only supported by 'service' type tokens",
        ));
    }
    let id = caller
        .token_hash
        .as_deref()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(ApiError::permission_denied)?;
    Ok(token_prefix(id))
}

#[async_trait]
impl Engine for Cubbyhole {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, _h: H, req: &Request) -> ApiResult<Option<bool>> {
        let rel = req.cap("path");
        if rel.is_empty() {
            return Ok(None);
        }
        let prefix = own_prefix(ctx)?;
        Ok(Some(ctx.storage.exists(&format!("{prefix}{rel}")).await?))
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let prefix = own_prefix(ctx)?;
        let rel = req.cap("path");
        let key = format!("{prefix}{rel}");
        match h {
            H::List => {
                let dir = if rel.is_empty() || rel.ends_with('/') {
                    key
                } else {
                    format!("{key}/")
                };
                ctx.storage.list_response(&dir).await
            }
            // OpenBao's text; a 400 here where OpenBao answers this client error with 500.
            H::Read | H::Write | H::Delete if rel.is_empty() => {
                Err(ApiError::bad_request(multierror("missing path")))
            }
            H::Read => match ctx.storage.get_json::<Map<String, Value>>(&key).await? {
                Some(v) => Ok(Response::data(Value::Object(v))),
                None => Err(ApiError::not_found()),
            },
            H::Write => {
                if req.data.is_empty() {
                    return Err(ApiError::bad_request(multierror("missing data fields")));
                }
                let b = serde_json::to_vec(&req.data).map_err(|e| ApiError::internal(&e))?;
                ctx.storage.put(&key, &b).await?;
                Ok(Response::empty())
            }
            H::Delete => {
                ctx.storage.delete(&key).await?;
                Ok(Response::empty())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use airlock_logical::testing::{ctx, mount, request, TestSystem};
    use airlock_logical::{Backend, CallerInfo};
    use serde_json::json;

    use super::*;

    fn as_token(id: &str, batch: bool) -> Ctx {
        let mut c = ctx(
            Arc::new(TestSystem::default()),
            mount("cubbyhole/", "cubbyhole"),
        );
        c.caller = Some(CallerInfo {
            display_name: "token".into(),
            token_hash: Some(id.into()),
            token_expiry: None,
            batch,
        });
        c
    }

    async fn call(c: &Ctx, op: Op, rel: &str, body: Value) -> ApiResult<Response> {
        let mut r = request(op, &format!("cubbyhole/{rel}"), body);
        Cubbyhole.handle(c, &mut r, rel).await
    }

    #[tokio::test]
    async fn each_token_sees_only_its_own_entries() {
        let a = as_token("aaaa", false);
        let mut b = as_token("bbbb", false);
        b.storage = a.storage.clone();
        call(&a, Op::Update, "x", json!({"v": 1, "s": "a"}))
            .await
            .unwrap();
        let r = call(&a, Op::Read, "x", json!({})).await.unwrap();
        assert_eq!(r.data.unwrap(), json!({"v": 1, "s": "a"}));
        assert_eq!(
            call(&b, Op::Read, "x", json!({})).await.unwrap_err().status,
            404
        );
        assert_eq!(
            call(&b, Op::List, "", json!({})).await.unwrap_err().status,
            404
        );
        call(&a, Op::Update, "x/y", json!({"n": "nested"}))
            .await
            .unwrap();
        let keys = call(&a, Op::List, "", json!({})).await.unwrap();
        assert_eq!(keys.data.unwrap()["keys"], json!(["x", "x/"]));
        // A write replaces the entry; a delete of a missing key succeeds.
        call(&a, Op::Update, "x", json!({"w": "2"})).await.unwrap();
        let r = call(&a, Op::Read, "x", json!({})).await.unwrap();
        assert_eq!(r.data.unwrap(), json!({"w": "2"}));
        call(&a, Op::Delete, "x", json!({})).await.unwrap();
        call(&a, Op::Delete, "x", json!({})).await.unwrap();
        assert!(call(&a, Op::Read, "x/y", json!({})).await.is_ok());
    }

    #[tokio::test]
    async fn openbao_errors_and_batch_tokens() {
        let a = as_token("aaaa", false);
        let e = call(&a, Op::Update, "empty", json!({})).await.unwrap_err();
        assert_eq!(
            (e.status, e.errors[0].as_str()),
            (400, "1 error occurred:\n\t* missing data fields\n\n")
        );
        let e = call(&a, Op::Read, "", json!({})).await.unwrap_err();
        assert_eq!(e.status, 400);
        let batch = as_token("cccc", true);
        let e = call(&batch, Op::Read, "x", json!({})).await.unwrap_err();
        assert_eq!(
            (e.status, e.errors[0].as_str()),
            (
                400,
                "cubbyhole operations are only supported by 'service' type tokens"
            )
        );
    }
}
