//! A deterministic fuzz-style run: thousands of random and mutated templates are parsed
//! and rendered; nothing may panic, and every error must be well-formed.

use super::*;

/// xorshift64*: small, deterministic, good enough to shake the parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{/*",
    "*/}}",
    " ",
    "\n",
    "\t",
    "if ",
    "else ",
    "end",
    "range ",
    "with ",
    "define ",
    "template ",
    "block ",
    "break",
    "continue",
    ".",
    ".Data",
    ".data",
    ".password",
    ".X",
    "$x",
    "$",
    "$v",
    "$k",
    ":=",
    "=",
    "|",
    "(",
    ")",
    ",",
    "\"s\"",
    "\"a,b\"",
    "`r`",
    "'c'",
    "'\\n'",
    "1",
    "-2",
    "3.5",
    "0x1F",
    "1e3",
    "nil",
    "true",
    "false",
    "printf",
    "\"%d\"",
    "\"%s%v%q%x\"",
    "\"%5.2f\"",
    "\"%[2]*d\"",
    "index",
    "slice",
    "len",
    "eq",
    "ne",
    "lt",
    "and",
    "or",
    "not",
    "print",
    "println",
    "html",
    "js",
    "urlquery",
    "call",
    "secret",
    "\"secret/data/app\"",
    "\"database/creds/app\"",
    "\"k=v\"",
    "toJSON",
    "toJSONPretty",
    "split",
    "\",\"",
    "join",
    "loop",
    "3",
    "parseJSON",
    "\"{\\\"a\\\":[1,null,{}]}\"",
    "env",
    "\"HOME\"",
    "file",
    "base64Decode",
    "base64Encode",
    "toUpper",
    "trim",
    "indent",
    "add",
    "divide",
    "modulo",
    "maximum",
    "timestamp",
    "\"unix\"",
    "executeTemplate",
    "\"x\"",
    "contains",
    "replaceAll",
    "toYAML",
    "text",
    "é",
    "\u{0}",
    "\u{2028}",
    "\\",
    "\"",
    "'",
    "`",
    "/*",
    "*/",
    "{",
    "}",
    "-",
    "#",
    ":",
    "0",
    "_",
    "Data",
    "$x := ",
    "{{ end }}",
    "{{ else }}",
];

const CORPUS: &[&str] = &[
    r#"{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}"#,
    "{{ with secret \"database/creds/app\" }}{{ range $k, $v := .Data }}{{ $k }}={{ $v }}\n{{ end }}{{ end }}",
    r#"{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" "a" }}{{ block "b" 1 }}{{ . }}{{ end }}"#,
    r#"{{ range $i, $v := split "," "a,b,c" }}{{ if eq $v "b" }}{{ continue }}{{ end }}{{ $i }}{{ $v }}{{ end }}"#,
    r#"{{ $x := 1 }}{{ if gt $x 0 }}{{ $x = add $x 1 }}{{ else if true }}no{{ else }}x{{ end }}{{ $x }}"#,
    r#"{{- /* c */ -}} {{ printf "%s-%05.1f|%q" "a" 3.14159 "z" | toUpper }} {{ "aGk=" | base64Decode }}"#,
    r#"{{ with secret "secret/data/app" }}{{ .Data.data | toJSONPretty }}{{ index .Data.data.list 1 }}{{ end }}"#,
    r#"{{ (parseJSON "{\"a\":[1,2.5,null]}").a | toJSON }}{{ len "abc" }}{{ slice "abcdef" 1 3 }}"#,
    r#"{{ range loop 3 }}{{ . }}{{ break }}{{ end }}{{ timestamp "2006-01-02 .000 Z07:00" }}{{ env "HOME" }}"#,
    r#"{{ with $v := "x" }}{{ $v }}{{ else with "y" }}{{ . }}{{ end }}{{ and 1 0 }}{{ or 0 "z" }}{{ not true }}"#,
];

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let len = chars.len();
        match rng.below(5) {
            0 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(8)).min(len);
                chars.drain(a..b);
            }
            1 => {
                let at = rng.below(len + 1);
                let piece: Vec<char> = rng.pick(PIECES).chars().collect();
                chars.splice(at..at, piece);
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let dup: Vec<char> = chars[a..b].to_vec();
                let at = rng.below(chars.len() + 1);
                chars.splice(at..at, dup);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                chars[at] = rng.pick(PIECES).chars().next().unwrap_or('x');
            }
            _ => {
                let at = rng.below(len + 1);
                chars.truncate(at);
            }
        }
    }
    chars.into_iter().collect()
}

fn soup(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(30) {
        s.push_str(rng.pick(PIECES));
        if rng.below(3) == 0 {
            s.push(' ');
        }
    }
    s
}

#[test]
fn random_and_mutated_templates_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    let mut rendered = 0;
    for i in 0..6000 {
        let text = if i % 2 == 0 {
            soup(&mut rng)
        } else {
            let base = CORPUS[rng.below(CORPUS.len())];
            mutate(&mut rng, base)
        };
        let (left, right) = if i % 17 == 0 { ("[[", "]]") } else { ("", "") };
        match Template::parse("fuzz", &text, left, right) {
            Ok(t) => {
                parsed += 1;
                let opts = RenderOptions {
                    error_on_missing_key: i % 3 == 0,
                };
                match t.render(&mut host(), &opts) {
                    Ok(_) => rendered += 1,
                    Err(e) => assert!(!e.reason.is_empty() && e.name == "fuzz", "{text:?}: {e:?}"),
                }
            }
            Err(e) => {
                assert!(!e.reason.is_empty(), "{text:?}");
                assert!(
                    e.line >= 1 && e.line <= text.matches('\n').count() + 1,
                    "{text:?}: {e}"
                );
            }
        }
    }
    // The run must exercise the evaluator, not just the parser's error paths.
    assert!(
        parsed > 600 && rendered > 300,
        "parsed {parsed}, rendered {rendered}"
    );
}

#[test]
fn every_corpus_template_renders() {
    for text in CORPUS {
        let t = Template::parse("c", text, "", "").unwrap_or_else(|e| panic!("{text:?}: {e}"));
        t.render(&mut host(), &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}
