//! Go's builtins and the consul-template functions.

use super::*;

#[test]
fn printf_verbs_and_flags() {
    assert_eq!(
        render(r#"{{ printf "%s|%d|%v|%q|%t|%f|%x|%5s|%-5s|%05d|%.2f|%x|%X|%o|%b|%c|%e|%g|%%" "a" 5 "v" "q\"" true 1.5 255 "r" "l" 42 3.14159 "hi" 255 8 5 65 1234.5678 0.000012 }}"#),
        "a|5|v|\"q\\\"\"|true|1.500000|ff|    r|l    |00042|3.14|6869|FF|10|101|A|1.234568e+03|1.2e-05|%"
    );
    assert_eq!(
        render(
            r#"{{ printf "%+d %+d % d %x %#x %#o %08.3f %-8.2f| %.3s %5.1q" 5 -5 5 -255 255 8 3.14159 2.5 "abcdef" "xyz" }}"#
        ),
        "+5 -5  5 -ff 0xff 010 0003.142 2.50    | abc   \"x\""
    );
    assert_eq!(render(r#"{{ printf "%d" "x" }}"#), "%!d(string=x)");
    assert_eq!(render(r#"{{ printf "%s" }}"#), "%!s(MISSING)");
    assert_eq!(
        render(r#"{{ printf "a" 1 "b" }}"#),
        "a%!(EXTRA int=1, string=b)"
    );
    assert_eq!(render(r#"{{ printf "%" }}"#), "%!(NOVERB)");
    assert_eq!(
        render(r#"{{ printf "%T %T %T %T" 1 1.5 "s" nil }}"#),
        "int float64 string <nil>"
    );
    assert_eq!(render(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#), "b a");
    assert_eq!(render(r#"{{ printf "%*d|%.*f" 4 7 1 2.25 }}"#), "   7|2.2");
    assert_eq!(
        render(r#"{{ printf "%-*d|%.*d|%*d" -3 1 -1 2 "x" 3 }}"#),
        "1  |%!(BADPREC)2|%!(BADWIDTH)3"
    );
    assert_eq!(
        render(r#"{{ printf "%s %d" (split "," "a,b") (parseJSON "[1]") }}"#),
        "[a b] [%!d(float64=1)]"
    );
    assert_eq!(
        render(r#"{{ printf "%v %s" nil nil }}"#),
        "<nil> %!s(<nil>)"
    );
    assert_eq!(
        render(
            r#"{{ with secret "secret/data/app" }}{{ printf "%v %s %d" .Data.data.port .Data.data.port .Data.data.port }}{{ end }}"#
        ),
        "5432 5432 %!d(json.Number=5432)"
    );
    assert_eq!(
        render(r#"{{ printf "%99999999d" 1 }}"#),
        "%!(NOVERB)%!(EXTRA int=1)"
    );
}

#[test]
fn print_and_println() {
    assert_eq!(render(r#"{{ print 1 2 "a" 3 "b" "c" }}"#), "1 2a3bc");
    assert_eq!(render(r#"{{ println 1 "a" }}"#), "1 a\n");
    assert_eq!(render(r#"{{ print }}{{ print nil }}"#), "<nil>");
}

#[test]
fn logic_and_comparison() {
    assert_eq!(render("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" \"x\" }} {{ or 0 false }}|{{ not 0 }} {{ not \"a\" }}"), "0 2 x false|true false");
    // and/or short-circuit: the failing index is never evaluated.
    assert_eq!(
        render(r#"{{ or 1 (index "x" 5) }} {{ and 0 (index "x" 5) }}"#),
        "1 0"
    );
    assert_eq!(
        render(
            r#"{{ eq 2 1 2 3 }} {{ eq "a" "b" }} {{ ne "a" "b" }} {{ eq .Missing .Missing }} {{ eq .Missing "x" }} {{ eq nil nil }}"#
        ),
        "true false true true false true"
    );
    assert_eq!(
        render(r#"{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ lt "B" "a" }}"#),
        "true true true false true"
    );
    assert!(error("{{ lt 1 1.5 }}").contains("error calling lt: incompatible types for comparison"));
    assert!(error("{{ lt true false }}").contains("invalid type for comparison"));
    assert!(error("{{ eq 1 }}").contains("missing argument for comparison"));
    assert!(error(r#"{{ eq (split "," "a") (split "," "a") }}"#).contains("non-comparable"));
}

#[test]
fn len_index_slice() {
    let kv = |b: &str| {
        render(&format!(
            "{{{{ with secret \"secret/data/app\" }}}}{b}{{{{ end }}}}"
        ))
    };
    assert_eq!(
        render(r#"{{ len "héllo" }} {{ len (split "," "a,b,c") }}"#),
        "6 3"
    );
    assert_eq!(kv("{{ len .Data.data.list }} {{ len .Data.data }}"), "2 8");
    assert_eq!(kv("{{ index .Data.data.list 1 }} {{ index .Data.data \"user\" }} {{ index .Data.data \"nested\" \"k\" }} {{ index .Data.data \"nope\" }}"), "y app v <no value>");
    assert_eq!(render(r#"{{ index "abc" 1 }}"#), "98");
    assert!(error(r#"{{ index "abc" 3 }}"#)
        .contains("error calling index: reflect: string index out of range"));
    assert!(error(r#"{{ index "abc" 4 }}"#).contains("index out of range: 4"));
    assert!(error(r#"{{ index (split "," "a") "x" }}"#)
        .contains("cannot index slice/array with type string"));
    assert!(error("{{ index .Missing 1 }}").contains("index of untyped nil"));
    assert!(error("{{ index 5 1 }}").contains("can't index item of type int"));
    assert_eq!(
        render(r#"{{ slice "abcdef" 1 3 }} {{ slice "abc" 1 }} {{ slice (split "," "a,b,c") 1 }}"#),
        "bc bc [b c]"
    );
    assert!(error(r#"{{ slice "abc" 2 1 }}"#).contains("invalid slice index: 2 > 1"));
    assert!(error(r#"{{ len 3 }}"#).contains("len of type int"));
}

#[test]
fn html_js_urlquery() {
    assert_eq!(
        render(r#"{{ html "<a href='x'>&\"" }}"#),
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"
    );
    assert_eq!(
        render(r#"{{ js "a'b\"<=\n" }}"#),
        "a\\'b\\\"\\u003C\\u003D\\u000A"
    );
    assert_eq!(render(r#"{{ urlquery "a b&c/é" }}"#), "a+b%26c%2F%C3%A9");
    assert_eq!(render(r#"{{ urlquery 1 2 }}"#), "1+2");
}

#[test]
fn json_encoding_matches_go() {
    let kv = |b: &str| {
        render(&format!(
            "{{{{ with secret \"secret/data/app\" }}}}{b}{{{{ end }}}}"
        ))
    };
    assert_eq!(
        kv("{{ .Data.data | toJSON }}"),
        r#"{"html":"\u003ca\u0026b\u003e","list":["x","y"],"nested":{"k":"v"},"nothing":null,"password":"s3cr3t","port":5432,"user":"app","zero":0}"#
    );
    assert_eq!(
        kv("{{ .Data.data.nested | toJSONPretty }}"),
        "{\n  \"k\": \"v\"\n}"
    );
    assert_eq!(
        render(r#"{{ toJSONPretty (parseJSON "{\"a\":[1,2],\"b\":{},\"c\":[]}") }}"#),
        "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}"
    );
    assert_eq!(
        render(r#"{{ toJSON "<a&b>" }} {{ toUnescapedJSON "<a&b>" }}"#),
        r#""\u003ca\u0026b\u003e" "<a&b>""#
    );
    assert_eq!(
        render("{{ toJSON \"\u{2028}\u{2029}\\t\\x01\\x08\\x0c\" }}"),
        r#""\u2028\u2029\t\u0001\b\f""#
    );
    assert_eq!(
        render(r#"{{ toUnescapedJSONPretty (parseJSON "{\"a\":\"<\"}") }}"#),
        "{\n  \"a\": \"<\"\n}"
    );
    assert_eq!(
        render(r#"{{ toJSON (parseJSON "[1e21, 1e-7, 0.1, 100, -0.0]") }}"#),
        "[1e+21,1e-7,0.1,100,-0]"
    );
    assert_eq!(
        render(
            r#"{{ toJSON nil }} {{ toJSON .Missing }} {{ toJSON 1 }} {{ toJSON (split "," "") }}"#
        ),
        "null null 1 []"
    );
    assert!(
        error(r#"{{ toJSON (divide 0.0 0.0) }}"#).contains("toJSON: json: unsupported value: NaN")
    );
}

#[test]
fn encodings_and_hashes() {
    assert_eq!(
        render(r#"{{ base64Encode "hello" }} {{ "aGVsbG8=" | base64Decode }}"#),
        "aGVsbG8= hello"
    );
    assert_eq!(
        render(
            r#"{{ base64URLEncode "??>" }} {{ base64URLDecode "Pz8-" }} {{ base64Encode "??>" }}"#
        ),
        "Pz8- ??> Pz8+"
    );
    assert_eq!(render(r#"{{ base64Decode "aGVs\nbG8=" }}"#), "hello");
    assert!(error(r#"{{ base64Decode "a" }}"#)
        .contains("error calling base64Decode: base64Decode: illegal base64 data at input byte"));
    assert!(error(r#"{{ base64Decode "aGVsbG8" }}"#).contains("illegal base64 data"));
    assert_eq!(
        render(r#"{{ sha256Hex "" }}"#),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        render(r#"{{ hmacSHA256Hex "The quick brown fox jumps over the lazy dog" "key" }}"#),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn parsing_functions() {
    assert_eq!(
        render(r#"{{ parseInt "42" | add 1 }} {{ parseInt "-7" }} {{ parseInt "" }}"#),
        "43 -7 0"
    );
    assert_eq!(
        render(
            r#"{{ parseBool "true" }} {{ parseBool "F" }} {{ parseFloat "1.5" }} {{ parseUint "7" }}"#
        ),
        "true false 1.5 7"
    );
    assert_eq!(
        render(r#"{{ (parseJSON "{\"n\": 1000000}").n }} {{ parseJSON "" }}"#),
        "1e+06 map[]"
    );
    assert!(error(r#"{{ parseInt "x" }}"#).ends_with(
        r#"error calling parseInt: parseInt: strconv.ParseInt: parsing (a value of 1 bytes): invalid syntax"#
    ));
    assert!(error(r#"{{ parseInt "99999999999999999999" }}"#).ends_with("value out of range"));
    assert!(error(r#"{{ parseBool "yes" }}"#)
        .contains("strconv.ParseBool: parsing (a value of 3 bytes): invalid syntax"));
    // The value itself (it may be a secret) is never in the error.
    assert!(!error(r#"{{ $v := "s3cret-value" }}{{ parseInt $v }}"#).contains("s3cret"));
    assert!(error(r#"{{ parseJSON "{" }}"#).contains("error calling parseJSON"));
}

#[test]
fn math_functions() {
    assert_eq!(render("{{ add 1 2 }} {{ subtract 1 5 }} {{ 10 | divide 2 }} {{ multiply 2 1.5 }} {{ modulo 3 10 }}"), "3 4 5 3 1");
    assert_eq!(
        render("{{ minimum 3 5 }} {{ maximum 3 5 }} {{ minimum 2.5 1 }} {{ divide 2 7.0 }}"),
        "3 5 1 3.5"
    );
    assert!(error("{{ divide 0 1 }}")
        .contains("error calling divide: runtime error: integer divide by zero"));
    assert!(error(r#"{{ add 1 "2" }}"#).contains(r#"add: unknown type for "2" (string)"#));
    let e = error(r#"{{ with secret "secret/data/app" }}{{ .Data.data.port | add 1 }}{{ end }}"#);
    assert!(
        e.contains(r#"add: unknown type for "5432" (json.Number)"#),
        "{e}"
    );
}

#[test]
fn string_functions() {
    assert_eq!(
        render(r#"{{ toLower "AbC" }} {{ toUpper "straße" }} {{ toTitle "hello wide-world" }}"#),
        "abc STRAßE Hello Wide-World"
    );
    assert_eq!(
        render(
            r#"[{{ trimSpace "  a \n" }}] {{ trim "x" "xxaxx" }} {{ trimPrefix "a" "abc" }} {{ trimSuffix "c" "abc" }}"#
        ),
        "[a] a bc ab"
    );
    assert_eq!(
        render(r#"{{ replaceAll "a" "b" "aaa" }} {{ "xyx" | replaceAll "x" "" }}"#),
        "bbb y"
    );
    assert_eq!(
        render(r#"{{ "a,b, c" | split "," }} {{ split "," "  " | len }} {{ split "" "ab" }}"#),
        "[a b  c] 0 [a b]"
    );
    assert_eq!(
        render(r#"{{ split "," "a,b" | join "-" }} {{ splitToMap "," "=" "a=1,b=2,c" }}"#),
        "a-b map[a:1 b:2]"
    );
    assert!(error(
        r#"{{ with secret "secret/data/app" }}{{ .Data.data.list | join "," }}{{ end }}"#
    )
    .contains("wrong type for value; expected []string; got []interface {}"));
    assert_eq!(render("{{ indent 2 \"a\\nb\\n\\nc\" }}"), "  a\n  b\n\n  c");
    assert!(error("{{ indent -1 \"a\" }}").contains("indent value must be a positive integer"));
    assert!(error(r#"{{ toLower 5 }}"#).contains("expected string; found 5"));
    let e = error(r#"{{ with secret "secret/data/app" }}{{ .Data.data.port | toUpper }}{{ end }}"#);
    assert!(
        e.contains("wrong type for value; expected string; got json.Number"),
        "{e}"
    );
}

#[test]
fn membership_functions() {
    let kv = |b: &str| {
        render(&format!(
            "{{{{ with secret \"secret/data/app\" }}}}{b}{{{{ end }}}}"
        ))
    };
    assert_eq!(
        kv(r#"{{ .Data.data.list | contains "y" }} {{ in .Data.data.list "z" }}"#),
        "true false"
    );
    assert_eq!(
        render(r#"{{ "foobar" | contains "oba" }} {{ in "foobar" "x" }}"#),
        "true false"
    );
    assert_eq!(
        kv(
            r#"{{ containsAny (parseJSON "[\"a\",\"y\"]") .Data.data.list }} {{ containsAll (parseJSON "[\"x\",\"y\"]") .Data.data.list }} {{ containsNone (parseJSON "[\"q\"]") .Data.data.list }} {{ containsNotAll (parseJSON "[\"x\",\"q\"]") .Data.data.list }}"#
        ),
        "true true true true"
    );
    assert_eq!(
        render(r#"{{ split "," "1,2" | contains "2" }} {{ parseJSON "[1]" | contains 1 }}"#),
        "true false"
    );
}

#[test]
fn host_functions() {
    assert_eq!(
        render(
            r#"{{ env "HOME" }}|{{ env "NOPE" }}|{{ envOrDefault "NOPE" "d" }}|{{ mustEnv "HOME" }}"#
        ),
        "/home/app||d|/home/app"
    );
    assert!(
        error(r#"{{ mustEnv "NOPE" }}"#).contains("required environment variable NOPE is empty")
    );
    assert_eq!(render(r#"{{ file "/etc/motd" }}{{ file "" }}"#), "hello\n");
    assert!(error(r#"{{ file "/nope" }}"#)
        .ends_with("error calling file: open /nope: no such file or directory"));
}

#[test]
fn timestamp_formats() {
    assert_eq!(render("{{ timestamp }}"), "2006-01-02T15:04:05Z");
    assert_eq!(render(r#"{{ timestamp "unix" }}"#), "1136214245");
    assert_eq!(
        render(r#"{{ timestamp "Mon Jan _2 15:04:05.000 MST 2006" }}"#),
        "Mon Jan  2 15:04:05.123 UTC 2006"
    );
    assert_eq!(
        render(r#"{{ timestamp "Monday, 02-Jan-06 3:04PM .999999999 -0700 Z07:00 002" }}"#),
        "Monday, 02-Jan-06 3:04PM .123456789 +0000 Z 002"
    );
    assert_eq!(
        render(r#"{{ timestamp "2006-01-02" }} {{ timestamp "January 2, 2006 03:04:05 pm" }}"#),
        "2006-01-02 January 2, 2006 03:04:05 pm"
    );
}

#[test]
fn loop_and_execute_template() {
    assert_eq!(
        render("{{ range loop 3 }}{{ . }}{{ end }} {{ range $i := loop 2 4 }}{{ $i }}{{ end }}"),
        "012 23"
    );
    assert_eq!(render(r#"{{ range loop "2" }}{{ . }}{{ end }}"#), "01");
    assert!(error("{{ loop 1 2 3 }}")
        .contains("loop: wrong number of arguments, expected 1 or 2, but got 3"));
    assert!(error("{{ loop 100000000 }}").contains("exceed the limit"));
    assert_eq!(
        render(
            r#"{{ define "x" }}<{{ . }}>{{ end }}{{ executeTemplate "x" "a" | toUpper }}{{ executeTemplate "x" }}"#
        ),
        "<A><<no value>>"
    );
    assert!(error(r#"{{ executeTemplate "nope" }}"#).contains("no template \"nope\" associated"));
}

#[test]
fn unsupported_and_unknown_functions() {
    assert!(error("{{ toYAML . }}")
        .ends_with("error calling toYAML: toYAML is not supported by Airlock's template engine"));
    assert!(error("{{ sprig_upper \"a\" }}").contains("not supported"));
    // Mentioning an unsupported function is fine as long as it is not called.
    assert_eq!(
        render("{{ if false }}{{ regexMatch \"a\" \"b\" }}{{ end }}ok"),
        "ok"
    );
    assert_eq!(error("{{ foo }}"), "t.tmpl:1: function \"foo\" not defined");
    assert_eq!(
        error("{{ call .X }}"),
        "t.tmpl:1: executing \"t.tmpl\" at <call .X>: error calling call: call of nil"
    );
}
