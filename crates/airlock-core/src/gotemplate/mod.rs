//! Go `text/template` as OpenBao/Vault agent templates use it: the template language
//! (actions, trim markers, comments, custom delimiters, pipelines, variables,
//! `if`/`with`/`range`/`break`/`continue`, `define`/`template`/`block`), Go's builtins,
//! and the consul-template (openbao-template) functions agents call (`secret`, `env`,
//! `file`, `toJSON`, `base64Decode`, math, ...).
//!
//! Output is meant to be byte-for-byte what `bao agent` renders: values keep their Go
//! types (secret data numbers are `json.Number`s, a missing key reads as nil under
//! consul-template's `missingkey=zero`), and printing follows Go's `fmt`.
//!
//! The engine is pure: everything outside the template — secrets, environment, files,
//! the clock — comes through [`Host`]. Parsing and rendering never panic on any input;
//! nesting, execution steps, and output size are bounded (see the `MAX_*` constants).
//!
//! Not supported: sprig functions (`sprig_*`), `toYAML`, `toTOML`, `parseYAML`,
//! `regexMatch`, `regexReplaceAll`, `md5sum`, `secrets`, `pkiCert`, `writeToFile`,
//! `plugin`, `scratch`, `mergeMap*`, `explodeMap`, `sockaddr`, `spew_*` (they parse, as
//! in `bao agent`, and fail when called), complex numbers, hex float literals.

mod ast;
mod consul;
mod exec;
mod funcs;
mod gofmt;
mod json;
mod lex;
mod literal;
mod parse;
mod strconv;
mod timefmt;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;

/// Deepest nesting of blocks (`if`, `with`, `range`, `define`) and parentheses the
/// parser accepts.
pub const MAX_NESTING: usize = 100;
/// Deepest nesting during execution, counting blocks, template calls and parentheses.
pub const MAX_EXEC_DEPTH: usize = 150;
/// Largest rendered output.
pub const MAX_OUTPUT: usize = 64 << 20;
/// Largest single string a function may produce.
pub const MAX_STRING: usize = 64 << 20;
/// Most bytes all function calls of one render may produce together.
pub const MAX_PRODUCED: usize = 256 << 20;
/// Most evaluation steps (nodes, commands, loop iterations) of one render.
pub const MAX_STEPS: u64 = 20_000_000;

/// A parsed template (the main template plus any `define`d ones).
#[derive(Debug)]
pub struct Template {
    name: String,
    trees: parse::Trees,
}

/// How a render treats missing map keys.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Go's `missingkey=error` (the agent's `error_on_missing_key`); otherwise
    /// consul-template's `missingkey=zero`.
    pub error_on_missing_key: bool,
}

/// The world outside the template.
pub trait Host {
    /// consul-template's `secret PATH [k=v ...]`: Some(secret) once fetched, None while not yet
    /// available (the host records the request and fetches it; the template is rendered again).
    /// The secret is a JSON object shaped like consul-template's Secret struct:
    /// {"RequestID": "...", "LeaseID": "", "LeaseDuration": 0, "Renewable": false, "Data": {...}, "Warnings": null, "Auth": null, "WrapInfo": null}
    fn secret(&mut self, path: &str, params: &[(String, String)]) -> Option<serde_json::Value>;
    /// `env NAME`: the variable's value or "".
    fn env(&self, name: &str) -> String;
    /// `file PATH`: the file's contents.
    fn file(&mut self, path: &str) -> Result<String, String>;
    /// The current time, for `timestamp` (the core reads no clock itself).
    fn now(&self) -> std::time::SystemTime;
}

/// A render's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    /// false when any `secret` call returned None
    pub complete: bool,
}

/// A parse or execution error, located at the line where the offending action starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub name: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.name, self.line, self.reason)
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses template text. `name` is used in errors (the source file path, or "(dynamic)" for inline contents).
    /// `left`/`right` are the delimiters ("{{" / "}}" by default; empty strings mean the defaults).
    pub fn parse(
        name: &str,
        text: &str,
        left: &str,
        right: &str,
    ) -> Result<Template, TemplateError> {
        let left = if left.is_empty() { "{{" } else { left };
        let right = if right.is_empty() { "}}" } else { right };
        let trees = parse::parse(name, text, left, right)?;
        Ok(Template {
            name: name.to_string(),
            trees,
        })
    }

    /// Renders the template with nil data (`.` and `$` are nil, as in consul-template).
    pub fn render(
        &self,
        host: &mut dyn Host,
        opts: &RenderOptions,
    ) -> Result<Rendered, TemplateError> {
        exec::execute(
            &self.name,
            &self.trees,
            host,
            opts.error_on_missing_key,
            None,
        )
    }

    /// Renders the template with `data` as `.` and `$` (`airlock run --mount-template`:
    /// the values by name, `{{ .API_KEY }}`).
    pub fn render_data(
        &self,
        data: &serde_json::Value,
        host: &mut dyn Host,
        opts: &RenderOptions,
    ) -> Result<Rendered, TemplateError> {
        let root = value::from_json(data, value::NumMode::JsonNumber, 0).map_err(|reason| {
            TemplateError {
                name: self.name.clone(),
                line: 0,
                reason,
            }
        })?;
        exec::execute(
            &self.name,
            &self.trees,
            host,
            opts.error_on_missing_key,
            Some(root),
        )
    }
}
