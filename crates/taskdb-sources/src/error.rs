//! The one error type of this crate. Every variant names the file (or command), the
//! line / row / id where the problem is, and says what to do about it.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading user input. Line numbers are 1-based
/// physical lines of the (decompressed) file; row numbers are 1-based data rows (the CSV
/// header and blank JSONL lines are not rows).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: cannot read the file: {source}. {}", path.display(), io_hint(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: unknown file format (extension {ext:?}). Use .jsonl/.json/.ndjson, .csv or .tsv, optionally followed by .gz.", path.display())]
    UnknownFormat { path: PathBuf, ext: String },
    #[error("{}: line {line}: malformed JSON: {msg}. Each line must be one JSON object{hint}.", path.display())]
    Json {
        path: PathBuf,
        line: u64,
        msg: String,
        hint: String,
    },
    #[error("{}: line {line}: not a JSON object (found {found}). Each line must be one JSON object like {{\"text\": ..., \"label\": ...}}.", path.display())]
    NotAnObject {
        path: PathBuf,
        line: u64,
        found: String,
    },
    #[error("{}: line {line}: invalid UTF-8. Re-encode the file as UTF-8.", path.display())]
    InvalidUtf8 { path: PathBuf, line: u64 },
    #[error("{}: column {column:?} (the {option} column) does not exist; columns found: {}. Name the right column with {option}.", path.display(), found.join(", "))]
    NoSuchColumn {
        path: PathBuf,
        column: String,
        option: &'static str,
        found: Vec<String>,
    },
    #[error("{}: row {row} (line {line}): no value in column {column:?}. Fill it in or remove the row.", path.display())]
    MissingValue {
        path: PathBuf,
        row: u64,
        line: u64,
        column: String,
    },
    #[error("{}: row {row} (line {line}): column {column:?} is empty. Remove the row or fill in the text.", path.display())]
    EmptyText {
        path: PathBuf,
        row: u64,
        line: u64,
        column: String,
    },
    #[error("{}: row {row} (line {line}): column {column:?} has a value of the wrong type ({found}): {what}.", path.display())]
    WrongType {
        path: PathBuf,
        row: u64,
        line: u64,
        column: String,
        found: String,
        what: String,
    },
    #[error("{}: the dataset has no rows. A dataset needs at least two labelled rows.", path.display())]
    EmptyDataset { path: PathBuf },
    #[error("{}: every kept row has the label {label:?}: a classification dataset needs at least two classes. Check the --label column, or use --task regression for numeric targets.", path.display())]
    SingleClass { path: PathBuf, label: String },
    #[error("{}: all {rows} kept rows have the same regression target {value}; a regression dataset needs varying targets.", path.display())]
    ConstantTarget {
        path: PathBuf,
        rows: usize,
        value: f64,
    },
    #[error("{}: row {row} (line {line}): label {value:?} is not a finite number (NaN or infinity). Fix or remove the row.", path.display())]
    NonFiniteLabel {
        path: PathBuf,
        row: u64,
        line: u64,
        value: String,
    },
    #[error("{}: row {row} (line {line}): label {value:?} is {this_kind}, but row {first_row} has a {first_kind} label. Labels must be all strings (classification) or all numbers; quote numeric class names consistently, or fix the row.", path.display())]
    MixedLabels {
        path: PathBuf,
        row: u64,
        line: u64,
        value: String,
        this_kind: &'static str,
        first_row: u64,
        first_kind: &'static str,
    },
    #[error("{}: row {row} (line {line}): label {value:?} is not a number, but the task is regression. Use numeric labels or --task classification.", path.display())]
    NotANumber {
        path: PathBuf,
        row: u64,
        line: u64,
        value: String,
    },
    #[error("{}: line {line}: row has {found} fields but the header has {expected}. Quote fields that contain the delimiter, or fix the row.", path.display())]
    RaggedRow {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("{}: line {line}: CSV/TSV error: {msg}.", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{}: line {line}: {msg}", path.display())]
    Probe {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{}: line {line}: duplicate probe id {id} (first on line {first_line}). Probe ids must be unique.", path.display())]
    DuplicateProbeId {
        path: PathBuf,
        line: u64,
        id: u32,
        first_line: u64,
    },
    #[error("the probe set is empty: it needs at least one text.")]
    EmptyProbeSet,
    #[error("invalid --prompt template: {msg}")]
    Template { msg: String },
    #[error("invalid --verbalizer {spec:?}: {msg}")]
    Verbalizer { spec: String, msg: String },
    #[error("cannot start command `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "command `{cmd}` failed ({status}) after {lines} output lines{input}. {}",
        stderr_section(stderr_tail)
    )]
    ChildFailed {
        cmd: String,
        status: String,
        lines: u64,
        /// How much of U it was given, when it stopped reading early (or empty).
        input: String,
        stderr_tail: String,
    },
    #[error("command `{cmd}` timed out after {timeout:?} ({lines} output lines received); it was killed (its whole process group). Raise the timeout if the model is just slow. {}", stderr_section(stderr_tail))]
    Timeout {
        cmd: String,
        timeout: Duration,
        lines: u64,
        stderr_tail: String,
    },
    #[error("{source_name}: {got} predictions for {expected} probe texts; missing ids include {}. The model must answer one line per input line.{stderr}", missing.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "))]
    TooFewLines {
        source_name: String,
        got: usize,
        expected: usize,
        missing: Vec<u32>,
        stderr: String,
    },
    #[error("{source_name}: line {line}: id {id} is not in the probe set. Answer with the ids of the input lines.{stderr}")]
    UnknownId {
        source_name: String,
        line: u64,
        id: String,
        /// The command's stderr tail as " Its stderr (last part):\n..." (empty for files).
        stderr: String,
    },
    #[error("{source_name}: line {line}: id {id} was already answered on line {first_line}. Answer each input exactly once.{stderr}")]
    DuplicateId {
        source_name: String,
        line: u64,
        id: u32,
        first_line: u64,
        /// The command's stderr tail (see [`Error::UnknownId`]).
        stderr: String,
    },
    #[error("{source_name}: line {line}: not a JSON object: {msg}. Offending text: {text:?}. Write only JSON lines to stdout (send logs to stderr).{stderr}")]
    NotJson {
        source_name: String,
        line: u64,
        text: String,
        msg: String,
        /// The command's stderr tail (see [`Error::UnknownId`]).
        stderr: String,
    },
    #[error("{source_name}: line {line}: {msg}{stderr}")]
    BadPrediction {
        source_name: String,
        line: u64,
        msg: String,
        /// The command's stderr tail as " Its stderr (last part):\n..." (empty for files).
        stderr: String,
    },
    #[error("{source_name}: {unmatched} of {total} replies matched no verbalizer (more than {max_percent}%); examples: {}. Check the --prompt and --verbalizer words.", examples.iter().map(|(i, r)| format!("id {i}: {r:?}")).collect::<Vec<_>>().join("; "))]
    TooManyUnmatched {
        source_name: String,
        unmatched: usize,
        total: usize,
        max_percent: f64,
        examples: Vec<(u32, String)>,
    },
    #[error("probe id {id}: {msg}")]
    Scores { id: u32, msg: String },
    #[error("no usable predictions: {msg}")]
    NoPredictions { msg: String },
}

/// " Its stderr (last part):\n..." for a non-empty tail, "" otherwise (appended to an error).
pub(crate) fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(" Its stderr (last part):\n{}", tail.trim_end())
    }
}

/// What to do about an I/O error, by its kind: a missing file, a permission problem, or
/// damaged content (a truncated or corrupt gzip stream) need different advice.
fn io_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "Check that the path exists.",
        K::PermissionDenied => "Check the file's permissions.",
        K::IsADirectory => "It is a directory; give a file.",
        K::UnexpectedEof => {
            "The file ends in the middle of its data: it is truncated (an interrupted download \
             or copy?). Fetch or compress it again."
        }
        K::InvalidData | K::InvalidInput => {
            "The content is damaged (for a .gz file: not a valid gzip stream). Fetch or \
             compress it again."
        }
        _ => "Check that the path exists and is readable.",
    }
}

fn stderr_section(tail: &str) -> String {
    if tail.trim().is_empty() {
        "It wrote nothing to stderr.".into()
    } else {
        format!("Its stderr (last part):\n{}", tail.trim_end())
    }
}

impl Error {
    /// Adds a model command's stderr tail to a reply-protocol error (no-op for others).
    pub(crate) fn with_stderr(mut self, tail: &str) -> Error {
        match &mut self {
            Error::UnknownId { stderr, .. }
            | Error::DuplicateId { stderr, .. }
            | Error::NotJson { stderr, .. }
            | Error::BadPrediction { stderr, .. }
            | Error::TooFewLines { stderr, .. } => *stderr = stderr_suffix(tail),
            _ => {}
        }
        self
    }
}

/// Truncates `s` to at most `max` bytes on a char boundary, appending "…" when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
