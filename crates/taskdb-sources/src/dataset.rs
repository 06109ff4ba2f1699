//! Dataset reader: JSONL / CSV / TSV (optionally gzip-compressed) into labelled rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::{digest_file, io_err, open_maybe_gz, read_line_bounded, Format};

/// Longest accepted JSONL line (bytes).
const MAX_LINE: usize = 64 << 20;

/// Longest text (and text pair) kept, in characters; longer ones are cut here, before
/// anything else sees them. The surrogate reads at most its `max_length` tokens (256 for
/// the default one: a few KB of ordinary text), so the cut only bounds memory (a 50 MB row
/// no longer costs gigabytes in the tokenizer) and leaves the features of any text whose
/// first 256 tokens lie in its first 16,384 characters unchanged.
pub const MAX_TEXT_CHARS: usize = 16_384;

/// Cuts `s` to [`MAX_TEXT_CHARS`] characters; returns whether it was cut.
fn cap_text(s: &mut String) -> bool {
    if s.len() <= MAX_TEXT_CHARS {
        return false;
    }
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => {
            s.truncate(i);
            true
        }
        None => false,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Default `--limit`.
pub const DEFAULT_LIMIT: usize = 2000;

/// What the user asked the task to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskKind {
    /// Strings or integers -> classification; non-integer numbers -> regression.
    #[default]
    Auto,
    Classification,
    Regression,
}

/// The task a dataset was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

/// Options of [`read_dataset`].
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Text column (default "text").
    pub text_col: String,
    /// Second-text column of pair tasks. `None`: use "text_pair" when the file has it.
    pub pair_col: Option<String>,
    /// Label column (default "label").
    pub label_col: String,
    pub task: TaskKind,
    /// Keep at most this many rows (uniform sample without replacement, input order kept).
    /// `None`: keep all. Default `Some(2000)`.
    pub limit: Option<usize>,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            text_col: "text".into(),
            pair_col: None,
            label_col: "label".into(),
            task: TaskKind::Auto,
            limit: Some(DEFAULT_LIMIT),
            seed: 0,
        }
    }
}

/// A row's target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    /// Index into [`Dataset::labels`] (classification).
    Class(u32),
    /// Regression target.
    Value(f64),
}

/// One kept row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub text: String,
    pub text_pair: Option<String>,
    pub label: Label,
}

/// A dataset read and validated.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Kept rows, in input order.
    pub rows: Vec<Row>,
    pub task: Task,
    /// Label vocabulary in canonical order (numeric order when every label is an integer,
    /// else byte order of the names). Empty for regression. `Label::Class(i)` indexes it.
    pub labels: Vec<String>,
    pub summary: DatasetSummary,
}

impl Dataset {
    /// Class index per row (classification only).
    pub fn class_indices(&self) -> Option<Vec<u32>> {
        self.rows
            .iter()
            .map(|r| match r.label {
                Label::Class(c) => Some(c),
                Label::Value(_) => None,
            })
            .collect()
    }

    /// Target per row (regression only).
    pub fn values(&self) -> Option<Vec<f64>> {
        self.rows
            .iter()
            .map(|r| match r.label {
                Label::Value(v) => Some(v),
                Label::Class(_) => None,
            })
            .collect()
    }

    /// Whether rows carry a second text.
    pub fn is_pair(&self) -> bool {
        self.summary.pair_column.is_some()
    }
}

/// Class balance of the kept rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassBalance {
    pub classes: usize,
    pub majority_label: String,
    pub majority_fraction: f64,
    pub minority_label: String,
    pub minority_fraction: f64,
    /// majority count / minority count.
    pub imbalance_ratio: f64,
    /// Entropy of the label distribution divided by ln(classes): 1 = perfectly balanced.
    pub normalized_entropy: f64,
}

/// Summary of regression targets of the kept rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
}

/// Provenance of a dataset read: everything needed to say where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSummary {
    pub path: String,
    pub format: Format,
    /// The file is gzip-compressed (detected by its magic bytes).
    pub compressed: bool,
    /// sha256 (hex) of the file's bytes as stored.
    pub sha256: String,
    /// Size in bytes of the file as stored.
    pub bytes: u64,
    /// What `sha256` and `bytes` cover, in words.
    pub sha256_of: String,
    pub text_column: String,
    pub pair_column: Option<String>,
    pub label_column: String,
    pub task: Task,
    /// Data rows read (all validated).
    pub rows_read: u64,
    /// Rows kept after `limit` sampling.
    pub rows_kept: u64,
    pub limit: Option<usize>,
    pub seed: u64,
    /// Whether sampling dropped rows.
    pub sampled: bool,
    /// Kept rows per label (classification; empty for regression).
    pub label_counts: BTreeMap<String, u64>,
    pub class_balance: Option<ClassBalance>,
    pub target_stats: Option<TargetStats>,
    /// Rows (read, kept or not) whose text or text pair was cut to [`MAX_TEXT_CHARS`]
    /// characters.
    #[serde(skip_serializing_if = "is_zero")]
    pub texts_cut: u64,
}

#[derive(Debug, Clone)]
enum RawLabel {
    Str(String),
    /// A number; `int` when it is integer-valued (its canonical integer form).
    Num {
        value: f64,
        int: Option<i64>,
        repr: String,
    },
}

impl RawLabel {
    fn kind(&self) -> &'static str {
        match self {
            RawLabel::Str(_) => "string",
            RawLabel::Num { .. } => "numeric",
        }
    }
    fn repr(&self) -> &str {
        match self {
            RawLabel::Str(s) => s,
            RawLabel::Num { repr, .. } => repr,
        }
    }
}

#[derive(Debug, Clone)]
struct RawRow {
    row: u64,
    line: u64,
    text: String,
    pair: Option<String>,
    label: RawLabel,
}

fn is_nonfinite_word(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "nan" | "+nan" | "-nan" | "inf" | "+inf" | "-inf" | "infinity" | "+infinity" | "-infinity"
    )
}

fn num_label(value: f64, repr: String) -> RawLabel {
    let int = if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Some(value as i64)
    } else {
        None
    };
    RawLabel::Num { value, int, repr }
}

/// Streams rows, validates, and keeps a seeded reservoir sample.
struct Collector<'a> {
    path: &'a Path,
    opts: &'a DatasetOptions,
    first_kind: Option<(&'static str, u64)>,
    any_non_integer: bool,
    rows_read: u64,
    reservoir: Vec<(u64, RawRow)>,
    rng: ChaCha8Rng,
    texts_cut: u64,
}

impl<'a> Collector<'a> {
    fn new(path: &'a Path, opts: &'a DatasetOptions) -> Self {
        Collector {
            path,
            opts,
            first_kind: None,
            any_non_integer: false,
            rows_read: 0,
            reservoir: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(opts.seed),
            texts_cut: 0,
        }
    }

    fn push(&mut self, mut r: RawRow) -> Result<()> {
        let cut = cap_text(&mut r.text) | r.pair.as_mut().is_some_and(cap_text);
        if cut {
            self.texts_cut += 1;
        }
        if let RawLabel::Num { value, .. } = &r.label {
            if !value.is_finite() {
                return Err(self.nonfinite(&r));
            }
        }
        if let RawLabel::Str(s) = &r.label {
            if is_nonfinite_word(s) {
                return Err(self.nonfinite(&r));
            }
            if self.opts.task == TaskKind::Regression {
                return Err(Error::NotANumber {
                    path: self.path.to_path_buf(),
                    row: r.row,
                    line: r.line,
                    value: s.clone(),
                });
            }
        }
        let kind = r.label.kind();
        match self.first_kind {
            None => self.first_kind = Some((kind, r.row)),
            Some((k, first_row)) if k != kind => {
                return Err(Error::MixedLabels {
                    path: self.path.to_path_buf(),
                    row: r.row,
                    line: r.line,
                    value: r.label.repr().to_string(),
                    this_kind: if kind == "string" {
                        "a string"
                    } else {
                        "a number"
                    },
                    first_row,
                    first_kind: k,
                });
            }
            _ => {}
        }
        if let RawLabel::Num { int: None, .. } = r.label {
            self.any_non_integer = true;
        }
        let i = self.rows_read;
        self.rows_read += 1;
        let cap = self.opts.limit.unwrap_or(usize::MAX);
        if self.reservoir.len() < cap {
            self.reservoir.push((i, r));
        } else if cap > 0 {
            let j = self.rng.random_range(0..=i);
            if (j as usize) < cap {
                self.reservoir[j as usize] = (i, r);
            }
        }
        Ok(())
    }

    fn nonfinite(&self, r: &RawRow) -> Error {
        Error::NonFiniteLabel {
            path: self.path.to_path_buf(),
            row: r.row,
            line: r.line,
            value: r.label.repr().to_string(),
        }
    }
}

/// Reads, validates and (with `opts.limit`) samples a labelled dataset.
///
/// Every row is validated, also rows that sampling drops. Sampling is uniform without
/// replacement (reservoir sampling with ChaCha8 seeded by `opts.seed`), deterministic,
/// and keeps input order.
pub fn read_dataset(path: &Path, opts: &DatasetOptions) -> Result<Dataset> {
    let format = Format::from_path(path)?;
    let digest = digest_file(path)?;
    let mut col = Collector::new(path, opts);
    let pair_column = match format {
        Format::Jsonl => read_jsonl(path, opts, &mut col)?,
        Format::Csv => read_delimited(path, opts, b',', &mut col)?,
        Format::Tsv => read_delimited(path, opts, b'\t', &mut col)?,
    };
    let rows_read = col.rows_read;
    let texts_cut = col.texts_cut;
    let any_non_integer = col.any_non_integer;
    let first_kind = col.first_kind.map(|k| k.0);
    let mut kept = std::mem::take(&mut col.reservoir);
    kept.sort_by_key(|(i, _)| *i);
    if kept.is_empty() {
        return Err(Error::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    let task = match opts.task {
        TaskKind::Classification => Task::Classification,
        TaskKind::Regression => Task::Regression,
        TaskKind::Auto if first_kind == Some("numeric") && any_non_integer => Task::Regression,
        TaskKind::Auto => Task::Classification,
    };

    let mut rows = Vec::with_capacity(kept.len());
    let mut labels = Vec::new();
    let mut label_counts = BTreeMap::new();
    let mut class_balance = None;
    let mut target_stats = None;
    match task {
        Task::Classification => {
            let names: Vec<String> = kept
                .iter()
                .map(|(_, r)| match &r.label {
                    RawLabel::Str(s) => s.clone(),
                    RawLabel::Num { int: Some(i), .. } => i.to_string(),
                    RawLabel::Num { value, .. } => format!("{value}"),
                })
                .collect();
            let all_int = kept
                .iter()
                .all(|(_, r)| matches!(r.label, RawLabel::Num { int: Some(_), .. }));
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for n in &names {
                *counts.entry(n.clone()).or_default() += 1;
            }
            labels = counts.keys().cloned().collect();
            if all_int {
                labels.sort_by_key(|s| s.parse::<i64>().unwrap_or(0));
            }
            if labels.len() < 2 {
                return Err(Error::SingleClass {
                    path: path.to_path_buf(),
                    label: labels.first().cloned().unwrap_or_default(),
                });
            }
            let index: BTreeMap<&str, u32> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i as u32))
                .collect();
            for ((_, r), n) in kept.into_iter().zip(&names) {
                rows.push(Row {
                    text: r.text,
                    text_pair: r.pair,
                    label: Label::Class(index[n.as_str()]),
                });
            }
            class_balance = Some(balance(&counts, rows.len()));
            label_counts = counts;
        }
        Task::Regression => {
            for (_, r) in kept {
                let v = match r.label {
                    RawLabel::Num { value, .. } => value,
                    RawLabel::Str(s) => {
                        return Err(Error::NotANumber {
                            path: path.to_path_buf(),
                            row: r.row,
                            line: r.line,
                            value: s,
                        })
                    }
                };
                rows.push(Row {
                    text: r.text,
                    text_pair: r.pair,
                    label: Label::Value(v),
                });
            }
            let vals: Vec<f64> = rows
                .iter()
                .filter_map(|r| match r.label {
                    Label::Value(v) => Some(v),
                    _ => None,
                })
                .collect();
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if min == max {
                return Err(Error::ConstantTarget {
                    path: path.to_path_buf(),
                    rows: vals.len(),
                    value: min,
                });
            }
            target_stats = Some(TargetStats {
                min,
                max,
                mean,
                std: var.sqrt(),
            });
        }
    }

    let summary = DatasetSummary {
        path: path.display().to_string(),
        format,
        compressed: digest.gzip,
        sha256: hex::encode(digest.sha256),
        bytes: digest.bytes,
        sha256_of: if digest.gzip {
            "the file as stored (gzip-compressed bytes, not the decompressed content)".into()
        } else {
            "the file as stored".into()
        },
        text_column: opts.text_col.clone(),
        pair_column,
        label_column: opts.label_col.clone(),
        task,
        rows_read,
        rows_kept: rows.len() as u64,
        limit: opts.limit,
        seed: opts.seed,
        sampled: (rows.len() as u64) < rows_read,
        label_counts,
        class_balance,
        target_stats,
        texts_cut,
    };
    Ok(Dataset {
        rows,
        task,
        labels,
        summary,
    })
}

fn balance(counts: &BTreeMap<String, u64>, n: usize) -> ClassBalance {
    let n = n as f64;
    // Ties broken by canonical (byte) order of the names for determinism.
    let (maj, &maj_c) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .expect("at least two classes");
    let (min, &min_c) = counts
        .iter()
        .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
        .expect("at least two classes");
    let h: f64 = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum();
    ClassBalance {
        classes: counts.len(),
        majority_label: maj.clone(),
        majority_fraction: maj_c as f64 / n,
        minority_label: min.clone(),
        minority_fraction: min_c as f64 / n,
        imbalance_ratio: maj_c as f64 / min_c as f64,
        normalized_entropy: h / (counts.len() as f64).ln(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_jsonl(path: &Path, opts: &DatasetOptions, col: &mut Collector) -> Result<Option<String>> {
    let (mut r, _) = open_maybe_gz(path)?;
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut row = 0u64;
    let mut pair_col: Option<Option<String>> = None;
    while let Some(too_long) =
        read_line_bounded(r.as_mut(), &mut buf, MAX_LINE).map_err(|e| io_err(path, e))?
    {
        line += 1;
        if too_long {
            return Err(Error::Json {
                path: path.to_path_buf(),
                line,
                msg: format!("line longer than {MAX_LINE} bytes"),
                hint: String::new(),
            });
        }
        let mut s = std::str::from_utf8(&buf).map_err(|_| Error::InvalidUtf8 {
            path: path.to_path_buf(),
            line,
        })?;
        if line == 1 {
            s = s.strip_prefix('\u{feff}').unwrap_or(s);
        }
        if s.trim().is_empty() {
            continue;
        }
        row += 1;
        let v: Value = serde_json::from_str(s).map_err(|e| {
            let hint = if s.contains("NaN") || s.contains("Infinity") {
                " (NaN and Infinity are not valid JSON: a NaN label must be fixed or the row removed)"
            } else {
                ""
            };
            Error::Json {
                path: path.to_path_buf(),
                line,
                msg: e.to_string(),
                hint: hint.into(),
            }
        })?;
        let Value::Object(obj) = v else {
            let mut found = json_kind(&v).to_string();
            if line == 1 && matches!(v, Value::Array(_)) {
                found.push_str("; a JSON array file must be converted to one object per line");
            }
            return Err(Error::NotAnObject {
                path: path.to_path_buf(),
                line,
                found,
            });
        };
        let pair_col = match &pair_col {
            Some(p) => p.clone(),
            None => {
                // First row: check the named columns exist.
                let found: Vec<String> = obj.keys().cloned().collect();
                let check = |c: &str, option: &'static str| {
                    if obj.contains_key(c) {
                        Ok(())
                    } else {
                        Err(Error::NoSuchColumn {
                            path: path.to_path_buf(),
                            column: c.to_string(),
                            option,
                            found: found.clone(),
                        })
                    }
                };
                check(&opts.text_col, "--text")?;
                check(&opts.label_col, "--label")?;
                let p = match &opts.pair_col {
                    Some(p) => {
                        check(p, "--pair")?;
                        Some(p.clone())
                    }
                    None if obj.contains_key("text_pair") => Some("text_pair".to_string()),
                    None => None,
                };
                pair_col = Some(p.clone());
                p
            }
        };
        let get_text = |c: &str| -> Result<String> {
            match obj.get(c) {
                None | Some(Value::Null) => Err(Error::MissingValue {
                    path: path.to_path_buf(),
                    row,
                    line,
                    column: c.to_string(),
                }),
                Some(Value::String(t)) => {
                    if t.trim().is_empty() {
                        Err(Error::EmptyText {
                            path: path.to_path_buf(),
                            row,
                            line,
                            column: c.to_string(),
                        })
                    } else {
                        Ok(t.clone())
                    }
                }
                Some(other) => Err(Error::WrongType {
                    path: path.to_path_buf(),
                    row,
                    line,
                    column: c.to_string(),
                    found: json_kind(other).into(),
                    what: "texts must be JSON strings".into(),
                }),
            }
        };
        let text = get_text(&opts.text_col)?;
        let pair = match &pair_col {
            Some(p) => Some(get_text(p)?),
            None => None,
        };
        let missing = || Error::MissingValue {
            path: path.to_path_buf(),
            row,
            line,
            column: opts.label_col.clone(),
        };
        let label = match obj.get(&opts.label_col) {
            None | Some(Value::Null) => return Err(missing()),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.is_empty() {
                    return Err(missing());
                }
                RawLabel::Str(s.to_string())
            }
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    RawLabel::Num {
                        value: i as f64,
                        int: Some(i),
                        repr: i.to_string(),
                    }
                } else {
                    let v = n.as_f64().unwrap_or(f64::NAN);
                    num_label(v, n.to_string())
                }
            }
            Some(other) => {
                return Err(Error::WrongType {
                    path: path.to_path_buf(),
                    row,
                    line,
                    column: opts.label_col.clone(),
                    found: json_kind(other).into(),
                    what: "labels must be strings, integers, or numbers (regression)".into(),
                })
            }
        };
        col.push(RawRow {
            row,
            line,
            text,
            pair,
            label,
        })?;
    }
    Ok(pair_col.flatten())
}

fn read_delimited(
    path: &Path,
    opts: &DatasetOptions,
    delim: u8,
    col: &mut Collector,
) -> Result<Option<String>> {
    let (r, _) = open_maybe_gz(path)?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(true)
        .flexible(true)
        .from_reader(r);
    let p = path.to_path_buf();
    let csv_err = |p: &PathBuf, e: csv::Error| -> Error {
        let line = e.position().map(|pos| pos.line()).unwrap_or(0);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => io_err(p, io),
            csv::ErrorKind::Utf8 { .. } => Error::InvalidUtf8 {
                path: p.clone(),
                line,
            },
            other => Error::Csv {
                path: p.clone(),
                line,
                msg: format!("{other:?}"),
            },
        }
    };
    let header = rdr.byte_headers().map_err(|e| csv_err(&p, e))?.clone();
    let mut names = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let s = std::str::from_utf8(h).map_err(|_| Error::InvalidUtf8 {
            path: p.clone(),
            line: 1,
        })?;
        let s = if i == 0 {
            s.strip_prefix('\u{feff}').unwrap_or(s)
        } else {
            s
        };
        names.push(s.trim().to_string());
    }
    if names.len() == 1 && names[0].is_empty() {
        return Err(Error::EmptyDataset { path: p });
    }
    let find = |c: &str, option: &'static str| -> Result<usize> {
        names
            .iter()
            .position(|n| n == c)
            .ok_or_else(|| Error::NoSuchColumn {
                path: p.clone(),
                column: c.to_string(),
                option,
                found: names.clone(),
            })
    };
    let ti = find(&opts.text_col, "--text")?;
    let li = find(&opts.label_col, "--label")?;
    let (pi, pair_name) = match &opts.pair_col {
        Some(c) => (Some(find(c, "--pair")?), Some(c.clone())),
        None => match names.iter().position(|n| n == "text_pair") {
            Some(i) => (Some(i), Some("text_pair".to_string())),
            None => (None, None),
        },
    };
    let mut rec = csv::ByteRecord::new();
    let mut row = 0u64;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(&p, e)),
        }
        row += 1;
        let line = rec.position().map(|pos| pos.line()).unwrap_or(0);
        if rec.len() != names.len() {
            return Err(Error::RaggedRow {
                path: p.clone(),
                line,
                expected: names.len(),
                found: rec.len(),
            });
        }
        let field = |i: usize| -> Result<&str> {
            std::str::from_utf8(&rec[i]).map_err(|_| Error::InvalidUtf8 {
                path: p.clone(),
                line,
            })
        };
        let text_of = |i: usize, c: &str| -> Result<String> {
            let t = field(i)?;
            if t.trim().is_empty() {
                Err(Error::EmptyText {
                    path: p.clone(),
                    row,
                    line,
                    column: c.to_string(),
                })
            } else {
                Ok(t.to_string())
            }
        };
        let text = text_of(ti, &opts.text_col)?;
        let pair = match (pi, &pair_name) {
            (Some(i), Some(c)) => Some(text_of(i, c)?),
            _ => None,
        };
        let l = field(li)?.trim();
        if l.is_empty() {
            return Err(Error::MissingValue {
                path: p.clone(),
                row,
                line,
                column: opts.label_col.clone(),
            });
        }
        let label = match l.parse::<f64>() {
            Ok(v) => match l.parse::<i64>() {
                Ok(i) => RawLabel::Num {
                    value: v,
                    int: Some(i),
                    repr: l.to_string(),
                },
                Err(_) => num_label(v, l.to_string()),
            },
            Err(_) => RawLabel::Str(l.to_string()),
        };
        col.push(RawRow {
            row,
            line,
            text,
            pair,
            label,
        })?;
    }
    Ok(pair_name)
}
