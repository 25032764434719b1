//! The web UI's files, compiled into the binary (`include_bytes!`): plain HTML, CSS and
//! JavaScript modules written by hand, so building Airlock needs no Node and no bundler.
//! The server (`airlock-server::ui`) serves them under `/ui/`, with its security headers.
//!
//! Layout of `assets/`: `index.html` (the shell), `app.css`, `app.js` (sign-in, the
//! router, the page list), `api.js` (calls to the server, CSRF header), `dom.js` (builds
//! elements; text only, never HTML), and `pages/<name>.js`, one module per page. A new
//! page is one module there plus one line in `app.js` and one in [`FILES`].

use std::sync::OnceLock;

/// One file: its name under `/ui/assets/`, its content type and bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI ships.
pub const FILES: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("pages/signin.js", JS),
    asset!("pages/secrets.js", JS),
    asset!("pages/kv.js", JS),
    asset!("pages/policies.js", JS),
    asset!("pages/access.js", JS),
    asset!("pages/leases.js", JS),
    asset!("pages/audit.js", JS),
    asset!("pages/broker.js", JS),
    asset!("pages/events.js", JS),
];

/// A file by its name under `/ui/assets/`.
pub fn get(name: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.name == name)
}

/// The shell every UI address answers with.
pub fn index() -> &'static Asset {
    &FILES[0]
}

/// A strong validator for a file: the first 16 hex digits of its SHA-256, computed once.
pub fn etag(a: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        use sha2::{Digest, Sha256};
        FILES
            .iter()
            .map(|f| format!("\"{}\"", &hex::encode(Sha256::digest(f.body))[..16]))
            .collect()
    });
    FILES
        .iter()
        .position(|f| f.name == a.name)
        .and_then(|i| tags.get(i))
        .map(String::as_str)
        .unwrap_or("\"0\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_and_tagged() {
        assert_eq!(index().name, "index.html");
        for f in FILES {
            assert!(get(f.name).is_some());
            assert_eq!(etag(f).len(), 18);
            assert!(!f.body.is_empty(), "{} is empty", f.name);
        }
        assert!(get("../Cargo.toml").is_none());
    }

    #[test]
    fn the_shell_preloads_every_module() {
        let index = std::str::from_utf8(index().body).unwrap_or("");
        for f in FILES
            .iter()
            .filter(|f| f.name.ends_with(".js") && f.name != "app.js")
        {
            let link = format!(
                "<link rel=\"modulepreload\" href=\"/ui/assets/{}\">",
                f.name
            );
            assert!(
                index.contains(&link),
                "index.html does not preload {}",
                f.name
            );
        }
    }

    #[test]
    fn no_page_has_inline_script_or_style() {
        for f in FILES.iter().filter(|f| f.name.ends_with(".html")) {
            let s = std::str::from_utf8(f.body).unwrap_or("");
            assert!(!s.contains("<script>"), "{}: inline script", f.name);
            assert!(!s.contains("style="), "{}: inline style", f.name);
            assert!(!s.contains("onclick"), "{}: inline handler", f.name);
        }
    }
}
