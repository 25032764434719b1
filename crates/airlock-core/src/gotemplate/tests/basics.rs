//! The template language: text, trims, comments, delimiters, pipelines, variables,
//! control structures, named templates.

use super::*;

#[test]
fn text_and_literals() {
    assert_eq!(render("hello"), "hello");
    assert_eq!(render(""), "");
    assert_eq!(
        render("{{ \"a\" }}{{ 1 }}{{ true }}{{ false }}"),
        "a1truefalse"
    );
    assert_eq!(render("{{ `raw\\n` }}"), "raw\\n");
    assert_eq!(render("{{ \"tab\\tq\\\"x\\u00e9\\x41\" }}"), "tab\tq\"xéA");
    assert_eq!(
        render("{{ 'a' }} {{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}"),
        "97 31 15 15 5 1000"
    );
    assert_eq!(render("{{ -3 }} {{ +4 }}"), "-3 4");
}

#[test]
fn dot_and_root_are_nil() {
    assert_eq!(
        render("{{ . }}|{{ $ }}|{{ .Foo }}|{{ .Foo.Bar }}|{{ $.X }}"),
        "<no value>|<no value>|<no value>|<no value>|<no value>"
    );
}

#[test]
fn trim_markers() {
    assert_eq!(render("a  \n\t{{- 1 -}} \n b"), "a1b");
    assert_eq!(render("a \n{{- 1 }} b"), "a1 b");
    assert_eq!(render("a {{ 1 -}}\n\n b"), "a 1b");
    assert_eq!(render("{{- 1 -}}"), "1");
    // Without a space after '-' it is a negative number, not a trim marker.
    assert_eq!(render("a {{-1}} b"), "a -1 b");
    assert_eq!(render("x\n{{- if true -}}\n  y\n{{- end -}}\nz"), "xyz");
}

#[test]
fn comments() {
    assert_eq!(render("a{{/* c */}}b"), "ab");
    assert_eq!(render("a {{- /* c */ -}} b"), "ab");
    assert_eq!(render("a{{/* line1\nline2 */}}b"), "ab");
    assert_eq!(render("a{{/**/}}b"), "ab");
}

#[test]
fn custom_delimiters() {
    let t = Template::parse("d", "{{ x }} [[ 1 ]] [[- \"y\" -]] z", "[[", "]]").unwrap();
    let r = t.render(&mut host(), &RenderOptions::default()).unwrap();
    assert_eq!(r.text, "{{ x }} 1yz");
    let t = Template::parse("d", "<%= 2 %><%=/* c */%>", "<%=", "%>").unwrap();
    assert_eq!(
        t.render(&mut host(), &RenderOptions::default())
            .unwrap()
            .text,
        "2"
    );
    let t = Template::parse("d", "<%= 2 %>", "", "").unwrap();
    assert_eq!(
        t.render(&mut host(), &RenderOptions::default())
            .unwrap()
            .text,
        "<%= 2 %>"
    );
}

#[test]
fn pipelines_pass_the_value_last() {
    assert_eq!(render(r#"{{ "abc" | printf "%s-%s" "x" }}"#), "x-abc");
    assert_eq!(render(r#"{{ 3 | printf "%d" }}"#), "3");
    assert_eq!(render(r#"{{ printf "%s" (printf "%d" 5) }}"#), "5");
    assert_eq!(
        render(r#"{{ "a" | printf "%s%s" "b" | printf "%s!" }}"#),
        "ba!"
    );
    assert_eq!(render(r#"{{ (printf "x") }}"#), "x");
}

#[test]
fn variables() {
    assert_eq!(render(r#"{{ $x := "a" }}{{ $x }}"#), "a");
    assert_eq!(render(r#"{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"#), "2");
    assert_eq!(
        render(r#"{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}"#),
        "21"
    );
    assert_eq!(
        render(r#"{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"#),
        "2"
    );
    assert_eq!(render(r#"{{ $x := "v" }}{{ $y := $x }}{{ $y }}"#), "v");
    assert_eq!(
        render(r#"{{ with $x := "v" }}{{ $x }}{{ . }}{{ end }}"#),
        "vv"
    );
    assert_eq!(
        render(r#"{{ $m := parseJSON "{\"a\":{\"b\":\"c\"}}" }}{{ $m.a.b }}"#),
        "c"
    );
    assert_eq!(
        render(r#"{{ (parseJSON "{\"a\":{\"b\":\"c\"}}").a.b }}"#),
        "c"
    );
}

#[test]
fn if_else_chains() {
    assert_eq!(
        render("{{ if false }}a{{ else if true }}b{{ else }}c{{ end }}"),
        "b"
    );
    assert_eq!(
        render("{{ if false }}a{{ else if false }}b{{ else }}c{{ end }}"),
        "c"
    );
    assert_eq!(
        render("{{ if 1 }}a{{ end }}{{ if 0 }}b{{ end }}{{ if 0.5 }}c{{ end }}"),
        "ac"
    );
    assert_eq!(
        render(r#"{{ if "" }}a{{ else }}b{{ end }}{{ if "x" }}c{{ end }}"#),
        "bc"
    );
    assert!(error("{{ if nil }}a{{ end }}").contains("nil is not a command"));
    assert_eq!(
        render(r#"{{ if split "," "" }}a{{ else }}empty{{ end }}"#),
        "empty"
    );
    assert_eq!(
        render(r#"{{ if parseJSON "{}" }}a{{ else }}empty{{ end }}"#),
        "empty"
    );
    assert_eq!(render("{{ if .Missing }}a{{ else }}b{{ end }}"), "b");
}

#[test]
fn with_else_chains() {
    assert_eq!(render(r#"{{ with "x" }}{{ . }}{{ end }}"#), "x");
    assert_eq!(render(r#"{{ with "" }}a{{ else }}b{{ end }}"#), "b");
    assert_eq!(
        render(r#"{{ with "" }}a{{ else with "y" }}{{ . }}{{ end }}"#),
        "y"
    );
    assert_eq!(
        render(r#"{{ with 0 }}a{{ else with "" }}b{{ else }}c{{ end }}"#),
        "c"
    );
}

#[test]
fn range_over_lists_maps_and_ints() {
    let kv = r#"{{ with secret "secret/data/app" }}"#;
    assert_eq!(render(&format!("{kv}{{{{ range $i, $v := .Data.data.list }}}}{{{{ $i }}}}={{{{ $v }}}};{{{{ end }}}}{{{{ end }}}}")), "0=x;1=y;");
    assert_eq!(
        render(&format!(
            "{kv}{{{{ range .Data.data.list }}}}<{{{{ . }}}}>{{{{ end }}}}{{{{ end }}}}"
        )),
        "<x><y>"
    );
    assert_eq!(
        render(&format!(
            "{kv}{{{{ range $v := .Data.data.list }}}}{{{{ $v }}}}{{{{ end }}}}{{{{ end }}}}"
        )),
        "xy"
    );
    assert_eq!(
        render(
            r#"{{ range $k, $v := parseJSON "{\"b\":1,\"a\":2,\"c\":null}" }}{{ $k }}{{ $v }} {{ end }}"#
        ),
        "a2 b1 c<no value> "
    );
    assert_eq!(render("{{ range 3 }}{{ . }}{{ end }}"), "012");
    assert_eq!(render("{{ range $i := 2 }}{{ $i }}{{ end }}"), "01");
    assert_eq!(render("{{ range 0 }}x{{ else }}none{{ end }}"), "none");
    assert_eq!(
        render(r#"{{ range split "," "" }}x{{ else }}empty{{ end }}"#),
        "empty"
    );
    assert_eq!(render("{{ range .Missing }}x{{ else }}nil{{ end }}"), "nil");
    assert_eq!(
        render(&format!(
            "{kv}{{{{ range .Data.data.nope }}}}x{{{{ else }}}}none{{{{ end }}}}{{{{ end }}}}"
        )),
        "none"
    );
    // Assignment form reuses outer variables.
    assert_eq!(
        render(
            r#"{{ $i := 0 }}{{ $v := "" }}{{ range $i, $v = split "," "a,b" }}{{ end }}{{ $i }}{{ $v }}"#
        ),
        "1b"
    );
    // The range variables go out of scope at end.
    assert!(
        error("{{ range $x := split \",\" \"a\" }}{{ end }}{{ $x }}")
            .contains("undefined variable \"$x\"")
    );
}

#[test]
fn break_and_continue() {
    assert_eq!(
        render(
            r#"{{ range split "," "a,b,c,d" }}{{ if eq . "c" }}{{ break }}{{ end }}{{ . }}{{ end }}"#
        ),
        "ab"
    );
    assert_eq!(
        render(
            r#"{{ range split "," "a,b,c,d" }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}"#
        ),
        "acd"
    );
    assert_eq!(
        render(
            r#"{{ range split "," "a,b" }}{{ range split "," "1,2" }}{{ break }}{{ end }}{{ . }}{{ end }}"#
        ),
        "ab"
    );
    assert!(error("{{ break }}").contains("{{break}} outside {{range}}"));
    assert!(error("{{ range 1 }}{{ else }}{{ continue }}{{ end }}")
        .contains("{{continue}} outside {{range}}"));
}

#[test]
fn define_template_and_block() {
    assert_eq!(
        render(r#"{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" "a" }}{{ template "x" }}"#),
        "[a][<no value>]"
    );
    assert_eq!(render(r#"{{ block "b" "z" }}<{{ . }}>{{ end }}"#), "<z>");
    assert_eq!(
        render(r#"{{ define "x" }}{{ $ }}{{ end }}{{ template "x" 5 }}"#),
        "5"
    );
    assert_eq!(render("{{ define \"x\" }}X{{ end }}\n"), "\n");
    assert_eq!(
        render(r#"{{ template "x" }}{{ define "x" }}later{{ end }}"#),
        "later"
    );
    assert!(error(r#"{{ $v := 1 }}{{ define "t" }}{{ $v }}{{ end }}"#)
        .contains("undefined variable \"$v\""));
    assert!(error(r#"{{ template "nope" }}"#).contains("template \"nope\" not defined"));
    assert!(
        error(r#"{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}"#)
            .contains("multiple definition of template \"a\"")
    );
    // An empty redefinition keeps the first body.
    assert_eq!(
        render(r#"{{ define "a" }}1{{ end }}{{ define "a" }} {{ end }}{{ template "a" }}"#),
        "1"
    );
}

#[test]
fn missing_keys_default_to_nil_like_consul_template() {
    let kv = r#"{{ with secret "secret/data/app" }}"#;
    assert_eq!(
        render(&format!("{kv}{{{{ .Data.data.missing }}}}{{{{ end }}}}")),
        "<no value>"
    );
    assert_eq!(
        render(&format!("{kv}{{{{ .Data.data.nothing }}}}{{{{ end }}}}")),
        "<no value>"
    );
    assert_eq!(
        render(&format!(
            "{kv}{{{{ print .Data.data.missing }}}}{{{{ end }}}}"
        )),
        "<nil>"
    );
    assert_eq!(
        render(&format!(
            "{kv}{{{{ .Data.data.missing | print }}}}{{{{ end }}}}"
        )),
        "<nil>"
    );
    // A field of a missing key is an error (consul-template runs with missingkey=zero).
    let e = error(&format!("{kv}{{{{ .Data.data.missing.x }}}}{{{{ end }}}}"));
    assert!(
        e.contains("at <.Data.data.missing.x>: nil pointer evaluating interface {}.x"),
        "{e}"
    );
    let e = error(r#"{{ with secret "secret/kv1" }}{{ .Data.data.password }}{{ end }}"#);
    assert!(
        e.ends_with("nil pointer evaluating interface {}.password"),
        "{e}"
    );
}

#[test]
fn missing_keys_with_error_on_missing_key() {
    let kv = r#"{{ with secret "secret/data/app" }}"#;
    let e = error_strict(&format!("{kv}{{{{ .Data.data.missing }}}}{{{{ end }}}}"));
    assert!(e.contains("map has no entry for key \"missing\""), "{e}");
    assert_eq!(e, "t.tmpl:1: executing \"t.tmpl\" at <.Data.data.missing>: map has no entry for key \"missing\"");
    let e = error_strict("{{ .Foo }}");
    assert!(e.contains("nil data; no entry for key \"Foo\""), "{e}");
    // Present keys still render; explicit nulls are not missing.
    let opts = RenderOptions {
        error_on_missing_key: true,
    };
    let r = try_render_with(
        &format!("{kv}{{{{ .Data.data.user }}}}{{{{ .Data.data.nothing }}}}{{{{ end }}}}"),
        &mut host(),
        &opts,
    )
    .unwrap();
    assert_eq!(r.text, "app<no value>");
}
