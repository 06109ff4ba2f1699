//! `recommend`, `compare`, `outcome …` and `eval recommend`: the transfer questions. The
//! library answers ([`taskdb::TaskDb::recommend`], [`taskdb::TaskDb::compare`], outcomes,
//! [`taskdb::TaskDb::eval_recommend`]); this parses and prints.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use taskdb::ingest::{IngestOptions, Ingestor};
use taskdb::{Basis, Kind, NewOutcome, RecommendOptions, Target, TaskDb, UnstoredTarget};

use crate::{output, Ctx};

/// `recommend --from`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromArg {
    Dataset,
    Model,
    All,
}

/// `recommend`.
#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// The target: NAME or NAME@VERSION of a stored entry (or give --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub target: Option<String>,
    /// A dataset file to recommend sources for, embedded on the fly with the surrogate and
    /// not stored (read with the --text/--pair/--label/--task/--limit/--seed options).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub columns: crate::ingest::DatasetFileArgs,
    /// Probe set U of the database's spaces (default: the built-in U), for --file.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
    #[command(flatten)]
    pub surrogate: crate::ingest::SurrogateArgs,
    /// How many sources.
    #[arg(short = 'k', long = "k", default_value_t = 5)]
    pub k: usize,
    /// Which kind of source to recommend.
    #[arg(long, value_enum, default_value_t = FromArg::Dataset)]
    pub from: FromArg,
    /// The method whose space gives the similarities (default: the default method).
    #[arg(long)]
    pub method: Option<String>,
    /// Ignore recorded outcomes (similarity only).
    #[arg(long)]
    pub no_outcomes: bool,
    /// Weight of pivot evidence (outcomes of similar targets) against similarity, in [0, 1].
    #[arg(long, default_value_t = taskdb::DEFAULT_LAMBDA)]
    pub lambda: f64,
    /// JSON output: an array of recommendations with their evidence, best first.
    #[arg(long)]
    pub json: bool,
}

pub fn recommend(ctx: &Ctx, a: RecommendArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let opts = RecommendOptions {
        k: a.k,
        from: match a.from {
            FromArg::Dataset => Some(Kind::Dataset),
            FromArg::Model => Some(Kind::Model),
            FromArg::All => None,
        },
        method: a.method.clone(),
        use_outcomes: !a.no_outcomes,
        lambda: a.lambda,
    };
    let (target, label) = match (&a.target, &a.file) {
        (Some(t), _) => (Target::Stored(db.entry_ref(t)?), t.clone()),
        (None, Some(file)) => {
            let t = embed_file(ctx, &db, file, &a)?;
            let label = format!("{} (not stored)", file.display());
            (Target::Unstored(t), label)
        }
        (None, None) => unreachable!("clap requires TARGET or --file"),
    };
    let recs = db.recommend_for(&target, &opts)?;
    if a.json {
        output::json(&recs)?;
        return Ok(0);
    }
    if recs.is_empty() {
        println!("no candidate sources share a space with {label}");
        return Ok(0);
    }
    println!(
        "{:<4} {:<28} {:<8} {:>9}  evidence",
        "rank", "source", "kind", "score"
    );
    for (i, r) in recs.iter().enumerate() {
        let sims = r
            .similarity
            .iter()
            .map(|(m, s)| format!("{m} {s:.3}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut why = match r.basis {
            Basis::Measured | Basis::MeasuredNoGain => format!(
                "measured gain {:+.4} ({} record{}); similarity {sims}",
                r.measured_gain.unwrap_or(f64::NAN),
                r.measured_records,
                if r.measured_records == 1 { "" } else { "s" }
            ),
            Basis::Estimated => format!("similarity {sims}"),
        };
        if let Some(p) = r.pivot_estimate {
            let on: Vec<String> = r
                .pivots
                .iter()
                .filter(|p| p.weight > 0.0)
                .map(|p| format!("{} {:+.4}", p.target, p.gain))
                .collect();
            why.push_str(&format!("; pivots {:+.4} ({})", p, on.join(", ")));
        }
        if let Some(n) = r.rows {
            why.push_str(&format!("; {n} rows"));
        }
        println!(
            "{:<4} {:<28} {:<8} {:>9.4}  {why}",
            i + 1,
            format!("{}@{}", r.name, r.version),
            r.kind.as_str(),
            r.score
        );
    }
    Ok(0)
}

/// Reads and embeds `file` in the spaces of `db` (nothing is written), naming it by its path.
fn embed_file(
    ctx: &Ctx,
    db: &TaskDb,
    file: &std::path::Path,
    a: &RecommendArgs,
) -> taskdb::Result<UnstoredTarget> {
    let s = a.surrogate.load(ctx.quiet)?;
    let probe = crate::ingest::load_probe(&a.probe)?;
    // A snapshot is read-only and nothing is written beside it: its feature cache lives in a
    // temporary directory for this run only.
    let scratch = tempfile::tempdir().map_err(|e| taskdb::Error::io(std::env::temp_dir(), e))?;
    let cache_for = if taskdb::is_snapshot(&ctx.db) {
        scratch.path().join("snapshot.taskdb")
    } else {
        ctx.db.clone()
    };
    let ing = Ingestor::new(&cache_for, s, probe)?;
    let opts = IngestOptions::default();
    let prepared = ing.prepare_dataset(file, &a.columns.options(), &opts)?;
    let name = file.display().to_string();
    let (target, warnings) = ing.embed_dataset(db, &name, prepared, &opts)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(target)
}

/// `compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// NAME or NAME@VERSION.
    pub a: String,
    /// NAME or NAME@VERSION.
    pub b: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn compare(ctx: &Ctx, a: CompareArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let c = db.compare(&db.entry_ref(&a.a)?, &db.entry_ref(&a.b)?)?;
    if a.json {
        output::json(&c)?;
        return Ok(0);
    }
    println!(
        "{} ({}) vs {} ({})",
        c.a.entry, c.a.kind, c.b.entry, c.b.kind
    );
    for s in &c.spaces {
        println!(
            "  {:<8} similarity {:.4}; {} is #{} of {}'s {} neighbours, {} is #{} of {}'s",
            s.method,
            s.similarity,
            c.b.entry,
            s.rank_of_b_for_a,
            c.a.entry,
            s.neighbours,
            c.a.entry,
            s.rank_of_a_for_b,
            c.b.entry
        );
    }
    for (side, m) in &c.not_shared {
        let e = if side == "a" { &c.a.entry } else { &c.b.entry };
        println!("  {m:<8} only {e} has a vector");
    }
    for s in [&c.a, &c.b] {
        let rows = output_map(&s.rows);
        let labels = s
            .labels
            .iter()
            .map(|(l, n)| {
                if *n > 0 {
                    format!("{l} {n}")
                } else {
                    l.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let or_none = |x: String| {
            if x.is_empty() {
                "not recorded".to_string()
            } else {
                x
            }
        };
        println!(
            "  {}: rows {}; labels {}; {}",
            s.entry,
            or_none(rows),
            or_none(labels),
            s.source
        );
    }
    Ok(0)
}

fn output_map(m: &std::collections::BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `outcome …`.
#[derive(Subcommand, Debug)]
pub enum OutcomeCmd {
    /// Record what training on SOURCE first did to TARGET.
    Add(OutcomeAddArgs),
    /// Record outcomes from a CSV file (header: source,target,value[,metric,baseline,model,seed,note]).
    Import(OutcomeImportArgs),
    /// List recorded outcomes.
    List(crate::read::JsonArg),
    /// Remove one recorded outcome by id.
    Rm(OutcomeRmArgs),
}

/// `outcome add`.
#[derive(Args, Debug)]
pub struct OutcomeAddArgs {
    /// The entry trained on first.
    pub source: String,
    /// The entry whose metric was measured.
    pub target: String,
    /// The target's metric after training on the source first (or the gain itself, when no
    /// --baseline is given).
    #[arg(allow_negative_numbers = true)]
    pub value: f64,
    /// The metric's name.
    #[arg(long)]
    pub metric: Option<String>,
    /// The same metric without the source: the gain is VALUE − BASELINE.
    #[arg(long, allow_negative_numbers = true)]
    pub baseline: Option<f64>,
    /// The model trained.
    #[arg(long)]
    pub model: Option<String>,
    /// The run's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Free text.
    #[arg(long)]
    pub note: Option<String>,
}

/// `outcome import`.
#[derive(Args, Debug)]
pub struct OutcomeImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// The column holding the value (default `value`).
    #[arg(long)]
    pub value_column: Option<String>,
}

/// `outcome rm`.
#[derive(Args, Debug)]
pub struct OutcomeRmArgs {
    /// The outcome's id (`outcome list`).
    pub id: u64,
}

pub fn outcome(ctx: &Ctx, cmd: OutcomeCmd) -> taskdb::Result<i32> {
    match cmd {
        OutcomeCmd::Add(a) => {
            let db = ctx.open_existing_rw()?;
            let o = NewOutcome {
                source: a.source,
                target: a.target,
                value: a.value,
                metric: a.metric,
                baseline: a.baseline,
                model: a.model,
                seed: a.seed,
                note: a.note,
            };
            let ids = db.add_outcomes(vec![o], &|_| "outcome add".to_string())?;
            if !ctx.quiet {
                eprintln!("recorded outcome {}", ids[0]);
            }
            Ok(0)
        }
        OutcomeCmd::Import(a) => {
            let list = taskdb::read_outcomes_csv(&a.file, a.value_column.as_deref())?;
            let db = ctx.open_existing_rw()?;
            let file = a.file.display().to_string();
            // Each record's origin is its line (the header is line 1).
            let ids = db.add_outcomes(list, &|i| format!("{file} record {}", i + 1))?;
            println!("recorded {} outcomes from {file}", ids.len());
            Ok(0)
        }
        OutcomeCmd::List(a) => {
            let db = ctx.open_ro()?;
            let all = db.outcomes()?;
            if a.json {
                output::json(&all)?;
                return Ok(0);
            }
            for o in &all {
                let r = &o.outcome;
                println!(
                    "{:>4}  {} → {}  {}{}  gain {:+.4}{}{}{}",
                    o.id,
                    r.source,
                    r.target,
                    r.value,
                    r.baseline
                        .map(|b| format!(" (baseline {b})"))
                        .unwrap_or_default(),
                    o.gain(),
                    r.metric
                        .as_ref()
                        .map(|m| format!("  metric {m}"))
                        .unwrap_or_default(),
                    r.model
                        .as_ref()
                        .map(|m| format!("  model {m}"))
                        .unwrap_or_default(),
                    r.seed.map(|s| format!("  seed {s}")).unwrap_or_default(),
                );
            }
            Ok(0)
        }
        OutcomeCmd::Rm(a) => {
            let db = ctx.open_existing_rw()?;
            let o = db.remove_outcome(a.id)?;
            if !ctx.quiet {
                eprintln!(
                    "removed outcome {} ({} → {})",
                    o.id, o.outcome.source, o.outcome.target
                );
            }
            Ok(0)
        }
    }
}

/// `eval …`.
#[derive(Subcommand, Debug)]
pub enum EvalCmd {
    /// Leave-one-target-out evaluation of `recommend` on an outcome table.
    Recommend(EvalRecommendArgs),
}

/// `eval recommend`.
#[derive(Args, Debug)]
pub struct EvalRecommendArgs {
    /// The outcome table (CSV, as for `outcome import`); not stored.
    #[arg(long)]
    pub outcomes: PathBuf,
    /// The column holding the value (default `value`).
    #[arg(long)]
    pub value_column: Option<String>,
    /// The k of NDCG@k and Regret@k.
    #[arg(short = 'k', long = "k", default_value_t = 3)]
    pub k: usize,
    /// Weight of pivot evidence.
    #[arg(long, default_value_t = taskdb::DEFAULT_LAMBDA)]
    pub lambda: f64,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(ctx: &Ctx, cmd: EvalCmd) -> taskdb::Result<i32> {
    let EvalCmd::Recommend(a) = cmd;
    let list = taskdb::read_outcomes_csv(&a.outcomes, a.value_column.as_deref())?;
    let db = ctx.open_ro()?;
    let r = db.eval_recommend(&list, a.k, a.lambda)?;
    if a.json {
        output::json(&r)?;
        return Ok(0);
    }
    println!(
        "leave-one-target-out over {} targets ({}), k = {}",
        r.targets.len(),
        r.targets.join(", "),
        r.k
    );
    println!(
        "{:<58} {:>8} {:>10} {:>9}",
        "ranker",
        format!("NDCG@{}", r.k),
        format!("Regret@{}", r.k),
        "Spearman"
    );
    for row in &r.rows {
        println!(
            "{:<58} {:>8.3} {:>10.4} {:>9.3}",
            row.ranker, row.ndcg, row.regret, row.spearman
        );
    }
    for s in &r.skipped {
        eprintln!("skipped: {s}");
    }
    Ok(0)
}

/// `select-prompt`.
#[derive(Args, Debug)]
pub struct SelectPromptArgs {
    /// The target dataset: NAME or NAME@VERSION.
    pub target: String,
    /// Candidate prompts: model entries whose names start with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Candidate prompts: model entries with this tag (repeatable; all must match), e.g.
    /// `--tag llm=smollm2`.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = output::parse_tag)]
    pub tags: Vec<(String, String)>,
    /// How many to show.
    #[arg(short = 'k', long = "k", default_value_t = 10)]
    pub k: usize,
    /// The space to compare in (default: the default method's).
    #[arg(long)]
    pub method: Option<String>,
    /// JSON output: every candidate, best first.
    #[arg(long)]
    pub json: bool,
}

pub fn select_prompt(ctx: &Ctx, a: SelectPromptArgs) -> taskdb::Result<i32> {
    let db = ctx.open_ro()?;
    let mut f = taskdb::Filter::all();
    f.name_prefix = a.prefix.clone();
    f.tags = a.tags.iter().cloned().collect();
    let mut choices = db.select_prompt(&db.entry_ref(&a.target)?, &f, a.method.as_deref())?;
    choices.truncate(a.k);
    let note = taskdb::PromptChoice::mi_note(&choices);
    if a.json {
        output::json(&choices)?;
    } else {
        println!(
            "{:<4} {:<32} {:>10}  {:>14}  {:>14}  labels on U",
            "rank", "prompt (model entry)", "similarity", "output entropy", "mutual info"
        );
        let cell = |v: Option<f64>, r: Option<usize>, none: &str| match (v, r) {
            (Some(h), Some(r)) => format!("{h:.3} (#{r})"),
            _ => none.to_string(),
        };
        for c in &choices {
            println!(
                "{:<4} {:<32} {:>10.4}  {:>14}  {:>14}  {}",
                c.rank,
                format!("{}@{}", c.name, c.version),
                c.similarity,
                cell(c.output_entropy, c.entropy_rank, "n/a"),
                cell(c.mutual_information, c.mi_rank, "—"),
                output_map(&c.label_counts)
            );
        }
    }
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(0)
}
