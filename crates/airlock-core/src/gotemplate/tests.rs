//! Tests for the Go template engine: each construct, value printing, the consul-template
//! functions, errors, and a fuzz-style no-panic run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use super::{Host, RenderOptions, Rendered, Template, TemplateError};

mod basics;
mod errors;
mod funcs;
mod fuzz;
mod values;

#[test]
fn templates_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<TemplateError>();
}

/// A host with canned secrets, environment and files, and a fixed clock.
#[derive(Default)]
pub(super) struct TestHost {
    pub secrets: BTreeMap<String, serde_json::Value>,
    pub env: BTreeMap<String, String>,
    pub files: BTreeMap<String, String>,
    pub requests: Vec<(String, Vec<(String, String)>)>,
}

impl Host for TestHost {
    fn secret(&mut self, path: &str, params: &[(String, String)]) -> Option<serde_json::Value> {
        self.requests.push((path.to_string(), params.to_vec()));
        self.secrets.get(path).cloned()
    }
    fn env(&self, name: &str) -> String {
        self.env.get(name).cloned().unwrap_or_default()
    }
    fn file(&mut self, path: &str) -> Result<String, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| format!("open {path}: no such file or directory"))
    }
    fn now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::new(1_136_214_245, 123_456_789)
    }
}

/// A secret the way the host hands it over.
pub(super) fn secret(data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "RequestID": "req-1", "LeaseID": "", "LeaseDuration": 0, "Renewable": false,
        "Data": data, "Warnings": null, "Auth": null, "WrapInfo": null
    })
}

pub(super) fn host() -> TestHost {
    let mut h = TestHost::default();
    h.secrets.insert(
        "secret/data/app".into(),
        secret(serde_json::json!({
            "data": {"password": "s3cr3t", "user": "app", "port": 5432, "zero": 0, "nothing": null,
                     "html": "<a&b>", "list": ["x", "y"], "nested": {"k": "v"}},
            "metadata": {"version": 3}
        })),
    );
    h.secrets.insert(
        "database/creds/app".into(),
        secret(serde_json::json!({"username": "v-app-123", "password": "A1a-xyz"})),
    );
    h.secrets.insert(
        "secret/kv1".into(),
        secret(serde_json::json!({"password": "p1"})),
    );
    h.env.insert("HOME".into(), "/home/app".into());
    h.files.insert("/etc/motd".into(), "hello\n".into());
    h
}

pub(super) fn try_render_with(
    text: &str,
    h: &mut TestHost,
    opts: &RenderOptions,
) -> Result<Rendered, TemplateError> {
    Template::parse("t.tmpl", text, "", "")?.render(h, opts)
}

/// Renders with the standard host; panics on error.
pub(super) fn render(text: &str) -> String {
    let r = try_render_with(text, &mut host(), &RenderOptions::default())
        .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    r.text
}

/// The error text of a template that must fail (parse or render).
pub(super) fn error(text: &str) -> String {
    match try_render_with(text, &mut host(), &RenderOptions::default()) {
        Ok(r) => panic!("{text:?} rendered {:?}", r.text),
        Err(e) => e.to_string(),
    }
}

pub(super) fn error_strict(text: &str) -> String {
    let opts = RenderOptions {
        error_on_missing_key: true,
    };
    match try_render_with(text, &mut host(), &opts) {
        Ok(r) => panic!("{text:?} rendered {:?}", r.text),
        Err(e) => e.to_string(),
    }
}

#[test]
fn render_data_makes_the_values_dot() {
    struct NoHost;
    impl Host for NoHost {
        fn secret(&mut self, _: &str, _: &[(String, String)]) -> Option<serde_json::Value> {
            None
        }
        fn env(&self, _: &str) -> String {
            String::new()
        }
        fn file(&mut self, _: &str) -> Result<String, String> {
            Err("no files".into())
        }
        fn now(&self) -> std::time::SystemTime {
            std::time::UNIX_EPOCH
        }
    }
    let t = Template::parse(
        "m",
        "KEY={{ .API_KEY }} {{ range $k, $v := . }}{{ $k }};{{ end }}",
        "",
        "",
    )
    .unwrap();
    let r = t
        .render_data(
            &serde_json::json!({"API_KEY": "abc", "B": "x"}),
            &mut NoHost,
            &RenderOptions::default(),
        )
        .unwrap();
    assert_eq!(r.text, "KEY=abc API_KEY;B;");
}
