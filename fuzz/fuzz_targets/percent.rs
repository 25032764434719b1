//! The one percent-decoder: strict and lenient agree on well-formed input, a malformed escape
//! is refused by the strict one, and neither panics.
#![no_main]
use airlock_core::percent::{decode, decode_lenient, decode_utf8, Plus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    for plus in [Plus::Literal, Plus::Space] {
        let lenient = decode_lenient(s, plus);
        match decode(s, plus) {
            Ok(strict) => assert_eq!(strict, lenient),
            Err(e) => assert_eq!(s.as_bytes()[e.offset], b'%'),
        }
        if let Some(u) = decode_utf8(s, plus) {
            assert_eq!(u.as_bytes(), lenient.as_slice());
        }
    }
});
