//! The streaming scrubber: whatever the chunking, the output equals scrubbing the whole
//! body at once, and no secret survives.
#![no_main]
use airlock_broker::rewrite::Scrubber;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (Vec<u8>, Vec<u8>)| {
    let (body, cuts) = data;
    let secret = b"sk-SECRET-1234".to_vec();
    let placeholder = b"airlock-ph-x-AAAAAAAAAAAAAAAAAAAAAAAA".to_vec();
    let needles = vec![(secret.clone(), placeholder.clone())];
    let whole = {
        let mut s = Scrubber::new(needles.clone());
        let mut out = s.feed(&body);
        out.extend(s.finish());
        out
    };
    let mut s = Scrubber::new(needles);
    let mut out = Vec::new();
    let mut rest: &[u8] = &body;
    for c in cuts {
        if rest.is_empty() {
            break;
        }
        let n = (c as usize % rest.len()).max(1);
        out.extend(s.feed(&rest[..n]));
        rest = &rest[n..];
    }
    out.extend(s.feed(rest));
    out.extend(s.finish());
    assert_eq!(out, whole);
    assert!(!out.windows(secret.len()).any(|w| w == secret.as_slice()));
});
