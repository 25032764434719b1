//! A test-only engine, to show what adding an engine takes: this module and one catalog line
//! (plus the `mod` line beside it). It stores values, echoes path segments, and issues a
//! lease whose revocation it records.

use std::sync::Mutex;

use airlock_logical::{
    ApiResult, Ctx, Engine, Field, LeaseInfo, NewLease, Op, PathSpec, Request, Response,
};
use async_trait::async_trait;
use serde_json::json;

#[derive(Default)]
pub struct Echo {
    pub revoked: Mutex<Vec<String>>,
}

#[derive(Clone, Copy)]
pub enum H {
    Echo,
    Read,
    Write,
    Delete,
    Lease,
}

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("echo/{msg}", &[(Op::Read, H::Echo)]).help("Echoes the segment.", ""),
    PathSpec::new(
        "store/{key}",
        &[
            (Op::Read, H::Read),
            (Op::Update, H::Write),
            (Op::Delete, H::Delete),
        ],
    )
    .fields(&[&[Field::str("value").sensitive().help("What to keep.")]])
    .existence()
    .help("Keeps one value per key.", ""),
    PathSpec::new("lease", &[(Op::Read, H::Lease)])
        .sudo()
        .help("Issues a leased nothing (needs sudo).", ""),
];

#[async_trait]
impl Engine for Echo {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, _h: H, req: &Request) -> ApiResult<Option<bool>> {
        Ok(Some(ctx.storage.exists(req.cap("key")).await?))
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let key = req.cap("key");
        match h {
            H::Echo => Ok(Response::data(json!({ "msg": req.cap("msg") }))),
            H::Read => match ctx.storage.get_json::<String>(key).await? {
                Some(v) => Ok(Response::data(json!({ "value": v }))),
                None => Err(airlock_logical::ApiError::not_found()),
            },
            H::Write => {
                let v = req.str_field("value")?.unwrap_or_default();
                ctx.storage.put_json(key, &v).await?;
                Ok(Response::empty())
            }
            H::Delete => {
                ctx.storage.delete(key).await?;
                Ok(Response::empty())
            }
            H::Lease => {
                let ttls = ctx.clamp_ttls(0, 0);
                let g = ctx
                    .create_lease(NewLease {
                        lease_id: format!("{}lease/1", ctx.mount.path),
                        path: format!("{}lease", ctx.mount.path),
                        default_ttl: ttls.default as u64,
                        max_ttl: ttls.max as u64,
                        internal: json!({ "n": 1 }),
                    })
                    .await?;
                let mut r = Response::data(json!({}));
                r.lease_id = g.lease_id;
                r.lease_duration = g.ttl as i64;
                Ok(r)
            }
        }
    }

    async fn revoke(&self, _ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        if let Ok(mut r) = self.revoked.lock() {
            r.push(lease.lease_id.to_string());
        }
        Ok(())
    }
}
