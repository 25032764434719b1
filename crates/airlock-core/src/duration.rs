//! TTL parsing and formatting with Vault's semantics.
//!
//! Vault (and OpenBao) parse every TTL-like field (`ttl`, `max_ttl`, `period`,
//! `min_wrapping_ttl`, …) with `parseutil.ParseDurationSecond` and then truncate to
//! whole seconds. That function accepts, in this order:
//!
//! 1. an empty string or JSON `null` → 0;
//! 2. a base-10 integer string with optional sign (`"3600"`, `"+5"`) → seconds;
//! 3. an integer followed by `d` (`"7d"`) → days (no fractions: `"1.5d"` is an error);
//! 4. a Go duration (`"1h30m"`, `"1.5h"`, `"90s"`, `"500ms"`, `"0"`), units `ns`, `us`,
//!    `µs`, `μs`, `ms`, `s`, `m`, `h`;
//! 5. a JSON integer → seconds. A JSON float such as `1.5` is seen by Vault as the
//!    `json.Number` text `"1.5"`, which fails as a Go duration ("missing unit"); the same
//!    happens here.
//!
//! Durations are bounded like Go's `time.Duration` (±2^63 ns, about 292 years); larger
//! values are errors. Negative results are rejected by [`parse_duration`] with Vault's
//! `cannot provide negative value '-5'` message; [`parse_duration_signed`] keeps them.
//! Error texts reproduce Go's so they can be passed through to clients.

use std::fmt;

/// Nanoseconds per second.
const NANOS: i64 = 1_000_000_000;

/// Why a duration could not be parsed. `Display` matches the Go error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// `time: invalid duration "x"` (syntax error or overflow in a Go duration).
    Invalid(String),
    /// `time: missing unit in duration "x"`.
    MissingUnit(String),
    /// `time: unknown unit "u" in duration "x"`.
    UnknownUnit {
        /// The unit text that was not recognised.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// `strconv.ParseInt: parsing "x": invalid syntax` (the number before a `d` suffix).
    DaysSyntax(String),
    /// `strconv.ParseInt: parsing "x": value out of range`.
    DaysRange(String),
    /// Seconds or days that do not fit in a Go duration.
    Overflow,
    /// A negative value where only non-negative ones are allowed.
    Negative(i64),
    /// A JSON value that is neither a string, a number nor null.
    BadType,
}

/// Go's texts without the quoted input: a duration is a request field, and an error that
/// quotes it would carry a value into responses and audit entries in clear.
impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Invalid(_) => "time: invalid duration",
            DurationError::MissingUnit(_) => "time: missing unit in duration",
            DurationError::UnknownUnit { .. } => "time: unknown unit in duration",
            DurationError::DaysSyntax(_) => "strconv.ParseInt: parsing: invalid syntax",
            DurationError::DaysRange(_) => "strconv.ParseInt: parsing: value out of range",
            DurationError::Overflow => {
                "multiplication of durations resulted in overflow, one operand may be too large"
            }
            DurationError::Negative(_) => "cannot provide negative value",
            DurationError::BadType => "could not parse duration from input",
        })
    }
}

impl std::error::Error for DurationError {}

/// Parses a TTL string into whole seconds (non-negative), as Vault does for
/// `TypeDurationSecond` fields.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    non_negative(parse_duration_signed(s)?)
}

/// Like [`parse_duration`] but allows negative values (Vault's `TypeSignedDurationSecond`).
pub fn parse_duration_signed(s: &str) -> Result<i64, DurationError> {
    parse_duration_nanos(s).map(|ns| ns / NANOS)
}

/// Parses a JSON TTL value (string, integer, or null) into whole non-negative seconds.
pub fn parse_duration_value(v: &serde_json::Value) -> Result<u64, DurationError> {
    non_negative(parse_duration_value_signed(v)?)
}

/// Like [`parse_duration_value`] but allows negative values.
pub fn parse_duration_value_signed(v: &serde_json::Value) -> Result<i64, DurationError> {
    match v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::String(s) => parse_duration_signed(s),
        // Vault decodes JSON numbers as `json.Number` and then parses the number's text.
        serde_json::Value::Number(n) => parse_duration_signed(&n.to_string()),
        _ => Err(DurationError::BadType),
    }
}

fn non_negative(v: i64) -> Result<u64, DurationError> {
    u64::try_from(v).map_err(|_| DurationError::Negative(v))
}

/// Parses into nanoseconds, following `parseutil.ParseDurationSecond`.
pub fn parse_duration_nanos(s: &str) -> Result<i64, DurationError> {
    if s.is_empty() {
        return Ok(0);
    }
    if let Some(v) = parse_go_int(s) {
        return match v {
            Ok(v) => v.checked_mul(NANOS).ok_or(DurationError::Overflow),
            // Out-of-range integers fall through to the Go duration parser in Vault,
            // which then reports a missing unit.
            Err(()) => Err(DurationError::MissingUnit(s.to_string())),
        };
    }
    if let Some(days) = s.strip_suffix('d') {
        return match parse_go_int(days) {
            Some(Ok(v)) => v.checked_mul(86_400 * NANOS).ok_or(DurationError::Overflow),
            Some(Err(())) => Err(DurationError::DaysRange(days.to_string())),
            None => Err(DurationError::DaysSyntax(days.to_string())),
        };
    }
    parse_go_duration(s)
}

/// `strconv.ParseInt(s, 10, 64)`: `None` for a syntax error, `Some(Err)` when out of range.
fn parse_go_int(s: &str) -> Option<Result<i64, ()>> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<i64>().map_err(|_| ()))
}

/// Go's `time.ParseDuration`, returning nanoseconds.
pub fn parse_go_duration(input: &str) -> Result<i64, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes().first().copied().unwrap_or(0);
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for b in s.bytes().take(int_len) {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        let pre = int_len > 0;
        // Fractional part.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in s.bytes().take(frac_len) {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                    .filter(|f| *f <= LIMIT)
                {
                    Some(f) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[frac_len..];
            post = frac_len > 0;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_ns: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                    input: input.to_string(),
                })
            }
        };
        if v > LIMIT / unit_ns {
            return Err(invalid());
        }
        v *= unit_ns;
        if frac > 0 {
            // Same float arithmetic as Go, truncated towards zero.
            let add = (frac as f64 * (unit_ns as f64 / scale)) as u64;
            v = v
                .checked_add(add)
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        // total <= 2^63, so the negation always fits.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Formats whole seconds like Go's `time.Duration.String()`: `"0s"`, `"59s"`, `"1m0s"`,
/// `"1h0m0s"`, `"23h59m59s"`, `"768h0m0s"`.
pub fn format_go_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let h = secs / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepted_forms() {
        let cases: &[(&str, u64)] = &[
            ("", 0),
            ("0", 0),
            ("3600", 3600),
            ("+5", 5),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("768h", 2_764_800),
            ("1d", 86_400),
            ("7d", 604_800),
            ("0d", 0),
            ("500ms", 0),
            ("1500ms", 1),
            ("1h0m0s", 3600),
            ("2h45m30.5s", 9930),
            (".5m", 30),
            ("5.m", 300),
            ("1µs", 0),
            ("1μs", 0),
            ("1us", 0),
            ("1ns", 0),
            ("0s", 0),
            ("-0", 0),
            ("-500ms", 0),
            ("2562047h", 9_223_369_200),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn rejected_forms_with_go_messages_without_the_input() {
        // Go's texts, less the quoted input (a request field is never echoed).
        let invalid = "time: invalid duration";
        let missing = "time: missing unit in duration";
        let syntax = "strconv.ParseInt: parsing: invalid syntax";
        let negative = "cannot provide negative value";
        let overflow =
            "multiplication of durations resulted in overflow, one operand may be too large";
        let cases: &[(&str, &str)] = &[
            ("abc", invalid),
            ("1x", "time: unknown unit in duration"),
            ("1.5", missing),
            ("1h30", missing),
            ("1.5d", syntax),
            ("d", syntax),
            ("1h1d", syntax),
            ("-5", negative),
            ("-1h", negative),
            ("h", invalid),
            (".s", invalid),
            ("-", invalid),
            (" 5s", invalid),
            ("3000000h", invalid),
            ("9999999999", overflow),
            ("99999999999999999999", missing),
            ("200000d", overflow),
        ];
        for (input, msg) in cases {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(err.to_string(), *msg, "input {input:?}");
        }
        let secret = "s3cr3t-value-xyz";
        assert!(!parse_duration(secret)
            .unwrap_err()
            .to_string()
            .contains(secret));
    }

    #[test]
    fn signed_variant() {
        assert_eq!(parse_duration_signed("-1h"), Ok(-3600));
        assert_eq!(parse_duration_signed("-5"), Ok(-5));
        assert_eq!(parse_duration_signed("-1d"), Ok(-86_400));
        assert_eq!(parse_go_duration("-2562047h47m16.854775808s"), Ok(i64::MIN));
        assert!(parse_go_duration("2562047h47m16.854775808s").is_err());
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
    }

    #[test]
    fn json_values() {
        assert_eq!(parse_duration_value(&json!(3600)), Ok(3600));
        assert_eq!(parse_duration_value(&json!("1h")), Ok(3600));
        assert_eq!(parse_duration_value(&json!("3600")), Ok(3600));
        assert_eq!(parse_duration_value(&json!(null)), Ok(0));
        assert_eq!(parse_duration_value(&json!(0)), Ok(0));
        assert!(matches!(
            parse_duration_value(&json!(1.5)),
            Err(DurationError::MissingUnit(_))
        ));
        assert_eq!(
            parse_duration_value(&json!(true)),
            Err(DurationError::BadType)
        );
        assert_eq!(
            parse_duration_value(&json!([1])),
            Err(DurationError::BadType)
        );
        assert_eq!(
            parse_duration_value(&json!(-1)),
            Err(DurationError::Negative(-1))
        );
        assert_eq!(parse_duration_value_signed(&json!(-1)), Ok(-1));
    }

    #[test]
    fn go_formatting() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m0s"),
            (61, "1m1s"),
            (3599, "59m59s"),
            (3600, "1h0m0s"),
            (86_399, "23h59m59s"),
            (360_000, "100h0m0s"),
            (2_764_800, "768h0m0s"),
            (2_764_861, "768h1m1s"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_go_duration(*secs), *want);
        }
    }

    #[test]
    fn format_then_parse_round_trips() {
        for secs in [0u64, 1, 59, 60, 3599, 3600, 86_399, 2_764_800, 31_536_000] {
            assert_eq!(parse_duration(&format_go_duration(secs)), Ok(secs));
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs = [
            "",
            "-",
            "+",
            ".",
            "..",
            "1..5s",
            "1e3s",
            "µ",
            "1µ",
            "5\u{0}s",
            "١s",
            "0x10",
            "1_000",
            "++1",
            "--1",
            "1hh",
            "1h-1m",
            "∞",
            "9223372036854775808ns",
            "9223372036854775807ns",
            "0.000000000000000000000000000001s",
        ];
        for i in inputs {
            let _ = parse_duration(i);
            let _ = parse_duration_signed(i);
        }
        assert_eq!(parse_duration_nanos("9223372036854775807ns"), Ok(i64::MAX));
        assert!(parse_duration_nanos("9223372036854775808ns").is_err());
    }
}
