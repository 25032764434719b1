//! The credential broker: agents hold placeholders, the broker injects the real credential
//! at the network boundary, only for the destinations the credential is bound to.
//!
//! Module map:
//! - [`config`]: bindings, agents and `airlock.toml` profiles, validated on load.
//! - [`providers`]: the built-in provider catalog (hosts, header, format).
//! - [`rewrite`]: pure request analysis (block or inject), header/query/body rewriting and
//!   the streaming scrubber.
//! - [`guard`]: the SSRF guard applied to every dialled address.
//! - [`hmac_sign`]: HMAC request signatures for webhook-style APIs (pure).
//! - [`honeytoken`]: decoy credentials whose use is blocked and raised as high severity.
//! - [`ca`]: the broker CA (name-constrained to bound hosts when possible) and leaf minting.
//! - [`cred`]: proxy credentials that bind a client to one agent.
//! - [`secrets`]: the in-memory credential cache with background refresh (fail closed).
//! - [`upstream`]: verified TLS to upstreams, ALPN, pooling, `--resolve` pins.
//! - [`proxy`]: the listener: authentication, CONNECT tunnel/intercept, plain HTTP, and
//!   intercepted requests in named phases (request filter, request rewrite, upstream choice,
//!   response filter, logging).
//! - [`ws`]: the WebSocket splice that scrubs echoed credentials from upstream frames.
//! - [`approval`]: human approval of requests, bound to a digest of each request.
//! - [`audit`]: events on a bounded channel, batched to a sink off the data path.
//! - [`mcp`]: rewriting `mcp.json` so MCP servers run under the broker.
//! - [`mint`]: access tokens minted from OAuth2 grants, GitHub App and Google service-account
//!   keys (request building and answers, pure).
//! - [`mcp_policy`]: allow or deny MCP tool calls by tool name and arguments (pure).
//! - [`sigv4`]: AWS SigV4 re-signing for `aws_sigv4` bindings (pure).
//! - [`template`]: credentials computed from several keys (Basic, TOTP) (pure).
//! - [`budget`]: budgets and rate limits, and LLM token usage read from responses.
//!
//! Invariants: a credential value exists only in the secret cache and in the request being
//! sent upstream; it is never logged, audited, put in an error, or given to the child.

pub mod approval;
pub mod audit;
pub mod budget;
pub mod ca;
pub mod config;
pub mod cred;
pub mod guard;
pub mod hmac_sign;
pub mod honeytoken;
pub mod mcp;
pub mod mcp_policy;
pub mod mint;
pub mod providers;
pub mod proxy;
pub mod rewrite;
pub mod secrets;
pub mod sigv4;
pub mod template;
pub mod upstream;
pub mod ws;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use airlock_core::binding::HostPattern;

use crate::config::{Binding, Egress};
use crate::secrets::SecretCache;

/// One agent as the proxy sees it: its bindings, their placeholders, its egress policy and
/// the cache its credentials come from.
pub struct AgentRuntime {
    pub name: String,
    pub bindings: Vec<Binding>,
    /// Placeholder → index into `bindings`.
    pub placeholders: Vec<(String, usize)>,
    pub egress: Egress,
    pub allow_hosts: Vec<HostPattern>,
    pub cache: Arc<SecretCache>,
    /// Placeholder secrets of `aws_sigv4` bindings (binding index → secret): what the agent
    /// signs with, so the broker can check its signatures.
    pub aws_secrets: Vec<(usize, zeroize::Zeroizing<String>)>,
    /// Budget counters of the agent and of each binding (by index).
    pub meters: Meters,
    /// The agent's own approval requirement (bindings may have theirs).
    pub approval: Option<approval::Approval>,
    /// The agent's MCP policy (tool calls to the MCP servers it names).
    pub mcp: Option<mcp_policy::McpPolicy>,
    /// The current token of each binding that mints one (by binding index).
    pub tokens: Vec<Option<Arc<mint::TokenCell>>>,
    /// What the runtime was built from (agent and binding definitions, no secret), so a
    /// reload can tell an unchanged agent from a changed one.
    pub spec: String,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("name", &self.name)
            .field("bindings", &self.bindings.len())
            .field("egress", &self.egress)
            .finish_non_exhaustive()
    }
}

/// One token cell per binding that mints (by binding index).
pub fn token_cells(bindings: &[Binding]) -> Vec<Option<Arc<mint::TokenCell>>> {
    bindings
        .iter()
        .map(|b| {
            b.mint
                .as_ref()
                .map(|_| Arc::new(mint::TokenCell::default()))
        })
        .collect()
}

/// The budget counters of one agent: its own, and one per binding that has a budget.
#[derive(Debug, Default)]
pub struct Meters {
    pub agent: Option<Arc<budget::Meter>>,
    pub bindings: Vec<Option<Arc<budget::Meter>>>,
}

impl Meters {
    pub fn new(agent: Option<&budget::Budget>, bindings: &[Binding]) -> Self {
        let meter = |b: Option<&budget::Budget>| {
            b.filter(|b| !b.is_empty())
                .map(|b| Arc::new(budget::Meter::new(b.clone())))
        };
        Meters {
            agent: meter(agent),
            bindings: bindings.iter().map(|b| meter(b.budget.as_ref())).collect(),
        }
    }

    /// The meters a request counts against: the agent's and those of `bindings` (indices).
    pub fn for_request(&self, bindings: impl Iterator<Item = usize>) -> Vec<Arc<budget::Meter>> {
        let mut out: Vec<Arc<budget::Meter>> = self.agent.iter().cloned().collect();
        for i in bindings {
            if let Some(Some(m)) = self.bindings.get(i) {
                if !out.iter().any(|x| Arc::ptr_eq(x, m)) {
                    out.push(m.clone());
                }
            }
        }
        out
    }
}

/// Counters for metrics and tests.
#[derive(Default)]
pub struct Stats {
    pub injected: AtomicU64,
    pub blocked: AtomicU64,
    pub denied: AtomicU64,
    pub scrubbed: Arc<AtomicU64>,
    /// Requests that carried a honeytoken.
    pub honeytokens: AtomicU64,
    /// Requests refused by a budget (429).
    pub limited: AtomicU64,
}

pub struct Broker {
    /// By name; replaced as a whole when `broker serve` reloads its configuration.
    pub agents: std::sync::RwLock<HashMap<String, Arc<AgentRuntime>>>,

    pub cred: cred::CredKey,
    pub ca: ca::Ca,
    pub upstream: upstream::Upstream,
    pub audit: audit::Auditor,
    pub stats: Stats,
    /// Registered decoys (replaced as a whole on reload).
    pub honeytokens: std::sync::RwLock<Arc<Vec<honeytoken::Honeytoken>>>,
    /// Where approvals are asked for and decided (Airlock); `None`: a binding that needs
    /// approval refuses its requests.
    pub approvals: Option<Arc<dyn approval::Approvals>>,
    /// Open event streams of MCP sessions on the older HTTP+SSE transport, where a denied
    /// tool call is answered.
    pub mcp_sessions: Arc<proxy::McpSessions>,
}

impl Broker {
    /// The agent a proxy credential names, if it (still) exists.
    pub fn agent(&self, name: &str) -> Option<Arc<AgentRuntime>> {
        self.agents.read().ok()?.get(name).cloned()
    }

    /// The current honeytokens.
    pub fn honeytokens_now(&self) -> Arc<Vec<honeytoken::Honeytoken>> {
        self.honeytokens
            .read()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Installs a new set of honeytokens.
    pub fn set_honeytokens(&self, tokens: Vec<honeytoken::Honeytoken>) {
        if let Ok(mut h) = self.honeytokens.write() {
            *h = Arc::new(tokens);
        }
    }

    /// The current agents.
    pub fn agents_now(&self) -> HashMap<String, Arc<AgentRuntime>> {
        self.agents.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Installs a new set of agents: the next request sees them (in-flight ones finish with
    /// the runtime they started with).
    pub fn set_agents(&self, agents: HashMap<String, Arc<AgentRuntime>>) {
        if let Ok(mut a) = self.agents.write() {
            *a = agents;
        }
    }
}

/// Mints a placeholder for a binding from fresh randomness.
pub fn new_placeholder(env: &str) -> String {
    let mut r = [0u8; 48];
    rand::fill(&mut r);
    airlock_core::binding::mint_placeholder(env, &r)
}

/// Fresh placeholders for these bindings: (placeholder, binding index) for each, and the
/// placeholder secret of each `aws_sigv4` binding (whose placeholder is its key id).
pub fn new_placeholders(bindings: &[Binding]) -> Placeholders {
    let mut out = Placeholders::default();
    for (i, b) in bindings.iter().enumerate() {
        if b.aws.is_some() {
            let mut r = [0u8; 64];
            rand::fill(&mut r);
            let (id, secret) = sigv4::placeholder_credentials(&r);
            out.list.push((id, i));
            out.aws_secrets.push((i, secret));
        } else {
            out.list.push((new_placeholder(&b.env), i));
        }
    }
    out
}

/// What [`new_placeholders`] and [`derived_placeholders`] give.
#[derive(Default)]
pub struct Placeholders {
    pub list: Vec<(String, usize)>,
    pub aws_secrets: Vec<(usize, zeroize::Zeroizing<String>)>,
}

/// Placeholders derived from a key (stable across restarts of `broker serve`).
pub fn derived_placeholders(key: &[u8], agent: &str, bindings: &[Binding]) -> Placeholders {
    let mut out = Placeholders::default();
    for (i, b) in bindings.iter().enumerate() {
        out.list.push((derived_placeholder(key, agent, b), i));
        if let Some(s) = derived_aws_secret(key, agent, b) {
            out.aws_secrets.push((i, s));
        }
    }
    out
}

/// 64 bytes derived from the placeholder key for one agent's binding.
fn derived_bytes(key: &[u8], agent: &str, binding: &Binding) -> Option<Vec<u8>> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut out = Vec::with_capacity(64);
    for i in 0u8..2 {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
        m.update(&[i]);
        m.update(agent.as_bytes());
        m.update(b"|");
        m.update(binding.name.as_bytes());
        out.extend_from_slice(&m.finalize().into_bytes());
    }
    Some(out)
}

/// A placeholder derived from a key (stable across restarts of `broker serve`): for an
/// `aws_sigv4` binding, its placeholder key id.
pub fn derived_placeholder(key: &[u8], agent: &str, binding: &Binding) -> String {
    let Some(out) = derived_bytes(key, agent, binding) else {
        return new_placeholder(&binding.env);
    };
    if binding.aws.is_some() {
        return sigv4::placeholder_credentials(&out).0;
    }
    airlock_core::binding::mint_placeholder(&binding.env, &out)
}

/// The placeholder secret of an `aws_sigv4` binding, derived like [`derived_placeholder`].
pub fn derived_aws_secret(
    key: &[u8],
    agent: &str,
    binding: &Binding,
) -> Option<zeroize::Zeroizing<String>> {
    binding.aws.as_ref()?;
    Some(sigv4::placeholder_credentials(&derived_bytes(key, agent, binding)?).1)
}

/// Every host pattern any of these bindings names (for the CA's name constraint).
pub fn bound_hosts<'a>(bindings: impl Iterator<Item = &'a Binding>) -> Vec<HostPattern> {
    let mut out: Vec<HostPattern> = Vec::new();
    for b in bindings {
        for h in &b.dest.hosts {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
    }
    out
}
