//! JSON request bodies into typed fields: every accessor on every field of any JSON object
//! answers a value or a 400, never a panic, and no error quotes the value.
#![no_main]
use airlock_logical::{Op, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    let mut r = Request::new(Op::Update, "fuzz");
    r.data = m.clone();
    for k in m.keys() {
        for e in [
            r.str_field(k).err(),
            r.bool_field(k).err(),
            r.int_field(k).err(),
            r.duration_field(k).err(),
            r.str_list_field(k).err(),
            r.kv_pairs_field(k).err(),
            r.str_map_field(k).err(),
            r.object_field(k).err(),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(e.status, 400);
        }
    }
});
