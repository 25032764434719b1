//! Go durations and Vault TTL values: no panic, and a parsed value prints back to itself.
#![no_main]
use airlock_core::duration::{format_go_duration, parse_duration, parse_go_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let _ = parse_go_duration(s);
    if let Ok(secs) = parse_duration(s) {
        let again = format_go_duration(secs);
        assert_eq!(parse_duration(&again), Ok(secs), "{again}");
    }
});
