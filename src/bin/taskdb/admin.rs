//! Write and maintenance commands: rm, compact, check, reference-library.

use clap::Args;
use serde::Serialize;

use crate::output;
use crate::read::JsonArg;
use crate::Ctx;

/// `rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// NAME (all versions) or NAME@VERSION.
    pub name: String,
}

pub fn rm(ctx: &Ctx, a: RmArgs) -> taskdb::Result<i32> {
    let db = ctx.open_existing_rw()?;
    let ids = db.delete(&db.entry_ref(&a.name)?)?;
    db.flush()?;
    println!("deleted {} version(s) of {}", ids.len(), a.name);
    Ok(0)
}

pub fn compact(ctx: &Ctx, a: JsonArg) -> taskdb::Result<i32> {
    let mut db = ctx.open_existing_rw()?;
    let r = db.compact()?;
    if a.json {
        output::json(&r)?;
    } else {
        println!(
            "purged {} deleted entries; file {} -> {} bytes",
            r.purged, r.bytes_before, r.bytes_after
        );
    }
    Ok(0)
}

/// `check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Machine-readable JSON output (shape documented in schema/cli-json.md).
    #[arg(long)]
    pub json: bool,
    /// Check without writing: verify everything a read-only open can (every record and
    /// vector checksum, the name index, each graph against the store; not redb's own
    /// integrity check, which needs write access) and report what a writable check would
    /// repair, without repairing it. Chosen automatically when the database file, its graph
    /// directory or the directory holding it cannot be written.
    #[arg(long)]
    pub read_only: bool,
}

#[derive(Serialize)]
struct CheckOut<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a taskdb::CheckReport,
}

/// Why `path` cannot be written by this process, if it cannot (`access(2)` with `W_OK`: a
/// mode that forbids it, or a read-only mount).
fn not_writable(path: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        None
    } else {
        Some(format!(
            "{}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ))
    }
}

/// Why a writable check is impossible here: the database file, its graph directory (or,
/// when that does not exist yet, the directory that would hold it) cannot be written.
fn read_only_reason(db: &std::path::Path) -> Option<String> {
    if let Some(why) = not_writable(db) {
        return Some(why);
    }
    let idx = taskdb::files::index_dir(db);
    if idx.exists() {
        return not_writable(&idx);
    }
    not_writable(&taskdb::files::parent_dir(db))
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> taskdb::Result<i32> {
    if !ctx.db.exists() {
        return Err(taskdb::Error::NotFound {
            what: format!("database file {}", ctx.db.display()),
        });
    }
    let read_only = a.read_only || {
        match read_only_reason(&ctx.db) {
            Some(why) => {
                eprintln!(
                    "note: cannot write ({why}); checking read-only: nothing is repaired \
                     (pass --read-only to choose this yourself)"
                );
                true
            }
            None => false,
        }
    };
    let mut db = if read_only {
        taskdb::TaskDb::open_with(
            &ctx.db,
            taskdb::OpenOptions {
                read_only: true,
                ..taskdb::OpenOptions::default()
            },
        )?
        // (After a crash, recovery needs a writable open: NeedsRecovery, exit 5, says so.)
    } else {
        ctx.open_existing_rw()?
    };
    let r = db.check()?;
    if a.json {
        output::json(&CheckOut {
            ok: r.ok(),
            report: &r,
        })?;
    } else {
        if r.read_only {
            println!("read-only check: nothing was written");
        }
        println!(
            "redb integrity: {}",
            match r.redb_integrity {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "not run (read-only check; it needs write access)",
            }
        );
        println!(
            "checked {} entries, {} vectors, {} model outputs on U, {} spaces, {} write-log records",
            r.entries_checked,
            r.vectors_checked,
            r.outputs_checked,
            r.spaces_checked,
            r.log_records_checked
        );
        for p in &r.problems {
            println!("problem: {p}");
        }
        for f in &r.repaired {
            println!(
                "{}: space {} ({}): {} ({})",
                if f.done { "repaired" } else { "would repair" },
                f.space_id,
                f.space,
                f.action,
                f.reason
            );
        }
        if r.read_only && !r.repaired.is_empty() {
            println!(
                "run `taskdb check` with write access to make the repairs above (the store is \
                 sound; only derived graphs are rebuilt)"
            );
        }
        println!("{}", if r.ok() { "ok" } else { "FAILED" });
    }
    Ok(if r.ok() { 0 } else { taskdb::exit::CORRUPT })
}

/// `reference-library`.
#[derive(clap::Subcommand, Debug)]
pub enum RefLibCmd {
    /// Write the embeddings of this database's entries (one method, one space) as a reference
    /// library: its mean centres the spaces that later ingestions create with
    /// `--reference-library FILE`, so their answers stay fixed.
    Export(RefLibExportArgs),
    /// Describe a reference library file (or the built-in one).
    Info(RefLibInfoArgs),
}

/// `reference-library export`.
#[derive(Args, Debug)]
pub struct RefLibExportArgs {
    /// Output file (JSON).
    pub file: std::path::PathBuf,
    /// The method whose embeddings are exported (a matrix method).
    #[arg(long, default_value = "scatter")]
    pub method: taskdb::MethodKind,
    /// A name recorded in the library and in the spaces it centres.
    #[arg(long, default_value = "user-reference-library")]
    pub name: String,
    #[command(flatten)]
    pub filter: crate::read::FilterArgs,
}

/// `reference-library info`.
#[derive(Args, Debug)]
pub struct RefLibInfoArgs {
    /// A library file; the built-in one when omitted.
    pub file: Option<std::path::PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct RefLibSummary {
    name: String,
    method: String,
    surrogate_fingerprint: String,
    probe_fingerprint: String,
    sha256: String,
    tasks: Vec<(String, String, String)>,
}

pub fn reference_library(ctx: Option<&Ctx>, c: RefLibCmd) -> taskdb::Result<i32> {
    match c {
        RefLibCmd::Export(a) => {
            let ctx = ctx.ok_or_else(|| taskdb::Error::Internal("no database".into()))?;
            let db = ctx.open_ro()?;
            let lib =
                taskdb::ReferenceLibrary::export(&db, a.method, &a.filter.filter()?, &a.name)?;
            let bytes = lib.to_json()?;
            output::write_atomic(&a.file, &bytes)?;
            eprintln!("wrote {} to {}", lib.describe(), a.file.display());
            Ok(0)
        }
        RefLibCmd::Info(a) => {
            let lib = match &a.file {
                Some(p) => {
                    let bytes = std::fs::read(p).map_err(|e| taskdb::Error::Io {
                        path: p.clone(),
                        source: e,
                    })?;
                    taskdb::ReferenceLibrary::from_json(&bytes, &p.display().to_string())?
                }
                None => taskdb::ReferenceLibrary::builtin()?,
            };
            let sum = RefLibSummary {
                name: lib.name.clone(),
                method: lib.method.to_string(),
                surrogate_fingerprint: lib.surrogate_fingerprint.clone(),
                probe_fingerprint: lib.probe_fingerprint.clone(),
                sha256: lib.sha256(),
                tasks: lib
                    .tasks
                    .iter()
                    .map(|t| (t.name.clone(), t.kind.to_string(), t.source.clone()))
                    .collect(),
            };
            if a.json {
                output::json(&sum)?;
            } else {
                println!("{}", lib.describe());
                println!("method:    {}", sum.method);
                println!("surrogate: {}", sum.surrogate_fingerprint);
                println!("probe set: {}", sum.probe_fingerprint);
                for (n, k, src) in &sum.tasks {
                    println!("  {n} ({k}) {src}");
                }
            }
            Ok(0)
        }
    }
}
