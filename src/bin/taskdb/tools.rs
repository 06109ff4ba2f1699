//! `probe …` and `surrogate …`: the tools around ingestion that need no database (export or
//! describe the probe set U; describe the surrogate, or embed texts with it).

use std::io::Write;

use taskdb::Error;
use taskdb_sources as sources;
use taskdb_surrogate as surrogate;

use crate::ingest::{load_probe, ProbeCmd, SurrogateCmd};
use crate::output;

pub fn probe(cmd: ProbeCmd) -> taskdb::Result<i32> {
    match cmd {
        ProbeCmd::Export(a) => {
            let p = load_probe(&a.probe)?;
            let prompt = a
                .prompt
                .as_deref()
                .map(sources::PromptTemplate::parse)
                .transpose()?;
            if let Some(t) = &prompt {
                t.check(&p)?;
            }
            let io = |e: std::io::Error| Error::io(&a.file, e);
            if a.file.as_os_str() == "-" {
                let out = std::io::stdout().lock();
                p.export_with_prompt(std::io::BufWriter::new(out), prompt.as_ref())
                    .map_err(io)?;
            } else {
                // Write beside, then rename: a failed export never leaves half a file.
                taskdb::files::write_atomic_with(&a.file, |w| {
                    p.export_with_prompt(w, prompt.as_ref())
                })
                .map_err(io)?;
                eprintln!("wrote {} probe texts to {}", p.len(), a.file.display());
            }
            Ok(0)
        }
        ProbeCmd::Info(a) => {
            let p = load_probe(&a.probe)?;
            let info = serde_json::json!({
                "name": p.name,
                "fingerprint": p.fingerprint_hex(),
                "texts": p.len(),
                "pairs": p.has_pairs(),
            });
            if a.json {
                output::json(&info)?;
            } else {
                println!(
                    "probe set {}: {} texts{}, fingerprint {}",
                    p.name,
                    p.len(),
                    if p.has_pairs() { " (pairs)" } else { "" },
                    p.fingerprint_hex()
                );
            }
            Ok(0)
        }
    }
}

pub fn surrogate_cmd(quiet: bool, cmd: SurrogateCmd) -> taskdb::Result<i32> {
    match cmd {
        SurrogateCmd::Info(a) => {
            let s = a.surrogate.load(true)?;
            let i = s.info();
            if a.json {
                output::json(i)?;
            } else {
                println!("surrogate           {}", i.name);
                println!("fingerprint         {}", i.fingerprint);
                println!("manifest            {}", i.manifest_path.display());
                println!(
                    "dimension           {} ({:?} pooling{}, max {} tokens)",
                    i.dim,
                    i.pooling,
                    if i.normalize { ", L2-normalised" } else { "" },
                    i.max_length
                );
                println!(
                    "execution provider  {} (requested {})",
                    i.execution_provider, i.device_requested
                );
                println!(
                    "onnx runtime        {} at {} ({:?})",
                    i.ort_version,
                    i.ort_library.display(),
                    i.ort_source
                );
                println!(
                    "threads             {} intra-op × {} session(s)",
                    i.intra_threads, i.workers
                );
                for w in &i.warnings {
                    println!("warning             {w}");
                }
            }
            Ok(0)
        }
        SurrogateCmd::Embed(a) => {
            let s = a.surrogate.load(quiet)?;
            let stats = match &a.output {
                Some(path) => {
                    // embed_jsonl's own errors pass through the io::Error unchanged.
                    let mut failed = None;
                    let st = taskdb::files::write_atomic_with(path, |w| {
                        surrogate::embed_jsonl(&s, &a.file, w).map_err(|e| {
                            failed = Some(e);
                            std::io::Error::other("embedding failed")
                        })
                    });
                    match (st, failed) {
                        (_, Some(e)) => return Err(e.into()),
                        (Ok(st), None) => st,
                        (Err(e), None) => return Err(Error::io(path, e)),
                    }
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let st = surrogate::embed_jsonl(&s, &a.file, &mut out)?;
                    out.flush().map_err(|e| Error::io("stdout", e))?;
                    st
                }
            };
            if !quiet {
                eprintln!(
                    "embedded {} inputs ({} truncated) in {:.2} s",
                    stats.count,
                    stats.truncated,
                    stats.total.as_secs_f64()
                );
            }
            Ok(0)
        }
    }
}

/// `export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// `jsonl`: one file, read back exactly by `import`; `parquet`: a directory with one file
    /// per space.
    #[arg(long, value_parser = ["jsonl", "parquet"], default_value = "jsonl")]
    pub format: String,
    /// The file (jsonl) or directory (parquet) to write; it must not exist.
    pub out: std::path::PathBuf,
    /// JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn export(ctx: &crate::Ctx, a: ExportArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let r = match a.format.as_str() {
        "parquet" => db.export_parquet(&a.out)?,
        _ => db.export_jsonl(&a.out)?,
    };
    for s in &r.skipped {
        eprintln!("warning: left out of the export (damaged): {s}");
    }
    if a.json {
        crate::output::json(&r)?;
    } else {
        println!(
            "exported {} entries ({} rows, {} spaces) to {}",
            r.entries,
            r.rows,
            r.spaces,
            a.out.display()
        );
    }
    Ok(0)
}
