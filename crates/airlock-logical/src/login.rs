//! What a login establishes, as plain data: the `token_*` settings of a role and the
//! outcome the server turns into a token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Token settings every auth role carries (Vault's `token_*` fields).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TokenSettings {
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_explicit_max_ttl: i64,
    pub token_num_uses: i64,
    pub token_period: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_type: String,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            token_policies: Vec::new(),
            token_ttl: 0,
            token_max_ttl: 0,
            token_explicit_max_ttl: 0,
            token_num_uses: 0,
            token_period: 0,
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_type: "default".into(),
        }
    }
}

impl TokenSettings {
    pub fn write_json(&self, m: &mut Map<String, Value>) {
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert("token_strictly_bind_ip".into(), json!(false));
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert("token_type".into(), json!(self.token_type));
    }
}

/// What a successful login establishes; [`issue`] turns it into a token.
#[derive(Clone, Debug)]
pub struct LoginOutcome {
    pub settings: TokenSettings,
    pub meta: BTreeMap<String, String>,
    /// Appended to the mount name for the token's display name (empty: the mount name).
    pub display_name: String,
    /// The identity within the mount (role id, username, subject, service account).
    pub alias: String,
    /// Extra policies (e.g. from groups).
    pub extra_policies: Vec<String>,
}
