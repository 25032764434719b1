//! `airlock.project.toml`: which project and environment a repository (or each folder of a
//! monorepo) reads. Found by walking up from the working directory; the folder entry with
//! the longest matching prefix wins over the top-level one.
//!
//! ```toml
//! project = "voice"          # secret/voice/<env>
//! env = "dev"                # the default environment (--env or AIRLOCK_ENV switch it)
//! mount = "secret"           # the KV v2 mount (default secret)
//! reference_env = "dev"      # what `airlock env check` compares against (default dev)
//!
//! [folders."services/api"]   # a folder of a monorepo with its own project
//! project = "api"
//! env = "dev"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// The file's name: not the server config (`airlock.server.toml`) nor a broker profile
/// (`airlock.broker.toml`).
pub const FILE: &str = "airlock.project.toml";

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub project: Option<String>,
    pub env: Option<String>,
    pub mount: Option<String>,
    pub reference_env: Option<String>,
    #[serde(default)]
    pub folders: BTreeMap<String, Folder>,
}

#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Folder {
    pub project: String,
    pub env: Option<String>,
    pub mount: Option<String>,
    pub reference_env: Option<String>,
}

/// Where the CLI reads and writes when no path is given.
#[derive(Clone, Debug, PartialEq)]
pub struct Ctx {
    pub project: String,
    pub env: String,
    pub mount: String,
    pub reference_env: String,
    /// The file it came from (for messages).
    pub file: PathBuf,
}

impl Ctx {
    /// The KV path of an environment of this project.
    pub fn path_of(&self, env: &str) -> String {
        format!("{}/{}/{env}", self.mount, self.project)
    }

    /// The KV path of the current environment.
    pub fn env_path(&self) -> String {
        self.path_of(&self.env)
    }
}

/// A project or environment name: lower-case letters, digits, `-` and `_`, starting with a
/// letter or digit (it becomes a path segment and part of policy names).
pub fn check_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("{what} {s:?}: use lower-case letters, digits, '-' and '_' (at most 64)");
    }
    Ok(())
}

pub fn parse(text: &str, origin: &Path) -> Result<Raw> {
    toml::from_str::<Raw>(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => anyhow!("{}:{l}: {}", origin.display(), e.message()),
            None => anyhow!("{}: {}", origin.display(), e.message()),
        }
    })
}

/// The context for a working directory `rel` (relative to the file's folder).
pub fn context(raw: &Raw, rel: &Path, file: &Path, env_override: Option<&str>) -> Result<Ctx> {
    let folder = raw
        .folders
        .iter()
        .filter(|(k, _)| rel.starts_with(Path::new(k.trim_matches('/'))))
        .max_by_key(|(k, _)| Path::new(k.trim_matches('/')).components().count());
    let (project, env, mount, reference) = match folder {
        Some((_, f)) => (
            Some(f.project.clone()),
            f.env.clone().or_else(|| raw.env.clone()),
            f.mount.clone().or_else(|| raw.mount.clone()),
            f.reference_env
                .clone()
                .or_else(|| raw.reference_env.clone()),
        ),
        None => (
            raw.project.clone(),
            raw.env.clone(),
            raw.mount.clone(),
            raw.reference_env.clone(),
        ),
    };
    let project = project.ok_or_else(|| {
        anyhow!(
            "{}: no project for this folder (set `project`, or a [folders.\"…\"] entry)",
            file.display()
        )
    })?;
    let env = env_override.map(str::to_string).or(env).ok_or_else(|| {
        anyhow!(
            "{}: no environment (set `env`, or pass --env)",
            file.display()
        )
    })?;
    check_name("project", &project)?;
    check_name("environment", &env)?;
    Ok(Ctx {
        project,
        env,
        mount: mount.unwrap_or_else(|| "secret".into()),
        reference_env: reference.unwrap_or_else(|| "dev".into()),
        file: file.to_path_buf(),
    })
}

/// The nearest project file at or above `start`.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE))
        .find(|f| f.is_file())
}

/// The context of the working directory, if a project file is found (`--env`, then
/// `AIRLOCK_ENV`, override its environment).
pub fn current(env_override: Option<&str>) -> Result<Option<Ctx>> {
    let cwd = std::env::current_dir().context("the working directory")?;
    let Some(file) = find(&cwd) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let raw = parse(&text, &file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let rel = cwd.strip_prefix(dir).unwrap_or(Path::new(""));
    let from_env = std::env::var("AIRLOCK_ENV").ok().filter(|s| !s.is_empty());
    let over = env_override.map(str::to_string).or(from_env);
    context(&raw, rel, &file, over.as_deref()).map(Some)
}

/// The context, or an error saying how to get one.
pub fn required(env_override: Option<&str>) -> Result<Ctx> {
    current(env_override)?.ok_or_else(|| {
        anyhow!(
            "no path given and no {FILE} here or above: pass a path, or run `airlock setup --project NAME --env ENV`"
        )
    })
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The file's text (comments are not kept: `airlock setup` owns the file).
pub fn render(raw: &Raw) -> String {
    let mut out = String::from(
        "# Written by `airlock setup`: the Airlock project and environment of this repository.\n",
    );
    let top = [
        ("project", &raw.project),
        ("env", &raw.env),
        ("mount", &raw.mount),
        ("reference_env", &raw.reference_env),
    ];
    for (k, v) in top {
        if let Some(v) = v {
            out.push_str(&format!("{k} = {}\n", quote(v)));
        }
    }
    for (name, f) in &raw.folders {
        out.push_str(&format!(
            "\n[folders.{}]\nproject = {}\n",
            quote(name),
            quote(&f.project)
        ));
        let rest = [
            ("env", &f.env),
            ("mount", &f.mount),
            ("reference_env", &f.reference_env),
        ];
        for (k, v) in rest {
            if let Some(v) = v {
                out.push_str(&format!("{k} = {}\n", quote(v)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Raw {
        parse(
            "project = \"voice\"\nenv = \"dev\"\n[folders.\"services/api\"]\nproject = \"api\"\n[folders.\"services/api/worker\"]\nproject = \"worker\"\nenv = \"stg\"\n",
            Path::new("airlock.project.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_longest_folder_wins_and_env_can_be_switched() {
        let f = Path::new("/r/airlock.project.toml");
        let r = raw();
        let c = context(&r, Path::new(""), f, None).unwrap();
        assert_eq!((c.project.as_str(), c.env.as_str()), ("voice", "dev"));
        assert_eq!(c.env_path(), "secret/voice/dev");
        let c = context(&r, Path::new("services/api/src"), f, None).unwrap();
        assert_eq!((c.project.as_str(), c.env.as_str()), ("api", "dev"));
        let c = context(&r, Path::new("services/api/worker"), f, Some("prd")).unwrap();
        assert_eq!((c.project.as_str(), c.env.as_str()), ("worker", "prd"));
        // A prefix of a folder name is not that folder.
        let c = context(&r, Path::new("services/apiary"), f, None).unwrap();
        assert_eq!(c.project, "voice");
        assert!(context(&r, Path::new(""), f, Some("../x")).is_err());
    }

    #[test]
    fn bad_files_name_the_line_and_render_round_trips() {
        let e = parse("project = \"v\"\nbogus = 1\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:"), "{e}");
        let r = raw();
        assert_eq!(parse(&render(&r), Path::new("x")).unwrap(), r);
        assert!(check_name("project", "Voice").is_err());
        assert!(check_name("project", "voice-2_b").is_ok());
    }
}
