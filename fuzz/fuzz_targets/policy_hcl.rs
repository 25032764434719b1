//! The HCL policy parser and ACL evaluation: no panic on any text or path, and an error never
//! quotes more than its own message.
#![no_main]
use airlock_core::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str)| {
    let (text, path) = data;
    if let Ok(p) = Policy::parse("fuzz", text) {
        let acl = airlock_core::policy::Acl::new(&[p]);
        let _ = acl.capabilities(path);
    }
});
