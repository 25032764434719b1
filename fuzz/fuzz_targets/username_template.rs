//! Username templates (Vault's Go-template subset): no panic, bounded output.
#![no_main]
use airlock_core::username_template::{render, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|t: &str| {
    let random = |n: usize| "x".repeat(n.min(1024));
    let uuid = || "00000000-0000-0000-0000-000000000000".to_string();
    let ctx = Context {
        display_name: "token-fuzz",
        role_name: "role",
        now_millis: 1_700_000_000_000,
        random: &random,
        uuid: &uuid,
    };
    let _ = render(t, &ctx);
});
