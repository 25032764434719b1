//! The query index of a file device: a SQLite database beside the log (`<log>.index`)
//! holding every line with the fields people filter on, so "who read this path last week"
//! or "what did this agent get blocked on" is answered from an index, not by reading the
//! whole log. The log stays the record: the index is derived, filled by its own thread
//! after each batch is written (a request never waits for it), brought up to date from
//! the log at start-up, and can be deleted at any time (it is rebuilt from the log).
//!
//! While indexing, the thread also follows the hash chain (each line's hash and its link to
//! the line before), so the query answer says how far the chain is verified and where it
//! first broke, without a separate pass over the file.
//!
//! Layout: `entries` (narrow: seq, time, type, path, operation, status, accessor HMAC,
//! display name, remote address, broker agent/binding/kind) with `(column, seq)` indexes
//! so a filter also gives the newest-first order; `lines` (seq → the line); `hashes`
//! (first 64 bits of every `hmac-sha256:` value in a request's or response's data → seq),
//! for "entries holding the HMAC of this value"; `meta` (how far the log was read, the
//! chain state).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  type TEXT NOT NULL,
  path TEXT NOT NULL DEFAULT '',
  op TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL DEFAULT 0,
  accessor TEXT NOT NULL DEFAULT '',
  display_name TEXT NOT NULL DEFAULT '',
  remote TEXT NOT NULL DEFAULT '',
  agent TEXT NOT NULL DEFAULT '',
  binding TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS entries_ts ON entries(ts);
CREATE INDEX IF NOT EXISTS entries_path ON entries(path, seq);
CREATE INDEX IF NOT EXISTS entries_accessor ON entries(accessor, seq);
CREATE INDEX IF NOT EXISTS entries_display ON entries(display_name, seq);
CREATE INDEX IF NOT EXISTS entries_remote ON entries(remote, seq);
CREATE INDEX IF NOT EXISTS entries_agent ON entries(agent, seq);
CREATE INDEX IF NOT EXISTS entries_binding ON entries(binding, seq);
CREATE TABLE IF NOT EXISTS lines (seq INTEGER PRIMARY KEY, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (h, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
";

/// Where a device's index lives.
pub fn index_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".index");
    PathBuf::from(p)
}

/// Deletes the index of `log` (its file and SQLite's `-wal` and `-shm`).
pub fn remove(log: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = index_path(log).into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The index's writer (one per device, on its own thread).
pub struct Writer {
    conn: Connection,
    log: PathBuf,
    /// Bytes of the current log file already indexed.
    offset: u64,
    last_seq: u64,
    last_hash: String,
    /// The first line whose chain did not verify, if any.
    broken_at: Option<u64>,
}

fn db_err(e: rusqlite::Error) -> String {
    format!("audit index: {e}")
}

impl Writer {
    /// Opens (or creates) the index of `log` and indexes what the log holds beyond it.
    pub fn open(log: &Path) -> Result<Self, String> {
        let conn = Connection::open(index_path(log)).map_err(db_err)?;
        // A 64 MiB page cache keeps the secondary indexes' hot pages in memory while a
        // large log is indexed.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;",
        )
        .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let meta = |k: &str| -> Result<Option<String>, String> {
            conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
                .optional()
                .map_err(db_err)
        };
        let offset = meta("offset")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let last_seq = meta("last_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        let last_hash = meta("last_hash")?.unwrap_or_default();
        let broken_at = meta("broken_at")?.and_then(|v| v.parse().ok());
        let mut w = Self {
            conn,
            log: log.to_path_buf(),
            offset,
            last_seq,
            last_hash,
            broken_at,
        };
        w.catch_up()?;
        Ok(w)
    }

    /// Indexes the log's lines past `offset` (all of them if the file is shorter than the
    /// offset: it was rotated or replaced). Lines already indexed (by seq) are skipped.
    pub fn catch_up(&mut self) -> Result<(), String> {
        let mut f = match std::fs::File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", self.log.display())),
        };
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        if len < self.offset {
            self.offset = 0;
        }
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(f);
        let mut batch = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| e.to_string())?;
            // An incomplete last line is the writer's, still being written.
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            let line = String::from_utf8_lossy(&buf[..n - 1]).into_owned();
            batch.push(line);
            if batch.len() == 20_000 {
                self.add(&std::mem::take(&mut batch), true)?;
            }
        }
        self.add(&batch, true)?;
        Ok(())
    }

    /// The log was reopened at its path (rotated): the new file starts empty.
    pub fn reopened(&mut self) {
        self.offset = 0;
    }

    /// Indexes lines of the log (in order), in one transaction; lines at or below the last
    /// indexed seq are passed over. `from_file`: the lines were read from the log at
    /// `offset` (catch-up), so each moves the offset, indexed or not; otherwise they come
    /// from the writer, and only new ones do (catch-up may have read them already).
    pub fn add(&mut self, lines: &[String], from_file: bool) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db_err)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO entries (seq, ts, type, path, op, status, accessor, display_name, remote, agent, binding, kind)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(db_err)?;
            let mut ins_line = tx
                .prepare_cached("INSERT OR REPLACE INTO lines (seq, line) VALUES (?1, ?2)")
                .map_err(db_err)?;
            let mut ins_hash = tx
                .prepare_cached("INSERT OR IGNORE INTO hashes (h, seq) VALUES (?1, ?2)")
                .map_err(db_err)?;
            for line in lines {
                let step = line.len() as u64 + 1;
                if from_file {
                    self.offset += step;
                }
                let Ok((seq, prev, hash, ok)) = crate::chain_fields(line) else {
                    // Not a line the writer wrote: the chain is broken here.
                    self.broken_at.get_or_insert(self.last_seq + 1);
                    continue;
                };
                if seq <= self.last_seq {
                    continue;
                }
                if !from_file {
                    self.offset += step;
                }
                let linked =
                    self.last_seq == 0 || (seq == self.last_seq + 1 && prev == self.last_hash);
                if !(ok && linked) {
                    self.broken_at.get_or_insert(seq);
                }
                self.last_seq = seq;
                self.last_hash = hash;
                let f = Fields::of(line);
                ins.execute(params![
                    seq as i64,
                    f.ts,
                    f.kind_of_entry,
                    f.path,
                    f.op,
                    f.status,
                    f.accessor,
                    f.display_name,
                    f.remote,
                    f.agent,
                    f.binding,
                    f.broker_kind
                ])
                .map_err(db_err)?;
                ins_line
                    .execute(params![seq as i64, line])
                    .map_err(db_err)?;
                for h in f.hashes {
                    ins_hash.execute(params![h, seq as i64]).map_err(db_err)?;
                }
            }
            let mut meta = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)")
                .map_err(db_err)?;
            meta.execute(params!["offset", self.offset.to_string()])
                .map_err(db_err)?;
            meta.execute(params!["last_seq", self.last_seq.to_string()])
                .map_err(db_err)?;
            meta.execute(params!["last_hash", self.last_hash])
                .map_err(db_err)?;
            if let Some(b) = self.broken_at {
                meta.execute(params!["broken_at", b.to_string()])
                    .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }
}

/// What an entry is filtered by.
#[derive(Default)]
struct Fields {
    ts: i64,
    kind_of_entry: String,
    path: String,
    op: String,
    status: i64,
    accessor: String,
    display_name: String,
    remote: String,
    agent: String,
    binding: String,
    broker_kind: String,
    hashes: Vec<i64>,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

impl Fields {
    fn of(line: &str) -> Self {
        // An entry too deep for the parser is still indexed, by its sequence alone.
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Self {
                kind_of_entry: "unknown".into(),
                ..Default::default()
            };
        };
        let mut f = Self {
            ts: parse_time(v["time"].as_str().unwrap_or_default()).unwrap_or(0),
            kind_of_entry: s(&v["type"]),
            display_name: s(&v["auth"]["display_name"]),
            accessor: s(&v["auth"]["accessor"]),
            ..Default::default()
        };
        if f.kind_of_entry == "broker" {
            let b = &v["broker"];
            f.agent = s(&b["agent"]);
            f.binding = s(&b["binding"]);
            f.broker_kind = s(&b["kind"]);
            f.op = f.broker_kind.clone();
            f.path = format!("{}{}", s(&b["host"]), s(&b["path"]));
            f.status = b["status"].as_i64().unwrap_or(0);
        } else {
            let r = &v["request"];
            f.path = s(&r["path"]);
            f.op = s(&r["operation"]);
            f.remote = s(&r["remote_address"]);
            if f.accessor.is_empty() {
                f.accessor = s(&r["client_token_accessor"]);
            }
            f.status = v["response"]["status"].as_i64().unwrap_or(0);
        }
        // The values people look for are those a request sent or a response returned;
        // tokens and accessors have columns of their own.
        collect_hashes(&v["request"]["data"], &mut f.hashes);
        collect_hashes(&v["response"]["data"], &mut f.hashes);
        f.hashes.sort_unstable();
        f.hashes.dedup();
        f
    }
}

/// The first 64 bits of an `hmac-sha256:<hex>` value, as a key of `hashes`.
pub fn hash_key(h: &str) -> Option<i64> {
    let hex = h.strip_prefix("hmac-sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex.get(..16)?, 16)
        .ok()
        .map(|n| n as i64)
}

fn collect_hashes(v: &Value, out: &mut Vec<i64>) {
    match v {
        Value::String(s) => out.extend(hash_key(s)),
        Value::Array(a) => a.iter().for_each(|x| collect_hashes(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_hashes(x, out)),
        _ => {}
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 time (`2026-12-04T19:20:00.123456789Z`).
pub fn parse_time(t: &str) -> Option<i64> {
    let d = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(d.unix_timestamp_nanos() / 1000).ok()
}
