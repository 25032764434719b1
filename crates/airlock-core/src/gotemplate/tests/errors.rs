//! Parse and execution errors (text and line), and the resource limits.

use super::*;

#[test]
fn parse_errors_carry_the_line() {
    let cases = [
        ("a\n{{ foo }}", "t.tmpl:2: function \"foo\" not defined"),
        ("a\n\n{{ .Foo ", "t.tmpl:3: unclosed action"),
        ("x\n{{ .Foo\n\n", "t.tmpl:2: unclosed action"),
        ("{{ end }}", "t.tmpl:1: unexpected {{end}}"),
        ("a\n{{ else }}", "t.tmpl:2: unexpected {{else}}"),
        ("{{ if true }}x\ny", "t.tmpl:2: unexpected EOF"),
        ("{{ $x }}", "t.tmpl:1: undefined variable \"$x\""),
        ("{{}}", "t.tmpl:1: missing value for command"),
        ("{{ if }}{{ end }}", "t.tmpl:1: missing value for if"),
        (
            r#"{{ "a" | "b" }}"#,
            "t.tmpl:1: non executable command in pipeline stage 2",
        ),
        ("{{ ( }}", "t.tmpl:1: unclosed left paren"),
        ("{{ ) }}", "t.tmpl:1: unexpected right paren"),
        ("{{ 1x }}", "t.tmpl:1: bad number syntax: \"1x\""),
        ("{{ \"abc }}", "t.tmpl:1: unterminated quoted string"),
        ("{{ `abc }}", "t.tmpl:1: unterminated raw quoted string"),
        ("{{ .Foo-bar }}", "t.tmpl:1: bad character U+002D '-'"),
        (
            "{{/* c */ 1 }}",
            "t.tmpl:1: comment ends before closing delimiter",
        ),
        ("a\n{{/* c", "t.tmpl:2: unclosed comment"),
        (
            "{{ range $a, $b, $c := . }}{{ end }}",
            "t.tmpl:1: too many declarations in range",
        ),
        (
            "{{ $a, $b := 1 }}",
            "t.tmpl:1: too many declarations in command",
        ),
        (
            "{{ range $a, 1 }}{{ end }}",
            "t.tmpl:1: range can only initialize variables",
        ),
        (
            "{{ template 5 }}",
            "t.tmpl:1: unexpected \"5\" in template clause",
        ),
        ("{{ 'ab' }}", "t.tmpl:1: malformed character constant: 'ab'"),
        ("{{ '' }}", "t.tmpl:1: invalid syntax"),
        (
            "{{ define \"a\" }}{{ define \"b\" }}{{ end }}{{ end }}",
            "t.tmpl:1: unexpected <define> in command",
        ),
        ("{{ 08 }}", "t.tmpl:1: integer overflow: \"08\""),
        (r#"{{ "\q" }}"#, "t.tmpl:1: invalid syntax"),
        ("{{ nil.X }}", "t.tmpl:1: unexpected . after term \"nil\""),
        (
            r#"{{ define "a" }}{{ else }}{{ end }}"#,
            "t.tmpl:1: unexpected {{else}} in define clause",
        ),
        (
            "{{ if true }}{{ else }}{{ else }}{{ end }}",
            "t.tmpl:1: expected end; found {{else}}",
        ),
        ("{{ # }}", "t.tmpl:1: unexpected \"#\" in command"),
        (
            "{{ \u{1} }}",
            "t.tmpl:1: unrecognized character in action: U+0001",
        ),
        ("{{ a:b }}", "t.tmpl:1: function \"a\" not defined"),
        ("{{ x := 1 }}", "t.tmpl:1: function \"x\" not defined"),
        ("{{ .A : }}", "t.tmpl:1: expected :="),
        (
            "{{ printf \"%d\" 12345678901234567890123 }}",
            "t.tmpl:1: integer overflow: \"12345678901234567890123\"",
        ),
    ];
    for (text, want) in cases {
        let err = Template::parse("t.tmpl", text, "", "")
            .err()
            .unwrap_or_else(|| panic!("{text:?} parsed"));
        assert_eq!(err.to_string(), want, "{text:?}");
    }
}

#[test]
fn execution_errors_carry_the_line_and_context() {
    let e =
        error("line1\n{{ with secret \"secret/data/app\" }}\n{{ .Data.data.missing.x }}{{ end }}");
    assert_eq!(e, "t.tmpl:3: executing \"t.tmpl\" at <.Data.data.missing.x>: nil pointer evaluating interface {}.x");
    let e = error("{{ printf\n\"%d\"\n(index \"x\" 9) }}");
    assert_eq!(e, "t.tmpl:3: executing \"t.tmpl\" at <index \"x\" 9>: error calling index: index out of range: 9");
    let e = error("{{ base64Encode }}");
    assert_eq!(e, "t.tmpl:1: executing \"t.tmpl\" at <base64Encode>: wrong number of args for base64Encode: want 1 got 0");
    assert!(
        error("{{ printf }}").ends_with("wrong number of args for printf: want at least 1 got 0")
    );
    assert!(error("{{ \"a\" | base64Encode \"b\" }}")
        .ends_with("wrong number of args for base64Encode: want 1 got 2"));
    assert!(error("{{ 1 2 }}").ends_with("can't give argument to non-function 1"));
    assert!(error("{{ nil }}").ends_with("nil is not a command"));
    assert!(error("{{ range \"abc\" }}{{ end }}").ends_with("range can't iterate over abc"));
    assert!(error("{{ range $i, $v := 3 }}{{ end }}")
        .ends_with("can't use 3 to iterate over more than one variable"));
    let e = error(
        r#"{{ define "inner" }}{{ .X.Y }}{{ end }}{{ template "inner" parseJSON "{\"X\":null}" }}"#,
    );
    assert!(
        e.contains("executing \"inner\" at <.X.Y>: nil pointer evaluating interface {}.Y"),
        "{e}"
    );
    let e = error(r#"{{ with secret "secret/data/app" }}{{ .Data.data.user.x }}{{ end }}"#);
    assert!(e.ends_with("can't evaluate field x in type string"), "{e}");
    let e = error(r#"{{ with secret "secret/data/app" }}{{ .Data.data.nested.k 1 }}{{ end }}"#);
    assert!(e.ends_with("k is not a method but has arguments"), "{e}");
    let long =
        error(r#"{{ with secret "secret/data/app" }}{{ .Data.data.nested.deeper.x }}{{ end }}"#);
    assert!(long.contains("at <.Data.data.nested.de...>:"), "{long}");
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}x{}", "{{ if true }}".repeat(99), "{{ end }}".repeat(99));
    assert_eq!(render(&ok), "x");
    let deep = format!(
        "{}x{}",
        "{{ if true }}".repeat(150),
        "{{ end }}".repeat(150)
    );
    assert!(error(&deep).contains("template nesting exceeds 100 levels"));
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
    assert!(error(&parens).contains("template nesting exceeds 100 levels"));
    let chain = format!(
        "{{{{ if false }}}}{}x{{{{ end }}}}",
        "{{ else if false }}".repeat(150)
    );
    assert!(error(&chain).contains("template nesting exceeds 100 levels"));
    let chain = format!(
        "{{{{ if false }}}}{}{{{{ else }}}}x{{{{ end }}}}",
        "{{ else if false }}".repeat(90)
    );
    assert_eq!(render(&chain), "x");
    let rec = r#"{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}"#;
    assert!(error(rec).contains("exceeded maximum template depth (150)"));
    let rec = r#"{{ define "r" }}{{ executeTemplate "r" }}{{ end }}{{ template "r" }}"#;
    assert!(error(rec).contains("exceeded maximum template depth (150)"));
    // Deeply nested secret data is refused rather than recursed into.
    let mut deep_json = serde_json::json!("leaf");
    for _ in 0..300 {
        deep_json = serde_json::json!([deep_json]);
    }
    let mut h = host();
    h.secrets
        .insert("deep".into(), secret(serde_json::json!({ "v": deep_json })));
    let err = try_render_with(
        r#"{{ with secret "deep" }}{{ .Data.v }}{{ end }}"#,
        &mut h,
        &RenderOptions::default(),
    )
    .unwrap_err();
    assert!(err.reason.contains("nested deeper"), "{err}");
}

#[test]
fn sizes_and_steps_are_bounded() {
    let e = error(r#"{{ $s := printf "%1000000d" 1 }}{{ range loop 100 }}{{ $s }}{{ end }}"#);
    assert!(e.contains("template output exceeds 67108864 bytes"), "{e}");
    let e = error(
        r#"{{ $s := printf "%1000000d" 1 }}{{ range loop 300 }}{{ $t := printf "%s" $s }}{{ end }}"#,
    );
    assert!(e.contains("produced more than"), "{e}");
    let e = error(r#"{{ replaceAll "" (printf "%1000000d" 1) (printf "%1000d" 1) }}"#);
    assert!(e.contains("exceeds the template string size limit"), "{e}");
    let e = error("{{ range 1000000000 }}{{ end }}");
    assert!(e.contains("exceeded 20000000 steps"), "{e}");
}
