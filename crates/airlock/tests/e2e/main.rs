//! End-to-end tests: the real `airlock` binary, real clients (hvac, the `bao` CLI), and a
//! real OpenBao for differential compatibility. One test binary for the whole area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent;
mod api;
mod auth;
mod aws;
mod backup;
mod broker;
mod broker_approvals;
mod broker_aws;
mod broker_budget;
mod broker_honeytoken;
mod broker_login;
mod broker_mcp;
mod broker_mint;
mod broker_sandbox;
mod broker_templates;
mod cli;
mod clients;
mod cluster;
mod cluster_faults;
mod database;
mod durability;
mod event_streams;
mod events;
mod idp;
mod k8s_cli;
mod kube;
mod limits;
mod mounts;
mod pg_private;
mod pg_tls;
mod pki;
mod projects;
mod run_watch;
mod seals;
mod token_endpoint;
mod transit;
mod ui;
mod upgrade;
mod upstream;
mod util;
