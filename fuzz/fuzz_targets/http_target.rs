//! Request targets (path and query) into a logical path: no panic, and an accepted path has
//! no dot segment, no empty segment but the last, and no control character.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, Option<&str>)| {
    let (path, query) = data;
    if let Ok((p, _)) = airlock_server::http::parse_target(path, query) {
        assert!(!p.chars().any(char::is_control));
        let segs: Vec<&str> = p.split('/').collect();
        for (i, s) in segs.iter().enumerate() {
            assert!(*s != ".." && *s != ".");
            assert!(!s.is_empty() || i + 1 == segs.len());
        }
    }
});
