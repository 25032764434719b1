//! What auth methods share: the `token_*` settings every role carries, the outcome of a
//! login (which the server turns into a token), and name/CIDR/credential helpers.

use crate::error::{ApiError, ApiResult};
use crate::framework::Field;
pub use crate::login::{LoginOutcome, TokenSettings};
use crate::request::Request;

/// The fields [`TokenSettings::update`] reads: declare them on every role path.
pub const TOKEN_FIELDS: &[Field] = &[
    Field::list("token_policies"),
    Field::list("policies"),
    Field::duration("token_ttl"),
    Field::duration("ttl"),
    Field::duration("token_max_ttl"),
    Field::duration("max_ttl"),
    Field::duration("token_explicit_max_ttl"),
    Field::duration("token_period"),
    Field::duration("period"),
    Field::int("token_num_uses"),
    Field::list("token_bound_cidrs"),
    Field::bool("token_no_default_policy"),
    Field::str("token_type"),
];

/// Policy names as a role stores them: trimmed, without duplicates or blanks (case is kept;
/// tokens get them lower-cased).
pub fn clean_policies(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in list {
        let p = p.trim().to_string();
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

impl TokenSettings {
    /// Applies the `token_*` fields present in the request (and the legacy `policies`,
    /// `ttl`, `max_ttl`, `period`, `num_uses` names).
    pub fn update(&mut self, req: &Request) -> ApiResult<()> {
        if let Some(p) = req.str_list_field("token_policies")? {
            self.token_policies = clean_policies(p);
        } else if let Some(p) = req.str_list_field("policies")? {
            self.token_policies = clean_policies(p);
        }
        if self
            .token_policies
            .iter()
            .any(|p| p.eq_ignore_ascii_case("root"))
        {
            return Err(ApiError::bad_request(
                "auth methods cannot create root tokens",
            ));
        }
        for (k, legacy, target) in [
            ("token_ttl", "ttl", &mut self.token_ttl),
            ("token_max_ttl", "max_ttl", &mut self.token_max_ttl),
            (
                "token_explicit_max_ttl",
                "",
                &mut self.token_explicit_max_ttl,
            ),
            ("token_period", "period", &mut self.token_period),
        ] {
            if let Some(v) = req.duration_field(k)? {
                *target = v;
            } else if !legacy.is_empty() {
                if let Some(v) = req.duration_field(legacy)? {
                    *target = v;
                }
            }
        }
        if let Some(n) = req.int_field("token_num_uses")? {
            if n < 0 {
                return Err(ApiError::bad_request("token_num_uses cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(c) = req.str_list_field("token_bound_cidrs")? {
            self.token_bound_cidrs = normalize_cidrs(&c)?;
        }
        if let Some(b) = req.bool_field("token_no_default_policy")? {
            self.token_no_default_policy = b;
        }
        if let Some(t) = req.str_field("token_type")? {
            match t.as_str() {
                "" | "default" => self.token_type = "default".into(),
                "service" | "default-service" | "batch" | "default-batch" => self.token_type = t,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid 'token_type' value \"{t}\""
                    )))
                }
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(ApiError::bad_request(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }
}

/// Names of roles/users: what Vault accepts in a path segment.
pub fn check_name(name: &str, what: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 512
        || n.contains('/')
        || n == "."
        || n == ".."
        || n.chars().any(|c| c.is_control())
    {
        return Err(ApiError::bad_request(format!("invalid {what} name")));
    }
    Ok(n.to_string())
}

/// Validates CIDR blocks and renders them as Vault shows them (a single host bare).
pub fn normalize_cidrs(list: &[String]) -> ApiResult<Vec<String>> {
    list.iter()
        .map(|s| {
            airlock_core::cidr::Cidr::parse(s)
                .map(|c| c.to_string())
                .map_err(ApiError::bad_request)
        })
        .collect()
}

/// A 404 with `{"errors":[]}`, as auth methods answer for missing items.
pub fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare_and_policy_cleaning() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert_eq!(
            clean_policies(vec![
                " A ".into(),
                "a".into(),
                "".into(),
                "b".into(),
                "b ".into()
            ]),
            vec!["A".to_string(), "a".to_string(), "b".to_string()]
        );
        assert!(check_name("ok", "role").is_ok());
        assert!(check_name("a/b", "role").is_err() && check_name("..", "role").is_err());
    }
}
