//! Budgets and rate limits per agent and per binding: requests per minute, bytes per hour
//! and LLM tokens per day, in fixed windows aligned to the clock (a minute starts at :00).
//!
//! A request is admitted when no window it counts against is spent ([`Meter::admit`] counts
//! it); bytes (both directions) and tokens are charged when the exchange ends, so one request
//! may overshoot a byte or token budget, and the next one is refused with `429` and a
//! `Retry-After` of the seconds left in the window. Tokens are read from the response's
//! `usage` object ([`UsageMeter`]): OpenAI (`prompt_tokens`/`completion_tokens`/
//! `total_tokens`), Anthropic (`input_tokens`/`output_tokens`, also across a stream's
//! `message_start` and `message_delta` events) and Gemini (`usageMetadata`), in a JSON body or
//! in the `data:` lines of a server-sent-events stream.
//!
//! Counters live in the broker process and are reported to Airlock every few seconds (for
//! `sys/broker/agents/<name>` and its metrics). Airlock answers with what the other brokers
//! (replicas of `broker serve`, or several `broker run`) counted in the same windows
//! ([`Meter::set_others`]), and a request is refused once this broker's count plus theirs
//! reaches the limit: replicas share one budget, give or take what they admitted since their
//! last reports. Pure except for the mutex; the caller passes the time.

use std::sync::Mutex;

use serde_json::{json, Map, Value};

/// Limits; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub requests_per_minute: Option<u64>,
    pub bytes_per_hour: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

const KEYS: [&str; 3] = ["requests_per_minute", "bytes_per_hour", "tokens_per_day"];
/// Window lengths in seconds, in the order of [`KEYS`].
const WINDOWS: [u64; 3] = [60, 3600, 86_400];

impl Budget {
    fn limits(&self) -> [Option<u64>; 3] {
        [
            self.requests_per_minute,
            self.bytes_per_hour,
            self.tokens_per_day,
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.limits().iter().all(Option::is_none)
    }
}

/// Parses a `budget` table/object (`requests_per_minute`, `bytes_per_hour`,
/// `tokens_per_day`, each a positive integer).
pub fn parse(v: &Value) -> Result<Budget, String> {
    let o: &Map<String, Value> = v.as_object().ok_or("`budget` must be a table/object")?;
    let mut b = Budget::default();
    for (k, v) in o {
        let n = v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("budget.{k} must be a positive integer"))?;
        match k.as_str() {
            "requests_per_minute" => b.requests_per_minute = Some(n),
            "bytes_per_hour" => b.bytes_per_hour = Some(n),
            "tokens_per_day" => b.tokens_per_day = Some(n),
            _ => {
                return Err(format!(
                    "unknown budget field `{k}` (known: {})",
                    KEYS.join(", ")
                ))
            }
        }
    }
    Ok(b)
}

/// One counter in its current window.
#[derive(Clone, Copy, Default, Debug)]
struct Window {
    start: u64,
    used: u64,
}

impl Window {
    /// The window containing `now`, reset if a new one began.
    fn at(&mut self, now: u64, len: u64) -> &mut Self {
        let start = now - now % len;
        if self.start != start {
            *self = Window { start, used: 0 };
        }
        self
    }
}

/// This broker's windows, and what the other brokers last reported for theirs.
#[derive(Clone, Copy, Default, Debug)]
struct Counters {
    own: [Window; 3],
    others: [Window; 3],
}

/// The counters of one agent or binding against its budget.
#[derive(Debug)]
pub struct Meter {
    pub budget: Budget,
    windows: Mutex<Counters>,
    /// Requests refused for this budget (for metrics).
    pub refused: std::sync::atomic::AtomicU64,
}

impl Meter {
    pub fn new(budget: Budget) -> Self {
        Meter {
            budget,
            windows: Mutex::new(Counters::default()),
            refused: Default::default(),
        }
    }

    /// Admits (and counts) a request at unix second `now`, or says how many seconds until
    /// the spent window ends, and which limit it is.
    pub fn admit(&self, now: u64) -> Result<(), (u64, &'static str)> {
        let Ok(mut c) = self.windows.lock() else {
            return Ok(());
        };
        let limits = self.budget.limits();
        for i in 0..3 {
            if let Some(limit) = limits[i] {
                let win = *c.own[i].at(now, WINDOWS[i]);
                let theirs = c.others[i];
                let others = if theirs.start == win.start {
                    theirs.used
                } else {
                    0
                };
                if win.used.saturating_add(others) >= limit {
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err((win.start + WINDOWS[i] - now, KEYS[i]));
                }
            }
        }
        c.own[0].at(now, WINDOWS[0]).used += 1;
        Ok(())
    }

    /// Charges an ended exchange's bytes and tokens.
    pub fn charge(&self, now: u64, bytes: u64, tokens: u64) {
        if let Ok(mut c) = self.windows.lock() {
            c.own[1].at(now, WINDOWS[1]).used += bytes;
            c.own[2].at(now, WINDOWS[2]).used += tokens;
        }
    }

    /// Takes what the other brokers counted, as Airlock summed it:
    /// `{requests_per_minute: {start, used}, …}` (a window missing is zero).
    pub fn set_others(&self, v: &Value) {
        let Ok(mut c) = self.windows.lock() else {
            return;
        };
        for (i, k) in KEYS.iter().enumerate() {
            let w = v.get(k);
            let n = |f: &str| w.and_then(|w| w.get(f)).and_then(Value::as_u64);
            c.others[i] = match (n("start"), n("used")) {
                (Some(start), Some(used)) => Window { start, used },
                _ => Window::default(),
            };
        }
    }

    /// This broker's current windows:
    /// `{requests_per_minute: {used, limit, start, resets_in}, …}`.
    pub fn snapshot(&self, now: u64) -> Value {
        let Ok(mut c) = self.windows.lock() else {
            return Value::Null;
        };
        let limits = self.budget.limits();
        let mut out = Map::new();
        for i in 0..3 {
            let win = *c.own[i].at(now, WINDOWS[i]);
            out.insert(
                KEYS[i].into(),
                json!({
                    "used": win.used,
                    "limit": limits[i],
                    "start": win.start,
                    "resets_in": win.start + WINDOWS[i] - now,
                }),
            );
        }
        Value::Object(out)
    }
}

/// Reads LLM token usage from a response body as it streams (JSON or server-sent events),
/// holding at most 1 MiB of it.
#[derive(Default)]
pub struct UsageMeter {
    buf: Vec<u8>,
    /// An event stream (`data:` lines) rather than one JSON document; unknown until the
    /// body's first bytes.
    sse: Option<bool>,
    overflow: bool,
    input: u64,
    output: u64,
    total: u64,
}

const MAX_HELD: usize = 1 << 20;

impl UsageMeter {
    /// Takes the next piece of the body.
    pub fn feed(&mut self, data: &[u8]) {
        if self.overflow {
            return;
        }
        self.buf.extend_from_slice(data);
        if self.sse.is_none() {
            let first = self.buf.iter().position(|b| !b.is_ascii_whitespace());
            if let Some(i) = first {
                let rest = &self.buf[i..];
                if rest.len() >= 6 || rest.contains(&b'\n') {
                    self.sse = Some(
                        rest.starts_with(b"data:")
                            || rest.starts_with(b"event:")
                            || rest.starts_with(b":"),
                    );
                }
            }
        }
        if self.sse == Some(true) {
            // Complete lines of an event stream are read as they come.
            while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if let Some(rest) = line.strip_prefix(b"data:") {
                    self.read(rest);
                }
            }
        }
        if self.buf.len() > MAX_HELD {
            self.overflow = true;
            self.buf = Vec::new();
        }
    }

    /// The tokens the whole body reported.
    pub fn finish(&mut self) -> u64 {
        if !self.overflow && !self.buf.is_empty() {
            let b = std::mem::take(&mut self.buf);
            let b = b.strip_prefix(b"data:").unwrap_or(&b);
            self.read(b);
        }
        self.total.max(self.input + self.output)
    }

    fn read(&mut self, json: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(json.trim_ascii()) else {
            return;
        };
        self.walk(&v, 0);
    }

    fn walk(&mut self, v: &Value, depth: u8) {
        if depth > 4 {
            return;
        }
        let Some(o) = v.as_object() else {
            return;
        };
        for (k, x) in o {
            if k == "usage" || k == "usageMetadata" {
                if let Some(u) = x.as_object() {
                    let n = |names: &[&str]| {
                        names
                            .iter()
                            .filter_map(|n| u.get(*n).and_then(Value::as_u64))
                            .max()
                            .unwrap_or(0)
                    };
                    // Anthropic's stream reports cumulative counts: keep the largest seen.
                    self.input =
                        self.input
                            .max(n(&["input_tokens", "prompt_tokens", "promptTokenCount"]));
                    self.output = self.output.max(n(&[
                        "output_tokens",
                        "completion_tokens",
                        "candidatesTokenCount",
                    ]));
                    self.total = self.total.max(n(&["total_tokens", "totalTokenCount"]));
                }
            } else if x.is_object() {
                self.walk(x, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_admit_count_and_reset() {
        let m =
            Meter::new(parse(&json!({"requests_per_minute": 2, "tokens_per_day": 100})).unwrap());
        let t = 1_800_000_000 - 1_800_000_000 % 86_400 + 30; // 30 s into a minute (and a day)
        assert!(m.admit(t).is_ok());
        assert!(m.admit(t + 1).is_ok());
        assert_eq!(m.admit(t + 2), Err((28, "requests_per_minute")));
        assert!(m.admit(t + 30).is_ok(), "a new minute");
        m.charge(t + 31, 10, 150);
        let e = m.admit(t + 40).unwrap_err();
        assert_eq!(e.1, "tokens_per_day");
        assert_eq!(e.0, 86_400 - 70);
        let s = m.snapshot(t + 40);
        assert_eq!(s["tokens_per_day"]["used"], 150);
        assert_eq!(s["requests_per_minute"]["limit"], 2);
        assert_eq!(m.refused.load(std::sync::atomic::Ordering::Relaxed), 2);
        for bad in [
            json!({"requests_per_minute": 0}),
            json!({"x": 1}),
            json!({"bytes_per_hour": "a"}),
            json!(3),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_brokers_counts_share_the_budget() {
        let m = Meter::new(parse(&json!({"requests_per_minute": 5})).unwrap());
        let start = 1_800_000_000; // a minute's first second (a multiple of 60)
        let t = start + 10;
        assert!(m.admit(t).is_ok());
        m.set_others(&json!({"requests_per_minute": {"start": start, "used": 3}}));
        assert!(m.admit(t + 1).is_ok(), "1 + 3 < 5");
        assert_eq!(m.admit(t + 2), Err((48, "requests_per_minute")), "2 + 3");
        assert_eq!(m.snapshot(t + 2)["requests_per_minute"]["used"], 2);
        assert_eq!(m.snapshot(t + 2)["requests_per_minute"]["start"], start);
        // Counts of another window do not apply, and a new minute starts clean.
        m.set_others(&json!({"requests_per_minute": {"start": start - 60, "used": 9}}));
        assert!(m.admit(t + 3).is_ok());
        m.set_others(&json!({"requests_per_minute": {"start": start, "used": 9}}));
        assert!(m.admit(t + 4).is_err());
        assert!(m.admit(t + 60).is_ok(), "the next minute");
        // Nothing reported: nothing added.
        m.set_others(&Value::Null);
        assert!(m.admit(t + 61).is_ok());
    }

    #[test]
    fn usage_is_read_from_json_and_streams() {
        let mut u = UsageMeter::default();
        u.feed(
            br#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#,
        );
        assert_eq!(u.finish(), 42);
        // OpenAI streaming with include_usage, split anywhere.
        let s = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
        let mut u = UsageMeter::default();
        for c in s.chunks(5) {
            u.feed(c);
        }
        assert_eq!(u.finish(), 12);
        // Anthropic streaming: cumulative output in message_delta.
        let a = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        let mut u = UsageMeter::default();
        u.feed(a);
        assert_eq!(u.finish(), 40);
        // Gemini.
        let mut u = UsageMeter::default();
        u.feed(br#"{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7}}"#);
        assert_eq!(u.finish(), 7);
        // No usage, or not JSON: nothing.
        let mut u = UsageMeter::default();
        u.feed(b"<html>hello</html>");
        assert_eq!(u.finish(), 0);
    }
}
