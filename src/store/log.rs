//! The write log: one record per committed write, appended inside the write's own redb
//! transaction (so a write and its record land together or not at all), each record carrying
//! the SHA-256 of the one before it (a hash chain) and the head hash kept in `meta.log_head`.
//!
//! Record `n` is stored as its JSON bytes under key `n` of the `log` table; its hash is the
//! SHA-256 of exactly those bytes. Editing, removing or reordering any record breaks the chain
//! ([`verify_chain`]); `check` and `snapshot verify` run it. The chain proves the log is intact
//! against damage and casual edits, not against someone who rewrites every later record and the
//! head: a head hash published elsewhere (or a snapshot's root) is the anchor for that.
//!
//! A database made before the log existed gets a log at its first write after the upgrade: a
//! `log-start` record saying how many writes came before (its store generation), then the
//! write's own record.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tables::{open_write, storage};
use super::{LOG, META};
use crate::error::{Error, Result};

/// The `prev` of the first record: 64 zeros.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest command line a record keeps (longer ones are cut, with a note).
const MAX_COMMAND: usize = 4096;

/// One record of the write log (see [`crate::TaskDb::log`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Sequence number: 1, 2, … with no gaps.
    pub seq: u64,
    /// When the write committed (ms since the Unix epoch).
    pub time_ms: u64,
    /// The operation: `create`, `log-start`, `put`, `delete`, `compact`, `outcome-add`,
    /// `outcome-remove` or `restore`.
    pub op: String,
    /// The entries the write added, deleted or purged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<LogEntry>,
    /// The outcome ids the write added or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<u64>,
    /// Free text: what a `log-start` or `restore` record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The store generation after the write.
    pub generation: u64,
    /// The command line of the process that wrote (its `argv`, shell-quoted).
    pub command: String,
    /// The taskdb version that wrote.
    pub taskdb_version: String,
    /// SHA-256 (hex) of the previous record's stored bytes; 64 zeros for the first.
    pub prev: String,
}

/// An entry named by a [`LogRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
}

/// What a write tells the log about itself.
pub(crate) struct LogOp {
    pub op: &'static str,
    pub entries: Vec<LogEntry>,
    pub outcomes: Vec<u64>,
    pub detail: Option<String>,
}

impl LogOp {
    pub(crate) fn new(op: &'static str) -> LogOp {
        LogOp {
            op,
            entries: Vec::new(),
            outcomes: Vec::new(),
            detail: None,
        }
    }
}

/// The hex SHA-256 of a record's stored bytes.
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// This process's command line, shell-quoted where needed (computed once per process).
pub(crate) fn command_line() -> String {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(build_command_line).clone()
}

fn build_command_line() -> String {
    let mut s = std::env::args_os()
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    if s.len() > MAX_COMMAND {
        let mut cut = MAX_COMMAND;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …(cut)");
    }
    s
}

fn quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn encode(r: &LogRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(r).map_err(|e| Error::Internal(format!("encoding a log record: {e}")))
}

/// Decodes a stored record (the bytes under key `seq`).
pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<LogRecord> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        what: format!("write log record {seq}"),
        detail: format!("undecodable: {e}"),
    })
}

/// Appends the record of `op` inside `txn` (call it after the write's own changes, before the
/// commit) and moves `meta.log_head` to it. A log that is empty although the write is not the
/// database's creation belongs to a database made before the log: a `log-start` record comes
/// first.
pub(crate) fn append(txn: &WriteTransaction, op: LogOp) -> Result<u64> {
    // The store generation (as this write left it) and the recorded head, in one read of meta.
    let (gen, head) = {
        let m = open_write(txn, META)?;
        let get = |k: &str| m.get(k.as_bytes()).map_err(storage("reading meta"));
        let gen = get("generation")?
            .and_then(|g| g.value().try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        let head = get("log_head")?.map(|h| hex::encode(h.value()));
        (gen, head)
    };
    let mut t = open_write(txn, LOG)?;
    // The head in meta is the hash of the last record (`check` verifies that); only a log
    // without a recorded head rehashes its last record.
    let last = t.last().map_err(storage("reading the write log"))?;
    let (mut seq, mut prev) = match (last, head) {
        (Some((k, _)), Some(h)) => (k.value() + 1, h),
        (Some((k, v)), None) => (k.value() + 1, hash_hex(v.value())),
        (None, _) => (1, GENESIS.to_string()),
    };
    let now = super::now_ms();
    let command = command_line();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let mut records = Vec::new();
    if seq == 1 && op.op != "create" {
        records.push(LogRecord {
            seq: 0,
            time_ms: now,
            op: "log-start".into(),
            entries: Vec::new(),
            outcomes: Vec::new(),
            detail: Some(format!(
                "this database was written before taskdb kept a write log: the writes that made \
                 store generations 1 to {} are not recorded; the log starts here",
                gen.saturating_sub(1)
            )),
            generation: gen.saturating_sub(1),
            command: command.clone(),
            taskdb_version: version.clone(),
            prev: String::new(),
        });
    }
    records.push(LogRecord {
        seq: 0,
        time_ms: now,
        op: op.op.into(),
        entries: op.entries,
        outcomes: op.outcomes,
        detail: op.detail,
        generation: gen,
        command,
        taskdb_version: version,
        prev: String::new(),
    });
    for mut r in records {
        r.seq = seq;
        r.prev = prev;
        let bytes = encode(&r)?;
        t.insert(seq, bytes.as_slice())
            .map_err(storage("appending to the write log"))?;
        prev = hash_hex(&bytes);
        seq += 1;
    }
    drop(t);
    let mut m = open_write(txn, META)?;
    let head = hex::decode(&prev).map_err(|e| Error::Internal(format!("log head: {e}")))?;
    m.insert(b"log_head".as_slice(), head.as_slice())
        .map_err(storage("writing meta"))?;
    Ok(seq - 1)
}

/// What [`verify_chain`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogCheck {
    /// Records read.
    pub records: u64,
    /// The last record's sequence number (0 when the log is empty).
    pub last_seq: u64,
    /// The hex SHA-256 of the last record (the head), or `None` when the log is empty.
    pub head: Option<String>,
    /// Every break found, naming the record; empty when the chain is whole.
    pub problems: Vec<String>,
}

/// Verifies a chain given as `(key, stored bytes)` in key order, against the recorded head
/// (`None`: no head recorded).
pub(crate) fn verify_records<'a>(
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    recorded_head: Option<&str>,
) -> LogCheck {
    let mut c = LogCheck::default();
    let mut prev = GENESIS.to_string();
    let mut expect_seq = None;
    for (k, bytes) in records {
        c.records += 1;
        let first = expect_seq.is_none();
        let want = expect_seq.unwrap_or(k);
        if k != want {
            c.problems.push(format!(
                "write log: record {want} is missing (the next one is {k})"
            ));
        }
        match decode(k, bytes) {
            Ok(r) => {
                if r.seq != k {
                    c.problems.push(format!(
                        "write log record {k}: it says it is record {} (edited?)",
                        r.seq
                    ));
                }
                // A log that starts after record 1 was cut at its start: its first `prev` cannot
                // be checked, which is itself a problem unless it is record 1.
                if first && k != 1 {
                    c.problems
                        .push(format!("write log: records 1 to {} are missing", k - 1));
                } else if r.prev != prev {
                    c.problems.push(format!(
                        "write log record {k}: its `prev` hash does not match record {} (record \
                         {} was edited, removed or reordered)",
                        k.saturating_sub(1),
                        k.saturating_sub(1)
                    ));
                }
            }
            Err(e) => c.problems.push(e.to_string()),
        }
        prev = hash_hex(bytes);
        c.last_seq = k;
        expect_seq = Some(k + 1);
    }
    let head = (c.records > 0).then(|| prev.clone());
    match (recorded_head, &head) {
        (Some(h), Some(p)) if h != p => c.problems.push(format!(
            "write log: the last record ({}) does not match the recorded head hash (it was \
             edited, or records after it were removed)",
            c.last_seq
        )),
        (Some(_), None) => c.problems.push(
            "write log: a head hash is recorded but the log is empty (it was removed)".into(),
        ),
        (None, Some(_)) => c
            .problems
            .push("write log: records exist but no head hash is recorded".into()),
        _ => {}
    }
    c.head = head;
    c
}

/// The recorded head (`meta.log_head`), as hex.
pub(crate) fn recorded_head(txn: &ReadTransaction) -> Result<Option<String>> {
    let m = super::v1::MetaTable::open(txn).map_err(|e| Error::storage("opening table meta", e))?;
    Ok(m.get("log_head")?.map(hex::encode))
}

/// Every stored record as `(seq, bytes)`, from `since` on. A database without a log has none.
pub(crate) fn read_raw(txn: &ReadTransaction, since: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    let t = match txn.open_table(LOG) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage("opening table log", e)),
    };
    let mut out = Vec::with_capacity(t.len().unwrap_or(0) as usize);
    for row in t.range(since..).map_err(storage("reading the write log"))? {
        let (k, v) = row.map_err(storage("reading the write log"))?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Verifies the whole chain of a database.
pub(crate) fn verify_chain(txn: &ReadTransaction) -> Result<LogCheck> {
    let raw = read_raw(txn, 0)?;
    let head = recorded_head(txn)?;
    Ok(verify_records(
        raw.iter().map(|(k, v)| (*k, v.as_slice())),
        head.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<(u64, Vec<u8>)> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let r = LogRecord {
                    seq,
                    time_ms: seq,
                    op: "put".into(),
                    entries: vec![],
                    outcomes: vec![],
                    detail: None,
                    generation: seq,
                    command: "t".into(),
                    taskdb_version: "0".into(),
                    prev: prev.clone(),
                };
                let b = encode(&r).unwrap();
                prev = hash_hex(&b);
                (seq, b)
            })
            .collect()
    }

    fn check(c: &[(u64, Vec<u8>)], head: Option<&str>) -> LogCheck {
        verify_records(c.iter().map(|(k, v)| (*k, v.as_slice())), head)
    }

    #[test]
    fn a_whole_chain_passes_and_every_break_is_named() {
        let c = chain(5);
        let head = hash_hex(&c[4].1);
        let ok = check(&c, Some(&head));
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!((ok.records, ok.last_seq), (5, 5));

        // An edited middle record: the next one's prev no longer matches.
        let mut e = c.clone();
        e[2].1 = String::from_utf8(e[2].1.clone())
            .unwrap()
            .replace("\"put\"", "\"rm\"")
            .into_bytes();
        let r = check(&e, Some(&head));
        assert!(r.problems.iter().any(|p| p.contains("record 4")), "{r:?}");

        // An edited last record: the head no longer matches.
        let mut e = c.clone();
        e[4].1 = String::from_utf8(e[4].1.clone())
            .unwrap()
            .replace("\"t\"", "\"x\"")
            .into_bytes();
        assert!(check(&e, Some(&head))
            .problems
            .iter()
            .any(|p| p.contains("head")));

        // A removed middle record, and a removed last one.
        let mut e = c.clone();
        e.remove(2);
        assert!(check(&e, Some(&head))
            .problems
            .iter()
            .any(|p| p.contains("record 3 is missing")));
        let e = &c[..4];
        assert!(!check(e, Some(&head)).problems.is_empty());
        // A removed first record.
        assert!(check(&c[1..], Some(&head))
            .problems
            .iter()
            .any(|p| p.contains("records 1 to 1 are missing")));
    }

    #[test]
    fn command_lines_are_quoted_for_a_shell() {
        assert_eq!(quote("--db"), "--db");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
