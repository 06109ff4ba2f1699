//! `ingest prompts FILE.jsonl --command CMD`: one model entry per (LLM, prompt) line of a
//! prompts file (the file format and its checks are the library's,
//! [`taskdb::ingest::read_prompts_file`]). Each prompt is its own ingestion and transaction;
//! the whole file is checked before the first model run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use taskdb::ingest::{IngestOptions, ModelSource};
use taskdb_sources as sources;

use crate::ingest::{ingestor, options, precheck_db, report, with_db, CommonIngestArgs};
use crate::Ctx;

/// `ingest prompts`.
#[derive(Args, Debug)]
pub struct PromptsArgs {
    /// The prompts file: one `{"name", "prompt", "verbalizers"?, "tags"?}` object a line.
    pub file: PathBuf,
    /// The LLM command (through sh -c); each prompt's filled-in texts go to its stdin.
    #[arg(long)]
    pub command: String,
    /// Kill a run after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Run each prompt on a seeded subset of N probe texts (the same subset for all).
    #[arg(long, value_name = "N")]
    pub probe_limit: Option<usize>,
    /// What the command's "scores" are: probabilities or logits.
    #[arg(long, default_value = "probabilities", value_parser = ["probabilities", "logits"])]
    pub scores_are: String,
    #[command(flatten)]
    pub common: CommonIngestArgs,
}

pub fn run(ctx: &Ctx, a: PromptsArgs) -> taskdb::Result<i32> {
    let specs = taskdb::ingest::read_prompts_file(&a.file)?;
    let ing = ingestor(ctx, &a.common)?;
    precheck_db(ctx)?;
    let mut done = Vec::new();
    for spec in specs {
        let source = ModelSource::Command {
            command: a.command.clone(),
            options: sources::CommandOptions {
                timeout: Duration::from_secs(a.timeout),
                prompt: Some(spec.prompt),
                predictions: sources::PredictionOptions {
                    verbalizers: spec.verbalizers,
                    scores_are: if a.scores_are == "logits" {
                        sources::ScoreKind::Logits
                    } else {
                        sources::ScoreKind::Probabilities
                    },
                    ..sources::PredictionOptions::default()
                },
                ..sources::CommandOptions::default()
            },
        };
        let mut opts = IngestOptions {
            probe_limit: a.probe_limit,
            ..options(&a.common)
        };
        opts.tags.extend(spec.tags);
        let run = ing
            .prepare_model(&source, &opts)
            .and_then(|p| with_db(ctx, |db| ing.write_model(db, &spec.name, &source, p, &opts)));
        let r = match run {
            Ok(r) => r,
            Err(e) => {
                let kept = if done.is_empty() {
                    String::new()
                } else {
                    format!("; the prompts ingested before it stay: {}", done.join(", "))
                };
                eprintln!(
                    "note: stopped at {} (prompt {:?}){kept}",
                    spec.at, spec.name
                );
                return Err(e);
            }
        };
        report(ctx, &r, &ing.surrogate().info().warnings, a.common.json)?;
        done.push(spec.name);
    }
    Ok(0)
}
