//! The catalog: engine type → factory. Adding an engine is one module and one line here.

#[cfg(test)]
mod echo;

use std::sync::Arc;

use airlock_logical::{ApiError, ApiResult, Backend, MountEntry};

/// Which mount table a type belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Secrets,
    Auth,
}

/// A type name as users write it, normalised: the type stored in the mount table and the
/// options it implies (`kv-v2` is `kv` with `version=2`).
pub struct Resolved {
    pub kind: &'static str,
    pub options: Vec<(&'static str, &'static str)>,
}

struct Entry {
    name: &'static str,
    table: Table,
    new: fn(&MountEntry) -> ApiResult<Arc<dyn Backend>>,
}

fn kv(m: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    match m.option("version").unwrap_or("1") {
        "1" => Ok(Arc::new(crate::kv::KvV1)),
        "2" => Ok(Arc::new(crate::kv::KvV2)),
        v => Err(ApiError::bad_request(format!("invalid KV version \"{v}\""))),
    }
}

fn cubbyhole(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::cubbyhole::Cubbyhole))
}

fn identity(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::identity::Identity))
}

fn database(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::database::Database::new()))
}

fn transit(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::transit::Transit::new()))
}

fn pki(m: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::pki::Pki::new(&m.uuid)))
}

fn approle(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::auth::approle::AppRole))
}

fn userpass(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::auth::userpass::Userpass))
}

fn jwt(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::auth::jwt::Jwt::default()))
}

fn kubernetes(_: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    Ok(Arc::new(crate::auth::kubernetes::Kubernetes::default()))
}

/// Types mounted once, by the server itself (`cubbyhole/`, `identity/`), never by users.
pub const BUILTIN_ONLY: &[&str] = &["cubbyhole", "identity"];

/// One line per engine type.
#[rustfmt::skip]
const CATALOG: &[Entry] = &[
    Entry { name: "kv", table: Table::Secrets, new: kv },
    Entry { name: "database", table: Table::Secrets, new: database },
    Entry { name: "transit", table: Table::Secrets, new: transit },
    Entry { name: "aws", table: Table::Secrets, new: |_| Ok(Arc::new(crate::aws::Aws)) },
    Entry { name: "pki", table: Table::Secrets, new: pki },
    Entry { name: "cubbyhole", table: Table::Secrets, new: cubbyhole },
    Entry { name: "identity", table: Table::Secrets, new: identity },
    Entry { name: "approle", table: Table::Auth, new: approle },
    Entry { name: "jwt", table: Table::Auth, new: jwt },
    Entry { name: "oidc", table: Table::Auth, new: jwt },
    Entry { name: "kubernetes", table: Table::Auth, new: kubernetes },
    Entry { name: "userpass", table: Table::Auth, new: userpass },
];

/// Engines compiled into test builds only.
#[cfg(test)]
#[rustfmt::skip]
const TEST_ONLY: &[Entry] = &[
    Entry { name: "echo", table: Table::Secrets, new: |_| Ok(Arc::new(echo::Echo::default())) },
];
#[cfg(not(test))]
const TEST_ONLY: &[Entry] = &[];

fn entries() -> impl Iterator<Item = &'static Entry> {
    CATALOG.iter().chain(TEST_ONLY.iter())
}

/// Resolves a type name given to `sys/mounts` or `sys/auth`.
pub fn resolve(table: Table, name: &str) -> ApiResult<Resolved> {
    let (kind, options) = match (table, name) {
        (Table::Secrets, "generic") => ("kv", vec![]),
        (Table::Secrets, "kv-v2") => ("kv", vec![("version", "2")]),
        _ => (name, vec![]),
    };
    if table == Table::Secrets && BUILTIN_ONLY.contains(&kind) {
        return Err(ApiError::bad_request(format!(
            "mount type of \"{kind}\" is not mountable"
        )));
    }
    match entries().find(|e| e.table == table && e.name == kind) {
        Some(e) => Ok(Resolved {
            kind: e.name,
            options,
        }),
        // The requested type is not quoted back (OpenBao appends it).
        None => Err(ApiError::bad_request("plugin not found in the catalog")),
    }
}

/// An engine instance for a mount entry.
pub fn instantiate(table: Table, m: &MountEntry) -> ApiResult<Arc<dyn Backend>> {
    match entries().find(|e| e.table == table && e.name == m.kind) {
        Some(e) => (e.new)(m),
        None => Err(ApiError::bad_request("plugin not found in the catalog")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_logical::testing::{ctx, mount, request, TestSystem};
    use airlock_logical::Op;
    use serde_json::json;

    /// An engine added with one module and one catalog line is served like any other:
    /// resolved by type, routed by its table, fields declared, existence answered, leases
    /// registered.
    #[tokio::test]
    async fn a_new_engine_is_one_module_and_one_catalog_line() {
        assert_eq!(resolve(Table::Secrets, "echo").unwrap().kind, "echo");
        assert!(resolve(Table::Auth, "echo").is_err());
        let m = mount("echo/", "echo");
        let b = instantiate(Table::Secrets, &m).unwrap();
        let sys = Arc::new(TestSystem::with_limits(60, 120));
        let c = ctx(sys.clone(), m);
        let mut r = request(Op::Read, "echo/echo/hi", json!({}));
        assert_eq!(
            b.handle(&c, &mut r, "echo/hi").await.unwrap().data.unwrap()["msg"],
            "hi"
        );
        let mut r = request(Op::Update, "echo/store/k", json!({"value": "v"}));
        assert_eq!(
            b.existence(&c, &mut r, "store/k").await.unwrap(),
            Some(false)
        );
        b.handle(&c, &mut r, "store/k").await.unwrap();
        let mut r = request(Op::Update, "echo/store/k", json!({}));
        assert_eq!(
            b.existence(&c, &mut r, "store/k").await.unwrap(),
            Some(true)
        );
        assert_eq!(b.describe("store/k").unwrap().sensitive, vec!["value"]);
        assert!(b.describe("lease").unwrap().sudo && !b.describe("store/k").unwrap().sudo);
        let mut r = request(Op::List, "echo/store/k", json!({}));
        assert_eq!(
            b.handle(&c, &mut r, "store/k").await.unwrap_err().status,
            405
        );
        let mut r = request(Op::Read, "echo/nope", json!({}));
        assert_eq!(b.handle(&c, &mut r, "nope").await.unwrap_err().status, 404);
        let mut r = request(Op::Read, "echo/lease", json!({}));
        let resp = b.handle(&c, &mut r, "lease").await.unwrap();
        assert_eq!(resp.lease_duration, 60);
        assert_eq!(sys.lease_ids(), vec!["echo/lease/1".to_string()]);
    }
}
