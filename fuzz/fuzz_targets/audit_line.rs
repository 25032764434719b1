//! The audit verifier's line reader: any line, however large, deep or broken, is checked or
//! refused without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    let _ = airlock_audit::check_line(line);
});
