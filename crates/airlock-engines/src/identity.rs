//! The identity store's mount, `identity/`: present on every server and listed in
//! `sys/mounts` as OpenBao lists it, so tools that read the mount table see what they expect.
//! Its API (entities, groups, aliases, the OIDC provider) is not implemented: every path
//! answers as an unknown one.

use airlock_logical::{ApiResult, Ctx, Engine, PathSpec, Request, Response};
use async_trait::async_trait;

/// The identity engine.
pub struct Identity;

#[derive(Clone, Copy)]
pub enum NoH {}

static NO_PATHS: &[PathSpec<NoH>] = &[];

#[async_trait]
impl Engine for Identity {
    type H = NoH;

    fn paths(&self) -> &'static [PathSpec<NoH>] {
        NO_PATHS
    }

    async fn call(&self, _ctx: &Ctx, h: NoH, _req: &Request) -> ApiResult<Response> {
        match h {}
    }
}
