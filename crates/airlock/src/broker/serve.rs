//! `airlock broker serve`: a long-running broker for several agents, each authenticated by
//! its own proxy credential, with agents and bindings reloaded from Airlock every
//! `--refresh`.

use super::*;

/// Lists a `sys/broker/…` collection (empty when there is none).
async fn api_list(cl: &Client, path: &str) -> Result<Vec<String>> {
    let v = cl.call("LIST", path, None).await?;
    Ok(v.and_then(|v| v.pointer("/data/keys").cloned())
        .and_then(|k| serde_json::from_value(k).ok())
        .unwrap_or_default())
}

/// Bindings and agents stored in Airlock, merged with an optional profile.
pub(super) async fn load_serve_config(cl: &Client, profile: Option<&Path>) -> Result<Profile> {
    let mut p = match profile {
        Some(f) => load_profile(f)?,
        None => Profile::default(),
    };
    for name in api_list(cl, "sys/broker/bindings").await? {
        let v = cl
            .call("GET", &format!("sys/broker/bindings/{name}"), None)
            .await?
            .and_then(|v| v.get("data").cloned())
            .ok_or_else(|| anyhow!("binding {name} vanished while loading"))?;
        let b = config::parse_binding(&v).map_err(|e| anyhow!("stored {e}"))?;
        if p.bindings.iter().any(|x| x.name == b.name) {
            bail!(
                "binding {:?} is defined both in Airlock and in the profile",
                b.name
            );
        }
        p.bindings.push(b);
    }
    for name in api_list(cl, "sys/broker/agents").await? {
        let v = cl
            .call("GET", &format!("sys/broker/agents/{name}"), None)
            .await?
            .and_then(|v| v.get("data").cloned())
            .ok_or_else(|| anyhow!("agent {name} vanished while loading"))?;
        // `usage` is what brokers reported, not part of the definition.
        let mut v = v;
        if let Some(o) = v.as_object_mut() {
            o.remove("usage");
        }
        let a = config::parse_agent(&name, &v).map_err(|e| anyhow!("stored {e}"))?;
        if p.agents.iter().any(|x| x.name == a.name) {
            bail!(
                "agent {:?} is defined both in Airlock and in the profile",
                a.name
            );
        }
        p.agents.push(a);
    }
    for t in load_honeytokens(cl).await? {
        if !p.honeytokens.iter().any(|x| x.name == t.name) {
            p.honeytokens.push(t);
        }
    }
    Ok(p)
}

/// The honeytokens registered in Airlock (`sys/broker/honeytokens`).
pub(super) async fn load_honeytokens(
    cl: &Client,
) -> Result<Vec<airlock_broker::honeytoken::Honeytoken>> {
    let mut out = Vec::new();
    for name in api_list(cl, "sys/broker/honeytokens").await? {
        let Some(v) = cl
            .call("GET", &format!("sys/broker/honeytokens/{name}"), None)
            .await?
            .and_then(|v| v.get("data").cloned())
        else {
            continue;
        };
        out.push(airlock_broker::honeytoken::parse(&name, &v).map_err(|e| anyhow!("stored {e}"))?);
    }
    Ok(out)
}

fn hex_key(v: &Value, field: &str) -> Result<Zeroizing<Vec<u8>>> {
    let s = v
        .pointer(&format!("/data/{field}"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("sys/broker/keys has no {field}"))?;
    let out = airlock_core::percent::decode_hex(s)
        .map(Zeroizing::new)
        .ok_or_else(|| anyhow!("sys/broker/keys: {field} is not hex"))?;
    Ok(out)
}

/// What `broker serve` needs to turn agent definitions into runtimes.
struct AgentSource {
    addr: String,
    token: Option<Zeroizing<String>>,
    cacert: Option<PathBuf>,
    ph_key: Zeroizing<Vec<u8>>,
    refresh: Duration,
    max_stale: Duration,
}

impl AgentSource {
    /// A runtime per agent of `profile`; an agent whose definition did not change keeps its
    /// runtime from `current` (and its credential cache).
    async fn build(
        &self,
        profile: &Profile,
        current: &HashMap<String, Arc<AgentRuntime>>,
    ) -> Result<HashMap<String, Arc<AgentRuntime>>> {
        let mut agents = HashMap::new();
        for spec in &profile.agents {
            let bindings: Vec<config::Binding> = config::select(profile, Some(&spec.name))
                .map_err(|e| anyhow!(e))?
                .into_iter()
                .cloned()
                .collect();
            let mut allow_hosts = profile.allow_hosts.clone();
            allow_hosts.extend(spec.allow_hosts.iter().cloned());
            let fingerprint = format!("{spec:?}|{bindings:?}|{allow_hosts:?}");
            if let Some(rt) = current.get(&spec.name).filter(|rt| rt.spec == fingerprint) {
                agents.insert(spec.name.clone(), rt.clone());
                continue;
            }
            let wanted = bindings.iter().flat_map(|b| b.wanted()).collect();
            let client = Client::new(&self.addr, self.token.clone(), self.cacert.clone())?;
            let cache = SecretCache::new(
                Arc::new(ApiSource { client }),
                wanted,
                self.refresh,
                self.max_stale,
            );
            cache
                .refresh_all()
                .await
                .map_err(|e| anyhow!("agent {}: loading bound credentials: {e}", spec.name))?;
            cache.spawn_refresher();
            let ph = airlock_broker::derived_placeholders(&self.ph_key, &spec.name, &bindings);
            let meters = airlock_broker::Meters::new(spec.budget.as_ref(), &bindings);
            let tokens = airlock_broker::token_cells(&bindings);
            agents.insert(
                spec.name.clone(),
                Arc::new(AgentRuntime {
                    name: spec.name.clone(),
                    bindings,
                    placeholders: ph.list,
                    aws_secrets: ph.aws_secrets,
                    meters,
                    approval: spec.approval.clone(),
                    mcp: spec.mcp.clone(),
                    tokens,
                    egress: spec.egress,
                    allow_hosts,
                    cache,
                    spec: fingerprint,
                }),
            );
        }
        Ok(agents)
    }
}

pub(super) async fn broker_serve(a: ServeArgs) -> Result<ExitCode> {
    let Prepared {
        refresh,
        max_stale,
        pins,
        extra_certs,
        ..
    } = a.up.prepare()?;
    let listen = loopback(&a.listen)?;
    let cl = Client::from_env()?;
    cl.require_token()?;
    let addr = cl.addr.clone();
    let token = cl.token.clone();
    let cacert = std::env::var_os("AIRLOCK_CACERT")
        .or_else(|| std::env::var_os("VAULT_CACERT"))
        .map(PathBuf::from);
    let keys = cl
        .call("GET", "sys/broker/keys", None)
        .await
        .context("reading sys/broker/keys (needs sudo on that path)")?
        .ok_or_else(|| anyhow!("sys/broker/keys: not found"))?;
    let ca_key = Zeroizing::new(
        keys.pointer("/data/ca_key_pem")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("sys/broker/keys has no CA key"))?
            .to_string(),
    );
    let ca_cert = keys
        .pointer("/data/ca_cert_pem")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("sys/broker/keys has no CA certificate"))?
        .to_string();
    let cred_key = hex_key(&keys, "credential_key")?;
    let ph_key = hex_key(&keys, "placeholder_key")?;
    drop(keys);
    let ca =
        airlock_broker::ca::Ca::from_stored(&ca_key, &ca_cert, None).map_err(|e| anyhow!(e))?;
    drop(ca_key);
    let profile = load_serve_config(&cl, a.profile.as_deref()).await?;
    if profile.agents.is_empty() {
        bail!("no agents: define some with `airlock write sys/broker/agents/NAME bindings=…` or in a profile");
    }
    let guard =
        airlock_broker::guard::Guard::new(&profile.allow_private).map_err(|e| anyhow!(e))?;
    let source = AgentSource {
        addr: addr.clone(),
        token: token.clone(),
        cacert: cacert.clone(),
        ph_key: ph_key.clone(),
        refresh,
        max_stale,
    };
    let agents = source.build(&profile, &HashMap::new()).await?;
    let upstream = airlock_broker::upstream::Upstream::new(&extra_certs, pins, guard)
        .map_err(|e| anyhow!(e))?;
    spawn_token_renewer(Client::new(&addr, token.clone(), cacert.clone())?);
    let cl_usage = Client::new(&addr, token.clone(), cacert.clone())?;
    let cl_approvals = Client::new(&addr, token.clone(), cacert.clone())?;
    let auditor = start_auditor(Client::new(&addr, token, cacert)?).await?;
    if let Some(out) = &a.ca_out {
        std::fs::write(out, ca.cert_pem()).with_context(|| format!("writing {}", out.display()))?;
    }
    let names: Vec<String> = agents.keys().cloned().collect();
    let broker = Arc::new(Broker {
        agents: agents.into(),
        cred: airlock_broker::cred::CredKey::new(cred_key.to_vec()),
        ca,
        upstream,
        audit: auditor.clone(),
        stats: Default::default(),
        honeytokens: std::sync::RwLock::new(Arc::new(profile.honeytokens.clone())),
        approvals: Some(Arc::new(ApiApprovals {
            client: cl_approvals,
        })),
        mcp_sessions: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the proxy to {listen}"))?;
    let bound = listener.local_addr()?;
    println!("Broker listening on {bound}");
    println!("Agents: {}", names.join(", "));
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Agents and bindings added, changed or removed in Airlock (or the profile) take effect
    // without a restart; a removed agent's proxy credentials stop working.
    let reload = {
        let broker = broker.clone();
        let profile_path = a.profile.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(refresh);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t.tick().await;
            loop {
                t.tick().await;
                let current = broker.agents_now();
                let next = async {
                    let p = load_serve_config(&cl, profile_path.as_deref()).await?;
                    broker.set_honeytokens(p.honeytokens.clone());
                    source.build(&p, &current).await
                };
                match next.await {
                    Ok(next) => {
                        for n in current.keys().filter(|n| !next.contains_key(*n)) {
                            tracing::info!(agent = %n, "broker: agent removed");
                        }
                        for (n, rt) in &next {
                            if !current.get(n).is_some_and(|c| Arc::ptr_eq(c, rt)) {
                                tracing::info!(agent = %n, "broker: agent loaded");
                            }
                        }
                        broker.set_agents(next);
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "broker: reloading agents failed; keeping the current ones")
                    }
                }
            }
        })
    };
    let reporter = spawn_usage_reporter(
        cl_usage,
        broker.clone(),
        format!("serve-{bound}-{}", std::process::id()),
        refresh,
    );
    let serve = tokio::spawn(airlock_broker::proxy::serve(broker, listener));
    crate::server::shutdown_signal().await;
    serve.abort();
    reload.abort();
    reporter.abort();
    if !auditor.flush(Duration::from_secs(5)).await {
        eprintln!("warning: some broker audit events could not be written to Airlock in time");
    }
    Ok(ExitCode::SUCCESS)
}
