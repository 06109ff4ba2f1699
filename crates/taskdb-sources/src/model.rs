//! Model outputs over U: the reply line protocol, predictions files, and targets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{truncate, Error, Result};
use crate::input::{io_err, open_maybe_gz, read_line_bounded};
use crate::probe::ProbeSet;
use crate::prompt::Verbalizers;

/// Longest accepted reply line (bytes). A reply is one short JSON object; the cap (with
/// the bounded channel in `command.rs`) keeps memory bounded whatever a model prints.
pub const MAX_REPLY_LINE: usize = 1 << 20;
/// Longest accepted label name (bytes), for hard labels and score keys.
pub const MAX_LABEL_BYTES: usize = 1024;
/// Most distinct labels a model may use. A model's labels are its classes.
pub const MAX_LABELS: usize = 10_000;
/// Most bytes of predictions kept in memory (label names and scores, all ids together).
pub const MAX_RETAINED_BYTES: usize = 256 << 20;
/// Default for [`PredictionOptions::max_unmatched_fraction`].
pub const DEFAULT_MAX_UNMATCHED: f64 = 0.5;
const EXAMPLES: usize = 5;

/// A model's answer for one probe text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Prediction {
    Label(String),
    /// Raw scores per label as given (normalised later by [`to_targets`]).
    Scores(BTreeMap<String, f64>),
}

/// What happened while reading a model's replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutputReport {
    /// "command `...`" or the predictions file path.
    pub source: String,
    /// Non-blank reply lines read.
    pub lines: u64,
    /// Probe texts answered (matched or not).
    pub answered: usize,
    pub hard_labels: usize,
    pub soft_scores: usize,
    /// Replies that matched no verbalizer (or matched several labels): excluded.
    pub unmatched: usize,
    /// First few unmatched (id, reply), replies truncated.
    pub unmatched_examples: Vec<(u32, String)>,
    /// Predicted label counts (argmax for scores; ties to the first in byte order).
    pub label_counts: BTreeMap<String, u64>,
    /// Whether replies went through verbalizers.
    pub verbalized: bool,
}

/// A model's predictions over U, keyed by probe id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOutputs {
    /// Fingerprint (hex) of the probe set the predictions are over.
    pub probe_fingerprint: String,
    pub predictions: BTreeMap<u32, Prediction>,
    /// Labels declared up front (the verbalizer labels), included in the vocabulary even
    /// when never predicted.
    pub declared_labels: Vec<String>,
    pub report: OutputReport,
}

/// How replies are interpreted.
#[derive(Debug, Clone)]
pub struct PredictionOptions {
    /// Map free-text replies / per-word scores to labels.
    pub verbalizers: Option<Verbalizers>,
    /// Error when more than this fraction of replies match no verbalizer (default 0.5).
    pub max_unmatched_fraction: f64,
    /// What "scores" are: probabilities / non-negative weights (the default), or logits,
    /// which are turned into probabilities (softmax over the labels given) as they are read.
    pub scores_are: ScoreKind,
}

impl Default for PredictionOptions {
    fn default() -> Self {
        PredictionOptions {
            verbalizers: None,
            max_unmatched_fraction: DEFAULT_MAX_UNMATCHED,
            scores_are: ScoreKind::Probabilities,
        }
    }
}

/// Parses reply lines and collects predictions; shared by commands and files.
pub(crate) struct ReplyCollector<'a> {
    probe: &'a ProbeSet,
    opts: &'a PredictionOptions,
    source_name: String,
    predictions: BTreeMap<u32, Prediction>,
    first_line: HashMap<u32, u64>,
    report: OutputReport,
    /// JSON type of the first hard label ("a string" / "an integer") and its line.
    first_label_kind: Option<(&'static str, u64)>,
    /// Distinct label names seen (hard labels and score keys).
    distinct: std::collections::HashSet<String>,
    retained_bytes: usize,
}

impl<'a> ReplyCollector<'a> {
    pub(crate) fn new(probe: &'a ProbeSet, opts: &'a PredictionOptions, source: String) -> Self {
        ReplyCollector {
            probe,
            opts,
            source_name: source.clone(),
            predictions: BTreeMap::new(),
            first_line: HashMap::new(),
            report: OutputReport {
                source,
                verbalized: opts.verbalizers.is_some(),
                ..Default::default()
            },
            first_label_kind: None,
            distinct: Default::default(),
            retained_bytes: 0,
        }
    }

    pub(crate) fn lines(&self) -> u64 {
        self.report.lines
    }

    fn bad(&self, line: u64, msg: String) -> Error {
        Error::BadPrediction {
            stderr: String::new(),
            source_name: self.source_name.clone(),
            line,
            msg,
        }
    }

    /// Handles one reply line (without its newline). Blank lines are skipped.
    pub(crate) fn handle(&mut self, line: u64, bytes: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(bytes);
        if text.trim().is_empty() {
            return Ok(());
        }
        self.report.lines += 1;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::NotJson {
            stderr: String::new(),
            source_name: self.source_name.clone(),
            line,
            text: truncate(text.trim(), 200),
            msg: e.to_string(),
        })?;
        let Value::Object(obj) = v else {
            return Err(Error::NotJson {
                stderr: String::new(),
                source_name: self.source_name.clone(),
                line,
                text: truncate(text.trim(), 200),
                msg: "a JSON value but not an object".into(),
            });
        };
        let id = match obj.get("id") {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(i) if i <= u32::MAX as u64 && self.probe.position(i as u32).is_some() => {
                    i as u32
                }
                _ => {
                    return Err(Error::UnknownId {
                        stderr: String::new(),
                        source_name: self.source_name.clone(),
                        line,
                        id: n.to_string(),
                    })
                }
            },
            Some(other) => {
                return Err(Error::UnknownId {
                    stderr: String::new(),
                    source_name: self.source_name.clone(),
                    line,
                    id: other.to_string(),
                })
            }
            None => {
                return Err(self.bad(
                    line,
                    "no \"id\"; each reply must be {\"id\": N, \"label\": ...} or {\"id\": N, \"scores\": {...}}".into(),
                ))
            }
        };
        if let Some(&first) = self.first_line.get(&id) {
            return Err(Error::DuplicateId {
                stderr: String::new(),
                source_name: self.source_name.clone(),
                line,
                id,
                first_line: first,
            });
        }
        self.first_line.insert(id, line);
        self.report.answered += 1;

        let pred = if let Some(s) = obj.get("scores") {
            let Value::Object(m) = s else {
                return Err(self.bad(
                    line,
                    format!("\"scores\" must be an object of label -> number, found {s}"),
                ));
            };
            let mut scores = BTreeMap::new();
            for (k, v) in m {
                let Some(x) = v.as_f64() else {
                    return Err(self.bad(line, format!("score of {k:?} is not a number: {v}")));
                };
                self.check_label_name(line, k)?;
                scores.insert(k.clone(), x);
            }
            if scores.is_empty() {
                return Err(self.bad(line, "\"scores\" is empty".into()));
            }
            if self.opts.scores_are == ScoreKind::Logits {
                if let Some((k, x)) = scores.iter().find(|(_, x)| !x.is_finite()) {
                    return Err(self.bad(
                        line,
                        format!("logit of {k:?} is {x}; logits must be finite numbers"),
                    ));
                }
                softmax_in_place(&mut scores);
            }
            match &self.opts.verbalizers {
                Some(vb) => vb
                    .map_scores(&scores)
                    .map(Prediction::Scores)
                    .ok_or_else(|| {
                        let words: Vec<&str> = scores.keys().map(|s| s.as_str()).collect();
                        words.join(", ")
                    }),
                None => Ok(Prediction::Scores(scores)),
            }
        } else {
            let reply = match (&self.opts.verbalizers, obj.get("reply"), obj.get("label")) {
                (Some(_), Some(r), _) | (_, _, Some(r)) => r,
                (None, Some(_), None) => {
                    return Err(self.bad(
                        line,
                        "a \"reply\" needs --verbalizer LABEL=word... to map it to a label".into(),
                    ))
                }
                (_, None, None) => {
                    return Err(self.bad(
                        line,
                        "no \"label\" or \"scores\"; each reply must be {\"id\": N, \"label\": ...} or {\"id\": N, \"scores\": {...}}".into(),
                    ))
                }
            };
            let (s, kind) = match reply {
                Value::String(s) => (s.clone(), "a string"),
                Value::Number(n) if n.is_i64() || n.is_u64() => (n.to_string(), "an integer"),
                other => {
                    return Err(self.bad(
                        line,
                        format!("the label must be a string or an integer, found {other}"),
                    ))
                }
            };
            if self.opts.verbalizers.is_none() {
                // As for datasets: labels are all strings or all integers, never a mix
                // (1 and "1" would silently become one class).
                match self.first_label_kind {
                    None => self.first_label_kind = Some((kind, line)),
                    Some((k, first)) if k != kind => {
                        return Err(self.bad(
                            line,
                            format!(
                                "label {reply} is {kind}, but line {first} has {k} label. Labels \
                                 must be all strings or all integers; print them consistently"
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                self.check_label_name(line, s.trim())?;
            }
            match &self.opts.verbalizers {
                Some(vb) => vb
                    .map_reply(&s)
                    .map(|l| Prediction::Label(l.to_string()))
                    .ok_or(s),
                None => {
                    let l = s.trim();
                    if l.is_empty() {
                        return Err(self.bad(line, "empty label".into()));
                    }
                    Ok(Prediction::Label(l.to_string()))
                }
            }
        };
        match pred {
            Ok(p) => {
                let names: Vec<&String> = match &p {
                    Prediction::Label(l) => vec![l],
                    Prediction::Scores(m) => m.keys().collect(),
                };
                for n in &names {
                    if !self.distinct.contains(n.as_str()) {
                        if self.distinct.len() >= MAX_LABELS {
                            return Err(self.bad(
                                line,
                                format!(
                                    "more than {MAX_LABELS} distinct labels (label {:?}); a \
                                     model's labels are its classes: print the class, not free \
                                     text (for free-text replies use --verbalizer)",
                                    truncate(n, 80)
                                ),
                            ));
                        }
                        self.distinct.insert((*n).clone());
                    }
                    self.retained_bytes += n.len() + 48;
                }
                if self.retained_bytes > MAX_RETAINED_BYTES {
                    return Err(self.bad(
                        line,
                        format!(
                            "the predictions so far take more than {} MiB; print one label or a \
                             few scores per input",
                            MAX_RETAINED_BYTES >> 20
                        ),
                    ));
                }
                let top = match &p {
                    Prediction::Label(l) => {
                        self.report.hard_labels += 1;
                        l.clone()
                    }
                    Prediction::Scores(m) => {
                        self.report.soft_scores += 1;
                        m.iter()
                            .fold(None::<(&String, f64)>, |best, (k, &v)| match best {
                                Some((_, bv)) if bv >= v => best,
                                _ => Some((k, v)),
                            })
                            .map(|b| b.0.clone())
                            .unwrap_or_default()
                    }
                };
                *self.report.label_counts.entry(top).or_default() += 1;
                self.predictions.insert(id, p);
            }
            Err(reply) => {
                self.report.unmatched += 1;
                if self.report.unmatched_examples.len() < EXAMPLES {
                    self.report
                        .unmatched_examples
                        .push((id, truncate(&reply, 120)));
                }
            }
        }
        Ok(())
    }

    fn check_label_name(&self, line: u64, l: &str) -> Result<()> {
        if l.len() > MAX_LABEL_BYTES {
            return Err(self.bad(
                line,
                format!(
                    "label {:?} is {} bytes long; labels are class names of at most \
                     {MAX_LABEL_BYTES} bytes (for free-text replies use --verbalizer)",
                    truncate(l, 60),
                    l.len()
                ),
            ));
        }
        Ok(())
    }

    /// Checks completeness and the unmatched fraction. `stderr` is appended to a
    /// too-few-lines error (the command's stderr tail; empty for files).
    pub(crate) fn finish(self, stderr: &str) -> Result<ModelOutputs> {
        let expected = self.probe.len();
        if self.report.answered < expected {
            let missing: Vec<u32> = self
                .probe
                .texts
                .iter()
                .map(|t| t.id)
                .filter(|id| !self.first_line.contains_key(id))
                .take(10)
                .collect();
            return Err(Error::TooFewLines {
                source_name: self.source_name,
                got: self.report.answered,
                expected,
                missing,
                stderr: if stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(" Its stderr (last part):\n{stderr}")
                },
            });
        }
        let total = self.report.answered;
        if self.report.unmatched as f64 > self.opts.max_unmatched_fraction * total as f64 {
            return Err(Error::TooManyUnmatched {
                source_name: self.source_name,
                unmatched: self.report.unmatched,
                total,
                max_percent: self.opts.max_unmatched_fraction * 100.0,
                examples: self.report.unmatched_examples,
            });
        }
        Ok(ModelOutputs {
            probe_fingerprint: self.probe.fingerprint_hex(),
            predictions: self.predictions,
            declared_labels: self
                .opts
                .verbalizers
                .as_ref()
                .map(|v| v.labels())
                .unwrap_or_default(),
            report: self.report,
        })
    }
}

/// Reads predictions computed elsewhere over `probe` (`--predictions FILE`): the same
/// reply lines a command writes, in any order, one per probe text. Gzip is detected.
pub fn read_predictions(
    path: &Path,
    probe: &ProbeSet,
    opts: &PredictionOptions,
) -> Result<ModelOutputs> {
    let (mut r, _) = open_maybe_gz(path)?;
    let mut col = ReplyCollector::new(probe, opts, path.display().to_string());
    let mut buf = Vec::new();
    let mut line = 0u64;
    while let Some(too_long) =
        read_line_bounded(r.as_mut(), &mut buf, MAX_REPLY_LINE).map_err(|e| io_err(path, e))?
    {
        line += 1;
        if too_long {
            return Err(Error::BadPrediction {
                stderr: String::new(),
                source_name: path.display().to_string(),
                line,
                msg: format!("line longer than {MAX_REPLY_LINE} bytes"),
            });
        }
        col.handle(line, &buf)?;
    }
    col.finish("")
}

/// Softmax over the given labels (max-shifted, so large logits do not overflow).
fn softmax_in_place(m: &mut BTreeMap<String, f64>) {
    let mx = m.values().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in m.values_mut() {
        *v = (*v - mx).exp();
        sum += *v;
    }
    for v in m.values_mut() {
        *v /= sum;
    }
}

/// How to turn raw scores into a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreKind {
    /// Non-negative scores (probabilities, counts, unnormalised weights): divided by
    /// their sum. The default: it is the identity on probabilities, whereas a softmax
    /// would flatten them (softmax([0.9, 0.1]) = [0.69, 0.31]).
    #[default]
    Probabilities,
    /// Real-valued logits: softmax over the labels given (labels not given get 0).
    Logits,
}

/// Training targets from a model's predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Label vocabulary in canonical order ([`canonical_label_order`]).
    pub labels: Vec<String>,
    /// Probe ids with a usable prediction, ascending.
    pub ids: Vec<u32>,
    pub values: TargetValues,
}

/// Hard or soft targets, aligned with [`Targets::ids`].
#[derive(Debug, Clone, PartialEq)]
pub enum TargetValues {
    /// Index into `labels`, when every prediction is a hard label.
    Hard(Vec<u32>),
    /// One distribution over `labels` per id (sums to 1), when any prediction has
    /// scores (hard labels become one-hot rows).
    Soft(Vec<Vec<f64>>),
}

/// Canonical label order: numeric when every name is an integer, else byte order.
/// Used for datasets and models alike, so label names and order never matter downstream.
pub fn canonical_label_order(mut labels: Vec<String>) -> Vec<String> {
    labels.sort();
    labels.dedup();
    if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
        labels.sort_by_key(|l| l.parse::<i64>().unwrap_or(0));
    }
    labels
}

/// Label vocabulary + hard indices or soft distributions (normalised per row).
///
/// Errors: no predictions; fewer than two labels in the vocabulary; a NaN or infinite
/// score; a negative score or scores summing to 0 (with `ScoreKind::Probabilities`).
/// Each score error names the probe id.
pub fn to_targets(outputs: &ModelOutputs, kind: ScoreKind) -> Result<Targets> {
    if outputs.predictions.is_empty() {
        return Err(Error::NoPredictions {
            msg: "the model answered no probe text with a usable label".into(),
        });
    }
    let mut names: Vec<String> = outputs.declared_labels.clone();
    for p in outputs.predictions.values() {
        match p {
            Prediction::Label(l) => names.push(l.clone()),
            Prediction::Scores(m) => names.extend(m.keys().cloned()),
        }
    }
    let labels = canonical_label_order(names);
    if labels.len() < 2 {
        return Err(Error::NoPredictions {
            msg: format!(
                "every prediction is the single label {:?}; a model needs at least two labels to have a task embedding",
                labels.first().cloned().unwrap_or_default()
            ),
        });
    }
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let ids: Vec<u32> = outputs.predictions.keys().copied().collect();
    let all_hard = outputs
        .predictions
        .values()
        .all(|p| matches!(p, Prediction::Label(_)));
    if all_hard {
        let v: Vec<u32> = outputs
            .predictions
            .values()
            .map(|p| match p {
                Prediction::Label(l) => index[l.as_str()] as u32,
                Prediction::Scores(_) => unreachable!("all hard"),
            })
            .collect();
        if v.iter().all(|&i| i == v[0]) {
            return Err(constant_outputs(
                v.len(),
                &format!("the same label {:?}", labels[v[0] as usize]),
            ));
        }
        return Ok(Targets {
            labels,
            ids,
            values: TargetValues::Hard(v),
        });
    }
    let k = labels.len();
    let mut rows = Vec::with_capacity(ids.len());
    for (&id, p) in &outputs.predictions {
        let mut row = vec![0.0; k];
        match p {
            Prediction::Label(l) => row[index[l.as_str()]] = 1.0,
            Prediction::Scores(m) => {
                for (l, &s) in m {
                    if !s.is_finite() {
                        return Err(Error::Scores {
                            id,
                            msg: format!("score of {l:?} is {s}; scores must be finite numbers"),
                        });
                    }
                }
                match kind {
                    ScoreKind::Probabilities => {
                        for (l, &s) in m {
                            if s < 0.0 {
                                return Err(Error::Scores {
                                    id,
                                    msg: format!("score of {l:?} is negative ({s}); probabilities must be >= 0. If the model prints logits, say so (`taskdb ingest model --scores-are logits`) and taskdb applies a softmax"),
                                });
                            }
                            row[index[l.as_str()]] += s;
                        }
                        let sum: f64 = row.iter().sum();
                        if sum <= 0.0 {
                            return Err(Error::Scores {
                                id,
                                msg:
                                    "all scores are zero; at least one label needs a positive score"
                                        .into(),
                            });
                        }
                        row.iter_mut().for_each(|x| *x /= sum);
                    }
                    ScoreKind::Logits => {
                        let mx = m.values().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let mut sum = 0.0;
                        for (l, &s) in m {
                            let e = (s - mx).exp();
                            row[index[l.as_str()]] += e;
                            sum += e;
                        }
                        row.iter_mut().for_each(|x| *x /= sum);
                    }
                }
            }
        }
        rows.push(row);
    }
    let first = &rows[0];
    if rows
        .iter()
        .all(|r| r.iter().zip(first).all(|(a, b)| (a - b).abs() <= 1e-12))
    {
        let shown: Vec<String> = labels
            .iter()
            .zip(first)
            .map(|(l, p)| format!("{l:?}: {p:.4}"))
            .collect();
        return Err(constant_outputs(
            rows.len(),
            &format!("the same distribution {{{}}}", shown.join(", ")),
        ));
    }
    Ok(Targets {
        labels,
        ids,
        values: TargetValues::Soft(rows),
    })
}

/// A model whose outputs do not depend on its input: centred on U it is the zero matrix,
/// so it has no task embedding (every method would give a zero vector).
fn constant_outputs(n: usize, what: &str) -> Error {
    Error::NoPredictions {
        msg: format!(
            "all {n} probe texts the model answered got {what}: its outputs do not depend on \
             the input, so it performs no task on U and has no task embedding. For an LLM, \
             check the prompt and the verbalizers (the model may never prefer one label's \
             words over another's)"
        ),
    }
}
