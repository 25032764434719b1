//! `sys/storage/backup` and `sys/storage/restore` (sudo): an online, consistent backup of
//! the whole store (values stay encrypted under the barrier), and its restore — into an
//! empty store, or over an existing one when forced. A restore seals this node (it unseals
//! again at once with a key-file seal); other nodes reload what they cache, and seal if the
//! backup came from a cluster with other keys.

use airlock_store::backup;

use crate::core::{now_nanos, rfc3339_nanos, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Request, Response};

impl Core {
    /// A backup file of the whole store as of one moment.
    pub async fn backup(&self) -> ApiResult<Vec<u8>> {
        let rows = self.barrier.backend().snapshot().await?;
        let cluster = self.cluster().map(|c| c.id).unwrap_or_default();
        let term = self.barrier.keyring()?.active_term();
        Ok(backup::encode(
            &rows,
            &cluster,
            term,
            &rfc3339_nanos(now_nanos()),
        ))
    }

    /// Restores a backup file: checked first (a truncated or corrupted file changes
    /// nothing), then written in one batch.
    pub async fn restore(&self, file: &[u8], force: bool) -> ApiResult<()> {
        let (header, rows) =
            backup::decode(file).map_err(|e| ApiError::bad_request(e.to_string()))?;
        {
            let _g = self.seal_lock.lock().await;
            backup::restore(self.barrier.backend().as_ref(), &rows, force)
                .await
                .map_err(|e| match e {
                    airlock_store::StoreError::Backend(m) if m.contains("not empty") => {
                        ApiError::bad_request(m.replace(
                            "force it",
                            "set force=true (`airlock operator restore -force`)",
                        ))
                    }
                    other => other.into(),
                })?;
            self.seal_now();
        }
        tracing::warn!(cluster_id = %header.cluster_id, entries = header.entries, "store restored from a backup; this node is sealed");
        if let Err(e) = self.try_auto_unseal().await {
            tracing::warn!(error = ?e.errors, "unsealing after the restore failed");
        }
        Ok(())
    }
}

pub(super) async fn backup_response(core: &Core) -> ApiResult<Response> {
    Ok(Response {
        bytes: Some(core.backup().await?),
        ..Default::default()
    })
}

pub(super) async fn restore(core: &Core, req: &Request) -> ApiResult<Response> {
    let force = req
        .query
        .iter()
        .any(|(k, v)| k == "force" && matches!(v.as_str(), "" | "true" | "1"));
    let body = req
        .body
        .as_deref()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::bad_request("the request body must be a backup file"))?;
    core.restore(body, force).await?;
    Ok(Response::empty())
}
