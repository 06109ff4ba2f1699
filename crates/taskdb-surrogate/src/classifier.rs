//! A local ONNX text classifier run through the surrogate runtime: `taskdb ingest model NAME
//! --onnx MODEL.onnx --tokenizer TOKENIZER.json --labels a,b,...`.
//!
//! Same machinery as [`Surrogate`](crate::Surrogate): ONNX Runtime found and loaded once per
//! process ([`ort_runtime`]), CPU or CUDA with fallback, one session per worker, dynamic padding,
//! inputs sorted by length within chunks, results in input order and independent of batch
//! composition. The model's inputs are detected from the graph (`input_ids`, `attention_mask`,
//! `token_type_ids`); its output is `[batch, classes]` logits (softmax applied) or probabilities
//! (normalised), and the number of classes must equal the number of labels.
//!
//! ```no_run
//! use std::path::Path;
//! use taskdb_surrogate::{Classifier, ClassifierOptions, TextInput};
//! let opts = ClassifierOptions::new(["negative", "positive"]);
//! let c = Classifier::load(Path::new("model.onnx"), Path::new("tokenizer.json"), &opts)?;
//! let p = c.classify(&[TextInput::Single("a good day")])?;
//! assert_eq!(p[0].len(), c.labels().len());
//! # Ok::<(), taskdb_surrogate::Error>(())
//! ```

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::{
    check_run_options, create_sessions, limit_tokenizer, ort_runtime, pad_batch, parse_tokenizer,
    sha256_hex, tokenize, EmbedStats, Error, Options, OrtSource, Padded, Result, Sessions,
    TextInput, Tok,
};

/// `max_length` used when the caller does not choose one (BERT-style models' usual limit).
pub const DEFAULT_CLASSIFIER_MAX_LENGTH: usize = 512;

/// Inputs per sorting chunk = `batch_size ×` this (as in the surrogate pipeline).
const CHUNK_BATCHES: usize = 64;

/// What the classifier's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised scores; softmax is applied.
    #[default]
    Logits,
    /// Non-negative scores per class; each row is divided by its sum.
    Probabilities,
}

impl FromStr for OutputKind {
    type Err = Error;
    /// Parses `logits` or `probabilities` (`probs`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logits" => Ok(OutputKind::Logits),
            "probabilities" | "probs" => Ok(OutputKind::Probabilities),
            _ => Err(Error::Options {
                option: "outputs_are",
                message: format!("`{s}` is not one of logits, probabilities"),
            }),
        }
    }
}

impl std::fmt::Display for OutputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputKind::Logits => "logits",
            OutputKind::Probabilities => "probabilities",
        })
    }
}

/// How to load and run an ONNX text classifier.
#[derive(Debug, Clone)]
pub struct ClassifierOptions {
    /// Class names in the order of the model's output columns (at least 2, unique, non-empty).
    pub labels: Vec<String>,
    /// Graph output to read; default: the only output, else the first float `[batch, classes]` one.
    pub output: Option<String>,
    /// Whether that output holds logits (default; softmax applied) or probabilities.
    pub outputs_are: OutputKind,
    /// Max tokens per input including special tokens (longer inputs are truncated, longest
    /// first for pairs); capped by the tokenizer's own truncation length when it has one.
    pub max_length: usize,
    /// Device, threads, workers, batch size, ONNX Runtime library: as for the surrogate.
    pub runtime: Options,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            labels: Vec::new(),
            output: None,
            outputs_are: OutputKind::Logits,
            max_length: DEFAULT_CLASSIFIER_MAX_LENGTH,
            runtime: Options::default(),
        }
    }
}

impl ClassifierOptions {
    /// Default options with these labels.
    pub fn new<S: Into<String>>(labels: impl IntoIterator<Item = S>) -> Self {
        ClassifierOptions {
            labels: labels.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// Parses a comma-separated label list (`--labels neg,pos`): trimmed, non-empty, unique, at
/// least two.
pub fn parse_labels(s: &str) -> Result<Vec<String>> {
    let labels: Vec<String> = s.split(',').map(|l| l.trim().to_string()).collect();
    check_labels(&labels)?;
    Ok(labels)
}

fn check_labels(labels: &[String]) -> Result<()> {
    let bad = |message: String| Error::Options {
        option: "labels",
        message,
    };
    if labels.len() < 2 {
        return Err(bad(format!(
            "{} label(s) given ({labels:?}); a classifier needs at least 2, in the order of the model's output columns (e.g. negative,positive)",
            labels.len()
        )));
    }
    for (i, l) in labels.iter().enumerate() {
        if l.trim().is_empty() {
            return Err(bad(format!(
                "label {} is empty (labels: {labels:?})",
                i + 1
            )));
        }
        if let Some(j) = labels[..i].iter().position(|m| m == l) {
            return Err(bad(format!(
                "label `{l}` appears twice (positions {} and {})",
                j + 1,
                i + 1
            )));
        }
    }
    Ok(())
}

/// What was loaded and how it runs: for provenance and `info` output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassifierInfo {
    /// sha256 (hex) over the model and tokenizer hashes and the configuration that changes
    /// outputs (labels, output, outputs_are, max_length).
    pub fingerprint: String,
    /// The ONNX model file.
    pub model_path: PathBuf,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The tokenizer file.
    pub tokenizer_path: PathBuf,
    /// sha256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Class names, in output-column order.
    pub labels: Vec<String>,
    /// The model's inputs, as fed: input ids, then attention mask and token type ids when present.
    pub inputs: Vec<String>,
    /// The graph output read.
    pub output: String,
    /// Logits or probabilities.
    pub outputs_are: OutputKind,
    /// Max tokens per input actually used.
    pub max_length: usize,
    /// Tokenizer vocabulary size (with added tokens).
    pub vocab_size: usize,
    /// Device requested.
    pub device_requested: String,
    /// Execution provider in use: `CPUExecutionProvider` or `CUDAExecutionProvider:N`.
    pub execution_provider: String,
    /// ONNX Runtime version string.
    pub ort_version: String,
    /// ONNX Runtime library path.
    pub ort_library: PathBuf,
    /// How the library was found.
    pub ort_source: OrtSource,
    /// Intra-op threads per session.
    pub intra_threads: usize,
    /// Sessions.
    pub workers: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Non-fatal problems (CUDA fell back to CPU, max_length capped, no attention mask...).
    pub warnings: Vec<String>,
}

/// Probabilities per input (input order) and the counts and timings of the call
/// (`EmbedStats::pool` is the time spent in softmax/normalisation).
#[derive(Debug, Clone)]
pub struct Classification {
    /// One distribution over the labels per input; each row sums to 1.
    pub probabilities: Vec<Vec<f32>>,
    /// Counts and timings.
    pub stats: EmbedStats,
}

/// A worker's statistics and (batch number, probabilities) per batch.
type WorkerOut = (EmbedStats, Vec<(usize, Vec<f32>)>);

/// The graph input names, detected from the model.
#[derive(Debug, Clone)]
struct InputNames {
    input_ids: String,
    attention_mask: Option<String>,
    token_type_ids: Option<String>,
}

/// A loaded ONNX text classifier: tokenizer + one session per worker. `Send + Sync`.
pub struct Classifier {
    info: ClassifierInfo,
    tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    names: InputNames,
    classes: usize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("info", &self.info)
            .finish()
    }
}

impl Classifier {
    /// Loads `model` (ONNX) and `tokenizer` (tokenizer.json): finds ONNX Runtime, creates the
    /// sessions, detects the inputs, picks and checks the output (classes = labels), and runs
    /// two probe inputs: the tokenizer's largest id (the vocabulary must fit the model) and one
    /// `max_length`-token input (the model must accept that length).
    pub fn load(model: &Path, tokenizer: &Path, opts: &ClassifierOptions) -> Result<Classifier> {
        check_run_options(&opts.runtime)?;
        check_labels(&opts.labels)?;
        if opts.max_length < 2 {
            return Err(Error::Options {
                option: "max_length",
                message: format!("{} is too small (at least 2 tokens)", opts.max_length),
            });
        }
        let model_bytes = std::fs::read(model).map_err(|e| Error::Model {
            path: model.to_path_buf(),
            message: format!("cannot read the ONNX model file ({e}); check the --onnx path"),
        })?;
        let tok_bytes = std::fs::read(tokenizer).map_err(|e| Error::Tokenizer {
            path: tokenizer.to_path_buf(),
            message: format!("cannot read the tokenizer file ({e}); check the --tokenizer path"),
        })?;
        let model_sha256 = sha256_hex(&model_bytes);
        let tokenizer_sha256 = sha256_hex(&tok_bytes);

        let mut warnings = Vec::new();
        let mut tok = parse_tokenizer(&tok_bytes, tokenizer)?;
        let mut max_length = opts.max_length;
        if let Some(own) = tok.get_truncation().map(|t| t.max_length) {
            if own < max_length {
                if opts.max_length != DEFAULT_CLASSIFIER_MAX_LENGTH {
                    warnings.push(format!(
                        "max_length {} capped to the tokenizer's truncation length {own}",
                        opts.max_length
                    ));
                }
                max_length = own.max(2);
            }
        }
        limit_tokenizer(&mut tok, tokenizer, max_length)?;
        let vocab_size = tok.get_vocab_size(true);

        let rt = ort_runtime(opts.runtime.ort_library.as_deref(), &mut warnings)?;
        let Sessions {
            sessions,
            execution_provider,
            intra_threads,
        } = create_sessions(&rt, &opts.runtime, &model_bytes, model, &mut warnings)?;

        let (names, output, classes) = {
            let s = sessions[0].lock().unwrap_or_else(|p| p.into_inner());
            let names = detect_inputs(&s, model)?;
            let (output, classes) = pick_output(&s, model, opts)?;
            (names, output, classes)
        };
        if names.attention_mask.is_none() {
            warnings.push(
                "the model takes no attention mask: inputs are batched only with inputs of the same length".into(),
            );
        }
        let mut inputs = vec![names.input_ids.clone()];
        inputs.extend(names.attention_mask.iter().cloned());
        inputs.extend(names.token_type_ids.iter().cloned());

        let fingerprint = {
            let config = serde_json::json!({
                "labels": opts.labels,
                "output": output,
                "outputs_are": opts.outputs_are,
                "max_length": max_length,
            });
            let mut h = Sha256::new();
            h.update(b"taskdb-classifier-fingerprint-v1\n");
            h.update(model_sha256.as_bytes());
            h.update(b"\n");
            h.update(tokenizer_sha256.as_bytes());
            h.update(b"\n");
            h.update(config.to_string().as_bytes());
            hex::encode(h.finalize())
        };

        let info = ClassifierInfo {
            fingerprint,
            model_path: model.to_path_buf(),
            model_sha256,
            tokenizer_path: tokenizer.to_path_buf(),
            tokenizer_sha256,
            labels: opts.labels.clone(),
            inputs,
            output,
            outputs_are: opts.outputs_are,
            max_length,
            vocab_size,
            device_requested: opts.runtime.device.to_string(),
            execution_provider,
            ort_version: rt.version.clone(),
            ort_library: rt.path.clone(),
            ort_source: rt.source,
            intra_threads,
            workers: opts.runtime.workers,
            batch_size: opts.runtime.batch_size,
            warnings,
        };
        let c = Classifier {
            info,
            tokenizer: tok,
            sessions,
            names,
            classes,
        };
        c.probe()?;
        Ok(c)
    }

    /// Class names, in output-column order.
    pub fn labels(&self) -> &[String] {
        &self.info.labels
    }

    /// What was loaded and how it runs.
    pub fn info(&self) -> &ClassifierInfo {
        &self.info
    }

    /// The classifier fingerprint (hex sha256; see [`ClassifierInfo::fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.info.fingerprint
    }

    /// One probability distribution over [`labels`](Self::labels) per input, in input order.
    pub fn classify(&self, inputs: &[TextInput<'_>]) -> Result<Vec<Vec<f32>>> {
        Ok(self.classify_with_stats(inputs)?.probabilities)
    }

    /// [`classify`](Self::classify) with counts (truncated, empty, tokens, padding) and timings.
    pub fn classify_with_stats(&self, inputs: &[TextInput<'_>]) -> Result<Classification> {
        let t0 = Instant::now();
        let n = inputs.len();
        let mut stats = EmbedStats {
            count: n,
            ..Default::default()
        };
        let mut probabilities = vec![Vec::new(); n];
        let bs = self.info.batch_size;
        for (c, part) in inputs.chunks(bs * CHUNK_BATCHES).enumerate() {
            let start = c * bs * CHUNK_BATCHES;
            let t = Instant::now();
            let toks: Vec<Tok> = part
                .par_iter()
                .enumerate()
                .map(|(i, inp)| tokenize(&self.tokenizer, inp, start + i))
                .collect::<Result<_>>()?;
            let mut order: Vec<usize> = (0..toks.len()).collect();
            // longest first; ties by index for determinism
            order.sort_by(|&a, &b| toks[b].ids.len().cmp(&toks[a].ids.len()).then(a.cmp(&b)));
            for t in &toks {
                stats.truncated += t.truncated as usize;
                stats.empty += t.empty as usize;
                stats.tokens += t.ids.len();
            }
            let batches = self.make_batches(&order, &toks);
            stats.tokenize += t.elapsed();
            let mut toks: Vec<Option<Tok>> = toks.into_iter().map(Some).collect();
            let batches: Vec<(Vec<usize>, Vec<Tok>)> = batches
                .into_iter()
                .map(|idx| {
                    let ts = idx.iter().map(|&i| toks[i].take().expect("once")).collect();
                    (idx, ts)
                })
                .collect();
            let rows = self.run_batches(&batches, start, &mut stats)?;
            for ((idx, _), probs) in batches.iter().zip(rows) {
                for (k, &i) in idx.iter().enumerate() {
                    probabilities[start + i] =
                        probs[k * self.classes..(k + 1) * self.classes].to_vec();
                }
            }
        }
        stats.total = t0.elapsed();
        Ok(Classification {
            probabilities,
            stats,
        })
    }

    /// Splits `order` (chunk-local indices, longest first) into batches; without an attention
    /// mask, a batch holds inputs of one length only (padding would change the outputs).
    fn make_batches(&self, order: &[usize], toks: &[Tok]) -> Vec<Vec<usize>> {
        let bs = self.info.batch_size;
        let mut out: Vec<Vec<usize>> = Vec::new();
        for &i in order {
            match out.last_mut() {
                Some(b)
                    if b.len() < bs
                        && (self.names.attention_mask.is_some()
                            || toks[b[0]].ids.len() == toks[i].ids.len()) =>
                {
                    b.push(i)
                }
                _ => out.push(vec![i]),
            }
        }
        out
    }

    /// Runs the batches on the worker sessions; returns each batch's `rows × classes`
    /// probabilities, in batch order.
    fn run_batches(
        &self,
        batches: &[(Vec<usize>, Vec<Tok>)],
        start: usize,
        stats: &mut EmbedStats,
    ) -> Result<Vec<Vec<f32>>> {
        let next = AtomicUsize::new(0);
        let workers = self.sessions.len().min(batches.len()).max(1);
        let work = |w: usize| -> Result<WorkerOut> {
            let mut st = EmbedStats::default();
            let mut out = Vec::new();
            let mut session = self.sessions[w].lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((idx, toks)) = batches.get(k) else {
                    break;
                };
                match self.run_batch(&mut session, toks, &mut st) {
                    Ok(v) => out.push((k, v)),
                    Err(e) => {
                        // stop the other workers
                        next.store(batches.len(), Ordering::Relaxed);
                        return Err(locate(e, idx, start));
                    }
                }
            }
            Ok((st, out))
        };
        let results: Vec<Result<_>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..workers).map(|w| scope.spawn(move || work(w))).collect();
            let mut results = vec![work(0)];
            for h in handles {
                results.push(h.join().unwrap_or_else(|_| {
                    Err(Error::ort("running a worker", "worker thread panicked"))
                }));
            }
            results
        });
        let mut rows = vec![Vec::new(); batches.len()];
        for r in results {
            let (st, out) = r?;
            stats.inference += st.inference;
            stats.pool += st.pool;
            stats.batches += st.batches;
            stats.padded_tokens += st.padded_tokens;
            for (k, v) in out {
                rows[k] = v;
            }
        }
        Ok(rows)
    }

    /// Pads and runs one batch; returns `rows × classes` probabilities.
    fn run_batch(
        &self,
        session: &mut Session,
        toks: &[Tok],
        st: &mut EmbedStats,
    ) -> Result<Vec<f32>> {
        let b = toks.len();
        let Padded {
            len,
            ids,
            mask,
            types,
        } = pad_batch(toks, self.names.token_type_ids.is_some());
        st.padded_tokens += b * len;
        st.batches += 1;
        let t = Instant::now();
        let tensor = |v: Vec<i64>| {
            Tensor::from_array(([b, len], v)).map_err(|e| Error::ort("building an input tensor", e))
        };
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![(self.names.input_ids.as_str().into(), tensor(ids)?.into())];
        if let Some(n) = &self.names.attention_mask {
            feeds.push((n.as_str().into(), tensor(mask)?.into()));
        }
        if let Some(n) = &self.names.token_type_ids {
            feeds.push((n.as_str().into(), tensor(types)?.into()));
        }
        let outputs = session
            .run(feeds)
            .map_err(|e| Error::ort(format!("running a batch of {b} inputs × {len} tokens"), e))?;
        st.inference += t.elapsed();
        let t = Instant::now();
        let name = &self.info.output;
        let v = outputs
            .get(name.as_str())
            .ok_or_else(|| Error::ort("reading outputs", format!("output `{name}` missing")))?;
        let (shape, x) = v
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::ort(format!("reading output `{name}` as f32"), e))?;
        let c = self.classes;
        if shape.len() != 2 || shape[0] as usize != b || shape[1] as usize != c {
            return Err(Error::Model {
                path: self.info.model_path.clone(),
                message: format!(
                    "output `{name}` has shape {:?} for a batch of {b}; [{b}, {c}] ({c} labels) was expected",
                    &shape[..]
                ),
            });
        }
        let mut probs = vec![0f32; b * c];
        for (r, (src, dst)) in x.chunks_exact(c).zip(probs.chunks_exact_mut(c)).enumerate() {
            to_distribution(src, dst, self.info.outputs_are).map_err(|message| Error::Input {
                source_name: "input".into(),
                line: r + 1, // rewritten to the input's position by `locate`
                message: format!("output `{name}`: {message}"),
            })?;
        }
        st.pool += t.elapsed();
        Ok(probs)
    }

    /// Checks that the tokenizer's ids fit the model and that `max_length` tokens are accepted.
    fn probe(&self) -> Result<()> {
        let max_id = self.info.vocab_size.saturating_sub(1) as i64;
        let mut st = EmbedStats::default();
        let mut s = self.sessions[0].lock().unwrap_or_else(|p| p.into_inner());
        let probe = |len: usize| Tok {
            ids: vec![max_id; len],
            type_ids: vec![0; len],
            truncated: false,
            empty: false,
        };
        match self.run_batch(&mut s, &[probe(2)], &mut st) {
            Ok(_) | Err(Error::Input { .. }) => {}
            Err(Error::Ort { message, .. }) => {
                return Err(Error::Tokenizer {
                    path: self.info.tokenizer_path.clone(),
                    message: format!(
                        "does not fit the model {}: its vocabulary has {} ids but running the largest id ({max_id}) failed: {message}",
                        self.info.model_path.display(),
                        self.info.vocab_size
                    ),
                })
            }
            Err(e) => return Err(e),
        }
        let len = self.info.max_length;
        match self.run_batch(&mut s, &[probe(len)], &mut st) {
            Ok(_) | Err(Error::Input { .. }) => Ok(()),
            Err(Error::Ort { message, .. }) => Err(Error::Options {
                option: "max_length",
                message: format!(
                    "the model {} fails on an input of {len} tokens (its position table is probably shorter): pass a smaller max_length. ONNX Runtime: {message}",
                    self.info.model_path.display()
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Rewrites a batch-relative input error to the position of the input in the caller's slice.
fn locate(e: Error, idx: &[usize], start: usize) -> Error {
    match e {
        Error::Input {
            source_name,
            line,
            message,
        } => Error::Input {
            source_name,
            line: idx.get(line - 1).map_or(line, |&i| start + i + 1),
            message,
        },
        e => e,
    }
}

/// Softmax (logits) or normalisation (probabilities) of one row, in f64.
fn to_distribution(
    src: &[f32],
    dst: &mut [f32],
    kind: OutputKind,
) -> std::result::Result<(), String> {
    if let Some(v) = src.iter().find(|v| !v.is_finite()) {
        return Err(format!(
            "the model returned a non-finite score ({v}) in {src:?}"
        ));
    }
    match kind {
        OutputKind::Logits => {
            let m = src.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let e: Vec<f64> = src.iter().map(|&v| (v as f64 - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (d, v) in dst.iter_mut().zip(&e) {
                *d = (v / sum) as f32;
            }
        }
        OutputKind::Probabilities => {
            if src.iter().any(|&v| v < 0.0) {
                return Err(format!(
                    "negative score in {src:?}, but the output was declared as probabilities (use logits)"
                ));
            }
            let sum: f64 = src.iter().map(|&v| v as f64).sum();
            if sum <= 0.0 {
                return Err(format!("scores {src:?} sum to 0; cannot normalise"));
            }
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = (v as f64 / sum) as f32;
            }
        }
    }
    Ok(())
}

/// Maps the graph's inputs to input ids / attention mask / token type ids by name.
fn detect_inputs(s: &Session, model: &Path) -> Result<InputNames> {
    let found: Vec<String> = s
        .inputs()
        .iter()
        .map(|i| format!("{} ({:?})", i.name(), i.dtype()))
        .collect();
    let err = |what: String| {
        Error::Model {
        path: model.to_path_buf(),
        message: format!(
            "{what}; a text classifier takes int64 `input_ids` and optionally `attention_mask` and `token_type_ids` (the model's inputs: {})",
            found.join(", ")
        ),
    }
    };
    let (mut ids, mut mask, mut types) = (None, None, None);
    for i in s.inputs() {
        let name = i.name();
        let slot = match name.to_ascii_lowercase().as_str() {
            "input_ids" | "ids" => &mut ids,
            "attention_mask" | "input_mask" | "mask" => &mut mask,
            "token_type_ids" | "segment_ids" | "type_ids" => &mut types,
            _ => return Err(err(format!("input `{name}` is not one taskdb can feed"))),
        };
        if i.dtype().tensor_type() != Some(TensorElementType::Int64) {
            return Err(err(format!("input `{name}` is not int64")));
        }
        if slot.replace(name.to_string()).is_some() {
            return Err(err(format!("two inputs play the role of `{name}`")));
        }
    }
    let Some(input_ids) = ids else {
        return Err(err("no `input_ids` input".into()));
    };
    Ok(InputNames {
        input_ids,
        attention_mask: mask,
        token_type_ids: types,
    })
}

/// Picks the output (named, the only one, or the first float rank-2 one) and checks its class
/// count against the labels when the model fixes it.
fn pick_output(s: &Session, model: &Path, opts: &ClassifierOptions) -> Result<(String, usize)> {
    let shape_of = |o: &ort::value::Outlet| -> Vec<i64> {
        o.dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default()
    };
    let found: Vec<String> = s
        .outputs()
        .iter()
        .map(|o| {
            format!(
                "{} {:?} {:?}",
                o.name(),
                o.dtype().tensor_type(),
                shape_of(o)
            )
        })
        .collect();
    let err = |message: String| Error::Model {
        path: model.to_path_buf(),
        message: format!("{message} (the model's outputs: {})", found.join(", ")),
    };
    let is_2d_float = |o: &ort::value::Outlet| {
        o.dtype().tensor_type() == Some(TensorElementType::Float32) && shape_of(o).len() == 2
    };
    let out = match &opts.output {
        Some(name) => s
            .outputs()
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| err(format!("no output named `{name}`")))?,
        None if s.outputs().len() == 1 => &s.outputs()[0],
        None => s.outputs().iter().find(|o| is_2d_float(o)).ok_or_else(|| {
            err("no float32 [batch, classes] output; name one with the output option".into())
        })?,
    };
    let name = out.name().to_string();
    if !is_2d_float(out) {
        return Err(err(format!(
            "output `{name}` must be float32 [batch, classes] (got {:?} {:?})",
            out.dtype().tensor_type(),
            shape_of(out)
        )));
    }
    let classes = shape_of(out)[1];
    let labels = opts.labels.len();
    if classes > 0 && classes as usize != labels {
        return Err(err(format!(
            "output `{name}` has {classes} classes, but {labels} labels were given ({}); give exactly one label per output column, in column order",
            opts.labels.join(",")
        )));
    }
    // A dynamic class dimension is checked on the probe run (shape [1, labels] expected).
    Ok((name, labels))
}
