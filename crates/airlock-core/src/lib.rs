//! Airlock core: pure logic shared by the server crates — policy parsing and ACL
//! evaluation, the HCL subset policies use, Shamir secret sharing, and Vault-style TTL
//! parsing. No I/O, no clock reads: callers pass in time and randomness.

pub mod binding;
pub mod cidr;
pub mod cron;
pub mod duration;
pub mod event_filter;
pub mod gotemplate;
pub mod hcl;
pub mod jwt;
pub mod lease;
pub mod password_policy;
pub mod percent;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod shamir;
pub mod sigv4;
pub mod token_format;
pub mod username_template;
