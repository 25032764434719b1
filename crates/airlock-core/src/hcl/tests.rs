use super::*;

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

#[test]
fn policy_blocks() {
    let src = r#"
# comment
path "secret/*" {
  capabilities = ["read", "list",]   // trailing comma
}
/* block
   comment */
path "secret/+/x" { capabilities = ["update"] }
"#;
    let items = parse(src).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].keys, vec!["path", "secret/*"]);
    assert_eq!((items[0].line, items[0].column), (3, 1));
    let Value::Object(body) = &items[0].value else {
        panic!("not an object")
    };
    assert_eq!(body[0].keys, vec!["capabilities"]);
    assert_eq!(body[0].value, Value::List(vec![s("read"), s("list")]));
    assert_eq!(items[1].keys, vec!["path", "secret/+/x"]);
}

#[test]
fn values_of_every_kind() {
    let src = r#"a = "x\ty\"z\\\u00e9\x41\101"
b = 42
c = -7
d = 1.5
e = true
f = false
g = []
h = { "k" = ["v"], k2 = 3 }
i = [1, "two", [3], { x = 1 }]
j = 0x1F
k = 1e3
"#;
    let items = parse(src).unwrap();
    let v: Vec<&Value> = items.iter().map(|i| &i.value).collect();
    assert_eq!(v[0], &s("x\ty\"z\\éAA"));
    assert_eq!(v[1], &Value::Int(42));
    assert_eq!(v[2], &Value::Int(-7));
    assert_eq!(v[3], &Value::Float(1.5));
    assert_eq!(v[4], &Value::Bool(true));
    assert_eq!(v[5], &Value::Bool(false));
    assert_eq!(v[6], &Value::List(vec![]));
    assert_eq!(v[7].to_json(), serde_json::json!({"k": ["v"], "k2": 3}));
    assert_eq!(v[8].to_json(), serde_json::json!([1, "two", [3], {"x": 1}]));
    assert_eq!(v[9], &Value::Int(31));
    assert_eq!(v[10], &Value::Float(1000.0));
}

#[test]
fn blocks_without_labels_and_comma_separated_items() {
    let items = parse("a { b = 1, c = 2 } d \"e\" \"f\" { }").unwrap();
    assert_eq!(items[0].keys, vec!["a"]);
    assert_eq!(
        items[0].value.to_json(),
        serde_json::json!({"b": 1, "c": 2})
    );
    assert_eq!(items[1].keys, vec!["d", "e", "f"]);
    assert_eq!(
        Value::Object(items).to_json(),
        serde_json::json!({"a": {"b": 1, "c": 2}, "d": {"e": {"f": {}}}})
    );
}

#[test]
fn openbao_error_for_unclosed_list() {
    let err = parse(r#"path "secret/*" { capabilities = ["read" }"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "At 1:42: error parsing list, expected comma or list end, got: RBRACE"
    );
}

#[test]
fn error_messages_and_positions() {
    let cases: &[(&str, &str)] = &[
        (
            "path \"x\" {",
            "At 1:11: object expected closing RBRACE got: EOF",
        ),
        (
            "path \"x\"",
            "At 1:9: key 'path x' expected start of object ('{') or assignment ('=')",
        ),
        ("a = ", "At 1:5: expected a value, got: EOF"),
        ("a = b", "At 1:5: Unknown token: IDENT"),
        ("= 1", "At 1:1: no object keys found!"),
        (
            "a b = 1",
            "At 1:5: nested object expected: LBRACE got: ASSIGN",
        ),
        ("{}", "At 1:1: expected: IDENT | STRING got: LBRACE"),
        (
            "a 1",
            "At 1:3: expected: IDENT | STRING | ASSIGN | LBRACE got: NUMBER",
        ),
        ("a = \"x", "At 1:5: literal not terminated"),
        ("a = \"x\ny\"", "At 1:5: literal not terminated"),
        ("a = \"\\q\"", "At 1:6: illegal char escape"),
        ("a = 1\n/* x", "At 2:1: comment not terminated"),
        ("a = 1 / 2", "At 1:7: expected '/' for comment"),
        ("a = @", "At 1:5: illegal char"),
        (
            "a = [,]",
            "At 1:6: unexpected token while parsing list: COMMA",
        ),
        (
            "a = [1,,2]",
            "At 1:8: unexpected token while parsing list: COMMA",
        ),
        (
            "a = [1 2]",
            "At 1:8: error parsing list, expected comma or list end, got: NUMBER",
        ),
        ("a = [", "At 1:6: unexpected token while parsing list: EOF"),
        ("a = 99999999999999999999", "At 1:5: number out of range"),
        ("a = 1.", "At 1:5: illegal number"),
        ("a = 12ab", "At 1:5: illegal number"),
        (
            "a = {\n  b = 1\n}}",
            "At 3:2: expected: IDENT | STRING | ASSIGN | LBRACE got: RBRACE",
        ),
    ];
    for (src, want) in cases {
        let err = parse(src).expect_err(src);
        assert_eq!(err.to_string(), *want, "source {src:?}");
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = parse(&deep).unwrap_err();
    assert!(err.message.contains("nesting too deep"), "{err}");
    let deep = format!("a = {}{}", "{ b = ".repeat(10_000), "1 }".repeat(10_000));
    assert!(parse(&deep)
        .unwrap_err()
        .message
        .contains("nesting too deep"));
    let ok = format!("a = {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
}

#[test]
fn invalid_utf8_is_an_error() {
    let err = parse_bytes(b"a = \"\xff\"").unwrap_err();
    assert_eq!(err.to_string(), "At 1:6: illegal UTF-8 encoding");
}

#[test]
fn json_round_trip() {
    let j = serde_json::json!({"path": {"a/*": {"capabilities": ["read"], "n": 1.5}}});
    assert_eq!(Value::from_json(&j).to_json(), j);
}

/// Feeds random bytes, truncations and mutations of a valid policy: no panic allowed.
#[test]
fn never_panics_on_garbage() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seed = br#"path "secret/*" { capabilities = ["read", "list"] allowed_parameters = { "*" = [] "k" = ["v*", 1, true] } }
# c
// c
/* c */ a = -1.5e3 b = 0x10 c = "\u00e9\x41\n" d = [[{}]]
"#;
    for cut in 0..=seed.len() {
        let _ = parse_bytes(&seed[..cut]);
    }
    let alphabet = b"{}[]=,\"\\#/*-+.0123456789abcdefxeE \n\t\r\0";
    for _ in 0..20_000 {
        let len = (rnd() % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rnd();
                if r % 4 == 0 {
                    (r >> 8) as u8
                } else {
                    alphabet[((r >> 8) as usize) % alphabet.len()]
                }
            })
            .collect();
        let _ = parse_bytes(&bytes);
    }
    for _ in 0..5_000 {
        let mut bytes = seed.to_vec();
        for _ in 0..(rnd() % 6 + 1) {
            let i = (rnd() as usize) % bytes.len();
            bytes[i] = (rnd() >> 16) as u8;
        }
        let _ = parse_bytes(&bytes);
    }
}
