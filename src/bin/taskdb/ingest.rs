//! `ingest dataset|model`, `probe export`, `surrogate info|embed`: computing task embeddings.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskdb::ingest::{IngestOptions, IngestReport, Ingestor, ModelSource, Progress};
use taskdb::{Error, MethodKind};
use taskdb_sources as sources;
use taskdb_surrogate as surrogate;

use crate::output::{self, parse_tag};
use crate::Ctx;

/// Surrogate options shared by every command that runs it.
#[derive(Args, Debug, Clone)]
pub struct SurrogateArgs {
    /// The surrogate: a directory holding surrogate.json, or the manifest file
    /// (default: the provisioned all-MiniLM-L6-v2, see scripts/provision.sh).
    #[arg(long, value_name = "DIR")]
    pub surrogate: Option<PathBuf>,
    /// Where to run it: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Fail instead of falling back to CPU when the device cannot be used.
    #[arg(long)]
    pub strict_device: bool,
    /// Intra-op threads (0: all cores; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// ONNX Runtime library to load (default: ORT_DYLIB_PATH, the provisioned copy, Python's).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
}

/// Refuses absurd `--threads` (100,000 threads made ONNX Runtime hang instead of failing).
pub fn check_threads(threads: usize) -> taskdb::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = 4 * cores;
    if threads > max {
        return Err(Error::invalid(
            "--threads",
            format!(
                "{threads} threads is more than 4 per core ({cores} cores here, so at most \
                 {max}); use 0 for all cores"
            ),
        ));
    }
    Ok(())
}

impl SurrogateArgs {
    pub fn load(&self, quiet: bool) -> taskdb::Result<surrogate::Surrogate> {
        check_threads(self.threads)?;
        let opts = surrogate::Options {
            device: self.device.parse()?,
            strict: self.strict_device,
            intra_threads: self.threads,
            ort_library: self.ort_library.clone(),
            ..surrogate::Options::default()
        };
        let dir = self
            .surrogate
            .clone()
            .unwrap_or_else(surrogate::default_surrogate_dir);
        let manifest = if dir.is_dir() {
            dir.join("surrogate.json")
        } else {
            dir.clone()
        };
        if !manifest.exists() {
            let hint = if self.surrogate.is_none() {
                "the default surrogate is not installed: run `bash scripts/provision.sh` (it \
                 downloads and verifies it; safe to re-run), or pass --surrogate DIR"
            } else {
                "no surrogate there: pass --surrogate DIR with the directory holding \
                 surrogate.json (or the manifest file itself); `bash scripts/provision.sh` \
                 installs the default one"
            };
            return Err(Error::Surrogate(surrogate::Error::Manifest {
                path: manifest,
                message: format!("not found; {hint}"),
            }));
        }
        let s = surrogate::Surrogate::load(&dir, &opts)?;
        // Warnings (a CUDA fallback, a second ONNX Runtime) are not progress: --quiet does
        // not hide them.
        let _ = quiet;
        for w in &s.info().warnings {
            eprintln!("warning: {w}");
        }
        Ok(s)
    }
}

/// Options shared by `ingest dataset` and `ingest model`.
#[derive(Args, Debug)]
pub struct CommonIngestArgs {
    /// Compute only this method (repeatable; default: all that apply).
    #[arg(long = "method", value_name = "scatter|fisher|tuned|textemb")]
    pub methods: Vec<MethodKind>,
    /// Tag the entry (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Probe set U (JSONL with "text"); default: the built-in U. A different U makes a
    /// different space.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
    /// Reference library (from `taskdb reference-library export`) whose mean centres the new
    /// spaces of its method this ingestion creates, instead of their k-means reference (an
    /// error if it was made with another surrogate, probe set or parameters). Default: none;
    /// the built-in library centres only spaces of the previous, library-centred design.
    #[arg(long, value_name = "FILE", conflicts_with = "no_reference_library")]
    pub reference_library: Option<PathBuf>,
    /// Never centre new spaces by the built-in reference library (it applies only to
    /// library-centred scatter spaces, which the defaults no longer create).
    #[arg(long)]
    pub no_reference_library: bool,
    #[command(flatten)]
    pub surrogate: SurrogateArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `ingest`.
#[derive(Subcommand, Debug)]
pub enum IngestCmd {
    /// Ingest a labelled dataset (JSONL, CSV or TSV; optionally gzip-compressed).
    Dataset(DatasetArgs),
    /// Ingest a black-box model through its predictions on the probe set U.
    Model(ModelArgs),
    /// Ingest one model entry per (LLM, prompt) line of a prompts file, with one --command.
    Prompts(crate::prompts::PromptsArgs),
}

/// `ingest dataset NAME FILE`.
#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// Entry name (re-using a name creates a new version).
    pub name: String,
    /// The dataset file.
    pub file: PathBuf,
    #[command(flatten)]
    pub columns: DatasetFileArgs,
    #[command(flatten)]
    pub common: CommonIngestArgs,
}

/// How to read a dataset file (`ingest dataset`, `recommend --file`).
#[derive(Args, Debug)]
pub struct DatasetFileArgs {
    /// Text column.
    #[arg(long, default_value = "text")]
    pub text: String,
    /// Second-text column for pair tasks (default: text_pair when present).
    #[arg(long)]
    pub pair: Option<String>,
    /// Label column.
    #[arg(long, default_value = "label")]
    pub label: String,
    /// Task type: auto (floats → regression), classification or regression.
    #[arg(long, default_value = "auto", value_parser = ["auto", "classification", "regression"])]
    pub task: String,
    /// Use at most N rows (seeded uniform sample; 0 = all).
    #[arg(long, default_value_t = sources::DEFAULT_LIMIT)]
    pub limit: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl DatasetFileArgs {
    /// The reader's options.
    pub fn options(&self) -> sources::DatasetOptions {
        let task = match self.task.as_str() {
            "classification" => sources::TaskKind::Classification,
            "regression" => sources::TaskKind::Regression,
            _ => sources::TaskKind::Auto,
        };
        sources::DatasetOptions {
            text_col: self.text.clone(),
            pair_col: self.pair.clone(),
            label_col: self.label.clone(),
            task,
            limit: if self.limit == 0 {
                None
            } else {
                Some(self.limit)
            },
            seed: self.seed,
        }
    }
}

/// `ingest model NAME (--command CMD | --predictions FILE)`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Entry name. Each (LLM, prompt) pair is its own model: give each its own name.
    pub name: String,
    /// Run this command (through sh -c): U goes to its stdin as {"id","text"} JSON lines, one
    /// {"id","label"} or {"id","scores"} line per input comes back on stdout.
    #[arg(long, required_unless_present_any = ["predictions", "onnx"])]
    pub command: Option<String>,
    /// Predictions on U computed elsewhere (same line format; see `taskdb probe export`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["command", "onnx"])]
    pub predictions: Option<PathBuf>,
    /// A local ONNX text classifier to run over U (needs --tokenizer and --labels).
    #[arg(
        long,
        value_name = "MODEL.onnx",
        conflicts_with = "command",
        requires_all = ["tokenizer", "labels"]
    )]
    pub onnx: Option<PathBuf>,
    /// The classifier's tokenizer.json.
    #[arg(long, value_name = "TOKENIZER.json", requires = "onnx")]
    pub tokenizer: Option<PathBuf>,
    /// The classifier's labels, in the order of its output columns: a,b,...
    #[arg(long, requires = "onnx")]
    pub labels: Option<String>,
    /// The classifier's outputs are logits (softmax applied) or probabilities.
    #[arg(long, default_value = "logits")]
    pub outputs_are: String,
    /// Prompt template for an LLM: contains {text} (and {text_pair} for pair probe sets); the
    /// filled-in prompt is what the command receives as "text".
    #[arg(long)]
    pub prompt: Option<String>,
    /// Map replies to labels: LABEL=word1|word2 (repeatable).
    #[arg(long = "verbalizer", value_name = "LABEL=WORDS")]
    pub verbalizers: Vec<String>,
    /// What --command / --predictions "scores" are: probabilities (non-negative weights,
    /// divided by their sum) or logits (softmax applied).
    #[arg(long, default_value = "probabilities", value_parser = ["probabilities", "logits"])]
    pub scores_are: String,
    /// Kill the command after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Run the --command on a seeded subset of N probe texts (the same for every model):
    /// for slow models such as LLMs on a CPU. The embedding is an estimate from those texts.
    #[arg(long, value_name = "N", requires = "command")]
    pub probe_limit: Option<usize>,
    #[command(flatten)]
    pub common: CommonIngestArgs,
}

/// `probe`.
#[derive(Subcommand, Debug)]
pub enum ProbeCmd {
    /// Write the probe set U as {"id","text"} JSON lines (the model input format).
    Export(ProbeExportArgs),
    /// Describe the probe set U.
    Info(ProbeInfoArgs),
}

/// `probe export FILE`.
#[derive(Args, Debug)]
pub struct ProbeExportArgs {
    /// Output file ("-" for stdout).
    pub file: PathBuf,
    /// Fill each text into this prompt template first (as `ingest model --prompt` does).
    #[arg(long)]
    pub prompt: Option<String>,
    /// A custom probe set instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
}

/// `probe info`.
#[derive(Args, Debug)]
pub struct ProbeInfoArgs {
    /// A custom probe set instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `surrogate`.
#[derive(Subcommand, Debug)]
pub enum SurrogateCmd {
    /// Model, fingerprint, execution provider, ONNX Runtime version and path.
    Info(SurrogateInfoArgs),
    /// Embed a JSONL file ({"text", "id"?, "text_pair"?} a line) to {"id","vector"} lines.
    Embed(SurrogateEmbedArgs),
}

/// `surrogate info`.
#[derive(Args, Debug)]
pub struct SurrogateInfoArgs {
    #[command(flatten)]
    pub surrogate: SurrogateArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `surrogate embed FILE`.
#[derive(Args, Debug)]
pub struct SurrogateEmbedArgs {
    /// Input JSONL file.
    pub file: PathBuf,
    /// Output file (default stdout).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub surrogate: SurrogateArgs,
}

pub(crate) fn load_probe(p: &Option<PathBuf>) -> taskdb::Result<sources::ProbeSet> {
    Ok(match p {
        Some(path) => sources::ProbeSet::from_file(path)?,
        None => sources::ProbeSet::builtin()?,
    })
}

/// Progress bars on stderr (off with --quiet or when stderr is not a terminal).
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        Bars {
            bar: Mutex::new(None),
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let pb = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{msg:32} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_message(name.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut b) = self.bar.lock() {
            if let Some(old) = b.replace(pb) {
                old.finish_and_clear();
            }
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.inc(n);
            }
        }
    }
    fn done(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(pb) = b.take() {
                pb.finish_and_clear();
            }
        }
    }
}

pub(crate) fn ingestor(ctx: &Ctx, c: &CommonIngestArgs) -> taskdb::Result<Ingestor> {
    let s = c.surrogate.load(ctx.quiet)?;
    let probe = load_probe(&c.probe)?;
    let mut ing = Ingestor::new(&ctx.db, s, probe)?.with_progress(Arc::new(Bars::new(ctx.quiet)));
    if let Some(path) = &c.reference_library {
        let bytes = std::fs::read(path).map_err(|e| taskdb::Error::Io {
            path: path.clone(),
            source: e,
        })?;
        let what = path.display().to_string();
        ing = ing.with_reference_library(Some(taskdb::ReferenceLibrary::from_json(&bytes, &what)?));
    } else if c.no_reference_library {
        ing = ing.with_reference_library(None);
    }
    Ok(ing)
}

pub(crate) fn options(c: &CommonIngestArgs) -> IngestOptions {
    IngestOptions {
        methods: c.methods.clone(),
        tags: c.tags.iter().cloned().collect(),
        command_line: std::env::args().collect(),
        ..IngestOptions::default()
    }
}

pub(crate) fn report(
    ctx: &Ctx,
    r: &IngestReport,
    surrogate_warnings: &[String],
    json: bool,
) -> taskdb::Result<i32> {
    if json {
        output::json(r)?;
        return Ok(0);
    }
    // The surrogate's warnings were printed when it was loaded; the report repeats them
    // (for --json), so print only the others here.
    for w in r
        .warnings
        .iter()
        .filter(|w| !surrogate_warnings.contains(*w))
    {
        eprintln!("warning: {w}");
    }
    println!(
        "ingested {} {}@{} ({} method{}: {})",
        r.kind,
        r.name,
        r.version,
        r.spaces.len(),
        if r.spaces.len() == 1 { "" } else { "s" },
        r.spaces.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    if !ctx.quiet {
        let stages: Vec<String> = r
            .stages
            .iter()
            .map(|(s, t)| format!("{s} {}", fmt_secs(*t)))
            .collect();
        eprintln!(
            "  time: {}; features: {} cached, {} computed{}",
            stages.join(", "),
            r.cache.hits,
            r.cache.computed,
            if r.truncated > 0 {
                format!(", {} inputs truncated", r.truncated)
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}

fn fmt_secs(t: f64) -> String {
    if t < 1.0 {
        format!("{:.0} ms", t * 1000.0)
    } else {
        format!("{t:.2} s")
    }
}

/// Fails early, before minutes of encoding or of a model's run, when an existing database
/// cannot be opened (not a taskdb file, damaged, locked by a writer): it is opened read-only
/// and closed again. The write itself opens it later, for as long as the commit takes.
pub(crate) fn precheck_db(ctx: &Ctx) -> taskdb::Result<()> {
    if ctx.db.exists() {
        drop(ctx.open_ro_database()?);
    }
    Ok(())
}

/// Runs `f` on the database opened for writing. When the database did not exist before and `f`
/// fails, the new empty database is removed again: a failed ingestion leaves nothing behind.
pub(crate) fn with_db<T>(
    ctx: &Ctx,
    f: impl FnOnce(&taskdb::TaskDb) -> taskdb::Result<T>,
) -> taskdb::Result<T> {
    let existed = ctx.db.exists();
    let db = ctx.open_rw()?;
    let res = f(&db);
    if res.is_err() && !existed {
        drop(db);
        let _ = std::fs::remove_file(&ctx.db);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&ctx.db));
    }
    res
}

pub fn ingest(ctx: &Ctx, cmd: IngestCmd) -> taskdb::Result<i32> {
    match cmd {
        IngestCmd::Dataset(a) => {
            taskdb::validate_name_for_new_entry(&a.name, "ingest dataset")?;
            let dopts = a.columns.options();
            let ing = ingestor(ctx, &a.common)?;
            let opts = options(&a.common);
            // The slow part (reading, encoding) runs before the database is opened for
            // writing, so readers are not locked out meanwhile (issue 10, defect 9).
            precheck_db(ctx)?;
            let prepared = ing.prepare_dataset(&a.file, &dopts, &opts)?;
            let r = with_db(ctx, |db| ing.write_dataset(db, &a.name, prepared, &opts))?;
            report(ctx, &r, &ing.surrogate().info().warnings, a.common.json)
        }
        IngestCmd::Prompts(a) => crate::prompts::run(ctx, a),
        IngestCmd::Model(a) => {
            taskdb::validate_name_for_new_entry(&a.name, "ingest model")?;
            let verbalizers = if a.verbalizers.is_empty() {
                None
            } else {
                Some(sources::Verbalizers::parse(&a.verbalizers)?)
            };
            let prompt = a
                .prompt
                .as_deref()
                .map(sources::PromptTemplate::parse)
                .transpose()?;
            if a.onnx.is_some() && a.scores_are != "probabilities" {
                return Err(Error::invalid(
                    "--scores-are",
                    "applies to --command and --predictions; for --onnx use --outputs-are",
                ));
            }
            let predictions = sources::PredictionOptions {
                verbalizers,
                scores_are: if a.scores_are == "logits" {
                    sources::ScoreKind::Logits
                } else {
                    sources::ScoreKind::Probabilities
                },
                ..sources::PredictionOptions::default()
            };
            let source = match (&a.command, &a.predictions) {
                _ if a.onnx.is_some() => {
                    let labels = surrogate::parse_labels(a.labels.as_deref().unwrap_or(""))?;
                    let copts = surrogate::ClassifierOptions {
                        labels,
                        outputs_are: a.outputs_are.parse()?,
                        runtime: surrogate::Options {
                            device: a.common.surrogate.device.parse()?,
                            intra_threads: {
                                check_threads(a.common.surrogate.threads)?;
                                a.common.surrogate.threads
                            },
                            strict: a.common.surrogate.strict_device,
                            ort_library: a.common.surrogate.ort_library.clone(),
                            ..surrogate::Options::default()
                        },
                        ..surrogate::ClassifierOptions::default()
                    };
                    let model = a.onnx.as_ref().expect("checked");
                    let tok = a.tokenizer.as_ref().expect("clap requires it");
                    ModelSource::Onnx(Arc::new(surrogate::Classifier::load(model, tok, &copts)?))
                }
                (Some(cmd), None) => ModelSource::Command {
                    command: cmd.clone(),
                    options: sources::CommandOptions {
                        timeout: Duration::from_secs(a.timeout),
                        prompt,
                        predictions,
                        ..sources::CommandOptions::default()
                    },
                },
                (None, Some(path)) => {
                    if prompt.is_some() {
                        return Err(Error::invalid(
                            "--prompt",
                            "a prompt only applies with --command; for offline predictions, \
                             export the prompted probe set with `taskdb probe export FILE \
                             --prompt TEMPLATE` and run your LLM on it",
                        ));
                    }
                    ModelSource::Predictions {
                        path: path.clone(),
                        options: predictions,
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        "ingest model",
                        "give exactly one of --command CMD, --predictions FILE or --onnx MODEL",
                    ))
                }
            };
            let ing = ingestor(ctx, &a.common)?;
            let opts = IngestOptions {
                probe_limit: a.probe_limit,
                ..options(&a.common)
            };
            // The model's run over U (up to --timeout) happens before the database is opened
            // for writing, so readers are not locked out meanwhile (issue 10, defect 9).
            precheck_db(ctx)?;
            let prepared = ing.prepare_model(&source, &opts)?;
            let r = with_db(ctx, |db| {
                ing.write_model(db, &a.name, &source, prepared, &opts)
            })?;
            report(ctx, &r, &ing.surrogate().info().warnings, a.common.json)
        }
    }
}
