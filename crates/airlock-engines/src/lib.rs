//! Airlock's secrets engines and auth methods, each a module behind the logical SDK's
//! [`Engine`](airlock_logical::Engine) interface. Nothing here knows the server: an engine
//! sees its mount's storage view and the system view, never the core.
//!
//! - [`kv`]: KV v1 and v2.
//! - [`cubbyhole`]: per-token private storage; [`identity`]: the identity store's mount.
//! - [`aws`]: AWS credentials on demand (IAM users, STS), with SigV4 signing.
//! - [`database`]: dynamic and static database credentials, with a plugin per database.
//! - [`pki`]: certificates from a CA per mount (Vault's PKI engine).
//! - [`transit`]: encryption as a service (Vault's transit engine).
//! - [`auth`]: AppRole, userpass, JWT/OIDC, Kubernetes.
//! - [`catalog`]: engine type → factory; the only place (with the server's router) that
//!   names engine types.

pub mod auth;
pub mod aws;
pub mod catalog;
pub mod cubbyhole;
pub mod database;
pub mod http_client;
pub mod identity;
pub mod kv;
pub mod pki;
pub mod transit;
