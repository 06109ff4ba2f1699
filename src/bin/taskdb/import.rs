//! `import FILE.jsonl`: precomputed vectors into named external spaces. Parsing, validation
//! and batching live in the library ([`taskdb::TaskDb::import_jsonl`]); this prints.
//! After each commit a line `committed batch N (M entries)` goes to stderr (unless `--quiet`).

use std::path::PathBuf;

use clap::Args;
use taskdb::{ImportEvent, ImportOptions};

use crate::Ctx;

/// `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The JSONL file.
    pub file: PathBuf,
    /// Entries per write transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Allow a line to make a new version of an existing entry with another kind or in other
    /// spaces than its latest version (that version then drops out of knn in the spaces it
    /// leaves); without it such a line is refused.
    #[arg(long)]
    pub replace: bool,
    /// Re-run an import that stopped part-way (a full disk): skip each line whose name's
    /// latest version already holds exactly its kind, space, method, vector and tags, so only
    /// the rest is written (no `name@2` duplicates); the summary counts the skipped lines.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(ctx: &Ctx, a: ImportArgs) -> taskdb::Result<i32> {
    let opts = ImportOptions {
        batch_size: usize::try_from(a.batch_size).unwrap_or(usize::MAX),
        replace: a.replace,
        skip_identical: a.resume,
        command_line: std::env::args().collect(),
    };
    // An unreadable file is reported before the database is opened (and perhaps created).
    std::fs::File::open(&a.file).map_err(|e| taskdb::Error::io(&a.file, e))?;
    let db = ctx.open_rw()?;
    if taskdb::is_export(&a.file) {
        // A file written by `taskdb export --format jsonl`: read back exactly, spaces included.
        let (n, warnings) = db.import_export(&a.file)?;
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        if a.json {
            crate::output::json(&serde_json::json!({
                "imported": n, "skipped": 0, "batches": n,
                "file": a.file.display().to_string(), "export": true, "warnings": warnings
            }))?;
        } else {
            println!("imported {n} entries from the export {}", a.file.display());
        }
        return Ok(0);
    }
    let report = db.import_jsonl(&a.file, &opts, &mut |ev| match ev {
        ImportEvent::Warning(w) => eprintln!("warning: {w}"),
        ImportEvent::Committed { batch, entries } => {
            if !ctx.quiet {
                eprintln!("committed batch {batch} ({entries} entries)");
            }
        }
    })?;
    if a.json {
        crate::output::json(&serde_json::json!({
            "imported": report.imported, "skipped": report.skipped, "batches": report.batches,
            "file": report.file.display().to_string(), "sha256": report.sha256
        }))?;
    } else {
        println!(
            "imported {} entries from {} in {} batch(es)",
            report.imported,
            report.file.display(),
            report.batches
        );
        if a.resume {
            println!(
                "skipped {} line(s) already committed (identical to their latest version)",
                report.skipped
            );
        }
    }
    Ok(0)
}
