//! Parsing a policy's path blocks: capabilities, parameter rules, wrapping TTLs, identity
//! templates, and the errors OpenBao gives for each malformed field.

use super::*;

pub(super) fn first_key(item: &Item) -> &str {
    item.keys.first().map(String::as_str).unwrap_or("")
}

pub(super) fn path_type_error(path: &str) -> PolicyError {
    PolicyError::Type {
        path: Some(path.to_string()),
        key: "path".to_string(),
        expected: "a block of rules",
    }
}

/// Accepts `path "p" { ... }`, `path = { "p" = { ... } }`, and the JSON forms
/// `{"path": {"p": {...}}}` / `{"path": [{"p": {...}}]}`.
pub(super) fn collect_path_blocks<'a>(
    item: &'a Item,
    out: &mut Vec<(&'a str, &'a [Item])>,
) -> Result<(), PolicyError> {
    if let Some(label) = item.keys.get(1) {
        if let Some(extra) = item.keys.get(2) {
            return Err(PolicyError::InvalidKey {
                path: Some(label.clone()),
                key: extra.clone(),
                line: item.line,
            });
        }
        return match &item.value {
            Value::Object(body) => {
                out.push((label.as_str(), body.as_slice()));
                Ok(())
            }
            _ => Err(path_type_error(label)),
        };
    }
    let mut push_map = |entries: &'a [Item]| -> Result<(), PolicyError> {
        for entry in entries {
            let label = first_key(entry);
            if let Some(extra) = entry.keys.get(1) {
                return Err(PolicyError::InvalidKey {
                    path: Some(label.to_string()),
                    key: extra.clone(),
                    line: entry.line,
                });
            }
            match &entry.value {
                Value::Object(body) => out.push((label, body.as_slice())),
                _ => return Err(path_type_error(label)),
            }
        }
        Ok(())
    };
    match &item.value {
        Value::Object(entries) => push_map(entries),
        Value::List(list) => {
            for v in list {
                match v {
                    Value::Object(entries) => push_map(entries)?,
                    _ => {
                        return Err(PolicyError::Type {
                            path: None,
                            key: "path".to_string(),
                            expected: "an object of path blocks",
                        })
                    }
                }
            }
            Ok(())
        }
        _ => Err(PolicyError::Type {
            path: None,
            key: "path".to_string(),
            expected: "an object of path blocks",
        }),
    }
}

/// OpenBao's templating validity check: `{{` and `}}` must pair up.
pub(super) fn check_templating(s: &str) -> Result<bool, PolicyError> {
    let mut pieces = s.split("{{");
    if pieces.next().is_some_and(|first| first.contains("}}")) {
        return Err(PolicyError::Templating);
    }
    let mut templated = false;
    for piece in pieces {
        if piece.split("}}").count() != 2 {
            return Err(PolicyError::Templating);
        }
        templated = true;
    }
    Ok(templated)
}

pub(super) fn string_list(path: &str, key: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
    let err = || PolicyError::Type {
        path: Some(path.to_string()),
        key: key.to_string(),
        expected: "a list of strings",
    };
    match v {
        Value::List(l) => l
            .iter()
            .map(|e| match e {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err()),
            })
            .collect(),
        _ => Err(err()),
    }
}

pub(super) fn param_map(
    path: &str,
    key: &str,
    v: &Value,
    into: &mut BTreeMap<String, Vec<Json>>,
) -> Result<(), PolicyError> {
    let err = || PolicyError::Type {
        path: Some(path.to_string()),
        key: key.to_string(),
        expected: "a map of parameter names to lists of values",
    };
    let Value::Object(entries) = v else {
        return Err(err());
    };
    for entry in entries {
        if entry.keys.len() != 1 {
            return Err(err());
        }
        let values = match &entry.value {
            Value::List(l) => l.iter().map(Value::to_json).collect(),
            _ => return Err(err()),
        };
        into.insert(first_key(entry).to_lowercase(), values);
    }
    Ok(())
}

pub(super) fn wrapping_ttl(v: &Value) -> Result<u64, DurationError> {
    let nanos: i64 = match v {
        Value::Int(i) => i
            .checked_mul(1_000_000_000)
            .ok_or(DurationError::Overflow)?,
        Value::String(s) => parse_duration_nanos(s)?,
        // Go converts a float to a Duration by truncation before scaling.
        Value::Float(f) => (f.trunc() as i64)
            .checked_mul(1_000_000_000)
            .ok_or(DurationError::Overflow)?,
        _ => return Err(DurationError::BadType),
    };
    let secs = nanos / 1_000_000_000;
    u64::try_from(secs).map_err(|_| DurationError::Negative(secs))
}

pub(super) fn parse_rule(key: &str, body: &[Item]) -> Result<PathRule, PolicyError> {
    let templated = check_templating(key)?;

    for item in body {
        let k = first_key(item);
        if !PATH_KEYS.contains(&k) || (item.keys.len() > 1 && k != "control_group") {
            return Err(PolicyError::InvalidKey {
                path: Some(key.to_string()),
                key: item.keys.join(" "),
                line: item.line,
            });
        }
    }

    let type_err = |k: &str, expected: &'static str| PolicyError::Type {
        path: Some(key.to_string()),
        key: k.to_string(),
        expected,
    };

    let mut cap_names: Vec<String> = Vec::new();
    let mut legacy: Option<String> = None;
    let mut allowed = BTreeMap::new();
    let mut denied = BTreeMap::new();
    let mut required: Vec<String> = Vec::new();
    let mut event_types: Vec<String> = Vec::new();
    let mut min_ttl: Option<&Value> = None;
    let mut max_ttl: Option<&Value> = None;
    let mut comment: Option<String> = None;
    let mut expiration: Option<&str> = None;

    for item in body {
        let k = first_key(item);
        let v = &item.value;
        match k {
            "capabilities" => cap_names.extend(string_list(key, k, v)?),
            "policy" => match v {
                Value::String(s) => legacy = Some(s.clone()),
                _ => return Err(type_err(k, "a string")),
            },
            "allowed_parameters" => param_map(key, k, v, &mut allowed)?,
            "denied_parameters" => param_map(key, k, v, &mut denied)?,
            "required_parameters" => required.extend(string_list(key, k, v)?),
            "subscribe_event_types" => event_types.extend(string_list(key, k, v)?),
            "min_wrapping_ttl" => min_ttl = Some(v),
            "max_wrapping_ttl" => max_ttl = Some(v),
            "comment" => match v {
                Value::String(s) => comment = Some(s.clone()),
                _ => return Err(type_err(k, "a string")),
            },
            "expiration" => match v {
                Value::String(s) => expiration = Some(s),
                _ => return Err(type_err(k, "a string")),
            },
            "mfa_methods" => {
                string_list(key, k, v)?;
            }
            "pagination_limit" if !matches!(v, Value::Int(_)) => {
                return Err(type_err(k, "an integer"));
            }
            "list_scan_response_keys_filter_path" if !matches!(v, Value::String(_)) => {
                return Err(type_err(k, "a string"));
            }
            "control_group" if !matches!(v, Value::Object(_)) => {
                return Err(type_err(k, "a block"));
            }
            _ => {}
        }
    }

    let expiration = match expiration {
        Some(s) if !s.is_empty() => {
            Some(
                parse_absolute_time(s).ok_or_else(|| PolicyError::InvalidExpiration {
                    path: key.to_string(),
                })?,
            )
        }
        _ => None,
    };

    let pattern = key.strip_prefix('/').unwrap_or(key).to_string();
    if pattern.contains("+*") {
        return Err(PolicyError::InvalidWildcard { path: pattern });
    }
    let has_segment_wildcards =
        pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/");
    let is_prefix = !has_segment_wildcards && pattern.ends_with('*');

    if let Some(p) = legacy.as_deref().filter(|p| !p.is_empty()) {
        let extra: &[&str] = match p {
            "deny" => {
                cap_names = Vec::new();
                &["deny"]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => {
                return Err(PolicyError::InvalidLegacyPolicy {
                    path: key.to_string(),
                    policy: p.to_string(),
                })
            }
        };
        cap_names.extend(extra.iter().map(|s| s.to_string()));
    }

    let mut rule = PathRule {
        raw_path: key.to_string(),
        pattern,
        is_prefix,
        has_segment_wildcards,
        templated,
        capabilities: Capabilities::NONE,
        allowed_parameters: BTreeMap::new(),
        denied_parameters: BTreeMap::new(),
        required_parameters: Vec::new(),
        min_wrapping_ttl: 0,
        max_wrapping_ttl: 0,
        subscribe_event_types: event_types,
        comment,
        expiration,
    };

    for name in &cap_names {
        match Capabilities::from_name(name) {
            // As in OpenBao, `deny` ends the rule: later entries and parameters are ignored.
            Some(Capabilities::DENY) => {
                rule.capabilities = Capabilities::DENY;
                return Ok(rule);
            }
            Some(c) => rule.capabilities |= c,
            None => {
                return Err(PolicyError::InvalidCapability {
                    path: key.to_string(),
                    capability: name.clone(),
                })
            }
        }
    }

    rule.allowed_parameters = allowed;
    rule.denied_parameters = denied;
    if let Some(v) = min_ttl {
        rule.min_wrapping_ttl = wrapping_ttl(v).map_err(PolicyError::MinWrappingTtl)?;
    }
    if let Some(v) = max_ttl {
        rule.max_wrapping_ttl = wrapping_ttl(v).map_err(PolicyError::MaxWrappingTtl)?;
    }
    if rule.min_wrapping_ttl != 0
        && rule.max_wrapping_ttl != 0
        && rule.max_wrapping_ttl < rule.min_wrapping_ttl
    {
        return Err(PolicyError::WrappingTtlOrder);
    }
    rule.required_parameters = required;
    Ok(rule)
}

/// `parseutil.ParseAbsoluteTime` for strings: RFC 3339 (optional fraction, `Z` or offset)
/// or integer Unix seconds. Returns Unix seconds.
pub(super) fn parse_absolute_time(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}
