//! Ingestion: a source (a dataset file, or a black-box model labelling the probe set U) →
//! surrogate features (through the feature cache) → task-embedding methods → one write
//! transaction. It all lands or nothing does.
//!
//! Datasets and models land in the **same spaces**: a space is (surrogate fingerprint, method
//! and its parameters, probe-set fingerprint), so a dataset's DTE and a model's MTE computed
//! through the same surrogate with the same U are comparable (FUTE). The probe set is part of a
//! dataset's space too, because each space's frozen centring reference is built from U.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use taskdb_methods::{self as methods, MethodKind, MethodParams, TaskEmbedding};
use taskdb_sources::{self as sources, Dataset, ModelOutputs, ProbeSet};
use taskdb_surrogate::{Surrogate, TextInput};

use crate::entry::{Embedding, EntryId, Kind, NewEntry, NewVector, Provenance};
use crate::error::{Error, Result};
use crate::features::{CacheStats, FeatureCache, FeatureInput};
use crate::reflib::ReferenceLibrary;
use crate::space::{SpaceDef, SpaceRef, StoredReference, StoredWhitening, TaskSpaceParams};
use crate::TaskDb;

/// Callbacks for long work. The library never prints; the CLI draws progress bars from these.
pub trait Progress: Send + Sync {
    /// A stage begins; `total` units of work when known.
    fn stage(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current stage are done.
    fn advance(&self, n: u64);
    /// The current stage is done.
    fn done(&self);
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {
    fn stage(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn done(&self) {}
}

/// What every ingestion shares.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Methods to compute; empty means every method that applies (all four for a dataset,
    /// all but `textemb` for a model).
    pub methods: Vec<MethodKind>,
    /// Method parameters (part of each space's definition). `None` (the default): an existing
    /// space's stored parameters, [`MethodParams::default`] for a new space, so a database keeps
    /// working after taskdb's defaults change. `Some`: exactly these; an existing space created
    /// with other parameters is then an error (a space never changes).
    pub params: Option<MethodParams>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// The command line, for provenance.
    pub command_line: Vec<String>,
}

/// Where a model's predictions on U come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// Run a shell command speaking the JSON-lines protocol.
    Command {
        /// The command line, run through `sh -c`.
        command: String,
        /// Timeout, prompt template, verbalizers.
        options: sources::CommandOptions,
    },
    /// Read predictions on U computed elsewhere.
    Predictions {
        /// The predictions file.
        path: PathBuf,
        /// Verbalizers.
        options: sources::PredictionOptions,
    },
    /// A local ONNX text classifier that taskdb runs itself (soft labels).
    Onnx(Arc<taskdb_surrogate::Classifier>),
}

/// What one ingestion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    /// The new entry's id.
    pub id: EntryId,
    /// Its name.
    pub name: String,
    /// Its version (1 for a new name).
    pub version: u32,
    /// Dataset or model.
    pub kind: Kind,
    /// Methods stored, with their spaces.
    pub spaces: BTreeMap<String, String>,
    /// Seconds per stage, in order.
    pub stages: Vec<(String, f64)>,
    /// Feature-cache use.
    pub cache: CacheStats,
    /// Inputs truncated by the surrogate.
    pub truncated: usize,
    /// Human-readable warnings (e.g. unmatched verbalizer replies).
    pub warnings: Vec<String>,
}

/// Probe rows a space's whitening is built from (the default U has 3,000; measured there).
const WHITENING_ROWS: usize = 3000;

/// Computes task embeddings and writes them. Holds the surrogate (loaded once), the feature
/// cache, and the probe set U.
pub struct Ingestor {
    surrogate: Surrogate,
    cache: FeatureCache,
    probe: ProbeSet,
    progress: Arc<dyn Progress>,
    reference_cache: Option<PathBuf>,
    reference_library: RefLib,
}

/// Which reference library centres new spaces (see `crate::reflib`).
enum RefLib {
    /// The one shipped with taskdb, used when it matches (loaded on first use).
    Builtin(std::sync::OnceLock<Option<Arc<ReferenceLibrary>>>),
    /// One the caller gave: used for new spaces of its method, an error when it does not match.
    Given(Arc<ReferenceLibrary>),
    /// None.
    Off,
}

struct Stages(Vec<(String, f64)>);
impl Stages {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let out = f()?;
        self.0.push((name.to_string(), t.elapsed().as_secs_f64()));
        Ok(out)
    }
}

impl Ingestor {
    /// An ingestor for the database at `db_path` (its feature cache lives beside it), with a
    /// loaded surrogate and a probe set.
    pub fn new(db_path: &Path, surrogate: Surrogate, probe: ProbeSet) -> Result<Ingestor> {
        let cache = FeatureCache::open(&FeatureCache::path_for(db_path))?;
        Ok(Ingestor {
            surrogate,
            cache,
            probe,
            progress: Arc::new(NoProgress),
            reference_cache: Some(taskdb_surrogate::taskdb_home().join("references")),
            reference_library: RefLib::Builtin(std::sync::OnceLock::new()),
        })
    }

    /// The reference library that centres new spaces of its method: `Some` replaces the
    /// built-in one (a library that does not match the new space is then an error), `None`
    /// disables it (spaces are created uncentred, or with their method's k-means reference).
    pub fn with_reference_library(mut self, lib: Option<ReferenceLibrary>) -> Ingestor {
        self.reference_library = match lib {
            Some(l) => RefLib::Given(Arc::new(l)),
            None => RefLib::Off,
        };
        self
    }

    /// The reference library for a new space of `method` with `params`, if one applies.
    fn library_for(
        &self,
        method: MethodKind,
        params: &MethodParams,
    ) -> Result<Option<Arc<ReferenceLibrary>>> {
        let (sfp, pfp) = (self.surrogate.fingerprint(), self.probe.fingerprint_hex());
        match &self.reference_library {
            RefLib::Off => Ok(None),
            RefLib::Builtin(cell) => {
                let lib = match cell.get() {
                    Some(l) => l.clone(),
                    None => {
                        // A broken built-in library is a bug, but never a reason to fail an
                        // ingestion: without it, spaces are uncentred.
                        let l = ReferenceLibrary::builtin().ok().map(Arc::new);
                        cell.get_or_init(|| l).clone()
                    }
                };
                Ok(lib.filter(|l| l.matches(method, params, sfp, &pfp)))
            }
            RefLib::Given(l) if l.method != method => Ok(None),
            RefLib::Given(l) => {
                if !l.matches(method, params, sfp, &pfp) {
                    return Err(Error::SpaceMismatch(format!(
                        "{} was computed in another {method} space (surrogate {}, probe set {}, \
                         parameters {}) than this ingestion's (surrogate {sfp}, probe set {pfp}, \
                         parameters {}): export one from a database made with this surrogate \
                         and probe set",
                        l.describe(),
                        l.surrogate_fingerprint,
                        l.probe_fingerprint,
                        serde_json::to_string(&l.method_params).unwrap_or_default(),
                        serde_json::to_string(params).unwrap_or_default(),
                    )));
                }
                Ok(Some(l.clone()))
            }
        }
    }

    /// Where frozen references are cached across databases (default
    /// `$TASKDB_HOME/references`; `None`: never cached, always built).
    pub fn with_reference_cache(mut self, dir: Option<PathBuf>) -> Ingestor {
        self.reference_cache = dir;
        self
    }

    /// Reports progress to `p`.
    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Ingestor {
        self.progress = p;
        self
    }

    /// The surrogate in use.
    pub fn surrogate(&self) -> &Surrogate {
        &self.surrogate
    }

    /// The probe set U in use.
    pub fn probe(&self) -> &ProbeSet {
        &self.probe
    }

    /// Features of `inputs`, from the cache where possible.
    fn features(
        &self,
        inputs: &[FeatureInput<'_>],
        what: &str,
    ) -> Result<(Vec<f32>, CacheStats, usize)> {
        let dim = self.surrogate.dim();
        let mut truncated = 0;
        let (x, stats) =
            self.cache
                .get_or_compute(self.surrogate.fingerprint(), dim, inputs, |missing| {
                    self.progress
                        .stage(&format!("encoding {what}"), Some(missing.len() as u64));
                    let mut out = Vec::with_capacity(missing.len() * dim);
                    // Chunks keep the progress bar moving; the surrogate batches inside each.
                    for chunk in missing.chunks(256) {
                        let ti: Vec<TextInput<'_>> = chunk
                            .iter()
                            .map(|&i| match inputs[i].pair {
                                None => TextInput::Single(inputs[i].text),
                                Some(p) => TextInput::Pair(inputs[i].text, p),
                            })
                            .collect();
                        let e = self.surrogate.embed_inputs(&ti).map_err(Error::from)?;
                        truncated += e.stats.truncated;
                        out.extend_from_slice(&e.data);
                        self.progress.advance(chunk.len() as u64);
                    }
                    self.progress.done();
                    Ok(out)
                })?;
        Ok((x, stats, truncated))
    }

    fn probe_features(&self) -> Result<(Vec<f32>, CacheStats, usize)> {
        let inputs: Vec<FeatureInput<'_>> = self
            .probe
            .texts
            .iter()
            .map(|t| FeatureInput {
                text: &t.text,
                pair: t.text_pair.as_deref(),
            })
            .collect();
        self.features(&inputs, "probe set U")
    }

    /// The definition of the space of `method` for this surrogate and probe set. When the space
    /// exists in `db` its stored definition is used as is (its frozen reference is never
    /// recomputed); otherwise its frozen statistics are built from U's features. `wanted`:
    /// parameters the caller insists on (`None`: the stored ones, or the defaults for a new
    /// space).
    fn space_def(
        &self,
        db: &TaskDb,
        method: MethodKind,
        wanted: Option<&MethodParams>,
        probe_x: &mut Option<Vec<f32>>,
    ) -> Result<SpaceDef> {
        let name = space_name(
            method,
            self.surrogate.fingerprint(),
            &self.probe.fingerprint_hex(),
        );
        match db.space(&name) {
            Ok(s) => {
                let stored = TaskSpaceParams::from_def(&s.def)?;
                if let Some(params) = wanted.filter(|p| **p != stored.method_params) {
                    return Err(Error::SpaceMismatch(format!(
                        "space {name:?} was created with other {method} parameters ({}) than \
                         the ones asked for ({}); taskdb never changes a space's definition: \
                         leave the parameters unset to use the stored ones",
                        serde_json::to_string(&stored.method_params).unwrap_or_default(),
                        serde_json::to_string(params).unwrap_or_default()
                    )));
                }
                Ok(s.def)
            }
            Err(Error::NotFound { .. }) => {
                let params = &wanted.cloned().unwrap_or_default();
                let mut p = TaskSpaceParams::new(method, params.clone(), None);
                if method.uses_reference(params) {
                    p.reference = Some(self.reference(method, params, probe_x)?);
                } else if let Some(lib) = self.library_for(method, params)? {
                    p = p.with_library_reference(&lib.reference()?, lib.describe());
                }
                if let (true, Some(alpha)) =
                    (method.uses_whitening(params), params.scatter_whitening)
                {
                    p.whitening = Some(self.whitening(method, params, alpha, probe_x)?);
                }
                Ok(p.into_def(
                    name,
                    self.surrogate.dim() as u32,
                    self.surrogate.fingerprint(),
                    &self.probe.fingerprint_hex(),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// U's features, computed (from the feature cache) on first use.
    fn probe_x<'a>(&self, probe_x: &'a mut Option<Vec<f32>>) -> Result<&'a [f32]> {
        if probe_x.is_none() {
            *probe_x = Some(self.probe_features()?.0);
        }
        Ok(probe_x.as_deref().unwrap_or_default())
    }

    /// The frozen reference of a new space. Building it fits dozens of pseudo-tasks on U
    /// (seconds to a minute), so it is cached per machine (see [`Ingestor::frozen`]). Once in a
    /// space definition, the reference is part of the database.
    fn reference(
        &self,
        method: MethodKind,
        params: &MethodParams,
        probe_x: &mut Option<Vec<f32>>,
    ) -> Result<StoredReference> {
        let spec = methods::ReferenceSpec::default();
        let key = json!({"v": 1, "method": method, "params": params, "spec": spec});
        let verify = |r: &StoredReference| {
            TaskSpaceParams {
                reference: Some(r.clone()),
                ..TaskSpaceParams::new(method, params.clone(), None)
            }
            .reference("cached")
            .is_ok()
        };
        self.frozen(method.name(), key, verify, probe_x, |f| {
            self.progress.stage(
                &format!("building the {method} space's frozen reference (once per machine)"),
                None,
            );
            let reference = methods::build_reference(method, params, f, &spec)
                .map_err(method_err("probe set U"))?;
            self.progress.done();
            TaskSpaceParams::new(method, params.clone(), Some(reference))
                .reference
                .ok_or_else(|| Error::Internal(format!("{method} has no reference")))
        })
    }

    /// The frozen whitening of a new space (scatter). It needs U's features, which a fresh
    /// database's feature cache does not have (encoding U costs ~20 s on 2 cores), so it is
    /// cached per machine like the references (see [`Ingestor::frozen`]).
    fn whitening(
        &self,
        method: MethodKind,
        params: &MethodParams,
        alpha: f64,
        probe_x: &mut Option<Vec<f32>>,
    ) -> Result<StoredWhitening> {
        let key = json!({"v": 1, "whitening": alpha, "rows": WHITENING_ROWS});
        let shell = TaskSpaceParams::new(method, params.clone(), None);
        let verify = |w: &StoredWhitening| {
            TaskSpaceParams {
                whitening: Some(w.clone()),
                ..shell.clone()
            }
            .whitening("cached")
            .is_ok()
        };
        self.frozen("whitening", key, verify, probe_x, |f| {
            let w = methods::build_whitening(f, alpha, WHITENING_ROWS)
                .map_err(method_err("probe set U"))?;
            shell
                .clone()
                .with_whitening(Some(&w))
                .whitening
                .ok_or_else(|| Error::Internal(format!("{method} does not whiten")))
        })
    }

    /// A frozen statistic of U (`build` from U's features), cached per machine under
    /// `$TASKDB_HOME/references/` as `{prefix}-{key hash}.json`, keyed by `key` plus the
    /// surrogate and probe-set fingerprints. A cached file is used only if `verify` accepts it
    /// (checksums), else rebuilt; writing the cache is best effort.
    fn frozen<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        mut key: serde_json::Value,
        verify: impl Fn(&T) -> bool,
        probe_x: &mut Option<Vec<f32>>,
        build: impl FnOnce(&methods::Features) -> Result<T>,
    ) -> Result<T> {
        key["surrogate"] = json!(self.surrogate.fingerprint());
        key["probe"] = json!(self.probe.fingerprint_hex());
        let hash = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(key.to_string().as_bytes()))
        };
        let file = self
            .reference_cache
            .as_ref()
            .map(|dir| dir.join(format!("{prefix}-{}.json", &hash[..16])));
        if let Some(bytes) = file.as_ref().and_then(|f| std::fs::read(f).ok()) {
            if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
                if verify(&v) {
                    return Ok(v);
                }
            }
        }
        let x = self.probe_x(probe_x)?;
        let d = self.surrogate.dim();
        let f = methods::Features::new(x.len() / d, d, x).map_err(method_err("probe set U"))?;
        let value = build(&f)?;
        // Best effort: a cache that cannot be written only costs time next run.
        if let (Some(dir), Some(file)) = (&self.reference_cache, &file) {
            if std::fs::create_dir_all(dir).is_ok() {
                if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
                    use std::io::Write;
                    let ok = serde_json::to_writer(&mut tmp, &value).is_ok() && tmp.flush().is_ok();
                    if ok {
                        let _ = tmp.persist(file);
                    }
                }
            }
        }
        Ok(value)
    }

    fn embed_all(
        &self,
        db: &TaskDb,
        methods_wanted: &[MethodKind],
        opts: &IngestOptions,
        (x, y, what): (&[f32], &methods::Targets, &str),
        stages: &mut Stages,
    ) -> Result<(Vec<NewVector>, serde_json::Value)> {
        let d = self.surrogate.dim();
        let f = methods::Features::new(x.len() / d, d, x).map_err(method_err(what))?;
        let mut probe_x = None;
        let mut vectors = Vec::new();
        let mut details = serde_json::Map::new();
        for &m in methods_wanted {
            let def = stages.time(&format!("space {m}"), || {
                self.space_def(db, m, opts.params.as_ref(), &mut probe_x)
            })?;
            // The space's definition is what the embedding follows: its parameters (stored or
            // new) and its frozen whitening.
            let space = TaskSpaceParams::from_def(&def)?;
            let whitening = space.whitening(&def.name)?;
            let emb = stages.time(&format!("method {m}"), || {
                methods::embed_in(m, &space.method_params, whitening.as_ref(), &f, y)
                    .map_err(method_err(what))
            })?;
            let (embedding, rank) = match emb {
                TaskEmbedding::Dense(v) => (Embedding::Dense(v), None),
                TaskEmbedding::LowRank(l) => {
                    let r = l.rank();
                    (Embedding::LowRank(l), Some(r))
                }
            };
            details.insert(
                m.name().to_string(),
                json!({"space": def.name, "rank": rank, "params": space.method_params,
                       "centring": space.centring()}),
            );
            vectors.push(NewVector {
                method: m.name().to_string(),
                space: SpaceRef::Def(def),
                embedding,
            });
        }
        Ok((vectors, serde_json::Value::Object(details)))
    }

    /// Ingests a dataset file as a new entry (or a new version of `name`).
    pub fn dataset(
        &self,
        db: &TaskDb,
        name: &str,
        path: &Path,
        dopts: &sources::DatasetOptions,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let t0 = Instant::now();
        let mut stages = Stages(Vec::new());
        let methods_wanted = if opts.methods.is_empty() {
            MethodKind::ALL.to_vec()
        } else {
            opts.methods.clone()
        };
        self.progress
            .stage(&format!("reading {}", path.display()), None);
        let ds: Dataset = stages.time("read", || {
            sources::read_dataset(path, dopts).map_err(Error::from)
        })?;
        self.progress.done();
        let inputs: Vec<FeatureInput<'_>> = ds
            .rows
            .iter()
            .map(|r| FeatureInput {
                text: &r.text,
                pair: r.text_pair.as_deref(),
            })
            .collect();
        let (x, cache, truncated) =
            stages.time("features", || self.features(&inputs, "dataset rows"))?;
        let y = dataset_targets(&ds);
        let what = format!("dataset {}", path.display());
        let (vectors, details) =
            self.embed_all(db, &methods_wanted, opts, (&x, &y, &what), &mut stages)?;
        let summary = serde_json::to_value(&ds.summary).unwrap_or_default();
        let mut rows = BTreeMap::new();
        rows.insert("read".to_string(), ds.summary.rows_read);
        rows.insert("used".to_string(), ds.summary.rows_kept);
        let provenance = Provenance {
            taskdb_version: String::new(),
            input_sha256: Some(ds.summary.sha256.clone()),
            input_size: Some(ds.summary.bytes),
            rows,
            command_line: opts.command_line.clone(),
            params: self.params_provenance(opts, &methods_wanted, None),
            timings: BTreeMap::new(),
            details: json!({"dataset": summary, "methods": details, "features": cache, "truncated": truncated}),
        };
        self.write(
            db,
            name,
            Kind::Dataset,
            vectors,
            provenance,
            opts,
            stages,
            t0,
            cache,
            truncated,
            Vec::new(),
        )
    }

    /// Ingests a black-box model: its predictions on U become the targets of a
    /// pseudo-dataset embedded exactly like a dataset (FUTE's model task embedding).
    pub fn model(
        &self,
        db: &TaskDb,
        name: &str,
        source: &ModelSource,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let t0 = Instant::now();
        let mut stages = Stages(Vec::new());
        if opts.methods.contains(&MethodKind::TextEmb) {
            return Err(Error::invalid(
                "--method textemb",
                "textemb is the mean surrogate feature of the inputs; for a model the inputs are \
                 the probe set U, so it would be identical for every model. Use scatter, fisher \
                 or tuned",
            ));
        }
        let methods_wanted: Vec<MethodKind> = if opts.methods.is_empty() {
            MethodKind::ALL
                .into_iter()
                .filter(|m| m.uses_targets())
                .collect()
        } else {
            opts.methods.clone()
        };
        // Features first: a warm cache makes this milliseconds, and a broken surrogate should
        // fail before a slow model runs.
        let (ux, cache, truncated) = stages.time("features", || self.probe_features())?;
        self.progress
            .stage("running the model on U", Some(self.probe.len() as u64));
        let outputs: ModelOutputs = stages.time("model", || match source {
            ModelSource::Command { command, options } => {
                sources::run_command(command, &self.probe, options).map_err(Error::from)
            }
            ModelSource::Predictions { path, options } => {
                sources::read_predictions(path, &self.probe, options).map_err(Error::from)
            }
            ModelSource::Onnx(c) => self.run_classifier(c),
        })?;
        self.progress.done();
        let targets = sources::to_targets(&outputs, sources::ScoreKind::Probabilities)
            .map_err(Error::from)?;
        // Rows of U the model answered (verbalizer misses are left out).
        let d = self.surrogate.dim();
        let mut x = Vec::with_capacity(targets.ids.len() * d);
        for id in &targets.ids {
            let pos = self
                .probe
                .position(*id)
                .ok_or_else(|| Error::Internal(format!("probe id {id} answered but not in U")))?;
            x.extend_from_slice(&ux[pos * d..(pos + 1) * d]);
        }
        let y = model_targets(&targets);
        let (vectors, details) = self.embed_all(
            db,
            &methods_wanted,
            opts,
            (&x, &y, &format!("model {name}'s predictions on U")),
            &mut stages,
        )?;
        let mut warnings = Vec::new();
        if outputs.report.unmatched > 0 {
            warnings.push(format!(
                "{} of {} replies matched no verbalizer and were left out (e.g. {:?})",
                outputs.report.unmatched,
                outputs.report.lines,
                outputs
                    .report
                    .unmatched_examples
                    .iter()
                    .take(3)
                    .map(|(_, r)| r.as_str())
                    .collect::<Vec<_>>()
            ));
        }
        let source_json = match source {
            ModelSource::Command { command, options } => json!({
                "type": "command", "command": command,
                "timeout_s": options.timeout.as_secs_f64(),
                "prompt": options.prompt.as_ref().map(|p| p.as_str().to_string()),
                "verbalizers": options.predictions.verbalizers.as_ref().map(|v| v.labels()),
            }),
            ModelSource::Predictions { path, options } => json!({
                "type": "predictions", "path": path,
                "sha256": file_sha256(path).ok(),
                "verbalizers": options.verbalizers.as_ref().map(|v| v.labels()),
            }),
            ModelSource::Onnx(c) => json!({"type": "onnx", "classifier": c.info()}),
        };
        let mut rows = BTreeMap::new();
        rows.insert("probe".to_string(), self.probe.len() as u64);
        rows.insert("answered".to_string(), targets.ids.len() as u64);
        let provenance = Provenance {
            taskdb_version: String::new(),
            input_sha256: None,
            input_size: None,
            rows,
            command_line: opts.command_line.clone(),
            params: self.params_provenance(opts, &methods_wanted, Some(source_json)),
            timings: BTreeMap::new(),
            details: json!({
                "labels": targets.labels,
                "outputs": outputs.report,
                "methods": details,
                "features": cache,
            }),
        };
        self.write(
            db,
            name,
            Kind::Model,
            vectors,
            provenance,
            opts,
            stages,
            t0,
            cache,
            truncated,
            warnings,
        )
    }

    /// Runs a local ONNX classifier over U; its probabilities are the soft targets.
    fn run_classifier(&self, c: &taskdb_surrogate::Classifier) -> Result<ModelOutputs> {
        let inputs: Vec<TextInput<'_>> = self
            .probe
            .texts
            .iter()
            .map(|t| match &t.text_pair {
                None => TextInput::Single(&t.text),
                Some(p) => TextInput::Pair(&t.text, p),
            })
            .collect();
        let probs = c.classify(&inputs)?;
        let labels = c.labels().to_vec();
        let mut predictions = BTreeMap::new();
        for (t, row) in self.probe.texts.iter().zip(probs) {
            let scores = labels
                .iter()
                .cloned()
                .zip(row.into_iter().map(f64::from))
                .collect();
            predictions.insert(t.id, sources::Prediction::Scores(scores));
        }
        let mut label_counts = BTreeMap::new();
        for p in predictions.values() {
            if let sources::Prediction::Scores(sc) = p {
                if let Some((l, _)) = sc
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
                {
                    *label_counts.entry(l.clone()).or_insert(0u64) += 1;
                }
            }
        }
        let n = predictions.len();
        Ok(ModelOutputs {
            probe_fingerprint: self.probe.fingerprint_hex(),
            predictions,
            declared_labels: labels,
            report: sources::OutputReport {
                source: format!("onnx classifier {}", c.info().model_path.display()),
                lines: n as u64,
                answered: n,
                hard_labels: 0,
                soft_scores: n,
                unmatched: 0,
                unmatched_examples: Vec::new(),
                label_counts,
                verbalized: false,
            },
        })
    }

    /// The `params` part of provenance: everything that, with the input, determines the vectors.
    fn params_provenance(
        &self,
        opts: &IngestOptions,
        methods_wanted: &[MethodKind],
        source: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut p = json!({
            "method_params": opts.params.as_ref().map_or_else(
                || json!("each space's stored parameters (see details.methods)"),
                |p| json!(p),
            ),
            "methods": methods_wanted.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "surrogate": self.surrogate_provenance(),
            "probe": {
                "name": self.probe.name,
                "fingerprint": self.probe.fingerprint_hex(),
                "size": self.probe.len(),
            },
        });
        if let Some(s) = source {
            p["source"] = s;
        }
        p
    }

    fn surrogate_provenance(&self) -> serde_json::Value {
        let i = self.surrogate.info();
        json!({
            "name": i.name, "fingerprint": i.fingerprint, "model_sha256": i.model_sha256,
            "tokenizer_sha256": i.tokenizer_sha256, "dim": i.dim, "max_length": i.max_length,
            "pooling": i.pooling, "normalize": i.normalize,
            "execution_provider": i.execution_provider, "ort_version": i.ort_version,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        db: &TaskDb,
        name: &str,
        kind: Kind,
        vectors: Vec<NewVector>,
        mut provenance: Provenance,
        opts: &IngestOptions,
        mut stages: Stages,
        t0: Instant,
        cache: CacheStats,
        truncated: usize,
        warnings: Vec<String>,
    ) -> Result<IngestReport> {
        let spaces: BTreeMap<String, String> = vectors
            .iter()
            .map(|v| {
                let s = match &v.space {
                    SpaceRef::Def(d) => d.name.clone(),
                    SpaceRef::External(n) => n.clone(),
                    SpaceRef::Id(id) => id.to_string(),
                };
                (v.method.clone(), s)
            })
            .collect();
        for (s, t) in &stages.0 {
            provenance.timings.insert(s.clone(), *t);
        }
        provenance
            .timings
            .insert("total_before_write".into(), t0.elapsed().as_secs_f64());
        let entry = NewEntry {
            name: name.to_string(),
            kind,
            vectors,
            tags: opts.tags.clone(),
            provenance,
        };
        let ids = stages.time("write", || db.put(vec![entry]))?;
        let id = ids[0];
        let got = db.get(&crate::EntryRef::latest(name))?;
        debug_assert_eq!(got.id, id);
        Ok(IngestReport {
            id,
            name: got.name,
            version: got.version,
            kind,
            spaces,
            stages: stages.0,
            cache,
            truncated,
            warnings,
        })
    }
}

/// The name of a method's space for a surrogate and probe set: `method:surrogate12:probe12`.
pub fn space_name(method: MethodKind, surrogate_fp: &str, probe_fp: &str) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    format!(
        "{}:{}:{}",
        method.name(),
        short(surrogate_fp),
        short(probe_fp)
    )
}

fn dataset_targets(ds: &Dataset) -> methods::Targets {
    match ds.task {
        sources::Task::Classification => methods::Targets::Classes {
            labels: ds.class_indices().unwrap_or_default(),
            n_classes: ds.labels.len(),
        },
        sources::Task::Regression => methods::Targets::Regression {
            values: ds
                .values()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        },
    }
}

fn model_targets(t: &sources::Targets) -> methods::Targets {
    let c = t.labels.len();
    match &t.values {
        sources::TargetValues::Hard(l) => methods::Targets::Classes {
            labels: l.clone(),
            n_classes: c,
        },
        sources::TargetValues::Soft(rows) => methods::Targets::Soft {
            probs: rows.iter().flatten().map(|&p| p as f32).collect(),
            n_classes: c,
        },
    }
}

fn method_err(what: &str) -> impl Fn(methods::MethodError) -> Error + '_ {
    move |e| Error::invalid(what, e.to_string())
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_default_method_is_the_measured_default() {
        assert_eq!(MethodKind::DEFAULT.name(), crate::DEFAULT_METHOD);
    }

    #[test]
    fn space_names_carry_method_and_fingerprints() {
        assert_eq!(
            space_name(MethodKind::Scatter, "0123456789abcdef", "fedcba9876543210"),
            "scatter:0123456789ab:fedcba987654"
        );
    }
}
