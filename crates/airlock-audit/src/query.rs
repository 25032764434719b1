//! Queries over a device's index (see `index.rs`): filters, newest first, a page at a time
//! with a cursor (`before`: the sequence number to continue below). Every filter is a
//! bound parameter; the SQL text is fixed by which filters are present.

use std::path::Path;

use rusqlite::{types::Value as Sql, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

/// Most entries in one page.
pub const MAX_LIMIT: usize = 500;

/// How far out of time order an entry may be written (see the time range in [`run`]).
const SLACK_US: i64 = 10_000_000;

#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Inclusive bounds, microseconds since the epoch.
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub operation: Option<String>,
    pub status: Option<i64>,
    /// `hmac-sha256:…` of the accessor (entries hold accessors only as HMACs).
    pub accessor_hmac: Option<String>,
    pub display_name: Option<String>,
    pub remote_address: Option<String>,
    pub agent: Option<String>,
    pub binding: Option<String>,
    /// A broker event's kind: `inject`, `block`, `scrub`, ...
    pub kind: Option<String>,
    /// `request`, `response` or `broker`.
    pub entry_type: Option<String>,
    /// Entries holding this `hmac-sha256:…` value anywhere.
    pub hmac: Option<String>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// How far the index has read the log and what it found of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub indexed_through: u64,
    pub broken_at: Option<u64>,
}

#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Value>,
    /// The cursor for the next page (older entries), if there are more.
    pub next: Option<u64>,
    pub chain: ChainState,
}

fn db_err(e: rusqlite::Error) -> String {
    format!("audit index: {e}")
}

fn open(log: &Path) -> Result<Connection, String> {
    let path = crate::index::index_path(log);
    if !path.exists() {
        return Err("this audit device has no index yet".into());
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err)
}

/// The chain state recorded in the index.
pub fn chain_state(conn: &Connection) -> Result<ChainState, String> {
    let meta = |k: &str| -> Result<Option<String>, String> {
        conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(db_err)
    };
    Ok(ChainState {
        indexed_through: meta("last_seq")?.and_then(|v| v.parse().ok()).unwrap_or(0),
        broken_at: meta("broken_at")?.and_then(|v| v.parse().ok()),
    })
}

/// `Some(())` when `h` is an `hmac-sha256:<64 hex>` value.
pub fn hmac_is_valid(h: &str) -> Option<()> {
    crate::index::hash_key(h).map(|_| ())
}

/// Runs `q` against the index of the log at `log`.
pub fn run(log: &Path, q: &Query) -> Result<Page, String> {
    let conn = open(log)?;
    let chain = chain_state(&conn)?;
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    let mut arg = |v: Sql| {
        args.push(v);
        format!("?{}", args.len())
    };
    // A time range also becomes a range of sequence numbers, so it narrows the newest-first
    // walk instead of sorting by time: entries are written in time order give or take the
    // moments a batch waits (never seconds: a request whose entry is not written fails), so
    // the range runs from the first entry a few seconds before `from` to the last a few
    // seconds after `to`; the times themselves are still checked.
    if let Some(from) = q.from_us {
        let lo: Option<i64> = conn
            .query_row(
                "SELECT seq FROM entries WHERE ts >= ?1 ORDER BY ts LIMIT 1",
                [from.saturating_sub(SLACK_US)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        let p = arg(Sql::Integer(lo.unwrap_or(i64::MAX)));
        let t = arg(Sql::Integer(from));
        clauses.push(format!("e.seq >= {p} AND +e.ts >= {t}"));
    }
    if let Some(to) = q.to_us {
        let hi: Option<i64> = conn
            .query_row(
                "SELECT seq FROM entries WHERE ts <= ?1 ORDER BY ts DESC LIMIT 1",
                [to.saturating_add(SLACK_US)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        let p = arg(Sql::Integer(hi.unwrap_or(-1)));
        let t = arg(Sql::Integer(to));
        clauses.push(format!("e.seq <= {p} AND +e.ts <= {t}"));
    }
    if let Some(b) = q.before {
        let p = arg(Sql::Integer(b.min(i64::MAX as u64) as i64));
        clauses.push(format!("e.seq < {p}"));
    }
    let eq = [
        ("e.path", &q.path),
        ("e.op", &q.operation),
        ("e.accessor", &q.accessor_hmac),
        ("e.display_name", &q.display_name),
        ("e.remote", &q.remote_address),
        ("e.agent", &q.agent),
        ("e.binding", &q.binding),
        ("e.kind", &q.kind),
        ("e.type", &q.entry_type),
    ];
    for (col, v) in eq {
        if let Some(v) = v {
            let p = arg(Sql::Text(v.clone()));
            // Low-cardinality columns are checked while walking, not looked up: their
            // index would order by themselves, not by time.
            let unary = if matches!(col, "e.op" | "e.kind" | "e.type") {
                "+"
            } else {
                ""
            };
            clauses.push(format!("{unary}{col} = {p}"));
        }
    }
    if let Some(s) = q.status {
        let p = arg(Sql::Integer(s));
        clauses.push(format!("+e.status = {p}"));
    }
    if let Some(prefix) = &q.path_prefix {
        let lo = arg(Sql::Text(prefix.clone()));
        let hi = arg(Sql::Text(format!("{prefix}\u{10FFFF}")));
        clauses.push(format!("+e.path >= {lo} AND +e.path < {hi}"));
    }
    if let Some(h) = &q.hmac {
        let key = crate::index::hash_key(h)
            .ok_or_else(|| "hmac must be an hmac-sha256:<64 hex digits> value".to_string())?;
        let p = arg(Sql::Integer(key));
        clauses.push(format!("e.seq IN (SELECT seq FROM hashes WHERE h = {p})"));
    }
    let lim = arg(Sql::Integer(limit as i64 + 1));
    let where_ = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT e.seq, l.line FROM entries e JOIN lines l ON l.seq = e.seq {where_} ORDER BY e.seq DESC LIMIT {lim}"
    );
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db_err)?;
    let mut entries = Vec::new();
    let mut next = None;
    for row in rows {
        let (seq, line) = row.map_err(db_err)?;
        if entries.len() == limit {
            next = entries
                .last()
                .and_then(|e: &Value| e["chain"]["seq"].as_u64())
                .or(Some(seq as u64 + 1));
            break;
        }
        // A 64-bit hash prefix can collide: the full value must be in the line.
        if let Some(h) = &q.hmac {
            if !line.contains(h.as_str()) {
                continue;
            }
        }
        entries.push(
            serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({"seq": seq, "unparsed": true})),
        );
    }
    Ok(Page {
        entries,
        next,
        chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Auditor, FileDeviceConfig};
    use serde_json::json;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "airlock-audit-q-{}-{tag}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entry(i: usize, time: &str) -> Value {
        json!({
            "time": time,
            "type": if i.is_multiple_of(2) { "request" } else { "response" },
            "auth": {"accessor": format!("hmac-sha256:{:064x}", i % 3), "display_name": format!("user-{}", i % 3)},
            "request": {"operation": if i.is_multiple_of(4) { "update" } else { "read" }, "path": format!("secret/data/app/{}", i % 5), "remote_address": "127.0.0.1"},
            "response": {"status": if i.is_multiple_of(7) { 403 } else { 200 }, "data": {"v": format!("hmac-sha256:{:064x}", 1000 + i)}},
        })
    }

    async fn wait_indexed(log: &Path, n: u64) {
        for _ in 0..200 {
            if let Ok(p) = run(
                log,
                &Query {
                    limit: 1,
                    ..Default::default()
                },
            ) {
                if p.chain.indexed_through >= n {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("index did not reach {n}");
    }

    /// Deletes an index as an operator would: its file and SQLite's `-wal` and `-shm`,
    /// once the device that wrote it has stopped (its index thread ends after the last
    /// batch it was handed).
    fn remove_index(log: &Path) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        crate::index::remove(log);
    }

    fn seqs(p: &Page) -> Vec<u64> {
        p.entries
            .iter()
            .map(|e| e["chain"]["seq"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn filters_pages_and_the_chain_state() {
        let d = dir("filters");
        let log = d.join("audit.log");
        let a = Auditor::open(&[FileDeviceConfig {
            name: "file".into(),
            path: log.clone(),
            fsync: false,
            index: true,
        }])
        .unwrap();
        let entries: Vec<Value> = (0..100)
            .map(|i| {
                entry(
                    i,
                    &format!("2026-12-04T{:02}:{:02}:00Z", 10 + i / 60, i % 60),
                )
            })
            .collect();
        a.log_many(&entries).await.unwrap();
        wait_indexed(&log, 100).await;

        let all = run(
            &log,
            &Query {
                limit: 500,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.entries.len(), 100);
        assert_eq!(seqs(&all)[0], 100, "newest first");
        assert_eq!(
            all.chain,
            ChainState {
                indexed_through: 100,
                broken_at: None
            }
        );

        // Pages follow each other without gaps or repeats.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let p = run(
                &log,
                &Query {
                    limit: 30,
                    before,
                    ..Default::default()
                },
            )
            .unwrap();
            seen.extend(seqs(&p));
            match p.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=100).rev().collect::<Vec<u64>>());

        let q = |q: Query| seqs(&run(&log, &Query { limit: 500, ..q }).unwrap());
        // Entry i has seq i + 1.
        let want = |f: &dyn Fn(usize) -> bool| -> Vec<u64> {
            (0..100)
                .rev()
                .filter(|i| f(*i))
                .map(|i| i as u64 + 1)
                .collect()
        };
        assert_eq!(
            q(Query {
                path: Some("secret/data/app/2".into()),
                ..Default::default()
            }),
            want(&|i| i % 5 == 2)
        );
        assert_eq!(
            q(Query {
                path_prefix: Some("secret/data/app/".into()),
                ..Default::default()
            })
            .len(),
            100
        );
        assert!(q(Query {
            path_prefix: Some("secret/data/other".into()),
            ..Default::default()
        })
        .is_empty());
        assert_eq!(
            q(Query {
                operation: Some("update".into()),
                ..Default::default()
            }),
            want(&|i| i % 4 == 0)
        );
        assert_eq!(
            q(Query {
                status: Some(403),
                ..Default::default()
            }),
            want(&|i| i % 7 == 0)
        );
        assert_eq!(
            q(Query {
                display_name: Some("user-1".into()),
                ..Default::default()
            }),
            want(&|i| i % 3 == 1)
        );
        assert_eq!(
            q(Query {
                accessor_hmac: Some(format!("hmac-sha256:{:064x}", 2)),
                ..Default::default()
            }),
            want(&|i| i % 3 == 2)
        );
        assert_eq!(
            q(Query {
                entry_type: Some("response".into()),
                ..Default::default()
            }),
            want(&|i| i % 2 == 1)
        );
        assert_eq!(
            q(Query {
                hmac: Some(format!("hmac-sha256:{:064x}", 1042)),
                ..Default::default()
            }),
            vec![43]
        );
        assert!(q(Query {
            remote_address: Some("10.0.0.1".into()),
            ..Default::default()
        })
        .is_empty());
        // Time bounds are inclusive: minutes 10..=12 of each hour.
        let from = crate::parse_time("2026-12-04T10:10:00Z");
        let to = crate::parse_time("2026-12-04T10:12:00Z");
        assert_eq!(
            q(Query {
                from_us: from,
                to_us: to,
                ..Default::default()
            }),
            want(&|i| (10..=12).contains(&i))
        );
        assert!(run(
            &log,
            &Query {
                hmac: Some("nope".into()),
                ..Default::default()
            }
        )
        .is_err());
        drop(a);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// An auditor with one indexed file device at `log`.
    fn open_indexed(log: &std::path::Path) -> Auditor {
        Auditor::open(&[FileDeviceConfig {
            name: "file".into(),
            path: log.to_path_buf(),
            fsync: false,
            index: true,
        }])
        .unwrap()
    }

    /// How many entries a query of the whole index returns.
    fn entries_in(log: &std::path::Path) -> usize {
        run(
            log,
            &Query {
                limit: 500,
                ..Default::default()
            },
        )
        .unwrap()
        .entries
        .len()
    }

    #[tokio::test]
    async fn the_index_catches_up_is_rebuilt_and_sees_a_broken_chain() {
        let d = dir("catchup");
        let log = d.join("audit.log");
        {
            let a = Auditor::open(&[FileDeviceConfig {
                name: "file".into(),
                path: log.clone(),
                fsync: false,
                index: false,
            }])
            .unwrap();
            let e: Vec<Value> = (0..20).map(|i| entry(i, "2026-12-04T10:00:00Z")).collect();
            a.log_many(&e).await.unwrap();
        }
        // A device opened with an index indexes what the log already holds.
        let open = || open_indexed(&log);
        let a = open();
        wait_indexed(&log, 20).await;
        a.log(&entry(20, "2026-12-04T10:00:00Z")).await.unwrap();
        wait_indexed(&log, 21).await;
        assert_eq!(entries_in(&log), 21);
        drop(a);

        // Deleted, it is rebuilt from the log.
        remove_index(&log);
        let a = open();
        wait_indexed(&log, 21).await;
        drop(a);

        // A line edited behind the server's back: the chain is broken from there.
        remove_index(&log);
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[6] = lines[6].replace("secret/data/app/1", "secret/data/app/X");
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let a = open();
        wait_indexed(&log, 21).await;
        let p = run(
            &log,
            &Query {
                limit: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.chain.broken_at, Some(7));
        drop(a);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_damaged_index_is_rebuilt_from_the_log() {
        let d = dir("damaged");
        let log = d.join("audit.log");
        let open = || open_indexed(&log);
        let a = open();
        let e: Vec<Value> = (0..10).map(|i| entry(i, "2026-12-04T10:00:00Z")).collect();
        a.log_many(&e).await.unwrap();
        wait_indexed(&log, 10).await;
        drop(a);
        remove_index(&log);
        std::fs::write(crate::index::index_path(&log), b"not a database at all").unwrap();
        let a = open();
        wait_indexed(&log, 10).await;
        assert_eq!(entries_in(&log), 10);
        drop(a);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn times_parse_as_rfc_3339() {
        assert_eq!(crate::parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(crate::parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            crate::parse_time("2026-12-04T10:00:00+01:00"),
            crate::parse_time("2026-12-04T09:00:00Z")
        );
        assert_eq!(
            crate::parse_time("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-04 10:00",
            "2026-12-04T10:00:00",
        ] {
            assert_eq!(crate::parse_time(bad), None, "{bad}");
        }
    }
}
