use super::*;

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn hs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// AWS's documented example of a chunked upload (S3 "Transferring payload in multiple
/// chunks"): the seed request and its signature.
fn chunked_example() -> Vec<(String, String)> {
    hs(&[
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
    ])
}

#[test]
fn aws_chunked_example_verifies_seed_and_chunks() {
    let h = chunked_example();
    let f = find(&h, None).unwrap().unwrap();
    assert_eq!(f.key_id, KEY_ID);
    assert_eq!((f.region.as_str(), f.service.as_str()), ("us-east-1", "s3"));
    let c = verify(
        &f,
        "PUT",
        "/examplebucket/chunkObject.txt",
        None,
        &h,
        None,
        SECRET,
    )
    .unwrap();
    assert_eq!(c.payload_hash, STREAMING_SIGNED);
    let key = airlock_core::sigv4::signing_key(SECRET, &f.date, &f.region, &f.service);
    let mut chain = ChunkChain::new(key, &f.amz_date, &f.scope(), &f.signature);
    assert_eq!(
        chain.sign(&[b'a'; 65536]),
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );
    assert_eq!(
        chain.sign(&[b'a'; 1024]),
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
    );
    assert_eq!(
        chain.sign(b""),
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
    );
    // Changed after signing: refused.
    let mut h2 = h.clone();
    h2.retain(|(k, _)| k != "x-amz-storage-class");
    h2.push(("x-amz-storage-class".into(), "STANDARD".into()));
    assert!(verify(
        &f,
        "PUT",
        "/examplebucket/chunkObject.txt",
        None,
        &h2,
        None,
        SECRET
    )
    .is_err());
    assert!(verify(
        &f,
        "PUT",
        "/examplebucket/other.txt",
        None,
        &h,
        None,
        SECRET
    )
    .is_err());
    assert!(verify(
        &f,
        "PUT",
        "/examplebucket/chunkObject.txt",
        None,
        &h,
        None,
        "other"
    )
    .is_err());
}

#[test]
fn presigned_example_verifies_and_resigns_to_the_same_signature() {
    // AWS's documented presigned GET of examplebucket/test.txt.
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let h = hs(&[("Host", "examplebucket.s3.amazonaws.com")]);
    let f = find(&h, Some(q)).unwrap().unwrap();
    assert!(f.presigned);
    let c = verify(&f, "GET", "/test.txt", Some(q), &h, None, SECRET).unwrap();
    assert_eq!(c.payload_hash, UNSIGNED_PAYLOAD);
    let same = Real {
        access_key: KEY_ID,
        secret_key: SECRET,
        session_token: None,
    };
    assert_eq!(resign_query(&f, &c, "GET", q, &h, &same).unwrap(), q);
    // Real credentials with a session token: the new URL verifies with the real secret.
    let real = Real {
        access_key: "ASIAREALKEY",
        secret_key: "real/secret",
        session_token: Some("tok+en/=="),
    };
    let q2 = resign_query(&f, &c, "GET", q, &h, &real).unwrap();
    assert!(q2.contains("X-Amz-Credential=ASIAREALKEY%2F20130524"));
    assert!(q2.contains("X-Amz-Security-Token=tok%2Ben%2F%3D%3D"));
    let f2 = find(&h, Some(&q2)).unwrap().unwrap();
    verify(&f2, "GET", "/test.txt", Some(&q2), &h, None, "real/secret").unwrap();
    assert!(verify(&f2, "GET", "/test.txt", Some(&q2), &h, None, SECRET).is_err());
}

#[test]
fn header_signed_request_round_trip() {
    let (ph_id, ph_secret) = placeholder_credentials(&[7u8; 64]);
    assert!(ph_id.starts_with("AKIA") && ph_id.len() == 20 && ph_secret.len() == 40);
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let creds = airlock_core::sigv4::Credentials {
        access_key: &ph_id,
        secret_key: &ph_secret,
        session_token: None,
    };
    let base = [
        ("host", "sts.amazonaws.com"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let signed = airlock_core::sigv4::sign(
        &creds,
        "us-east-1",
        "sts",
        "20261204T120000Z",
        &airlock_core::sigv4::Request {
            method: "POST",
            path: "/a b",
            query: &[("x", "1 2")],
            headers: &base,
            payload: body,
        },
    );
    let mut h = hs(&base);
    for (k, v) in &signed.headers {
        h.push((k.to_string(), v.clone()));
    }
    // As sent on the wire: the path and query percent-encoded once.
    let (path, query) = ("/a%20b", Some("x=1%202"));
    let f = find(&h, query).unwrap().unwrap();
    assert!(needs_body_hash(&f, &h));
    let body_hash = hex::encode(Sha256::digest(body));
    let c = verify(&f, "POST", path, query, &h, Some(&body_hash), &ph_secret).unwrap();
    // Another body: refused.
    let other = hex::encode(Sha256::digest(b"Action=CreateUser"));
    assert!(verify(&f, "POST", path, query, &h, Some(&other), &ph_secret).is_err());
    let real = Real {
        access_key: "AKIAREAL",
        secret_key: "real-secret",
        session_token: Some("session"),
    };
    let r = resign_header(&f, &c, "POST", query, &h, &real).unwrap();
    assert!(r
        .authorization
        .contains("Credential=AKIAREAL/20261204/us-east-1/sts/aws4_request"));
    assert!(r.authorization.contains("x-amz-security-token"));
    // What the upstream gets verifies with the real secret.
    let mut h2: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k != "authorization")
        .cloned()
        .collect();
    h2.push(("authorization".into(), r.authorization.clone()));
    h2.push(("x-amz-security-token".into(), "session".into()));
    let f2 = find(&h2, query).unwrap().unwrap();
    verify(
        &f2,
        "POST",
        path,
        query,
        &h2,
        Some(&body_hash),
        "real-secret",
    )
    .unwrap();
}

#[test]
fn chunk_resigner_checks_and_resigns_every_chunk() {
    let scope = "20261204/us-east-1/s3/aws4_request";
    let date = "20261204T120000Z";
    let key = |s: &str| airlock_core::sigv4::signing_key(s, "20261204", "us-east-1", "s3");
    let mut agent = ChunkChain::new(key("ph"), date, scope, "seed-ph");
    let mut body = Vec::new();
    let chunks: [&[u8]; 3] = [&[1u8; 1000], &[2u8; 17], b""];
    for c in chunks {
        body.extend_from_slice(
            format!("{:x};chunk-signature={}\r\n", c.len(), agent.sign(c)).as_bytes(),
        );
        body.extend_from_slice(c);
        body.extend_from_slice(b"\r\n");
    }
    let mut r = ChunkResigner::new(
        ChunkChain::new(key("ph"), date, scope, "seed-ph"),
        ChunkChain::new(key("real"), date, scope, "seed-real"),
    );
    let mut out = Vec::new();
    for piece in body.chunks(7) {
        out.extend(r.feed(piece).unwrap());
    }
    r.finish().unwrap();
    assert_eq!(out.len(), body.len());
    // The output is a valid chain under the real key.
    let mut check = ChunkResigner::new(
        ChunkChain::new(key("real"), date, scope, "seed-real"),
        ChunkChain::new(key("x"), date, scope, "x"),
    );
    check.feed(&out).unwrap();
    check.finish().unwrap();
    // A changed byte, a truncated body, garbage after the end: refused.
    let mut bad = body.clone();
    bad[200] ^= 1;
    let mut r = ChunkResigner::new(
        ChunkChain::new(key("ph"), date, scope, "seed-ph"),
        ChunkChain::new(key("real"), date, scope, "seed-real"),
    );
    assert!(r.feed(&bad).is_err());
    let mut r = ChunkResigner::new(
        ChunkChain::new(key("ph"), date, scope, "seed-ph"),
        ChunkChain::new(key("real"), date, scope, "seed-real"),
    );
    r.feed(&body[..body.len() - 10]).unwrap();
    assert!(r.finish().is_err());
    let mut r = ChunkResigner::new(
        ChunkChain::new(key("ph"), date, scope, "seed-ph"),
        ChunkChain::new(key("real"), date, scope, "seed-real"),
    );
    let mut extra = body.clone();
    extra.extend_from_slice(b"junk");
    assert!(r.feed(&extra).is_err());
}

#[test]
fn find_refuses_malformed_and_unsupported() {
    assert_eq!(
        find(&hs(&[("authorization", "Bearer x")]), None).unwrap(),
        None
    );
    assert_eq!(find(&[], Some("a=b")).unwrap(), None);
    for bad in [
        "AWS4-HMAC-SHA256 Credential=AKIA/20130524/us-east-1/s3, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIA/2013/us-east-1/s3/aws4_request, SignedHeaders=host;;x, Signature=00",
        "AWS4-ECDSA-P256-SHA256 Credential=AKIA/20130524/s3/aws4_request, SignedHeaders=host, Signature=00",
    ] {
        let h = hs(&[("authorization", bad), ("x-amz-date", "20130524T000000Z")]);
        assert!(find(&h, None).is_err(), "{bad}");
    }
    // Signed without x-amz-date.
    let h = hs(&[("authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")]);
    assert!(find(&h, None).is_err());
    assert!(find(&[], Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=1")).is_err());
    // Signed trailers are refused at verification, with a reason.
    let mut h = chunked_example();
    for (k, v) in h.iter_mut() {
        if k == "x-amz-content-sha256" {
            *v = STREAMING_SIGNED_TRAILER.into();
        }
    }
    let f = find(&h, None).unwrap().unwrap();
    let e = verify(
        &f,
        "PUT",
        "/examplebucket/chunkObject.txt",
        None,
        &h,
        None,
        SECRET,
    )
    .unwrap_err();
    assert!(e.contains("signed trailer"), "{e}");
}
