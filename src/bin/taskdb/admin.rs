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

#[derive(Serialize)]
struct CheckOut<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a taskdb::CheckReport,
}

pub fn check(ctx: &Ctx, a: JsonArg) -> taskdb::Result<i32> {
    let mut db = ctx.open_existing_rw()?;
    let r = db.check()?;
    if a.json {
        output::json(&CheckOut {
            ok: r.ok(),
            report: &r,
        })?;
    } else {
        println!(
            "redb integrity: {}",
            match r.redb_integrity {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "not run",
            }
        );
        println!(
            "checked {} entries, {} vectors, {} spaces",
            r.entries_checked, r.vectors_checked, r.spaces_checked
        );
        for p in &r.problems {
            println!("problem: {p}");
        }
        println!("{}", if r.ok() { "ok" } else { "FAILED" });
    }
    Ok(if r.ok() {
        0
    } else {
        taskdb::error::exit::CORRUPT
    })
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
