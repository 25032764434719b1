//! Vault `username_template`s: the subset of Go templates Vault's database plugins document.
//! `{{ .DisplayName }}`, `{{ .RoleName }}`, string and number literals, parentheses, pipes,
//! and the functions `random N`, `truncate N`, `truncate_sha256 N`, `uppercase`,
//! `lowercase`, `replace OLD NEW`, `sha256`, `base64`, `unix_time`, `unix_time_millis`,
//! `uuid`, `printf FORMAT ARGS…` (`%s`, `%d`, `%v`). Time and randomness are parameters.

use sha2::Digest;

/// What a template can see.
pub struct Context<'a> {
    pub display_name: &'a str,
    pub role_name: &'a str,
    /// Unix milliseconds.
    pub now_millis: i64,
    /// `n` random characters from `[A-Za-z0-9]`.
    pub random: &'a dyn Fn(usize) -> String,
    /// A random UUID.
    pub uuid: &'a dyn Fn() -> String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Num(i64),
    Ident(String),
    Pipe,
    Open,
    Close,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            match b.get(i + 1) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(x) => s.push(*x),
                                None => return Err("unterminated string".into()),
                            }
                            i += 2;
                            continue;
                        }
                        Some(x) => s.push(*x),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            '.' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Field(b[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = b[start..i].iter().collect();
                out.push(Tok::Num(
                    s.parse().map_err(|_| format!("bad number {s:?}"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(b[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    S(String),
    N(i64),
}

impl Val {
    fn s(&self) -> String {
        match self {
            Val::S(s) => s.clone(),
            Val::N(n) => n.to_string(),
        }
    }
    fn n(&self) -> Result<i64, String> {
        match self {
            Val::N(n) => Ok(*n),
            Val::S(s) => s
                .parse()
                .map_err(|_| format!("expected a number, got {s:?}")),
        }
    }
}

struct Parser<'a, 'c> {
    t: &'a [Tok],
    i: usize,
    ctx: &'a Context<'c>,
}

impl Parser<'_, '_> {
    fn pipeline(&mut self) -> Result<Val, String> {
        let mut v = self.command(None)?;
        while self.t.get(self.i) == Some(&Tok::Pipe) {
            self.i += 1;
            v = self.command(Some(v))?;
        }
        Ok(v)
    }

    fn operand(&mut self) -> Result<Option<Val>, String> {
        let v = match self.t.get(self.i) {
            Some(Tok::Str(s)) => Val::S(s.clone()),
            Some(Tok::Num(n)) => Val::N(*n),
            Some(Tok::Field(f)) => Val::S(match f.as_str() {
                "DisplayName" => self.ctx.display_name.to_string(),
                "RoleName" => self.ctx.role_name.to_string(),
                other => return Err(format!("unknown field .{other}")),
            }),
            Some(Tok::Open) => {
                self.i += 1;
                let v = self.pipeline()?;
                if self.t.get(self.i) != Some(&Tok::Close) {
                    return Err("missing )".into());
                }
                v
            }
            _ => return Ok(None),
        };
        self.i += 1;
        Ok(Some(v))
    }

    fn command(&mut self, piped: Option<Val>) -> Result<Val, String> {
        let name = match self.t.get(self.i) {
            Some(Tok::Ident(n)) => {
                self.i += 1;
                n.clone()
            }
            _ => {
                let v = self.operand()?.ok_or("expected a value")?;
                return match piped {
                    None => Ok(v),
                    Some(_) => Err("a value cannot take piped input".into()),
                };
            }
        };
        let mut args = Vec::new();
        while let Some(v) = self.operand()? {
            args.push(v);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{name} takes {n} argument(s), got {}", args.len()))
            }
        };
        let trunc = |s: &str, n: usize| -> String { s.chars().take(n).collect() };
        Ok(match name.as_str() {
            "random" => {
                want(1)?;
                let n = args[0].n()?;
                if !(1..=1024).contains(&n) {
                    return Err("random length must be 1-1024".into());
                }
                Val::S((self.ctx.random)(n as usize))
            }
            "truncate" => {
                want(2)?;
                let n = args[0].n()?.max(0) as usize;
                Val::S(trunc(&args[1].s(), n))
            }
            "truncate_sha256" => {
                want(2)?;
                let n = args[0].n()?.max(0) as usize;
                let s = args[1].s();
                if s.chars().count() <= n {
                    Val::S(s)
                } else {
                    let keep = n.saturating_sub(8);
                    let h = hex_lower(&sha2::Sha256::digest(s.as_bytes()));
                    Val::S(format!("{}{}", trunc(&s, keep), &h[..8.min(h.len())]))
                }
            }
            "uppercase" => {
                want(1)?;
                Val::S(args[0].s().to_uppercase())
            }
            "lowercase" => {
                want(1)?;
                Val::S(args[0].s().to_lowercase())
            }
            "replace" => {
                want(3)?;
                Val::S(args[2].s().replace(&args[0].s(), &args[1].s()))
            }
            "sha256" => {
                want(1)?;
                Val::S(hex_lower(&sha2::Sha256::digest(args[0].s().as_bytes())))
            }
            "base64" => {
                want(1)?;
                Val::S(b64(args[0].s().as_bytes()))
            }
            "unix_time" => {
                want(0)?;
                Val::N(self.ctx.now_millis.div_euclid(1000))
            }
            "unix_time_millis" => {
                want(0)?;
                Val::N(self.ctx.now_millis)
            }
            "uuid" => {
                want(0)?;
                Val::S((self.ctx.uuid)())
            }
            "printf" => {
                let fmt = args.first().ok_or("printf needs a format")?.s();
                let mut rest = args.iter().skip(1);
                let mut out = String::new();
                let mut chars = fmt.chars().peekable();
                while let Some(c) = chars.next() {
                    if c != '%' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('%') => out.push('%'),
                        Some('s') | Some('v') | Some('d') => {
                            out.push_str(&rest.next().ok_or("printf: too few arguments")?.s())
                        }
                        other => {
                            return Err(format!(
                                "printf: unsupported verb %{}",
                                other.unwrap_or(' ')
                            ))
                        }
                    }
                }
                Val::S(out)
            }
            other => return Err(format!("function {other:?} not defined")),
        })
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= c.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Renders `template`. Errors say what is wrong (never a value).
pub fn render(template: &str, ctx: &Context<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let mut lit = &rest[..start];
        let mut body_start = start + 2;
        if rest[body_start..].starts_with('-') {
            lit = lit.trim_end();
            body_start += 1;
        }
        out.push_str(lit);
        let end = rest[body_start..]
            .find("}}")
            .ok_or("unclosed {{ in template")?
            + body_start;
        let mut body = &rest[body_start..end];
        let mut after = &rest[end + 2..];
        if body.ends_with('-') {
            body = &body[..body.len() - 1];
            after = after.trim_start();
        }
        let toks = lex(body).map_err(|e| format!("template: {e}"))?;
        let mut p = Parser {
            t: &toks,
            i: 0,
            ctx,
        };
        let v = p.pipeline().map_err(|e| format!("template: {e}"))?;
        if p.i != toks.len() {
            return Err("template: unexpected tokens after the expression".into());
        }
        out.push_str(&v.s());
        rest = after;
    }
    if rest.contains("}}") {
        return Err("template: unmatched }}".into());
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ctx<'a>(r: &'a dyn Fn(usize) -> String, u: &'a dyn Fn() -> String) -> Context<'a> {
        Context {
            display_name: "token-MyApp",
            role_name: "readonly-role",
            now_millis: 1_795_371_000_123,
            random: r,
            uuid: u,
        }
    }

    #[test]
    fn vault_default_and_documented_examples() {
        let r = |n: usize| "R".repeat(n);
        let u = || "00000000-0000-0000-0000-000000000000".to_string();
        let c = ctx(&r, &u);
        let pg = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
        assert_eq!(
            render(pg, &c).unwrap(),
            "v-token-My-readonly-RRRRRRRRRRRRRRRRRRRR-1795371000"
        );
        assert_eq!(
            render(
                "{{.RoleName | uppercase | replace \"-\" \"_\"}}_{{unix_time_millis}}",
                &c
            )
            .unwrap(),
            "READONLY_ROLE_1795371000123"
        );
        assert_eq!(
            render("app-{{ uuid }}", &c).unwrap(),
            "app-00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            render("{{ .DisplayName | lowercase | truncate_sha256 10 }}", &c)
                .unwrap()
                .len(),
            10
        );
        assert_eq!(render("x{{- \" y \" -}}z", &c).unwrap(), "x y z");
        assert_eq!(render("{{ \"ab\" | base64 }}", &c).unwrap(), "YWI=");
    }

    #[test]
    fn errors() {
        let r = |n: usize| "R".repeat(n);
        let u = || String::new();
        let c = ctx(&r, &u);
        for (t, want) in [
            ("{{ .Nope }}", "unknown field"),
            ("{{ nope }}", "not defined"),
            ("{{ truncate }}", "takes 2"),
            ("{{ .RoleName ", "unclosed"),
            ("{{ random 0 }}", "1-1024"),
            ("{{ printf \"%x\" 1 }}", "unsupported verb"),
        ] {
            let e = render(t, &c).unwrap_err();
            assert!(e.contains(want), "{t} → {e}");
        }
    }
}
