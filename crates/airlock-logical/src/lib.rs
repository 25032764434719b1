//! The logical SDK: everything an engine or auth method needs, and nothing of the server.
//!
//! - [`request`]: [`Request`], [`Response`], [`Op`] — a request independent of HTTP, with typed
//!   field accessors checked against the path's declared fields.
//! - [`error`]: [`ApiError`], the one error type every layer returns (the server maps it to
//!   HTTP in one place).
//! - [`framework`]: declarative path tables ([`PathSpec`], [`Field`]) and the matcher.
//! - [`backend`]: the engine interface ([`Engine`]) and the dynamic form the server holds
//!   ([`Backend`]).
//! - [`storage`]: [`View`], storage scoped to a mount, with per-key locks; [`MemStorage`].
//! - [`system`]: [`SystemView`] (clock, TTL limits, password policies, HMAC, leases) and the
//!   per-call [`Ctx`].
//! - [`auth`]: what auth methods share (`token_*` settings, [`auth::LoginOutcome`]).
//! - [`testing`]: in-memory system view and helpers for engine unit tests.

pub mod auth;
pub mod backend;
pub mod error;
pub mod framework;
pub mod login;
pub mod mount;
pub mod op;
pub mod request;
pub mod storage;
pub mod system;
pub mod testing;
pub mod util;

/// Connections to PostgreSQL with libpq's TLS options (the database engine's plugin).
pub use airlock_store::postgres::tls as pg_tls;
pub use airlock_store::BarrierOp;
pub use backend::{Backend, Engine, PathInfo};
pub use error::{ApiError, ApiResult};
pub use framework::{Field, FieldKind, PathSpec};
pub use mount::MountEntry;
pub use request::{AuthBlock, Op, Request, Response};
pub use storage::{KeyLocks, Locked, MemStorage, Storage, View};
pub use system::{CallerInfo, Ctx, LeaseGrant, LeaseInfo, NewLease, SystemView, Ttls};
