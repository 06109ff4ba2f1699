//! taskdb's surrogate runtime: an ONNX sentence encoder run through ONNX Runtime (CPU or CUDA),
//! turning texts and text pairs into pooled feature vectors.
//!
//! ```no_run
//! use taskdb_surrogate::{Options, Surrogate};
//! let s = Surrogate::load(taskdb_surrogate::default_surrogate_dir(), &Options::default())?;
//! let e = s.embed(&["a sentence", "another one"])?;
//! assert_eq!(e.row(1).len(), s.dim());
//! # Ok::<(), taskdb_surrogate::Error>(())
//! ```
//!
//! The library never prints: warnings (e.g. CUDA fell back to CPU) are in [`SurrogateInfo::warnings`].

mod classifier;
mod error;
mod jsonl;
mod manifest;
mod runtime;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::ep::ExecutionProvider;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::Tensor;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub use classifier::{
    parse_labels, Classification, Classifier, ClassifierInfo, ClassifierOptions, OutputKind,
    DEFAULT_CLASSIFIER_MAX_LENGTH,
};
pub use error::{Error, Result};
pub use jsonl::{embed_jsonl, read_jsonl_inputs, JsonlInput};
pub use manifest::{InputNames, Manifest, Pooling};
pub use runtime::{
    default_surrogate_dir, loaded_runtime, ort_runtime, provisioned_ort_path, taskdb_home,
    OrtRuntime, OrtSource, ORT_VERSION,
};

/// Where to run the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CPU execution provider.
    #[default]
    Cpu,
    /// CUDA execution provider on the given device ordinal.
    Cuda(u32),
}

impl FromStr for Device {
    type Err = Error;
    /// Parses `cpu`, `cuda` or `cuda:N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Options {
            option: "device",
            message: format!("`{s}` is not one of cpu, cuda, cuda:N"),
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Device::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// How to load and run a surrogate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Execution provider (default CPU).
    pub device: Device,
    /// When the requested device cannot be used: error instead of falling back to CPU.
    pub strict: bool,
    /// Intra-op threads per session; 0 = available cores / workers (at least 1).
    pub intra_threads: usize,
    /// Sessions run concurrently (each with its own intra-op pool); at least 1.
    pub workers: usize,
    /// Inputs per inference batch; at least 1.
    pub batch_size: usize,
    /// Explicit ONNX Runtime library (first in the discovery order).
    pub ort_library: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            device: Device::Cpu,
            strict: false,
            intra_threads: 0,
            workers: 1,
            batch_size: 32,
            ort_library: None,
        }
    }
}

/// What was loaded and how it runs: for `taskdb surrogate info` and provenance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SurrogateInfo {
    /// Manifest `name`.
    pub name: String,
    /// sha256 (hex) over model bytes, tokenizer bytes and the canonical pooling configuration.
    pub fingerprint: String,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The ONNX model file.
    pub model_path: PathBuf,
    /// sha256 of the model file.
    pub model_sha256: String,
    /// The tokenizer file.
    pub tokenizer_path: PathBuf,
    /// sha256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Pooled dimension.
    pub dim: usize,
    /// Max tokens per input.
    pub max_length: usize,
    /// Pooling.
    pub pooling: Pooling,
    /// L2-normalised output.
    pub normalize: bool,
    /// Graph outputs pooled (concatenated in this order).
    pub outputs: Vec<String>,
    /// Whether the model takes token_type_ids.
    pub token_type_ids: bool,
    /// Tokenizer vocabulary size (with added tokens).
    pub vocab_size: usize,
    /// Device requested.
    pub device_requested: String,
    /// Execution provider actually in use: `CPUExecutionProvider` or `CUDAExecutionProvider:N`.
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
    /// Non-fatal problems (e.g. CUDA unavailable, fell back to CPU). The library never prints them.
    pub warnings: Vec<String>,
}

/// One input: a text, or a pair encoded jointly as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextInput<'a> {
    /// One text.
    Single(&'a str),
    /// A text pair (`[CLS] a [SEP] b [SEP]` for BERT-style tokenizers).
    Pair(&'a str, &'a str),
}

/// Counts and timings of one `embed` call. Stage times are sums over batches; with tokenisation
/// overlapped with inference, they add up to more than `total`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedStats {
    /// Inputs embedded.
    pub count: usize,
    /// Inputs longer than `max_length` tokens, truncated.
    pub truncated: usize,
    /// Empty inputs (embedded as special tokens only).
    pub empty: usize,
    /// Real tokens (special tokens included).
    pub tokens: usize,
    /// Tokens fed to the model including padding.
    pub padded_tokens: usize,
    /// Inference batches.
    pub batches: usize,
    /// Time spent tokenising.
    pub tokenize: Duration,
    /// Time spent in `Session::run`.
    pub inference: Duration,
    /// Time spent pooling (and normalising).
    pub pool: Duration,
    /// Wall time of the call.
    pub total: Duration,
}

/// Pooled vectors, row-major `count × dim`, in input order.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// Vector width.
    pub dim: usize,
    /// `count * dim` values.
    pub data: Vec<f32>,
    /// Counts and timings.
    pub stats: EmbedStats,
}

impl Embeddings {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    /// No vectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Vector `i` (panics if out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Iterates over the vectors.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
}

/// A loaded surrogate: tokenizer + one ONNX Runtime session per worker. `Send + Sync`; calls
/// from several threads share the sessions.
pub struct Surrogate {
    manifest: Manifest,
    info: SurrogateInfo,
    tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    out_widths: Vec<usize>,
    has_token_type: bool,
}

impl std::fmt::Debug for Surrogate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surrogate")
            .field("info", &self.info)
            .finish()
    }
}

pub(crate) struct Tok {
    pub(crate) ids: Vec<i64>,
    pub(crate) type_ids: Vec<i64>,
    pub(crate) truncated: bool,
    pub(crate) empty: bool,
}

/// A worker's statistics and (input indices, pooled rows) per batch.
type WorkerOut = (EmbedStats, Vec<(Vec<usize>, Vec<f32>)>);

struct Batch {
    /// Original input indices.
    index: Vec<usize>,
    toks: Vec<Tok>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl Surrogate {
    /// Loads the surrogate described by `path` (a `surrogate.json` file or a directory holding
    /// one): checks files against the manifest's sha256, loads the tokenizer, finds and loads ONNX
    /// Runtime, creates the sessions, checks the model's inputs and outputs against the manifest,
    /// and runs one probe input (the tokenizer's largest id) to check the vocabulary fits the model
    /// and the pooled width equals `dim`.
    pub fn load(path: impl AsRef<Path>, opts: &Options) -> Result<Surrogate> {
        let path = path.as_ref();
        check_run_options(opts)?;
        let (manifest, manifest_path) = Manifest::read(path)?;
        let base = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let model_path = resolve(&base, &manifest.model);
        let tokenizer_path = resolve(&base, &manifest.tokenizer);

        let model_bytes = std::fs::read(&model_path).map_err(|e| Error::io(&model_path, e))?;
        let model_sha = sha256_hex(&model_bytes);
        let tok_bytes =
            std::fs::read(&tokenizer_path).map_err(|e| Error::io(&tokenizer_path, e))?;
        let tok_sha = sha256_hex(&tok_bytes);
        for (key, file, actual) in [
            (&manifest.model, &model_path, &model_sha),
            (&manifest.tokenizer, &tokenizer_path, &tok_sha),
        ] {
            if let Some(expected) = manifest.sha256.get(&*key.to_string_lossy()) {
                if !expected.eq_ignore_ascii_case(actual) {
                    return Err(Error::Checksum {
                        path: file.clone(),
                        expected: expected.clone(),
                        actual: actual.clone(),
                    });
                }
            }
        }

        let mut tokenizer = parse_tokenizer(&tok_bytes, &tokenizer_path)?;
        limit_tokenizer(&mut tokenizer, &tokenizer_path, manifest.max_length)?;
        let vocab_size = tokenizer.get_vocab_size(true);

        let mut warnings = Vec::new();
        let rt = ort_runtime(opts.ort_library.as_deref(), &mut warnings)?;
        let Sessions {
            sessions,
            execution_provider: ep_name,
            intra_threads: intra,
        } = create_sessions(&rt, opts, &model_bytes, &model_path, &mut warnings)?;

        let (has_token_type, out_widths) = check_io(
            &sessions[0].lock().unwrap_or_else(|p| p.into_inner()),
            &manifest,
            &model_path,
        )?;

        let fingerprint = {
            let mut h = Sha256::new();
            h.update(b"taskdb-surrogate-fingerprint-v1\n");
            h.update(model_sha.as_bytes());
            h.update(b"\n");
            h.update(tok_sha.as_bytes());
            h.update(b"\n");
            h.update(
                serde_json::to_vec(&manifest.canonical())
                    .map_err(|e| Error::ort("serialising the manifest", e))?,
            );
            hex::encode(h.finalize())
        };

        let info = SurrogateInfo {
            name: manifest.name.clone(),
            fingerprint,
            manifest_path: manifest_path.clone(),
            model_path: model_path.clone(),
            model_sha256: model_sha,
            tokenizer_path: tokenizer_path.clone(),
            tokenizer_sha256: tok_sha,
            dim: manifest.dim,
            max_length: manifest.max_length,
            pooling: manifest.pooling,
            normalize: manifest.normalize,
            outputs: manifest.outputs.clone(),
            token_type_ids: has_token_type,
            vocab_size,
            device_requested: opts.device.to_string(),
            execution_provider: ep_name,
            ort_version: rt.version.clone(),
            ort_library: rt.path.clone(),
            ort_source: rt.source,
            intra_threads: intra,
            workers: opts.workers,
            batch_size: opts.batch_size,
            warnings,
        };
        let s = Surrogate {
            manifest,
            info,
            tokenizer,
            sessions,
            out_widths,
            has_token_type,
        };
        s.probe(vocab_size, &tokenizer_path)?;
        Ok(s)
    }

    /// What was loaded and how it runs.
    pub fn info(&self) -> &SurrogateInfo {
        &self.info
    }
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// Pooled dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }
    /// The surrogate fingerprint (hex sha256).
    pub fn fingerprint(&self) -> &str {
        &self.info.fingerprint
    }

    /// Embeds texts; row `i` of the result is `texts[i]`.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings> {
        let inputs: Vec<TextInput<'_>> = texts
            .iter()
            .map(|t| TextInput::Single(t.as_ref()))
            .collect();
        self.embed_inputs(&inputs)
    }

    /// Embeds text pairs, each encoded jointly as a pair.
    pub fn embed_pairs<A: AsRef<str> + Sync, B: AsRef<str> + Sync>(
        &self,
        pairs: &[(A, B)],
    ) -> Result<Embeddings> {
        let inputs: Vec<TextInput<'_>> = pairs
            .iter()
            .map(|(a, b)| TextInput::Pair(a.as_ref(), b.as_ref()))
            .collect();
        self.embed_inputs(&inputs)
    }

    /// Embeds a mix of texts and pairs. Results do not depend on batch size or input order:
    /// padding is masked, and vectors are returned in input order.
    pub fn embed_inputs(&self, inputs: &[TextInput<'_>]) -> Result<Embeddings> {
        let t0 = Instant::now();
        let dim = self.manifest.dim;
        let n = inputs.len();
        let mut stats = EmbedStats {
            count: n,
            ..Default::default()
        };
        if n == 0 {
            return Ok(Embeddings {
                dim,
                data: Vec::new(),
                stats,
            });
        }
        let bs = self.info.batch_size;
        let workers = self.sessions.len();
        // Tokenise in chunks of 64 batches: sorting by length within a chunk cuts padding (a
        // small first chunk would start inference sooner but costs far more in padding than
        // tokenisation's ~1% of the time), and the next chunk is tokenised while this one runs.
        let chunk = bs * 64;
        let bounds: Vec<usize> = (0..n).step_by(chunk).chain(std::iter::once(n)).collect();
        let abort = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<Batch>(2 * workers);
        let rx = Mutex::new(rx);
        let mut data = vec![0f32; n * dim];

        let (prod, results) = std::thread::scope(|scope| {
            let producer = scope.spawn(|| -> Result<EmbedStats> {
                let mut st = EmbedStats::default();
                for w in bounds.windows(2) {
                    let (start, part) = (w[0], &inputs[w[0]..w[1]]);
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let t = Instant::now();
                    let toks: Vec<Result<Tok>> = part
                        .par_iter()
                        .enumerate()
                        .map(|(i, inp)| tokenize(&self.tokenizer, inp, start + i))
                        .collect();
                    let mut toks: Vec<(usize, Tok)> = toks
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| r.map(|t| (start + i, t)))
                        .collect::<Result<_>>()?;
                    // longest first; ties by index for determinism
                    toks.sort_by(|a, b| b.1.ids.len().cmp(&a.1.ids.len()).then(a.0.cmp(&b.0)));
                    st.tokenize += t.elapsed();
                    let mut it = toks.into_iter().peekable();
                    while it.peek().is_some() {
                        let (index, toks): (Vec<usize>, Vec<Tok>) = it.by_ref().take(bs).unzip();
                        for t in &toks {
                            st.truncated += t.truncated as usize;
                            st.empty += t.empty as usize;
                            st.tokens += t.ids.len();
                        }
                        if tx.send(Batch { index, toks }).is_err() {
                            return Ok(st);
                        }
                    }
                }
                drop(tx);
                Ok(st)
            });
            let run_worker = |w: usize| -> Result<WorkerOut> {
                let mut st = EmbedStats::default();
                let mut out = Vec::new();
                let mut session = self.sessions[w].lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let batch = {
                        let r = rx.lock().unwrap_or_else(|p| p.into_inner());
                        r.recv()
                    };
                    let Ok(batch) = batch else { break };
                    match self.run_batch(&mut session, &batch, &mut st) {
                        Ok(v) => out.push((batch.index, v)),
                        Err(e) => {
                            abort.store(true, Ordering::Relaxed);
                            // drain so the producer is not blocked
                            return Err(e);
                        }
                    }
                }
                Ok((st, out))
            };
            let handles: Vec<_> = (1..workers)
                .map(|w| scope.spawn(move || run_worker(w)))
                .collect();
            let mut results = vec![run_worker(0)];
            if results[0].is_err() {
                // unblock the producer: drain the channel until it closes
                while rx.lock().unwrap_or_else(|p| p.into_inner()).recv().is_ok() {}
            }
            for h in handles {
                results.push(h.join().unwrap_or_else(|_| {
                    Err(Error::ort("running a worker", "worker thread panicked"))
                }));
            }
            // If any worker failed, make sure nothing blocks the producer.
            if results.iter().any(|r| r.is_err()) {
                while rx.lock().unwrap_or_else(|p| p.into_inner()).recv().is_ok() {}
            }
            let prod = producer
                .join()
                .unwrap_or_else(|_| Err(Error::ort("tokenising", "tokeniser thread panicked")));
            (prod, results)
        });
        let prod = prod?;
        stats.truncated = prod.truncated;
        stats.empty = prod.empty;
        stats.tokens = prod.tokens;
        stats.tokenize = prod.tokenize;
        for r in results {
            let (st, out) = r?;
            stats.inference += st.inference;
            stats.pool += st.pool;
            stats.batches += st.batches;
            stats.padded_tokens += st.padded_tokens;
            for (index, vecs) in out {
                for (k, &i) in index.iter().enumerate() {
                    data[i * dim..(i + 1) * dim].copy_from_slice(&vecs[k * dim..(k + 1) * dim]);
                }
            }
        }
        stats.total = t0.elapsed();
        Ok(Embeddings { dim, data, stats })
    }

    fn run_batch(
        &self,
        session: &mut Session,
        batch: &Batch,
        st: &mut EmbedStats,
    ) -> Result<Vec<f32>> {
        let b = batch.toks.len();
        let Padded {
            len,
            ids,
            mask,
            types,
        } = pad_batch(&batch.toks, self.has_token_type);
        st.padded_tokens += b * len;
        st.batches += 1;
        let t = Instant::now();
        let names = &self.manifest.inputs;
        let tensor = |v: Vec<i64>| {
            Tensor::from_array(([b, len], v)).map_err(|e| Error::ort("building an input tensor", e))
        };
        let mut inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = vec![
            (names.input_ids.as_str().into(), tensor(ids)?.into()),
            (
                names.attention_mask.as_str().into(),
                tensor(mask.clone())?.into(),
            ),
        ];
        if let (true, Some(n)) = (self.has_token_type, names.token_type_ids.as_ref()) {
            inputs.push((n.as_str().into(), tensor(types)?.into()));
        }
        let outputs = session
            .run(inputs)
            .map_err(|e| Error::ort(format!("running a batch of {b} inputs × {len} tokens"), e))?;
        st.inference += t.elapsed();
        let t = Instant::now();
        let dim = self.manifest.dim;
        let mut pooled = vec![0f32; b * dim];
        let mut off = 0;
        for (k, name) in self.manifest.outputs.iter().enumerate() {
            let w = self.out_widths[k];
            let v = outputs
                .get(name.as_str())
                .ok_or_else(|| Error::ort("reading outputs", format!("output `{name}` missing")))?;
            let (shape, x) = v
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::ort(format!("reading output `{name}` as f32"), e))?;
            if shape.len() != 3
                || shape[0] as usize != b
                || shape[1] as usize != len
                || shape[2] as usize != w
            {
                return Err(Error::ort(
                    format!("reading output `{name}`"),
                    format!("shape {:?}, expected [{b}, {len}, {w}]", &shape[..]),
                ));
            }
            for r in 0..b {
                let dst = &mut pooled[r * dim + off..r * dim + off + w];
                match self.manifest.pooling {
                    Pooling::Cls => dst.copy_from_slice(&x[r * len * w..r * len * w + w]),
                    Pooling::Mean => {
                        let mut cnt = 0f32;
                        for tok in 0..len {
                            if mask[r * len + tok] == 0 {
                                continue;
                            }
                            cnt += 1.0;
                            let src = &x[(r * len + tok) * w..(r * len + tok + 1) * w];
                            for (d, s) in dst.iter_mut().zip(src) {
                                *d += *s;
                            }
                        }
                        let inv = 1.0 / cnt.max(1e-9);
                        dst.iter_mut().for_each(|d| *d *= inv);
                    }
                }
            }
            off += w;
        }
        if self.manifest.normalize {
            for row in pooled.chunks_exact_mut(dim) {
                let norm = row
                    .iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>()
                    .sqrt();
                let inv = (1.0 / norm.max(1e-12)) as f32;
                row.iter_mut().for_each(|v| *v *= inv);
            }
        }
        st.pool += t.elapsed();
        Ok(pooled)
    }

    /// Runs `[first special, largest id, last special]` once: the tokenizer's ids must index the
    /// model's embedding table, and the pooled width must be `dim`.
    fn probe(&self, vocab_size: usize, tokenizer_path: &Path) -> Result<()> {
        let max_id = vocab_size.saturating_sub(1) as i64;
        let batch = Batch {
            index: vec![0],
            toks: vec![Tok {
                ids: vec![max_id, max_id],
                type_ids: vec![0, 0],
                truncated: false,
                empty: false,
            }],
        };
        let mut st = EmbedStats::default();
        let mut s = self.sessions[0].lock().unwrap_or_else(|p| p.into_inner());
        match self.run_batch(&mut s, &batch, &mut st) {
            Ok(_) => Ok(()),
            Err(Error::Ort { message, .. }) => Err(Error::Tokenizer {
                path: tokenizer_path.to_path_buf(),
                message: format!(
                    "does not fit the model {}: its vocabulary has {vocab_size} ids but running the largest id ({max_id}) failed: {message}",
                    self.info.model_path.display()
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Rejects run options that cannot work (shared by [`Surrogate`] and [`Classifier`]).
pub(crate) fn check_run_options(opts: &Options) -> Result<()> {
    if opts.workers == 0 {
        return Err(Error::Options {
            option: "workers",
            message: "must be at least 1".into(),
        });
    }
    if opts.batch_size == 0 {
        return Err(Error::Options {
            option: "batch_size",
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// Parses a tokenizer.json.
pub(crate) fn parse_tokenizer(bytes: &[u8], path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
        path: path.to_path_buf(),
        message: format!("not a valid tokenizer.json: {e}"),
    })
}

/// Replaces the tokenizer's own truncation (longest-first to `max_length`) and padding (none:
/// batches are padded dynamically).
pub(crate) fn limit_tokenizer(tok: &mut Tokenizer, path: &Path, max_length: usize) -> Result<()> {
    tok.with_truncation(Some(TruncationParams {
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    }))
    .map_err(|e| Error::Tokenizer {
        path: path.to_path_buf(),
        message: format!("cannot truncate to max_length {max_length}: {e}"),
    })?;
    tok.with_padding(None);
    Ok(())
}

/// Tokenises one input (`index` is 0-based, reported 1-based).
pub(crate) fn tokenize(tokenizer: &Tokenizer, inp: &TextInput<'_>, index: usize) -> Result<Tok> {
    let enc = match *inp {
        TextInput::Single(a) => tokenizer.encode_fast(a, true),
        TextInput::Pair(a, b) => tokenizer.encode_fast((a, b), true),
    }
    .map_err(|e| Error::Input {
        source_name: "input".into(),
        line: index + 1,
        message: format!("tokenizer failed: {e}"),
    })?;
    let empty = match *inp {
        TextInput::Single(a) => a.trim().is_empty(),
        TextInput::Pair(a, b) => a.trim().is_empty() && b.trim().is_empty(),
    };
    Ok(Tok {
        ids: enc.get_ids().iter().map(|&x| x as i64).collect(),
        type_ids: enc.get_type_ids().iter().map(|&x| x as i64).collect(),
        truncated: !enc.get_overflowing().is_empty(),
        empty,
    })
}

/// A batch padded to its longest input: `[rows, len]` row-major ids, mask (1 = token) and type
/// ids (empty when the model takes none).
pub(crate) struct Padded {
    pub(crate) len: usize,
    pub(crate) ids: Vec<i64>,
    pub(crate) mask: Vec<i64>,
    pub(crate) types: Vec<i64>,
}

/// Dynamic padding: pads `toks` to the longest of them (at least 1) with id 0 and mask 0.
pub(crate) fn pad_batch(toks: &[Tok], token_types: bool) -> Padded {
    let b = toks.len();
    let len = toks.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
    let mut ids = vec![0i64; b * len];
    let mut mask = vec![0i64; b * len];
    let mut types = vec![0i64; if token_types { b * len } else { 0 }];
    for (r, t) in toks.iter().enumerate() {
        let row = r * len;
        ids[row..row + t.ids.len()].copy_from_slice(&t.ids);
        mask[row..row + t.ids.len()].fill(1);
        if token_types {
            types[row..row + t.ids.len()].copy_from_slice(&t.type_ids);
        }
    }
    Padded {
        len,
        ids,
        mask,
        types,
    }
}

/// One session per worker, with the execution provider actually in use.
pub(crate) struct Sessions {
    pub(crate) sessions: Vec<Mutex<Session>>,
    /// `CPUExecutionProvider` or `CUDAExecutionProvider:N`.
    pub(crate) execution_provider: String,
    pub(crate) intra_threads: usize,
}

/// Creates `opts.workers` sessions of the model: intra-op threads, CUDA with the reason for any
/// fallback pushed to `warnings` (or `Error::Device` when `opts.strict`).
pub(crate) fn create_sessions(
    rt: &OrtRuntime,
    opts: &Options,
    model_bytes: &[u8],
    model_path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Sessions> {
    let model_path = model_path.to_path_buf();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let intra = if opts.intra_threads == 0 {
        (cores / opts.workers).max(1)
    } else {
        opts.intra_threads
    };

    // Execution provider: decided once, with the reason when CUDA cannot be used.
    let mut ep_name = "CPUExecutionProvider".to_string();
    let mut use_cuda = None;
    if let Device::Cuda(n) = opts.device {
        match cuda_unavailable_reason(rt, n) {
            None => use_cuda = Some(n),
            Some(reason) => {
                if opts.strict {
                    return Err(Error::Device {
                        provider: format!("CUDA:{n}"),
                        reason,
                    });
                }
                warnings.push(format!("CUDA:{n} unavailable, fell back to CPU: {reason}"));
            }
        }
    }

    let mut sessions = Vec::with_capacity(opts.workers);
    for w in 0..opts.workers {
        let mut b = session_builder(rt, intra)?;
        if let Some(n) = use_cuda {
            let ep = ort::ep::CUDA::default()
                .with_device_id(n as i32)
                .build()
                .error_on_failure();
            match b.clone().with_execution_providers([ep]) {
                Ok(nb) => {
                    b = nb;
                    ep_name = format!("CUDAExecutionProvider:{n}");
                }
                Err(e) => {
                    let reason = e.to_string();
                    if opts.strict {
                        return Err(Error::Device {
                            provider: format!("CUDA:{n}"),
                            reason,
                        });
                    }
                    warnings.push(format!(
                        "CUDA:{n} could not be registered, fell back to CPU: {reason}"
                    ));
                    use_cuda = None;
                }
            }
        }
        let s = b.commit_from_memory(model_bytes).map_err(|e| Error::Model {
                path: model_path.clone(),
                message: if w == 0 {
                    format!("ONNX Runtime cannot load it (missing, truncated or not an ONNX model?): {e}")
                } else {
                    format!("creating session {w}: {e}")
                },
            })?;
        sessions.push(Mutex::new(s));
    }

    Ok(Sessions {
        sessions,
        execution_provider: ep_name,
        intra_threads: intra,
    })
}

fn session_builder(rt: &OrtRuntime, intra: usize) -> Result<SessionBuilder> {
    let ctx = "configuring a session";
    Session::builder(&rt.env)
        .map_err(|e| Error::ort(ctx, e))?
        .with_intra_threads(intra)
        .map_err(|e| Error::ort(ctx, e))?
        .with_inter_threads(1)
        .map_err(|e| Error::ort(ctx, e))?
        .with_intra_op_spinning(false)
        .map_err(|e| Error::ort(ctx, e))?
        .with_inter_op_spinning(false)
        .map_err(|e| Error::ort(ctx, e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| Error::ort(ctx, e))
}

/// Checks the session's inputs and outputs against the manifest. Returns whether the model takes
/// token_type_ids and each pooled output's width.
fn check_io(s: &Session, m: &Manifest, model_path: &Path) -> Result<(bool, Vec<usize>)> {
    let err = |message: String| Error::Model {
        path: model_path.to_path_buf(),
        message,
    };
    let model_inputs: Vec<&str> = s.inputs().iter().map(|i| i.name()).collect();
    let mut named = vec![
        ("input_ids", m.inputs.input_ids.as_str()),
        ("attention_mask", m.inputs.attention_mask.as_str()),
    ];
    if let Some(t) = &m.inputs.token_type_ids {
        named.push(("token_type_ids", t.as_str()));
    }
    for (field, name) in &named {
        let Some(inp) = s.inputs().iter().find(|i| i.name() == *name) else {
            return Err(err(format!(
                "manifest field `inputs.{field}` names `{name}`, but the model's inputs are {model_inputs:?}"
            )));
        };
        if inp.dtype().tensor_type() != Some(ort::value::TensorElementType::Int64) {
            return Err(err(format!(
                "input `{name}` has type {:?}; int64 is required",
                inp.dtype()
            )));
        }
    }
    for i in &model_inputs {
        if !named.iter().any(|(_, n)| n == i) {
            return Err(err(format!(
                "the model takes input `{i}`, which the manifest's `inputs` does not name (fields: input_ids, attention_mask, token_type_ids)"
            )));
        }
    }
    let model_outputs: Vec<&str> = s.outputs().iter().map(|o| o.name()).collect();
    let mut widths = Vec::new();
    for name in &m.outputs {
        let Some(o) = s.outputs().iter().find(|o| o.name() == name) else {
            return Err(err(format!(
                "manifest field `outputs` names `{name}`, but the model's outputs are {model_outputs:?}"
            )));
        };
        if o.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32) {
            return Err(err(format!(
                "output `{name}` has type {:?}; float32 is required",
                o.dtype()
            )));
        }
        let shape = o
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        if shape.len() != 3 || shape[2] <= 0 {
            return Err(err(format!(
                "output `{name}` has shape {shape:?}; [batch, sequence, width] with a fixed width is required"
            )));
        }
        widths.push(shape[2] as usize);
    }
    let total: usize = widths.iter().sum();
    if total != m.dim {
        return Err(err(format!(
            "outputs {:?} have widths {widths:?} (sum {total}), but the manifest's `dim` is {}",
            m.outputs, m.dim
        )));
    }
    Ok((m.inputs.token_type_ids.is_some(), widths))
}

/// Why the CUDA execution provider cannot be used, or `None` if it may be (registration can still
/// fail; that error is reported too).
fn cuda_unavailable_reason(rt: &OrtRuntime, device: u32) -> Option<String> {
    match ort::ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Some(format!(
                "the ONNX Runtime library {} has no CUDAExecutionProvider (it is the CPU build; use libonnxruntime.so from the onnxruntime-gpu wheel, e.g. via ORT_DYLIB_PATH — see scripts/gpu-check.sh)",
                rt.path.display()
            ))
        }
        Err(e) => return Some(format!("cannot list execution providers: {e}")),
    }
    // SAFETY: probing for the NVIDIA driver library; loading it runs no user-visible code.
    if let Err(e) = unsafe { libloading::Library::new("libcuda.so.1") } {
        return Some(format!(
            "no NVIDIA driver: libcuda.so.1 cannot be loaded ({e})"
        ));
    }
    let _ = device;
    None
}
