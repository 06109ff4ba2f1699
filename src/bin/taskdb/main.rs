//! `taskdb`: the command-line shell over the taskdb library.
//!
//! Thin by design: argument parsing, opening the database, rendering (human or `--json`) and
//! exit codes. Each command group lives in its own module; add a new group by adding a variant
//! to [`Command`] and a module with a `run` function.

mod admin;
mod import;
mod ingest;
mod map;
mod output;
mod prompts;
mod read;
mod snapshot;
mod tools;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taskdb::{Error, OpenOptions, TaskDb};

/// An embedded database of task embeddings (datasets and models in one vector space).
#[derive(Parser, Debug)]
#[command(name = "taskdb", version, about, propagate_version = true)]
pub struct Cli {
    /// Path of the database file.
    #[arg(long, global = true, env = "TASKDB_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import precomputed vectors from a JSONL file (one entry a line), or a file written by
    /// `export --format jsonl` (exactly, spaces included).
    Import(import::ImportArgs),
    /// Write every live entry as JSON lines or Parquet (for vector stores and analysis).
    Export(tools::ExportArgs),
    /// List entries (latest versions).
    List(read::ListArgs),
    /// Show one entry (NAME or NAME@VERSION).
    Show(read::ShowArgs),
    /// A model entry's outputs on U as stored at ingestion (each answered row's label or
    /// probabilities), as text or JSON lines.
    Outputs(read::OutputsArgs),
    /// Delete NAME (all versions) or NAME@VERSION.
    Rm(admin::RmArgs),
    /// Nearest neighbours of an entry.
    Knn(read::KnnArgs),
    /// Database statistics.
    Stats(read::JsonArg),
    /// Purge deleted entries, rebuild graphs, compact the file. On a file made before format 3
    /// it also rewrites the vectors in parts that pack into pages (up to a quarter smaller;
    /// needs free space for two copies of the vectors until it is done).
    Compact(read::JsonArg),
    /// Verify integrity: redb, every vector checksum, index agreement.
    Check(admin::CheckArgs),
    /// Compute and store a task embedding of a dataset or a model.
    #[command(subcommand)]
    Ingest(Box<ingest::IngestCmd>),
    /// The probe set U that models are run on.
    #[command(subcommand)]
    Probe(ingest::ProbeCmd),
    /// The surrogate model that computes features (info, raw embeddings).
    #[command(subcommand)]
    Surrogate(ingest::SurrogateCmd),
    /// Reference libraries: frozen sets of task embeddings that centre new spaces.
    #[command(subcommand, name = "reference-library")]
    ReferenceLibrary(admin::RefLibCmd),
    /// Which stored tasks to train on before TARGET, with the evidence for each.
    Recommend(transfer::RecommendArgs),
    /// Two tasks side by side: similarity and neighbour ranks per space, provenance.
    Compare(transfer::CompareArgs),
    /// Recorded transfer outcomes (what training on a source did to a target).
    #[command(subcommand)]
    Outcome(transfer::OutcomeCmd),
    /// Evaluate taskdb on your own data (leave-one-target-out).
    #[command(subcommand)]
    Eval(transfer::EvalCmd),
    /// Offline snapshots for audits: create, verify, diff, restore.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// The write log: every write, hash-chained (`--since N`, `--json`).
    Log(snapshot::LogArgs),
    /// Draw one task space: SVG, PNG, self-contained HTML (hover for neighbours), or JSON
    /// coordinates.
    Map(map::MapArgs),
    /// Rank stored (LLM, prompt) model entries as prompts for a dataset (FUTE's rule), with
    /// each one's output entropy and mutual information on U beside.
    #[command(name = "select-prompt")]
    SelectPrompt(transfer::SelectPromptArgs),
}

/// Global options every command sees.
pub struct Ctx {
    pub db: PathBuf,
    pub quiet: bool,
}

impl Ctx {
    /// Opens for writing.
    pub fn open_rw(&self) -> taskdb::Result<TaskDb> {
        TaskDb::open(&self.db)
    }
    /// Opens an existing database for writing (rm, compact, check): only ingest and import
    /// create a database, so a mistyped `--db` is "not found" (exit 3), not a new empty file.
    pub fn open_existing_rw(&self) -> taskdb::Result<TaskDb> {
        if !self.db.exists() {
            return Err(Error::NotFound {
                what: format!("database file {}", self.db.display()),
            });
        }
        self.open_rw()
    }
    /// Opens for reading: a database, or a snapshot (verified, held in memory). The file must
    /// exist. After a crash a read-only open is refused until recovery, so this falls back to a
    /// writable open, which recovers.
    pub fn open_ro(&self) -> taskdb::Result<TaskDb> {
        if taskdb::is_snapshot(&self.db) {
            return TaskDb::open_snapshot(&self.db);
        }
        self.open_ro_database()
    }
    /// [`Ctx::open_ro`] for a database only (a snapshot is refused, as for a writable open).
    pub fn open_ro_database(&self) -> taskdb::Result<TaskDb> {
        if !self.db.exists() {
            return Err(Error::NotFound {
                what: format!("database file {}", self.db.display()),
            });
        }
        match TaskDb::open_with(
            &self.db,
            OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        ) {
            Err(Error::NeedsRecovery { .. }) => TaskDb::open(&self.db),
            other => other,
        }
    }
}

fn main() -> ExitCode {
    // Like other Unix filters: a closed stdout (`taskdb list | head`) ends the process quietly
    // instead of panicking in println!. This is only for taskdb's own stdout/stderr: the
    // thread that feeds a model command's stdin blocks SIGPIPE, so a model that exits early
    // gives EPIPE and the documented error (exit 10), never a SIGPIPE death.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Model commands run in their own process groups (so a timeout can end their
    // grandchildren), out of reach of the terminal's Ctrl-C: on SIGINT/SIGTERM/SIGHUP/SIGQUIT
    // end them, then die of the signal as before.
    taskdb_sources::install_signal_cleanup();
    // A panic of the storage layer on a damaged file is turned into a "corrupt" error (exit 7)
    // that carries its message; the default hook's report of it would only confuse.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !taskdb::panic_is_contained() {
            default_hook(info);
        } else if std::env::var_os("TASKDB_REPORT_CONTAINED_PANICS").is_some() {
            // For the reliability tests: a panic taskdb contained (turned into an error).
            eprintln!("taskdb: contained panic: {info}");
        }
    }));
    let cli = Cli::parse();
    // Commands that need no database.
    let res = match cli.command {
        Command::Probe(c) => Some(tools::probe(c)),
        Command::Surrogate(c) => Some(tools::surrogate_cmd(cli.quiet, c)),
        Command::ReferenceLibrary(c @ admin::RefLibCmd::Info(_)) => {
            Some(admin::reference_library(None, c))
        }
        Command::Snapshot(
            c @ (snapshot::SnapshotCmd::Verify(_) | snapshot::SnapshotCmd::Diff(_)),
        ) => Some(snapshot::run(None, c)),
        other => {
            return run_db(cli.db, cli.quiet, other);
        }
    };
    finish(res.expect("set above"))
}

fn run_db(db: Option<PathBuf>, quiet: bool, command: Command) -> ExitCode {
    let Some(db) = db else {
        eprintln!("error: no database given: pass --db PATH or set TASKDB_DB");
        return ExitCode::from(taskdb::exit::USAGE as u8);
    };
    let ctx = Ctx { db, quiet };
    let res = match command {
        Command::Import(a) => import::run(&ctx, a),
        Command::Export(a) => tools::export(&ctx, a),
        Command::List(a) => read::list(&ctx, a),
        Command::Show(a) => read::show(&ctx, a),
        Command::Outputs(a) => read::outputs(&ctx, a),
        Command::Knn(a) => read::knn(&ctx, a),
        Command::Stats(a) => read::stats(&ctx, a),
        Command::Rm(a) => admin::rm(&ctx, a),
        Command::Compact(a) => admin::compact(&ctx, a),
        Command::Check(a) => admin::check(&ctx, a),
        Command::ReferenceLibrary(c) => admin::reference_library(Some(&ctx), c),
        Command::Ingest(c) => ingest::ingest(&ctx, *c),
        Command::Probe(c) => tools::probe(c),
        Command::Surrogate(c) => tools::surrogate_cmd(ctx.quiet, c),
        Command::Recommend(a) => transfer::recommend(&ctx, a),
        Command::Compare(a) => transfer::compare(&ctx, a),
        Command::Outcome(c) => transfer::outcome(&ctx, c),
        Command::Eval(c) => transfer::eval(&ctx, c),
        Command::SelectPrompt(a) => transfer::select_prompt(&ctx, a),
        Command::Snapshot(c) => snapshot::run(Some(&ctx), c),
        Command::Log(a) => snapshot::log(&ctx, a),
        Command::Map(a) => map::map(&ctx, a),
    };
    finish(res)
}

fn finish(res: taskdb::Result<i32>) -> ExitCode {
    match res {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
