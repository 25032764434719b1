//! The one place where errors become HTTP responses.
//!
//! Every handler returns `Result<Response, ApiError>`; the server's `http.rs` renders an `ApiError` as
//! Vault does: `{"errors":[...]}` with the status below, or, for the few errors Vault answers
//! with a full envelope (a soft-deleted KV version), that envelope. Internal causes are logged
//! here with the request id and never sent to the client.

use airlock_store::StoreError;
use serde_json::Value;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<String>,
    /// A full body to send instead of `{"errors":...}` (KV v2 deleted-version 404).
    pub body: Option<Value>,
}

/// Vault's multierror wrapping, used by its logical layer for some errors.
pub fn multierror(msg: &str) -> String {
    format!("1 error occurred:\n\t* {msg}\n\n")
}

impl ApiError {
    pub fn new(status: u16, msg: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![msg.into()],
            body: None,
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, msg)
    }
    /// 403 for a missing, unknown or exhausted token.
    pub fn permission_denied() -> Self {
        Self::new(403, "permission denied")
    }
    /// 403 when a valid token's policies deny the path (Vault's multierror form).
    pub fn policy_denied() -> Self {
        Self::new(403, multierror("permission denied"))
    }
    /// 404 with an empty error list: nothing at this path.
    pub fn not_found() -> Self {
        Self {
            status: 404,
            errors: Vec::new(),
            body: None,
        }
    }
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }
    pub fn unsupported_path() -> Self {
        Self::new(404, multierror("unsupported path"))
    }
    pub fn unsupported_operation() -> Self {
        Self::new(405, multierror("unsupported operation"))
    }
    pub fn sealed() -> Self {
        Self::new(503, "Vault is sealed")
    }
    /// 503 for a read-modify-write that lost a race with another request or node (the
    /// pipeline runs the request again a few times before answering this).
    pub fn conflict() -> Self {
        Self::new(503, CONFLICT_MSG)
    }
    pub fn is_conflict(&self) -> bool {
        self.status == 503 && self.errors.len() == 1 && self.errors[0] == CONFLICT_MSG
    }
    /// 500 whose cause is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(500, "internal error")
    }
    /// A status with an empty body.
    pub fn bare(status: u16) -> Self {
        Self {
            status,
            errors: Vec::new(),
            body: Some(Value::Null),
        }
    }
    pub fn with_body(status: u16, body: Value) -> Self {
        Self {
            status,
            errors: Vec::new(),
            body: Some(body),
        }
    }
}

/// How often a request that lost a read-modify-write race is run again. With the backoff
/// below, a write that keeps losing gives up after about two seconds: many writers on
/// several nodes hammering one key (seen: 8 writers on 2 nodes under a loaded machine
/// exhausting 12 tries) still all land.
pub const CONFLICT_RETRIES: u32 = 24;

/// A short random pause before running a conflicting request again, growing with each try
/// (up to 100 ms) so that nodes racing for one key spread out.
pub async fn conflict_backoff(tries: u32) {
    let cap_us = 200u64 << tries.min(9);
    let r = u64::from_le_bytes(crate::util::random_bytes::<8>());
    tokio::time::sleep(std::time::Duration::from_micros(r % cap_us)).await;
}

const CONFLICT_MSG: &str =
    "the entry was changed concurrently by another request or node; retry the request";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sealed => ApiError::sealed(),
            StoreError::AlreadyInitialized => ApiError::bad_request("Vault is already initialized"),
            StoreError::NotInitialized => ApiError::bad_request("Vault is not initialized"),
            StoreError::InvalidKey(m) => ApiError::bad_request(format!("invalid key: {m}")),
            StoreError::Conflict(_) => ApiError::conflict(),
            StoreError::Backend(_) | StoreError::Corrupt(_) => ApiError::internal(&e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
