//! Vault password policies: `length` and `rule "charset" { charset, min-chars }` in HCL,
//! validated on parse; generation takes randomness as a parameter.

use crate::hcl::{self, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<Rule>,
}

const MAX_LENGTH: usize = 4096;

fn dedup(chars: impl Iterator<Item = char>) -> Vec<char> {
    let mut v: Vec<char> = Vec::new();
    for c in chars {
        if !v.contains(&c) {
            v.push(c);
        }
    }
    v
}

impl PasswordPolicy {
    pub fn parse(src: &str) -> Result<Self, String> {
        let items = hcl::parse(src).map_err(|e| format!("unable to parse policy: {e}"))?;
        let mut length = None;
        let mut rules = Vec::new();
        for it in items {
            match (it.keys.as_slice(), &it.value) {
                ([k], Value::Int(n)) if k == "length" => {
                    length = Some(usize::try_from(*n).map_err(|_| "length must be positive")?)
                }
                ([k], _) if k == "length" => return Err("length must be an integer".into()),
                ([k, kind], Value::Object(body)) if k == "rule" => {
                    if kind != "charset" {
                        return Err(format!("unrecognized rule type {kind:?}"));
                    }
                    let mut charset = None;
                    let mut min = 0usize;
                    for b in body {
                        match (b.keys.as_slice(), &b.value) {
                            ([k], Value::String(s)) if k == "charset" => {
                                charset = Some(dedup(s.chars()))
                            }
                            ([k], Value::Int(n)) if k == "min-chars" || k == "min_chars" => {
                                min = usize::try_from(*n)
                                    .map_err(|_| "min-chars must not be negative")?
                            }
                            (k, _) => {
                                return Err(format!(
                                    "unexpected field {:?} in charset rule",
                                    k.join(".")
                                ))
                            }
                        }
                    }
                    let charset = charset
                        .filter(|c| !c.is_empty())
                        .ok_or("a charset rule needs a non-empty charset")?;
                    if charset.iter().any(|c| c.is_control()) {
                        return Err("charset may not contain control characters".into());
                    }
                    rules.push(Rule {
                        charset,
                        min_chars: min,
                    });
                }
                (k, _) => return Err(format!("unexpected field {:?}", k.join("."))),
            }
        }
        let length = length.ok_or("length must be specified")?;
        if !(4..=MAX_LENGTH).contains(&length) {
            return Err(format!("length must be between 4 and {MAX_LENGTH}"));
        }
        if rules.is_empty() {
            return Err("at least one charset rule is required".into());
        }
        let min_total: usize = rules.iter().map(|r| r.min_chars).sum();
        if min_total > length {
            return Err(format!(
                "length ({length}) is less than the sum of min-chars ({min_total})"
            ));
        }
        Ok(PasswordPolicy { length, rules })
    }

    /// Every character any rule allows.
    pub fn alphabet(&self) -> Vec<char> {
        dedup(self.rules.iter().flat_map(|r| r.charset.iter().copied()))
    }

    /// Generates a password using `next(n)`, a uniform random index in `0..n`. Retries
    /// until every rule's `min-chars` holds (bounded; `None` if the policy cannot be met).
    pub fn generate(&self, mut next: impl FnMut(usize) -> usize) -> Option<String> {
        let alpha = self.alphabet();
        for _ in 0..1000 {
            let p: Vec<char> = (0..self.length)
                .map(|_| alpha[next(alpha.len()) % alpha.len()])
                .collect();
            if self
                .rules
                .iter()
                .all(|r| p.iter().filter(|c| r.charset.contains(c)).count() >= r.min_chars)
            {
                return Some(p.into_iter().collect());
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const P: &str = r#"
length = 24
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 3
}
rule "charset" {
  charset = "!@#"
  min-chars = 1
}
"#;

    #[test]
    fn parses_and_generates() {
        let p = PasswordPolicy::parse(P).unwrap();
        assert_eq!(p.length, 24);
        assert_eq!(p.rules.len(), 3);
        let mut x: u64 = 12345;
        let mut rng = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..50 {
            let s = p.generate(&mut rng).unwrap();
            assert_eq!(s.chars().count(), 24);
            assert!(s.chars().filter(|c| c.is_ascii_digit()).count() >= 3);
            assert!(s.chars().filter(|c| c.is_ascii_lowercase()).count() >= 2);
            assert!(s.chars().any(|c| "!@#".contains(c)));
            assert!(s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!@#".contains(c)));
        }
    }

    #[test]
    fn rejects_bad_policies() {
        for (src, want) in [
            (
                "rule \"charset\" { charset = \"ab\" }",
                "length must be specified",
            ),
            (
                "length = 2\nrule \"charset\" { charset = \"ab\" }",
                "between 4",
            ),
            ("length = 8", "at least one charset rule"),
            (
                "length = 8\nrule \"charset\" { charset = \"\" }",
                "non-empty charset",
            ),
            (
                "length = 4\nrule \"charset\" { charset = \"ab\"\nmin-chars = 5 }",
                "sum of min-chars",
            ),
            (
                "length = 8\nrule \"bogus\" { charset = \"ab\" }",
                "unrecognized rule",
            ),
            (
                "length = 8\nfoo = 1\nrule \"charset\" { charset = \"ab\" }",
                "unexpected field",
            ),
            ("length = ", "unable to parse"),
        ] {
            let e = PasswordPolicy::parse(src).unwrap_err();
            assert!(e.contains(want), "{src:?} → {e}");
        }
    }
}
