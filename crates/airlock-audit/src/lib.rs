//! Audit devices for Airlock.
//!
//! A file device appends one JSON object per line (a `request` entry before a request is
//! handled, a `response` entry after). Every string a client sent or received is replaced by
//! `hmac-sha256:<hex>` keyed with the server's audit key, as Vault does, so the log reveals no
//! secret yet an operator can still match a known value (`sys/audit-hash`).
//!
//! Entries form a hash chain: each line carries `"chain":{"seq":N,"prev":"<hash of line N-1>"}`
//! and ends with `"chain_hash":"<sha256 of the line up to that field>"`. Deleting, editing or
//! reordering lines breaks the chain; [`verify`] finds the first broken line.
//!
//! Writes are group-committed by one writer thread per device: requests queue their entry and
//! wait for the batch that contains it to be written (and fsynced if configured). The request
//! path never touches the file itself, and a request whose entry no device recorded fails.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

mod index;
pub mod query;

pub use index::parse_time;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

/// One configured file device.
#[derive(Clone, Debug)]
pub struct FileDeviceConfig {
    pub name: String,
    pub path: PathBuf,
    /// fsync after every batch (power-loss safe) instead of only writing to the OS.
    pub fsync: bool,
    /// Keep a query index beside the log (`<path>.index`, see `index.rs`).
    pub index: bool,
}

#[derive(Debug)]
pub enum AuditError {
    /// No device recorded the entry; the request must fail.
    NotRecorded(String),
    /// Opening a device failed at start-up.
    Open(String),
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::NotRecorded(m) => write!(f, "failed to audit request: {m}"),
            AuditError::Open(m) => write!(f, "failed to open audit device: {m}"),
        }
    }
}

impl std::error::Error for AuditError {}

enum Job {
    Entry {
        entry: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Close the file and open the configured path again (after logrotate moved it); the
    /// chain continues in the new file.
    Reopen {
        done: oneshot::Sender<Result<(), String>>,
    },
}

struct Device {
    name: String,
    path: PathBuf,
    indexed: bool,
    tx: mpsc::Sender<Job>,
}

/// What the index thread of a device is told.
enum IndexJob {
    Lines(Vec<String>),
    /// Batches were not handed over (the index thread was behind): read them from the log.
    CatchUp,
    Reopened,
}

/// Starts the index thread of a device: it opens the index, catches up with the log, then
/// indexes each batch the writer hands over. An index that cannot be written is logged
/// and abandoned; the log itself is never affected.
fn spawn_indexer(
    name: &str,
    path: &Path,
) -> Result<std::sync::mpsc::SyncSender<IndexJob>, AuditError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<IndexJob>(256);
    let path = path.to_path_buf();
    let device = name.to_string();
    std::thread::Builder::new()
        .name(format!("audit-index-{name}"))
        .spawn(move || {
            // The index is derived from the log: one that cannot be opened (damaged, or from
            // another version) is rebuilt from the log.
            let opened = index::Writer::open(&path).or_else(|e| {
                tracing::warn!(device, error = %e, "audit index unusable; rebuilding it from the log");
                index::remove(&path);
                index::Writer::open(&path)
            });
            let mut w = match opened {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(device, error = %e, "audit index unavailable; queries of this device will fail");
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                let r = match job {
                    IndexJob::Lines(lines) => w.add(&lines, false),
                    IndexJob::CatchUp => w.catch_up(),
                    IndexJob::Reopened => {
                        w.reopened();
                        Ok(())
                    }
                };
                if let Err(e) = r {
                    tracing::error!(device, error = %e, "audit index write failed; the index stops here");
                    return;
                }
            }
        })
        .map_err(|e| AuditError::Open(e.to_string()))?;
    Ok(tx)
}

/// (seq, prev, hash, whether the hash matches) of a line the writer wrote.
pub(crate) fn chain_fields(line: &str) -> Result<(u64, String, String, bool), String> {
    let p = parse_line(line)?;
    let ok = p.computed == p.hash;
    Ok((p.seq, p.prev, p.hash, ok))
}

/// The set of audit devices plus the HMAC key.
pub struct Auditor {
    devices: Vec<Device>,
    key: RwLock<Option<Arc<Zeroizing<Vec<u8>>>>>,
}

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_FIELD: &str = ",\"chain_hash\":\"";

impl Auditor {
    /// Opens every device (appending to existing files, continuing their chains) and starts
    /// one writer thread per device.
    pub fn open(configs: &[FileDeviceConfig]) -> Result<Self, AuditError> {
        let mut devices = Vec::new();
        for cfg in configs {
            let (file, seq, prev) = open_chain(&cfg.path)
                .map_err(|e| AuditError::Open(format!("{}: {e}", cfg.path.display())))?;
            let (tx, rx) = mpsc::channel::<Job>(4096);
            let fsync = cfg.fsync;
            let name = cfg.name.clone();
            let path = cfg.path.clone();
            let index = if cfg.index {
                Some(spawn_indexer(&name, &path)?)
            } else {
                None
            };
            std::thread::Builder::new()
                .name(format!("audit-{name}"))
                .spawn(move || writer_loop(path, file, seq, prev, fsync, rx, index))
                .map_err(|e| AuditError::Open(e.to_string()))?;
            devices.push(Device {
                name: cfg.name.clone(),
                path: cfg.path.clone(),
                indexed: cfg.index,
                tx,
            });
        }
        Ok(Self {
            devices,
            key: RwLock::new(None),
        })
    }

    /// No devices: nothing is audited (as Vault without audit devices).
    pub fn disabled() -> Self {
        Self {
            devices: Vec::new(),
            key: RwLock::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.devices.is_empty()
    }

    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.name.clone()).collect()
    }

    /// The log path of an indexed device: the one named, or the first indexed one.
    pub fn indexed_log(&self, name: Option<&str>) -> Option<(String, PathBuf)> {
        self.devices
            .iter()
            .filter(|d| d.indexed)
            .find(|d| name.is_none_or(|n| n == d.name))
            .map(|d| (d.name.clone(), d.path.clone()))
    }

    /// The log path of a device by name (any device when `None`).
    pub fn log_path(&self, name: Option<&str>) -> Option<(String, PathBuf)> {
        self.devices
            .iter()
            .find(|d| name.is_none_or(|n| n == d.name))
            .map(|d| (d.name.clone(), d.path.clone()))
    }

    /// Installs the HMAC key (read from the barrier after unseal).
    pub fn set_key(&self, key: Zeroizing<Vec<u8>>) {
        if let Ok(mut k) = self.key.write() {
            *k = Some(Arc::new(key));
        }
    }

    pub fn clear_key(&self) {
        if let Ok(mut k) = self.key.write() {
            *k = None;
        }
    }

    fn current_key(&self) -> Option<Arc<Zeroizing<Vec<u8>>>> {
        self.key.read().ok().and_then(|k| k.clone())
    }

    /// `hmac-sha256:<hex>` of `s`, or `None` while no key is installed.
    pub fn hash(&self, s: &str) -> Option<String> {
        self.current_key().map(|k| hmac_hex(&k, s))
    }

    /// Replaces every string and number leaf of `v` by its HMAC (a number by the HMAC of its
    /// JSON text, as Vault does). Bools, nulls and keys stay.
    pub fn hash_value(&self, v: &mut Value) -> bool {
        match self.current_key() {
            Some(k) => {
                hash_in_place(&k, v);
                true
            }
            None => false,
        }
    }

    /// Appends `entry` to every device and waits until at least one wrote it.
    pub async fn log(&self, entry: &Value) -> Result<(), AuditError> {
        if self.devices.is_empty() {
            return Ok(());
        }
        let bytes =
            serde_json::to_vec(entry).map_err(|e| AuditError::NotRecorded(e.to_string()))?;
        let mut waits = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let (done, rx) = oneshot::channel();
            if d.tx
                .send(Job::Entry {
                    entry: bytes.clone(),
                    done,
                })
                .await
                .is_ok()
            {
                waits.push((d.name.as_str(), rx));
            }
        }
        let mut ok = false;
        let mut last_err = String::from("no audit device accepted the entry");
        for (name, rx) in waits {
            match rx.await {
                Ok(Ok(())) => ok = true,
                Ok(Err(e)) => {
                    tracing::error!(device = name, error = %e, "audit device failed to write");
                    last_err = e;
                }
                Err(_) => last_err = format!("audit device {name} stopped"),
            }
        }
        if ok {
            Ok(())
        } else {
            Err(AuditError::NotRecorded(last_err))
        }
    }

    /// Reopens every device's file at its configured path (send `SIGHUP` after logrotate
    /// moved the file). Entries logged before are in the old file; the hash chain continues
    /// in the new one (its first line links to the old file's last), so `audit verify` of
    /// the new file alone succeeds and the two files verify as one when concatenated.
    pub async fn reopen(&self) -> Result<(), AuditError> {
        let mut last_err = None;
        for d in &self.devices {
            let (done, rx) = oneshot::channel();
            if d.tx.send(Job::Reopen { done }).await.is_err() {
                last_err = Some(format!("audit device {} stopped", d.name));
                continue;
            }
            match rx.await {
                Ok(Ok(())) => tracing::info!(device = d.name, "audit file reopened"),
                Ok(Err(e)) => {
                    tracing::error!(device = d.name, error = %e, "reopening the audit file failed; still writing to the old one");
                    last_err = Some(e);
                }
                Err(_) => last_err = Some(format!("audit device {} stopped", d.name)),
            }
        }
        match last_err {
            None => Ok(()),
            Some(e) => Err(AuditError::Open(e)),
        }
    }

    /// Logs several entries with one wait: all are queued first, so the device writer
    /// commits them together (one fsync for the batch, not one per entry). Succeeds only if
    /// some device recorded every entry.
    pub async fn log_many(&self, entries: &[Value]) -> Result<(), AuditError> {
        if self.devices.is_empty() || entries.is_empty() {
            return Ok(());
        }
        let mut waits = Vec::with_capacity(self.devices.len() * entries.len());
        for d in &self.devices {
            for entry in entries {
                let bytes = serde_json::to_vec(entry)
                    .map_err(|e| AuditError::NotRecorded(e.to_string()))?;
                let (done, rx) = oneshot::channel();
                if d.tx.send(Job::Entry { entry: bytes, done }).await.is_ok() {
                    waits.push((d.name.as_str(), rx));
                }
            }
        }
        let mut per_device: std::collections::HashMap<&str, usize> = Default::default();
        let mut last_err = String::from("no audit device accepted the entries");
        for (name, rx) in waits {
            match rx.await {
                Ok(Ok(())) => *per_device.entry(name).or_default() += 1,
                Ok(Err(e)) => {
                    tracing::error!(device = name, error = %e, "audit device failed to write");
                    last_err = e;
                }
                Err(_) => last_err = format!("audit device {name} stopped"),
            }
        }
        if per_device.values().any(|n| *n == entries.len()) {
            Ok(())
        } else {
            Err(AuditError::NotRecorded(last_err))
        }
    }
}

fn hmac_hex(key: &[u8], s: &str) -> String {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return "hmac-sha256:".into(),
    };
    mac.update(s.as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

fn hash_in_place(key: &[u8], v: &mut Value) {
    match v {
        Value::String(s) => *s = hmac_hex(key, s),
        // Vault reads request and stored data with `UseNumber`, so a number is its literal
        // text and is hashed like any string (a PIN is as secret as a password).
        Value::Number(n) => *v = Value::String(hmac_hex(key, &n.to_string())),
        Value::Array(a) => a.iter_mut().for_each(|x| hash_in_place(key, x)),
        Value::Object(m) => m.values_mut().for_each(|x| hash_in_place(key, x)),
        _ => {}
    }
}

/// Opens the file for appending, dropping an incomplete last line (never acknowledged), and
/// returns the next sequence number and the previous hash.
fn open_chain(path: &Path) -> std::io::Result<(File, u64, String)> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut f = OpenOptions::new()
        .read(true)
        .create(true)
        .append(true)
        .open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok((f, 1, ZERO_HASH.to_string()));
    }
    // Read the tail to find the last complete line.
    let tail_len = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.read_to_end(&mut tail)?;
    let complete = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if complete < tail.len() {
        let keep = len - (tail.len() - complete) as u64;
        f.set_len(keep)?;
    }
    let body = tail.get(..complete.saturating_sub(1)).unwrap_or_default();
    let last = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => body.get(i + 1..).unwrap_or_default(),
        None => body,
    };
    if last.is_empty() {
        return Ok((f, 1, ZERO_HASH.to_string()));
    }
    // Only the chain fields at the end are needed; a line longer than the tail is cut at the
    // front, possibly inside a UTF-8 sequence, which does not matter for them.
    let line = String::from_utf8_lossy(last);
    let parsed = parse_chain_tail(&line).map_err(std::io::Error::other)?;
    Ok((f, parsed.0 + 1, parsed.1))
}

fn writer_loop(
    path: std::path::PathBuf,
    mut file: File,
    mut seq: u64,
    mut prev: String,
    fsync: bool,
    mut rx: mpsc::Receiver<Job>,
    index: Option<std::sync::mpsc::SyncSender<IndexJob>>,
) {
    let mut index = index;
    // The index thread fell behind and batches were not handed over: it is told to read
    // them from the log once it has room again. The writer never waits for it.
    let mut lagging = false;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut pending: Option<Job> = None;
    loop {
        let Some(first) = pending.take().or_else(|| rx.blocking_recv()) else {
            return;
        };
        let mut batch = match first {
            Job::Reopen { done } => {
                let r = reopen(&path).map(|f| file = f);
                if r.is_ok() {
                    if let Some(ix) = &index {
                        if ix.send(IndexJob::Reopened).is_err() {
                            index = None;
                        }
                    }
                }
                let _ = done.send(r);
                continue;
            }
            Job::Entry { entry, done } => vec![(entry, done)],
        };
        // Entries queued behind it go in the same write; a reopen waits for that write.
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(Job::Entry { entry, done }) => batch.push((entry, done)),
                Ok(reopen @ Job::Reopen { .. }) => {
                    pending = Some(reopen);
                    break;
                }
                Err(_) => break,
            }
        }
        buf.clear();
        let (start_seq, start_prev) = (seq, prev.clone());
        let mut lines = Vec::with_capacity(if index.is_some() { batch.len() } else { 0 });
        for (entry, _) in &batch {
            let line = chain_line(entry, seq, &prev);
            prev = line.1;
            seq += 1;
            buf.extend_from_slice(line.0.as_bytes());
            buf.push(b'\n');
            if index.is_some() {
                lines.push(line.0);
            }
        }
        let mut res = file.write_all(&buf);
        if res.is_ok() && fsync {
            res = file.sync_data();
        }
        let outcome = res.map_err(|e| e.to_string());
        if outcome.is_err() {
            // Nothing of this batch counts; the chain continues from before it.
            seq = start_seq;
            prev = start_prev;
        }
        let written = outcome.is_ok();
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
        // The index follows what is in the log, after the requests were answered.
        if written {
            if let Some(ix) = &index {
                use std::sync::mpsc::TrySendError;
                let offer = |job| match ix.try_send(job) {
                    Ok(()) => Some(true),
                    Err(TrySendError::Full(_)) => Some(false),
                    Err(TrySendError::Disconnected(_)) => None,
                };
                let sent = if lagging {
                    // Once caught up from the log, this batch (already in it) is a repeat
                    // the index skips by sequence number.
                    offer(IndexJob::CatchUp)
                } else {
                    offer(IndexJob::Lines(lines))
                };
                match sent {
                    Some(ok) => lagging = !ok,
                    None => index = None,
                }
            }
        }
    }
}

/// Opens `path` for appending (creating it, and its directory, if needed).
fn reopen(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds the chained line for `entry` (a serialised JSON object). Returns (line, hash).
fn chain_line(entry: &[u8], seq: u64, prev: &str) -> (String, String) {
    let body = String::from_utf8_lossy(entry);
    let inner = body
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or("");
    let mut unhashed = String::with_capacity(body.len() + 160);
    unhashed.push('{');
    unhashed.push_str(inner);
    if !inner.is_empty() {
        unhashed.push(',');
    }
    unhashed.push_str(&format!("\"chain\":{{\"seq\":{seq},\"prev\":\"{prev}\"}}"));
    let hash = hex::encode(Sha256::digest(unhashed.as_bytes()));
    let line = format!("{unhashed}{HASH_FIELD}{hash}\"}}");
    (line, hash)
}

struct ParsedLine {
    seq: u64,
    prev: String,
    hash: String,
    computed: String,
}

/// The chain fields of a line, read from its end: the writer appends
/// `"chain":{"seq":N,"prev":"<hex>"}` and then `,"chain_hash":"<hex>"}` to every entry, so
/// they are found without parsing the entry itself. Start-up and `verify` must work on every
/// line the server can write, however large or deeply nested the entry (a client chooses
/// what a secret holds).
/// Checks one audit line as `verify` does (its hash and chain fields), for fuzzing: never
/// panics, whatever the line.
#[doc(hidden)]
pub fn check_line(line: &str) -> Result<(u64, String), String> {
    let p = parse_line(line)?;
    if p.computed != p.hash {
        return Err("hash mismatch".into());
    }
    Ok((p.seq, p.hash))
}

fn parse_line(line: &str) -> Result<ParsedLine, String> {
    let idx = line
        .rfind(HASH_FIELD)
        .ok_or_else(|| "line has no chain_hash".to_string())?;
    let unhashed = line.get(..idx).ok_or("malformed line")?;
    let hash = line
        .get(idx + HASH_FIELD.len()..)
        .and_then(|s| s.strip_suffix("\"}"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("malformed chain_hash")?
        .to_string();
    const CHAIN: &str = "\"chain\":{\"seq\":";
    let start = unhashed.rfind(CHAIN).ok_or("missing chain.seq")?;
    let chain = unhashed
        .get(start + CHAIN.len()..)
        .ok_or("malformed chain")?;
    let (seq, rest) = chain.split_once(',').ok_or("malformed chain")?;
    let seq: u64 = seq.parse().map_err(|_| "malformed chain.seq")?;
    let prev = rest
        .strip_prefix("\"prev\":\"")
        .and_then(|r| r.strip_suffix("\"}"))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("missing chain.prev")?
        .to_string();
    if !unhashed.starts_with('{') {
        return Err("not a JSON object".into());
    }
    let computed = hex::encode(Sha256::digest(unhashed.as_bytes()));
    Ok(ParsedLine {
        seq,
        prev,
        hash,
        computed,
    })
}

/// (seq, hash) of a line from its end alone (the front may be missing).
fn parse_chain_tail(line: &str) -> Result<(u64, String), String> {
    let start = line
        .rfind("\"chain\":{\"seq\":")
        .ok_or("missing chain.seq")?;
    let p = parse_line(&format!("{{{}", line.get(start..).unwrap_or_default()))?;
    Ok((p.seq, p.hash))
}

/// Result of verifying a log file.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Verifies the hash chain of an audit file. The error names the first bad line (1-based)
/// and what is wrong with it.
pub fn verify(path: &Path) -> Result<VerifyReport, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = BufReader::new(f);
    let mut prev_hash: Option<String> = None;
    let mut prev_seq: Option<u64> = None;
    let mut report = VerifyReport {
        entries: 0,
        first_seq: 0,
        last_seq: 0,
    };
    for (i, line) in reader.split(b'\n').enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("line {n}: {e}"))?;
        if line.is_empty() {
            continue;
        }
        let line = std::str::from_utf8(&line).map_err(|_| format!("line {n}: not UTF-8"))?;
        let p = parse_line(line).map_err(|e| format!("line {n}: {e}"))?;
        if p.computed != p.hash {
            return Err(format!("line {n}: entry was modified (hash mismatch)"));
        }
        match (&prev_hash, prev_seq) {
            (None, _) => {
                if p.seq == 1 && p.prev != ZERO_HASH {
                    return Err(format!("line {n}: first entry does not start the chain"));
                }
                report.first_seq = p.seq;
            }
            (Some(h), Some(s)) => {
                if p.seq != s + 1 {
                    return Err(format!(
                        "line {n}: sequence {} follows {s}: entries missing or reordered",
                        p.seq
                    ));
                }
                if &p.prev != h {
                    return Err(format!(
                        "line {n}: previous-hash link broken: an entry before it was removed, changed or moved"
                    ));
                }
            }
            _ => {}
        }
        prev_hash = Some(p.hash);
        prev_seq = Some(p.seq);
        report.entries += 1;
        report.last_seq = p.seq;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
