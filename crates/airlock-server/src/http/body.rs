//! Reading request bodies: the small limit before authentication, the large one for a valid
//! token on an authenticated path, and the minimum rate.

use super::*;
use http_body_util::BodyExt;

/// Where a backup is restored (its body is the backup file, not JSON).
pub(crate) const RESTORE_PATH: &str = "sys/storage/restore";

/// How a request body may be read.
pub(super) struct BodyRules {
    /// Read at most this much before the request is known to be authenticated.
    pub(super) small: usize,
    /// The overall limit, for a request with a valid token on an authenticated path.
    pub(super) large: usize,
    /// Time allowed beyond what the minimum rate needs.
    pub(super) grace: std::time::Duration,
    /// Bytes per second a body must keep up on average after the grace time.
    pub(super) min_rate: u64,
}

/// Whether a path is served without a token (so its body never earns the large limit):
/// init, unseal, response unwrapping and every auth method's login paths.
pub(super) fn unauthenticated_path(core: &Core, path: &str) -> bool {
    if path == "sys/init"
        || path == "sys/unseal"
        || (path.starts_with("sys/wrapping/") && path != "sys/wrapping/wrap")
    {
        return true;
    }
    if !path.starts_with("auth/") || path.starts_with("auth/token/") {
        return false;
    }
    core.router
        .route(path)
        .and_then(|r| r.backend.describe(&r.rel))
        .is_some_and(|i| i.login)
}

/// Whether a body beyond the small limit may be read.
pub(super) enum Large {
    /// A valid token on an authenticated path.
    Allowed,
    /// No valid token: `403`, as the request would get once read.
    Denied,
    /// A path served without a token: `413`.
    Unauthenticated,
}

pub(super) async fn may_read_large(
    core: &Core,
    path: &str,
    token: Option<&str>,
) -> ApiResult<Large> {
    // A backup restored into a new (uninitialised) server: no token exists yet, as for
    // `sys/init`, and a backup is bigger than the small limit.
    if path == RESTORE_PATH && core.seal_config().await?.is_none() {
        return Ok(Large::Allowed);
    }
    if unauthenticated_path(core, path) {
        return Ok(Large::Unauthenticated);
    }
    let Some(token) = token else {
        return Ok(Large::Denied);
    };
    if core.is_sealed() {
        return Err(ApiError::sealed());
    }
    Ok(match core.tokens.lookup(token).await? {
        Some(_) => Large::Allowed,
        None => Large::Denied,
    })
}

/// Asks, at most once, whether the large limit applies.
async fn widen<F>(ask: &mut Option<F>, large: usize) -> ApiResult<usize>
where
    F: std::future::Future<Output = ApiResult<Large>>,
{
    match ask.take() {
        Some(f) => match f.await? {
            Large::Allowed => Ok(large),
            Large::Denied => Err(ApiError::permission_denied()),
            Large::Unauthenticated => Err(ApiError::new(413, "http: request body too large")),
        },
        None => Err(ApiError::new(413, "http: request body too large")),
    }
}

/// Reads the whole body, done before any other check so an error answer never leaves
/// unread bytes on a keep-alive connection (when it must, the response says
/// `Connection: close`). Beyond `rules.small` bytes a body is read only for a valid token on
/// an authenticated path (`ask` is awaited at most once); otherwise `403` for a token that
/// is not valid, `413` for an unauthenticated path. A body that does not keep up the
/// minimum rate gets `408`.
pub(super) async fn collect_body<F>(
    mut body: Incoming,
    rules: &BodyRules,
    content_length: Option<usize>,
    ask: F,
) -> ApiResult<Zeroizing<Vec<u8>>>
where
    F: std::future::Future<Output = ApiResult<Large>>,
{
    let too_large = || ApiError::new(413, "http: request body too large");
    let mut ask = Some(ask);
    let mut limit = rules.small;
    if let Some(len) = content_length {
        if len > rules.large {
            return Err(too_large());
        }
        if len > limit {
            limit = widen(&mut ask, rules.large).await?;
        }
    }
    let start = tokio::time::Instant::now();
    let mut out = Zeroizing::new(Vec::with_capacity(content_length.unwrap_or(0).min(limit)));
    loop {
        let due = start
            + rules.grace
            + std::time::Duration::from_secs_f64(out.len() as f64 / rules.min_rate as f64);
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    408,
                    "request body read timed out: the body arrived too slowly",
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ApiError::bad_request("failed to read request body")),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if out.len() + data.len() > limit {
            limit = widen(&mut ask, rules.large).await?;
            if out.len() + data.len() > limit {
                return Err(too_large());
            }
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}
