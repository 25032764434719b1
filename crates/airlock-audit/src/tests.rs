//! Tests of the file device: writing, the chain, verify, reopening.
use super::*;
use serde_json::json;

fn tmpfile(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "airlock-audit-{}-{}-{name}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.log")
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn write_entries(path: &Path, n: usize) {
    let a = Auditor::open(&[FileDeviceConfig {
        name: "file".into(),
        path: path.to_path_buf(),
        fsync: false,
        index: false,
    }])
    .unwrap();
    a.set_key(Zeroizing::new(b"k".to_vec()));
    for i in 0..n {
        let mut v = json!({"type":"request","request":{"path":format!("secret/data/{i}"),"data":{"password":"hunter2"}}});
        a.hash_value(v.pointer_mut("/request/data").unwrap());
        a.log(&v).await.unwrap();
    }
}

#[test]
fn numbers_and_strings_are_hashed_bools_and_nulls_stay() {
    let a = Auditor::open(&[]).unwrap();
    a.set_key(Zeroizing::new(b"k".to_vec()));
    let mut v = json!({"PIN": 834764846903110u64, "f": 1.5, "neg": -7, "s": "x",
                       "ok": true, "none": null, "list": [1, "two", false]});
    assert!(a.hash_value(&mut v));
    let text = v.to_string();
    for clear in ["834764846903110", "1.5", "-7", "\"x\""] {
        assert!(!text.contains(clear), "{clear} in {text}");
    }
    assert_eq!(v["PIN"], json!(a.hash("834764846903110").unwrap()));
    assert_eq!(v["list"][0], json!(a.hash("1").unwrap()));
    assert_eq!(
        (&v["ok"], &v["none"], &v["list"][2]),
        (&json!(true), &Value::Null, &json!(false))
    );
}

#[tokio::test]
async fn reopen_after_rotation_continues_the_chain_in_a_new_file() {
    let p = tmpfile("rot");
    let a = Auditor::open(&[FileDeviceConfig {
        name: "file".into(),
        path: p.clone(),
        fsync: false,
        index: false,
    }])
    .unwrap();
    a.set_key(Zeroizing::new(b"k".to_vec()));
    for i in 0..3 {
        a.log(&json!({"n": i})).await.unwrap();
    }
    // logrotate: move the file away, then SIGHUP.
    let rotated = p.with_extension("1");
    std::fs::rename(&p, &rotated).unwrap();
    a.log(&json!({"n": 3})).await.unwrap(); // still into the moved file
    a.reopen().await.unwrap();
    for i in 4..6 {
        a.log(&json!({"n": i})).await.unwrap();
    }
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&p).unwrap();
    assert_eq!((old.lines().count(), new.lines().count()), (4, 2));
    let r = verify(&rotated).unwrap();
    assert_eq!((r.first_seq, r.last_seq), (1, 4));
    let r = verify(&p).unwrap();
    assert_eq!((r.first_seq, r.last_seq), (5, 6));
    let both = tmpfile("both");
    std::fs::write(&both, old + &new).unwrap();
    assert_eq!(verify(&both).unwrap().entries, 6);
    // A restart on the new file continues from its last line.
    drop(a);
    let a = Auditor::open(&[FileDeviceConfig {
        name: "file".into(),
        path: p.clone(),
        fsync: false,
        index: false,
    }])
    .unwrap();
    a.log(&json!({"n": 6})).await.unwrap();
    assert_eq!(verify(&p).unwrap().last_seq, 7);
}

#[tokio::test]
async fn chain_verifies_and_detects_tampering() {
    let p = tmpfile("t");
    write_entries(&p, 5).await;
    // Reopen and continue the chain.
    write_entries(&p, 3).await;
    let r = verify(&p).unwrap();
    assert_eq!(r.entries, 8);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(!text.contains("hunter2"));
    assert!(text.contains("hmac-sha256:"));
    let lines: Vec<&str> = text.lines().collect();

    // Deleted line.
    let mut del = lines.clone();
    del.remove(3);
    std::fs::write(&p, del.join("\n") + "\n").unwrap();
    assert!(verify(&p).unwrap_err().contains("line 4"));

    // Edited line.
    let mut ed = lines.clone();
    let edited = ed[2].replace("secret/data/2", "secret/data/X");
    ed[2] = &edited;
    std::fs::write(&p, ed.join("\n") + "\n").unwrap();
    assert!(verify(&p).unwrap_err().contains("line 3"));

    // Reordered pair.
    let mut ro = lines.clone();
    ro.swap(5, 6);
    std::fs::write(&p, ro.join("\n") + "\n").unwrap();
    assert!(verify(&p).is_err());
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[tokio::test]
async fn partial_last_line_is_dropped_on_open() {
    let p = tmpfile("partial");
    write_entries(&p, 2).await;
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"{\"type\":\"requ").unwrap();
    drop(f);
    write_entries(&p, 1).await;
    assert_eq!(verify(&p).unwrap().entries, 3);
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

/// Regression: a client chooses what a secret holds, so an audit line can be nested past
/// any JSON parser's depth limit or be longer than the tail read at start-up. Neither may
/// stop the next start or `verify`.
#[tokio::test]
async fn deep_and_huge_entries_neither_stop_a_restart_nor_verify() {
    let p = tmpfile("hostile");
    let open = || {
        Auditor::open(&[FileDeviceConfig {
            name: "file".into(),
            path: p.clone(),
            fsync: false,
            index: false,
        }])
    };
    let mut deep = json!("x");
    for _ in 0..300 {
        deep = json!([deep]);
    }
    let a = open().unwrap();
    a.set_key(Zeroizing::new(b"k".to_vec()));
    a.log(&json!({"type": "response", "response": {"data": deep}}))
        .await
        .unwrap();
    drop(a);
    let a = open().expect("restart after a deeply nested entry");
    a.set_key(Zeroizing::new(b"k".to_vec()));
    let huge: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("key-{i:06}"), json!("hmac-sha256:0123456789abcdef")))
        .collect();
    a.log(&json!({"type": "response", "response": {"data": huge}}))
        .await
        .unwrap();
    drop(a);
    assert!(std::fs::metadata(&p).unwrap().len() > (1 << 20) + 1000);
    let a = open().expect("restart after an entry longer than the tail read at start-up");
    a.set_key(Zeroizing::new(b"k".to_vec()));
    a.log(&json!({"type": "request"})).await.unwrap();
    drop(a);
    let r = verify(&p).unwrap();
    assert_eq!((r.entries, r.first_seq, r.last_seq), (3, 1, 3));
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}
