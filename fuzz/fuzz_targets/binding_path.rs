//! The broker's destination path check and placeholder search: normalising is idempotent,
//! a normalised path has no dot segment, and finding placeholders never panics.
#![no_main]
use airlock_core::binding::{find_placeholders, normalize_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Some(n) = normalize_path(s) {
        assert!(n.starts_with('/'));
        assert!(!n.split('/').any(|seg| seg == ".." || seg == "."), "{n}");
        assert_eq!(normalize_path(&n).as_deref(), Some(n.as_str()));
    }
    for (i, p) in find_placeholders(s) {
        assert_eq!(&s[i..i + p.len()], p);
    }
});
