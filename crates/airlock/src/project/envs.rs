//! `airlock env diff|check|promote`: compare and move keys between a project's environments.
//! Values are masked unless `--show`; a promotion is one check-and-set write on the target
//! (a new KV version, in the server's audit log like any write).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{print, Format};
use crate::project::file::{self, Ctx};
use crate::FormatArg;

#[derive(Args, Clone)]
pub struct Which {
    /// Project (default: from airlock.project.toml).
    #[arg(long)]
    pub project: Option<String>,
    /// KV v2 mount (default: from airlock.project.toml, else secret).
    #[arg(long)]
    pub mount: Option<String>,
}

#[derive(Subcommand)]
pub enum EnvCmd {
    /// Keys that differ between two environments (values masked unless --show).
    #[command(
        after_help = "Examples:\n  airlock env diff dev prd\n  airlock env diff dev stg --show --format json"
    )]
    Diff {
        a: String,
        b: String,
        /// Show values instead of masking them.
        #[arg(long)]
        show: bool,
        #[command(flatten)]
        w: Which,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Keys the reference environment has and this one lacks; exit code 1 if any.
    #[command(
        after_help = "Examples:\n  airlock env check\n  airlock env check --env prd --reference dev"
    )]
    Check {
        /// The environment to check (default: the project file's).
        #[arg(long)]
        env: Option<String>,
        /// The environment to compare against (default: reference_env, else dev).
        #[arg(long)]
        reference: Option<String>,
        #[command(flatten)]
        w: Which,
    },
    /// Copy keys (all, or those named) from one environment to another as a new version.
    #[command(
        after_help = "Examples:\n  airlock env promote dev stg\n  airlock env promote stg prd OPENAI_API_KEY LIVEKIT_API_SECRET --dry-run"
    )]
    Promote {
        from: String,
        to: String,
        keys: Vec<String>,
        /// Show what would change without writing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        w: Which,
    },
}

/// The project context: from the file, with --project/--mount overriding it.
fn ctx(w: &Which, env: Option<&str>) -> Result<Ctx> {
    let found = file::current(env)?;
    let project = match (&w.project, &found) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.project.clone(),
        (None, None) => {
            bail!("no project: pass --project NAME or run `airlock setup --project NAME --env ENV`")
        }
    };
    file::check_name("project", &project)?;
    let mount = w
        .mount
        .clone()
        .or_else(|| found.as_ref().map(|c| c.mount.clone()))
        .unwrap_or_else(|| "secret".into());
    Ok(Ctx {
        project,
        env: found
            .as_ref()
            .map(|c| c.env.clone())
            .or(env.map(str::to_string))
            .unwrap_or_else(|| "dev".into()),
        reference_env: found
            .as_ref()
            .map(|c| c.reference_env.clone())
            .unwrap_or_else(|| "dev".into()),
        file: found.map(|c| c.file).unwrap_or_default(),
        mount,
    })
}

/// An environment's keys and the version they are at (0: no entry).
async fn read_env(cl: &Client, c: &Ctx, env: &str) -> Result<(Map<String, Value>, i64)> {
    file::check_name("environment", env)?;
    let api = format!("{}/data/{}/{env}", c.mount, c.project);
    match cl.call("GET", &api, None).await? {
        Some(v) => Ok((
            v.pointer("/data/data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            v.pointer("/data/metadata/version")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        )),
        None => bail!(
            "no environment {env} in project {} ({})",
            c.project,
            c.path_of(env)
        ),
    }
}

fn shown(v: Option<&Value>, show: bool) -> Value {
    match v {
        None => Value::Null,
        Some(_) if !show => json!("********"),
        Some(Value::String(s)) => json!(s),
        Some(other) => json!(other.to_string()),
    }
}

/// The difference of two key sets: (key, status, value in a, value in b).
pub fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<(String, &'static str)> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let st = match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) if x == y => return None,
                (Some(_), Some(_)) => "differs",
                (Some(_), None) => "only in first",
                (None, _) => "only in second",
            };
            Some((k.clone(), st))
        })
        .collect()
}

pub async fn run(c: EnvCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        EnvCmd::Diff { a, b, show, w, f } => {
            let cx = ctx(&w, None)?;
            let (ma, _) = read_env(&cl, &cx, &a).await?;
            let (mb, _) = read_env(&cl, &cx, &b).await?;
            let d = diff(&ma, &mb);
            match f.format {
                Format::Table => {
                    if d.is_empty() {
                        println!("{a} and {b} hold the same keys and values");
                    }
                    for (k, st) in &d {
                        let st = st.replace("first", &a).replace("second", &b);
                        if show {
                            println!(
                                "{k:<32} {st:<16} {a}={} {b}={}",
                                shown(ma.get(k), true),
                                shown(mb.get(k), true)
                            );
                        } else {
                            println!("{k:<32} {st}");
                        }
                    }
                }
                fmt => {
                    let rows: Vec<Value> = d
                        .iter()
                        .map(|(k, st)| {
                            json!({
                                "key": k,
                                "status": st.replace("first", &a).replace("second", &b),
                                a.clone(): shown(ma.get(k), show),
                                b.clone(): shown(mb.get(k), show),
                            })
                        })
                        .collect();
                    print(&Value::Array(rows), fmt)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnvCmd::Check { env, reference, w } => {
            let cx = ctx(&w, env.as_deref())?;
            let here = env.clone().unwrap_or_else(|| cx.env.clone());
            let reference = reference.unwrap_or_else(|| cx.reference_env.clone());
            if here == reference {
                bail!("checking {here} against itself: pass --reference ENV or --env ENV");
            }
            let (mr, _) = read_env(&cl, &cx, &reference).await?;
            let (mh, _) = read_env(&cl, &cx, &here).await?;
            let missing: Vec<&String> = mr.keys().filter(|k| !mh.contains_key(*k)).collect();
            if missing.is_empty() {
                println!("{here} has every key {reference} has");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{here} lacks {} key(s) that {reference} has:",
                missing.len()
            );
            for k in missing {
                println!("  {k}");
            }
            Ok(ExitCode::from(1))
        }
        EnvCmd::Promote {
            from,
            to,
            keys,
            dry_run,
            w,
        } => {
            let cx = ctx(&w, None)?;
            if from == to {
                bail!("promoting {from} onto itself");
            }
            let (src, _) = read_env(&cl, &cx, &from).await?;
            let (mut dst, version) = read_env(&cl, &cx, &to).await?;
            let chosen: Vec<String> = if keys.is_empty() {
                src.keys().cloned().collect()
            } else {
                keys
            };
            let mut changed = Vec::new();
            for k in &chosen {
                let v = src.get(k).ok_or_else(|| anyhow!("{from} has no key {k}"))?;
                if dst.get(k) != Some(v) {
                    dst.insert(k.clone(), v.clone());
                    changed.push(k.clone());
                }
            }
            if changed.is_empty() {
                println!("Nothing to promote: {to} already has these values");
                return Ok(ExitCode::SUCCESS);
            }
            if dry_run {
                println!("Would promote {} from {from} to {to}", changed.join(", "));
                return Ok(ExitCode::SUCCESS);
            }
            let v = cl
                .call(
                    "POST",
                    &format!("{}/data/{}/{to}", cx.mount, cx.project),
                    Some(&json!({"data": dst, "options": {"cas": version}})),
                )
                .await?
                .unwrap_or(Value::Null);
            println!(
                "Promoted {} from {from} to {to} (version {})",
                changed.join(", "),
                v.pointer("/data/version").unwrap_or(&Value::Null)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_kind_of_difference() {
        let a = json!({"A": "1", "B": "2", "C": "3"});
        let b = json!({"A": "1", "B": "x", "D": "4"});
        let d = diff(a.as_object().unwrap(), b.as_object().unwrap());
        assert_eq!(
            d,
            vec![
                ("B".to_string(), "differs"),
                ("C".to_string(), "only in first"),
                ("D".to_string(), "only in second")
            ]
        );
    }
}
