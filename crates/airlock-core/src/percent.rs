//! The one percent-decoder (RFC 3986 §2.1) every part of Airlock uses: request paths and
//! queries, broker destination checks and placeholder search, and the CLI's callback
//! parsing.
//!
//! An escape is `%` followed by exactly two hexadecimal digits (`0-9`, `a-f`, `A-F`);
//! anything else after a `%` — a sign (`%+f`), a short tail (`%4`), a non-ASCII byte — is
//! malformed. [`decode`] refuses malformed input; [`decode_lenient`] keeps a malformed `%`
//! literally, as the WHATWG URL standard does, for callers that only *search* decoded text
//! and must see what a lenient upstream would see.

/// How `+` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plus {
    /// `+` is itself (paths).
    Literal,
    /// `+` is a space (`application/x-www-form-urlencoded` and query strings).
    Space,
}

/// A malformed escape, with its byte offset in the input. The input itself is never
/// quoted: it may hold a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub offset: usize,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed percent-escape at byte {}", self.offset)
    }
}

impl std::error::Error for Malformed {}

/// The value of one hexadecimal digit, strictly.
pub fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn escape_at(b: &[u8], i: usize) -> Option<u8> {
    let hi = hex_digit(*b.get(i + 1)?)?;
    let lo = hex_digit(*b.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// Decodes `s` into bytes, refusing any malformed escape.
pub fn decode(s: &str, plus: Plus) -> Result<Vec<u8>, Malformed> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                out.push(escape_at(b, i).ok_or(Malformed { offset: i })?);
                i += 3;
                continue;
            }
            b'+' if plus == Plus::Space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Decodes `s` and requires the result to be UTF-8. `None` for a malformed escape or
/// invalid UTF-8.
pub fn decode_utf8(s: &str, plus: Plus) -> Option<String> {
    String::from_utf8(decode(s, plus).ok()?).ok()
}

/// Decodes `s`, keeping a `%` that does not start a well-formed escape as itself (the
/// WHATWG URL standard's percent-decode). Never fails.
pub fn decode_lenient(s: &str, plus: Plus) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                if let Some(v) = escape_at(b, i) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus == Plus::Space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Decodes a string of hexadecimal digit pairs strictly (no signs, no odd length).
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_escapes_decode_in_either_case() {
        assert_eq!(decode("a%2Fb%2fc", Plus::Literal).unwrap(), b"a/b/c");
        assert_eq!(decode("%00%ff%FF", Plus::Literal).unwrap(), [0, 255, 255]);
        assert_eq!(decode("a+b", Plus::Literal).unwrap(), b"a+b");
        assert_eq!(decode("a+b%2B", Plus::Space).unwrap(), b"a b+");
        assert_eq!(decode_utf8("%C3%A9", Plus::Literal).as_deref(), Some("é"));
    }

    #[test]
    fn signs_and_short_or_non_hex_escapes_are_malformed() {
        for bad in [
            "%+f", "%-1", "%+F", "% f", "%f", "%", "a%4", "%g0", "%0g", "%é0", "%%41", "%+0",
        ] {
            assert!(decode(bad, Plus::Literal).is_err(), "{bad:?} accepted");
            assert!(decode(bad, Plus::Space).is_err(), "{bad:?} accepted");
        }
        assert_eq!(decode("ab%+f", Plus::Literal), Err(Malformed { offset: 2 }));
        // The error names the offset, never the input.
        assert!(!Malformed { offset: 2 }.to_string().contains("+f"));
    }

    #[test]
    fn invalid_utf8_after_decoding_is_refused_by_decode_utf8() {
        assert_eq!(decode_utf8("%ff", Plus::Literal), None);
        assert_eq!(decode("%ff", Plus::Literal).unwrap(), [0xff]);
    }

    #[test]
    fn lenient_keeps_malformed_escapes_literally() {
        assert_eq!(decode_lenient("%+f", Plus::Literal), b"%+f");
        assert_eq!(decode_lenient("%+f", Plus::Space), b"% f");
        assert_eq!(decode_lenient("a%4", Plus::Literal), b"a%4");
        assert_eq!(decode_lenient("%41%", Plus::Literal), b"A%");
        assert_eq!(decode_lenient("%%41", Plus::Literal), b"%A");
    }

    #[test]
    fn hex_is_strict() {
        assert_eq!(decode_hex("00ffA0").unwrap(), [0, 255, 0xa0]);
        assert_eq!(decode_hex(""), Some(vec![]));
        for bad in ["+f", "-1", "0", "0g", " 1", "+f00"] {
            assert_eq!(decode_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn agrees_with_a_reference_model_on_every_short_input() {
        // Every string of length ≤ 3 over an alphabet holding each class of byte.
        let alphabet = ['%', '+', '-', '0', '9', 'a', 'F', 'g', ' '];
        let mut inputs = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for s in &inputs {
                for c in alphabet {
                    next.push(format!("{s}{c}"));
                }
            }
            inputs.extend(next);
        }
        for s in inputs {
            // Reference: split at each '%'; every piece after the first must begin with two
            // ASCII hex digits.
            let well_formed = s
                .split('%')
                .skip(1)
                .all(|p| p.len() >= 2 && p.bytes().take(2).all(|c| c.is_ascii_hexdigit()));
            assert_eq!(decode(&s, Plus::Literal).is_ok(), well_formed, "{s:?}");
        }
    }
}
