//! taskdb-sources: everything taskdb reads from users for ingestion.
//!
//! * [`read_dataset`]: labelled datasets (JSONL / CSV / TSV, optionally gzip).
//! * [`ProbeSet`]: the probe set U (built-in default, or a user's file) and its
//!   fingerprint.
//! * Model adapters: [`run_command`] (a child process speaking JSON lines),
//!   [`read_predictions`] (the same replies from a file), [`PromptTemplate`] and
//!   [`Verbalizers`] for LLMs, and [`to_targets`] (hard or normalised soft targets).
//!
//! Pure library: no printing, no exiting; user input never panics, it gives an
//! [`Error`] naming the file, line/row/id and what to do.

mod command;
mod dataset;
mod error;
mod input;
mod model;
mod probe;
mod prompt;

pub use command::{
    install_signal_cleanup, kill_model_processes, run_command, CommandOptions, DEFAULT_STDERR_TAIL,
    DEFAULT_TIMEOUT,
};
pub use dataset::{
    read_dataset, ClassBalance, Dataset, DatasetOptions, DatasetSummary, Label, Row, TargetStats,
    Task, TaskKind, DEFAULT_LIMIT, MAX_TEXT_CHARS,
};
pub use error::{Error, Result};
pub use input::Format;
pub use model::{
    canonical_label_order, read_predictions, to_targets, ModelOutputs, OutputReport, Prediction,
    PredictionOptions, ScoreKind, TargetValues, Targets, DEFAULT_MAX_UNMATCHED, MAX_LABELS,
    MAX_LABEL_BYTES, MAX_REPLY_LINE, MAX_RETAINED_BYTES,
};
pub use probe::{ProbeSet, ProbeText, DEFAULT_PROBE_NAME};
pub use prompt::{PromptTemplate, Verbalizers};
