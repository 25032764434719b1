//! How values print (Go's `%v`), how secrets look to templates, the agent idioms, and
//! incomplete renders.

use super::*;

const KV: &str = r#"{{ with secret "secret/data/app" }}"#;

fn kv(body: &str) -> String {
    render(&format!("{KV}{body}{{{{ end }}}}"))
}

#[test]
fn printing_each_kind() {
    assert_eq!(
        render("{{ 1.5 }} {{ 100.0 }} {{ 1e6 }} {{ 123456.0 }} {{ 1234567.0 }}"),
        "1.5 100 1e+06 123456 1.234567e+06"
    );
    assert_eq!(
        render("{{ 0.0001 }} {{ 0.00001 }} {{ 2.5e-10 }} {{ 1e21 }}"),
        "0.0001 1e-05 2.5e-10 1e+21"
    );
    assert_eq!(render("{{ -7 }} {{ true }} {{ \"s\" }}"), "-7 true s");
    assert_eq!(
        kv("{{ .Data.data.port }} {{ .Data.metadata.version }}"),
        "5432 3"
    );
    assert_eq!(kv("{{ .Data.data.list }}"), "[x y]");
    assert_eq!(kv("{{ .Data.data.nested }}"), "map[k:v]");
    assert_eq!(
        kv("{{ .Data.data }}"),
        "map[html:<a&b> list:[x y] nested:map[k:v] nothing:<nil> password:s3cr3t port:5432 user:app zero:0]"
    );
    assert_eq!(
        render(r#"{{ parseJSON "[1, 2.5, null, true, \"s\", {\"a\": []}]" }}"#),
        "[1 2.5 <nil> true s map[a:[]]]"
    );
    assert_eq!(render(r#"{{ split "," "a,b" }}"#), "[a b]");
    assert_eq!(
        render(r#"{{ (parseJSON "{\"n\": 1700000000}").n }}"#),
        "1.7e+09"
    );
}

#[test]
fn secrets_are_consul_template_secret_structs() {
    assert_eq!(
        render(r#"{{ with secret "database/creds/app" }}{{ . }}{{ end }}"#),
        "{req-1  0 false map[password:A1a-xyz username:v-app-123] [] <nil> <nil>}"
    );
    assert_eq!(
        render(
            r#"{{ with secret "database/creds/app" }}{{ .RequestID }}|{{ .LeaseID }}|{{ .LeaseDuration }}|{{ .Renewable }}|{{ .Warnings }}|{{ .Auth }}{{ end }}"#
        ),
        "req-1||0|false|[]|<nil>"
    );
    assert_eq!(
        render(r#"{{ (secret "database/creds/app").Data.username }}"#),
        "v-app-123"
    );
    let e = error(r#"{{ with secret "database/creds/app" }}{{ .Foo }}{{ end }}"#);
    assert!(
        e.ends_with("can't evaluate field Foo in type *dependency.Secret"),
        "{e}"
    );
    // json.Number: truthy when non-empty (even "0"), equal to strings, not to ints.
    assert_eq!(kv("{{ if .Data.data.zero }}t{{ else }}f{{ end }}"), "t");
    assert_eq!(kv(r#"{{ eq .Data.data.port "5432" }}"#), "true");
    assert!(error(&format!(
        "{KV}{{{{ eq .Data.data.port 5432 }}}}{{{{ end }}}}"
    ))
    .contains("incompatible types for comparison"));
    assert_eq!(kv("{{ .Data.data.port.Int64 | add 1 }}"), "5433");
}

#[test]
fn secret_with_auth_and_wrap_info() {
    let mut h = host();
    h.secrets.insert(
        "auth/token/create".into(),
        serde_json::json!({
            "RequestID": "r", "LeaseID": "", "LeaseDuration": 0, "Renewable": false, "Data": null,
            "Warnings": ["w1"],
            "Auth": {"ClientToken": "hvs.x", "Accessor": "acc", "Policies": ["default"], "Metadata": {"a": "b"}, "LeaseDuration": 60, "Renewable": true},
            "WrapInfo": null
        }),
    );
    let t = r#"{{ with secret "auth/token/create" "policies=default" }}{{ .Auth.ClientToken }} {{ .Auth.Policies }} {{ .Auth.Metadata.a }} {{ .Auth.Metadata.zz }}|{{ .Warnings }} {{ .Data }} {{ .Data.x }}{{ end }}"#;
    let r = try_render_with(t, &mut h, &RenderOptions::default()).unwrap();
    assert_eq!(r.text, "hvs.x [default] b |[w1] map[] <no value>");
    assert_eq!(
        h.requests,
        vec![(
            "auth/token/create".to_string(),
            vec![("policies".to_string(), "default".to_string())]
        )]
    );
    let r = try_render_with(
        r#"{{ secret "auth/token/create" "policies=default" | toJSON }}"#,
        &mut h,
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(
        r.text,
        r#"{"RequestID":"r","LeaseID":"","LeaseDuration":0,"Renewable":false,"Data":null,"Warnings":["w1"],"Auth":{"ClientToken":"hvs.x","Accessor":"acc","Policies":["default"],"Metadata":{"a":"b"},"LeaseDuration":60,"Renewable":true},"WrapInfo":null}"#
    );
}

#[test]
fn kv_v2_idiom() {
    assert_eq!(
        render(r#"{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}"#),
        "s3cr3t"
    );
    assert_eq!(
        render("{{ with secret \"secret/data/app\" -}}\npassword={{ .Data.data.password }}\nuser={{ .Data.data.user }}\n{{- end }}\n"),
        "password=s3cr3t\nuser=app\n"
    );
}

#[test]
fn range_idiom() {
    assert_eq!(
        render("{{ with secret \"database/creds/app\" }}{{ range $k, $v := .Data }}{{ $k }}={{ $v }}\n{{ end }}{{ end }}"),
        "password=A1a-xyz\nusername=v-app-123\n"
    );
    assert_eq!(
        render("{{ with secret \"secret/data/app\" }}{{ range $k, $v := .Data.data.nested }}{{ $k }}={{ $v }}\n{{ end }}{{ end }}"),
        "k=v\n"
    );
}

#[test]
fn dynamic_db_creds_idiom() {
    assert_eq!(
        render(
            r#"{{ with secret "database/creds/app" }}{{ .Data.username }}:{{ .Data.password }}{{ end }}"#
        ),
        "v-app-123:A1a-xyz"
    );
}

#[test]
fn incomplete_render_when_a_secret_is_not_yet_available() {
    let mut h = host();
    let t = r#"a{{ with secret "secret/later" }}[{{ .Data.x }}]{{ end }}b{{ (secret "secret/later2").Data.y }}c{{ with secret "secret/kv1" }}{{ .Data.password }}{{ end }}"#;
    let r = try_render_with(t, &mut h, &RenderOptions::default()).unwrap();
    assert_eq!(
        r,
        Rendered {
            text: "ab<no value>cp1".into(),
            complete: false
        }
    );
    let paths: Vec<&str> = h.requests.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["secret/later", "secret/later2", "secret/kv1"]);
    // Once the host has it, the same template completes.
    h.secrets
        .insert("secret/later".into(), secret(serde_json::json!({"x": 1})));
    h.secrets
        .insert("secret/later2".into(), secret(serde_json::json!({"y": 2})));
    let r = try_render_with(t, &mut h, &RenderOptions::default()).unwrap();
    assert_eq!(
        r,
        Rendered {
            text: "a[1]b2cp1".into(),
            complete: true
        }
    );
    assert!(
        try_render_with("no secrets", &mut host(), &RenderOptions::default())
            .unwrap()
            .complete
    );
}

#[test]
fn secret_parameters() {
    let mut h = host();
    let t = r#"{{ secret "pki/issue/web" "common_name=a.example.com" " ttl = 1h " "" "ttl=2h" }}"#;
    let r = try_render_with(t, &mut h, &RenderOptions::default()).unwrap();
    assert_eq!(r.text, "<no value>");
    assert!(!r.complete);
    assert_eq!(
        h.requests[0].1,
        vec![
            ("common_name".to_string(), "a.example.com".to_string()),
            ("ttl".to_string(), "2h".to_string())
        ]
    );
    assert!(error(r#"{{ secret "pki/issue/web" "nokv" }}"#)
        .ends_with("error calling secret: not k=v pair \"nokv\""));
    assert_eq!(render("{{ secret }}"), "<no value>");
    assert!(error("{{ secret 1 }}").contains("expected string; found 1"));
}
