//! `snapshot create|verify|diff|restore` and `log`: audits (see schema/SNAPSHOT.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;
use taskdb::{DiffOptions, Error, Snapshot, SnapshotOptions, TaskDb};

use crate::output;
use crate::Ctx;

/// The snapshot commands.
#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Write one self-contained, verifiable snapshot of the database (--db) to OUT.
    Create(CreateArgs),
    /// Verify a snapshot offline: every hash up to the root, and the content (exit 12 if not).
    Verify(VerifyArgs),
    /// What changed from A to B (each a snapshot or a database).
    Diff(DiffArgs),
    /// Write a new database (--db NEW, which must not exist) from a verified snapshot.
    Restore(RestoreArgs),
}

/// `snapshot create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The snapshot file to write (must not exist).
    pub out: PathBuf,
    /// Free text kept in the manifest (not covered by the root).
    #[arg(long)]
    pub note: Option<String>,
    /// Seconds to wait while another process holds the database for writing.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub wait: u64,
    /// JSON output (the manifest, without its leaf lists).
    #[arg(long)]
    pub json: bool,
}

/// `snapshot verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Also require this content root (hex), e.g. one published in a paper or a ticket.
    #[arg(long, value_name = "HEX")]
    pub root: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `snapshot diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older side: a snapshot or a database.
    pub a: PathBuf,
    /// The newer side.
    pub b: PathBuf,
    /// Also list entries whose top-K neighbours changed, per space.
    #[arg(long, value_name = "K")]
    pub neighbours: Option<usize>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `snapshot restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `log`.
#[derive(Args, Debug)]
pub struct LogArgs {
    /// Only records from this sequence number on.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub since: u64,
    /// JSON output (one array of records).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: Option<&Ctx>, c: SnapshotCmd) -> taskdb::Result<i32> {
    match c {
        SnapshotCmd::Verify(a) => verify(a),
        SnapshotCmd::Diff(a) => diff(a),
        SnapshotCmd::Create(a) => create(ctx.expect("create needs --db"), a),
        SnapshotCmd::Restore(a) => restore(ctx.expect("restore needs --db"), a),
    }
}

/// The manifest without its per-record lists, for output.
#[derive(Serialize)]
struct ManifestOut<'a> {
    file: &'a std::path::Path,
    bytes: u64,
    root: &'a str,
    entries: usize,
    spaces: usize,
    outcomes: usize,
    log_records: u64,
    log_seq: u64,
    generation: u64,
    source_db_uuid: &'a str,
    created_at_ms: u64,
    taskdb_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

fn summary<'a>(file: &'a std::path::Path, m: &'a taskdb::Manifest) -> ManifestOut<'a> {
    ManifestOut {
        file,
        bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        root: &m.root,
        entries: m.entries.len(),
        spaces: m.spaces.len(),
        outcomes: m.outcomes.len(),
        log_records: m.log_records,
        log_seq: m.log_seq,
        generation: m.generation,
        source_db_uuid: &m.source_db_uuid,
        created_at_ms: m.created_at_ms,
        taskdb_version: &m.taskdb_version,
        note: m.note.as_deref(),
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> taskdb::Result<i32> {
    if !ctx.db.exists() {
        return Err(Error::NotFound {
            what: format!("database file {}", ctx.db.display()),
        });
    }
    let opts = SnapshotOptions { note: a.note };
    // redb lets one process hold a file for writing: wait for a writer to finish, like
    // sqlite's busy timeout.
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    let m = loop {
        match Snapshot::create(&ctx.db, &a.out, &opts) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    let s = summary(&a.out, &m);
    if a.json {
        output::json(&s)?;
    } else {
        println!(
            "wrote {} ({} bytes): {} entries, {} spaces, {} outcomes, write log to record {}",
            a.out.display(),
            s.bytes,
            s.entries,
            s.spaces,
            s.outcomes,
            s.log_seq
        );
        println!("root {}", m.root);
    }
    Ok(0)
}

fn verify(a: VerifyArgs) -> taskdb::Result<i32> {
    let r = Snapshot::verify(&a.file, a.root.as_deref())?;
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            ok: bool,
            file: &'a std::path::Path,
            bytes: u64,
            root: Option<&'a str>,
            expected_root: Option<&'a str>,
            entries: u64,
            spaces: u64,
            outcomes: u64,
            log_records: u64,
            problems: &'a [taskdb::Problem],
        }
        output::json(&Out {
            ok: r.ok,
            file: &a.file,
            bytes: r.bytes,
            root: r.root.as_deref(),
            expected_root: r.expected_root.as_deref(),
            entries: r.entries,
            spaces: r.spaces,
            outcomes: r.outcomes,
            log_records: r.log_records,
            problems: &r.problems,
        })?;
    } else {
        for p in &r.problems {
            println!("problem: {}: {}", p.what, p.detail);
        }
        println!(
            "{} entries, {} spaces, {} outcomes, {} write-log records, {} bytes",
            r.entries, r.spaces, r.outcomes, r.log_records, r.bytes
        );
        if let Some(root) = &r.root {
            println!("root {root}");
        }
        println!(
            "{}",
            if r.ok {
                "ok"
            } else {
                "FAILED: do not use this snapshot as evidence"
            }
        );
    }
    Ok(if r.ok {
        0
    } else {
        taskdb::exit::SNAPSHOT_INVALID
    })
}

/// Opens one side of a diff: a snapshot (verified) or a database (read-only), as every read
/// command does.
fn open_side(p: &std::path::Path) -> taskdb::Result<TaskDb> {
    Ctx {
        db: p.to_path_buf(),
        quiet: true,
    }
    .open_ro()
}

fn diff(a: DiffArgs) -> taskdb::Result<i32> {
    let (da, db) = (open_side(&a.a)?, open_side(&a.b)?);
    let d = taskdb::diff(
        &da,
        &db,
        &DiffOptions {
            neighbours: a.neighbours,
        },
    )?;
    if a.json {
        output::json(&d)?;
        return Ok(0);
    }
    for s in &d.spaces_added {
        println!("space added: {s}");
    }
    for s in &d.spaces_removed {
        println!("space removed: {s}");
    }
    for s in &d.spaces_changed {
        println!("space changed definition: {s}");
    }
    for e in &d.added {
        println!("added: {e}");
    }
    for e in &d.removed {
        println!("removed: {e}");
    }
    for c in d.reversioned.iter().chain(&d.changed) {
        let mut what = Vec::new();
        if c.kind_changed {
            what.push("kind".to_string());
        }
        if c.tags_changed {
            what.push("tags".to_string());
        }
        if c.provenance_changed {
            what.push("provenance".to_string());
        }
        if c.outputs_changed {
            what.push("outputs on U".to_string());
        }
        for v in &c.vectors {
            what.push(match (v.cosine, &v.space) {
                (Some(cos), _) => format!("vector {} (cosine {cos:.6})", v.method),
                (None, (None, Some(_))) => format!("vector {} added", v.method),
                (None, (Some(_), None)) => format!("vector {} removed", v.method),
                _ => format!("vector {} (not comparable)", v.method),
            });
        }
        let head = if c.versions.is_some() {
            format!("re-versioned: {} -> {}", c.from, c.to)
        } else {
            format!("changed: {}", c.to)
        };
        if what.is_empty() {
            println!("{head}");
        } else {
            println!("{head}: {}", what.join(", "));
        }
    }
    if d.outcomes_added + d.outcomes_removed > 0 {
        println!(
            "outcomes: {} added, {} removed",
            d.outcomes_added, d.outcomes_removed
        );
    }
    for n in &d.neighbours {
        println!(
            "neighbours of {} ({}): [{}] -> [{}]",
            n.entry,
            n.method,
            n.before.join(", "),
            n.after.join(", ")
        );
    }
    println!(
        "{}",
        if d.is_empty() {
            format!("no differences ({} entries alike)", d.unchanged)
        } else {
            format!("{} entries unchanged", d.unchanged)
        }
    );
    Ok(0)
}

fn restore(ctx: &Ctx, a: RestoreArgs) -> taskdb::Result<i32> {
    let snap = Snapshot::open(&a.file)?;
    snap.restore(&ctx.db)?;
    if a.json {
        output::json(&summary(&a.file, snap.manifest()))?;
    } else {
        println!(
            "restored {} entries from {} (root {}) into {}",
            snap.manifest().entries.len(),
            a.file.display(),
            snap.root(),
            ctx.db.display()
        );
    }
    Ok(0)
}

pub fn log(ctx: &Ctx, a: LogArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let records = db.log(a.since)?;
    if a.json {
        output::json(&records)?;
        return Ok(0);
    }
    for r in &records {
        let entries = r
            .entries
            .iter()
            .map(|e| format!("{}@{}", e.name, e.version))
            .collect::<Vec<_>>()
            .join(" ");
        let outcomes = r
            .outcomes
            .iter()
            .map(|o| format!("outcome {o}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:>6}  {}  {:<14} {}{}{}",
            r.seq,
            utc(r.time_ms),
            r.op,
            entries,
            outcomes,
            r.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        println!("        by: {} (taskdb {})", r.command, r.taskdb_version);
    }
    if records.is_empty() {
        println!(
            "no write-log records{}",
            if a.since > 0 { " from there on" } else { "" }
        );
    }
    Ok(0)
}

/// `2026-12-06T10:39:59.123Z` for ms since the Unix epoch (proleptic Gregorian, UTC).
fn utc(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::utc(1_796_553_599_123), "2026-12-06T10:39:59.123Z");
    }
}
