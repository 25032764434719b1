//! Request metrics in Prometheus text format (`sys/metrics?format=prometheus`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use crate::logical::{Request, Response};

/// Latency bucket upper bounds in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "LIST", "PATCH", "HEAD", "OTHER",
];
const STATUSES: [u16; 13] = [
    200, 204, 400, 403, 404, 405, 413, 414, 415, 429, 500, 501, 503,
];
const SLOTS: usize = METHODS.len() * (STATUSES.len() + 1);

/// Lock-free counters: the hot path only does atomic adds.
pub struct Metrics {
    by_status: [AtomicU64; SLOTS],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    started: std::time::Instant,
    pub leases_created: AtomicU64,
    pub leases_revoked: AtomicU64,
    pub lease_revoke_failures: AtomicU64,
    pub connections_refused: AtomicU64,
    pub honeytoken_uses: AtomicU64,
    /// Honeytoken uses the brokers reported (`honeytoken` events in `sys/broker/audit`).
    pub honeytoken_broker_uses: AtomicU64,
    /// Budget usage reported by credential brokers (`sys/broker/usage`), by broker id.
    pub broker_usage: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, serde_json::Value)>,
    >,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
            started: std::time::Instant::now(),
            leases_created: AtomicU64::new(0),
            leases_revoked: AtomicU64::new(0),
            lease_revoke_failures: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            honeytoken_uses: AtomicU64::new(0),
            honeytoken_broker_uses: AtomicU64::new(0),
            broker_usage: Default::default(),
        }
    }

    /// A connection refused at a connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, method: &str, status: u16, elapsed: std::time::Duration) {
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let st = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len());
        if let Some(c) = self.by_status.get(m * (STATUSES.len() + 1) + st) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                if let Some(c) = self.buckets.get(i) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Broker usage reports younger than five minutes.
    pub fn broker_reports(&self) -> Vec<serde_json::Value> {
        let Ok(mut m) = self.broker_usage.lock() else {
            return Vec::new();
        };
        m.retain(|_, (t, _)| t.elapsed() < std::time::Duration::from_secs(300));
        m.values().map(|(_, v)| v.clone()).collect()
    }

    /// `airlock_broker_budget_used` / `_limit` / `airlock_broker_limited_total` lines.
    fn broker_lines(&self, out: &mut String) {
        let reports = self.broker_reports();
        if reports.is_empty() {
            return;
        }
        out.push_str("# HELP airlock_broker_budget_used Budget used in the current window, as reported by brokers.\n# TYPE airlock_broker_budget_used gauge\n");
        out.push_str("# HELP airlock_broker_budget_limit Budget limit of the window.\n# TYPE airlock_broker_budget_limit gauge\n");
        out.push_str("# HELP airlock_broker_limited_total Requests a broker refused for a budget.\n# TYPE airlock_broker_limited_total counter\n");
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        for r in &reports {
            let broker = esc(r.get("broker").and_then(|v| v.as_str()).unwrap_or(""));
            let Some(agents) = r.get("agents").and_then(|v| v.as_object()) else {
                continue;
            };
            for (agent, a) in agents {
                let agent = esc(agent);
                let mut meters: Vec<(String, &serde_json::Value)> = Vec::new();
                if let Some(m) = a.get("agent").filter(|m| m.is_object()) {
                    meters.push((String::new(), m));
                }
                if let Some(bs) = a.get("bindings").and_then(|v| v.as_object()) {
                    for (b, m) in bs {
                        meters.push((esc(b), m));
                    }
                }
                for (binding, m) in meters {
                    let Some(windows) = m.as_object() else {
                        continue;
                    };
                    for (w, v) in windows {
                        let labels = format!("broker=\"{broker}\",agent=\"{agent}\",binding=\"{binding}\",window=\"{}\"", esc(w));
                        if let Some(u) = v.get("used").and_then(|x| x.as_u64()) {
                            out.push_str(&format!("airlock_broker_budget_used{{{labels}}} {u}\n"));
                        }
                        if let Some(l) = v.get("limit").and_then(|x| x.as_u64()) {
                            out.push_str(&format!("airlock_broker_budget_limit{{{labels}}} {l}\n"));
                        }
                    }
                }
                if let Some(n) = a.get("limited").and_then(|x| x.as_u64()) {
                    out.push_str(&format!(
                        "airlock_broker_limited_total{{broker=\"{broker}\",agent=\"{agent}\"}} {n}\n"
                    ));
                }
            }
        }
    }

    pub fn prometheus(&self, sealed: bool) -> String {
        let mut out = String::new();
        self.broker_lines(&mut out);
        out.push_str("# HELP airlock_honeytoken_uses_total Honeytokens used: presented to the API as tokens (at=\"api\") or carried through a broker (at=\"broker\"); each one a high-severity audit entry.\n# TYPE airlock_honeytoken_uses_total counter\n");
        for (at, v) in [
            ("api", &self.honeytoken_uses),
            ("broker", &self.honeytoken_broker_uses),
        ] {
            out.push_str(&format!(
                "airlock_honeytoken_uses_total{{at=\"{at}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP airlock_requests_total HTTP requests by method and status.\n");
        out.push_str("# TYPE airlock_requests_total counter\n");
        for (mi, method) in METHODS.iter().enumerate() {
            for si in 0..=STATUSES.len() {
                let n = self
                    .by_status
                    .get(mi * (STATUSES.len() + 1) + si)
                    .map(|c| c.load(Ordering::Relaxed))
                    .unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(si)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "other".into());
                out.push_str(&format!(
                    "airlock_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# HELP airlock_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE airlock_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let v = self
                .buckets
                .get(i)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            out.push_str(&format!(
                "airlock_request_duration_seconds_bucket{{le=\"{b}\"}} {v}\n"
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "airlock_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "airlock_request_duration_seconds_sum {}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("airlock_request_duration_seconds_count {count}\n"));
        out.push_str(
            "# HELP airlock_sealed 1 while the server is sealed.\n# TYPE airlock_sealed gauge\n",
        );
        out.push_str(&format!("airlock_sealed {}\n", u8::from(sealed)));
        for (name, help, v) in [
            (
                "airlock_leases_created_total",
                "Leases issued.",
                &self.leases_created,
            ),
            (
                "airlock_leases_revoked_total",
                "Leases revoked (explicitly, by expiry or with their token).",
                &self.leases_revoked,
            ),
            (
                "airlock_lease_revoke_failures_total",
                "Failed revocation attempts (retried with backoff).",
                &self.lease_revoke_failures,
            ),
            (
                "airlock_connections_refused_total",
                "Connections refused at the overall or per-address connection cap.",
                &self.connections_refused,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP airlock_uptime_seconds Seconds since start.\n# TYPE airlock_uptime_seconds gauge\n");
        out.push_str(&format!(
            "airlock_uptime_seconds {}\n",
            self.started.elapsed().as_secs()
        ));
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `sys/metrics`: Prometheus text when `format=prometheus`, else a JSON summary.
pub fn response(metrics: &Metrics, sealed: bool, req: &Request) -> Response {
    let text = metrics.prometheus(sealed);
    if req.query("format") == Some("prometheus") {
        return Response {
            text: Some(text),
            ..Default::default()
        };
    }
    Response::raw(json!({ "prometheus": text }))
}
