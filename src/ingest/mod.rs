//! Ingestion: a source (a dataset file, or a black-box model labelling the probe set U) →
//! surrogate features (through the feature cache) → task-embedding methods → one write
//! transaction. It all lands or nothing does.
//!
//! Datasets and models land in the **same spaces**: a space is (surrogate fingerprint, method
//! and its parameters, probe-set fingerprint), so a dataset's DTE and a model's MTE computed
//! through the same surrogate with the same U are comparable (FUTE). The probe set is part of a
//! dataset's space too, because each space's frozen centring reference is built from U.
//!
//! ```
//! use taskdb::ingest::sources::{DatasetOptions, ProbeSet};
//! use taskdb::ingest::surrogate::{Options, Surrogate};
//! use taskdb::ingest::{IngestOptions, Ingestor};
//! use taskdb::{Filter, Kind, Query, TaskDb};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
//! # let dir = tempfile::tempdir()?;
//! # let (surrogate_dir, probe_file) = (fx.join("surrogate/tiny"), fx.join("probe/probe_small.jsonl"));
//! # let (file_a, file_b) = (fx.join("datasets/sentiment_a.jsonl"), fx.join("datasets/topic.tsv"));
//! let db_path = dir.path().join("tasks.taskdb");
//! // A surrogate directory holds model.onnx, tokenizer.json and surrogate.json; this one is
//! // the tiny test encoder (`scripts/provision.sh` installs the default, all-MiniLM-L6-v2).
//! let surrogate = Surrogate::load(&surrogate_dir, &Options::default())?;
//! let ingestor = Ingestor::new(&db_path, surrogate, ProbeSet::from_file(&probe_file)?)?
//! #   .with_reference_cache(Some(dir.path().join("refs")))
//!     ;
//! let db = TaskDb::open(&db_path)?;
//! let opts = IngestOptions::default();
//! ingestor.dataset(&db, "reviews", &file_a, &DatasetOptions::default(), &opts)?;
//! let report = ingestor.dataset(&db, "topics", &file_b, &DatasetOptions::default(), &opts)?;
//! assert_eq!(report.version, 1);
//! // Both datasets are now in the default space, beside any model ingested there.
//! let hits = db.nearest(&Query::entry("reviews")?, 5, &Filter::all().kind(Kind::Dataset))?;
//! assert_eq!(hits[0].name, "topics");
//! # Ok(()) }
//! ```

mod dataset;
mod frozen;
mod model;
mod prompts;
mod provenance;
pub(crate) mod spaces;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use taskdb_methods::{self as methods, MethodKind, MethodParams, PairFeatures, TaskEmbedding};
use taskdb_sources::ProbeSet;
use taskdb_surrogate::{Surrogate, TextInput};

/// The input side (dataset readers and options, the probe set U, model adapters): the
/// `taskdb-sources` crate, re-exported so that a caller needs no other dependency.
pub use taskdb_sources as sources;
/// The surrogate encoder (ONNX Runtime): the `taskdb-surrogate` crate, re-exported.
pub use taskdb_surrogate as surrogate;

use crate::error::{Error, Result};
use crate::features::{CacheStats, FeatureCache, FeatureInput};
use crate::model::{Embedding, EntryId, Kind, NewEntry, NewVector, Provenance};
use crate::reflib::ReferenceLibrary;
use crate::TaskDb;

pub use dataset::PreparedDataset;
pub use model::PreparedModel;
pub use prompts::{read_prompts_file, PromptSpec};

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
    /// Method parameters (part of each space's definition). `None` (the default): today's
    /// default space of each method ([`MethodParams::default`]) if the database has it or no
    /// space of that method yet; else the database's existing space of that method (made
    /// under an earlier default, with its stored parameters, and a warning in the report), so
    /// a database keeps working, and its entries stay comparable, after taskdb's defaults
    /// change. `Some`: exactly these, in the space they name (a name made of the method,
    /// the parameters and the surrogate's and U's fingerprints); an existing space of that
    /// name created with other parameters is then an error (a space never changes).
    pub params: Option<MethodParams>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// The command line, for provenance.
    pub command_line: Vec<String>,
    /// Run a model command on a seeded subset of this many probe texts instead of all of U
    /// (for slow models such as LLMs on a CPU). The embedding lands in the same space and is
    /// computed from the answered texts only, so it is an estimate: the provenance records
    /// how many texts it rests on. The subset is the same for every model given the same
    /// limit (seeded), so models ingested with one limit are compared on the same texts.
    /// `None` (the default): all of U.
    pub probe_limit: Option<usize>,
}

/// The seed of [`IngestOptions::probe_limit`]'s subset (fixed: every model gets the same one).
pub const PROBE_SUBSET_SEED: u64 = 0x7461_736b_5375_6273;

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

/// More distinct model labels than this get a warning in the ingestion report.
const MANY_LABELS: usize = 100;

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

    /// The parameters of a new space of `method` when the caller names none: the defaults,
    /// except that a reference library given with [`Ingestor::with_reference_library`] centres
    /// the spaces of its method (its parameters, centred by the library instead of k-means).
    fn default_params(&self, method: MethodKind) -> MethodParams {
        match &self.reference_library {
            RefLib::Given(l) if l.method == method => MethodParams {
                scatter_kmeans_reference: false,
                ..l.method_params.clone()
            },
            _ => MethodParams::default(),
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

    /// Features of `inputs` as a space featurising text pairs by `mode` sees them: the
    /// surrogate's joint encoding, or `|h(a) − h(b)|` of the two texts encoded alone (rows
    /// without a second text are `h(a)` either way). See [`PairFeatures`].
    fn features_in(
        &self,
        inputs: &[FeatureInput<'_>],
        mode: PairFeatures,
        what: &str,
    ) -> Result<(Vec<f32>, CacheStats, usize)> {
        if mode == PairFeatures::Joint || inputs.iter().all(|i| i.pair.is_none()) {
            return self.features(inputs, what);
        }
        let single = |text| FeatureInput { text, pair: None };
        let a: Vec<FeatureInput<'_>> = inputs.iter().map(|i| single(i.text)).collect();
        let b: Vec<FeatureInput<'_>> = inputs.iter().filter_map(|i| i.pair.map(single)).collect();
        let (xa, sa, ta) = self.features(&a, &format!("{what}, first texts"))?;
        let (xb, sb, tb) = self.features(&b, &format!("{what}, second texts"))?;
        let d = self.surrogate.dim();
        let mut out = Vec::with_capacity(xa.len());
        let mut rows_b = xb.chunks_exact(d);
        for (inp, ra) in inputs.iter().zip(xa.chunks_exact(d)) {
            match inp.pair.and_then(|_| rows_b.next()) {
                Some(rb) => {
                    out.extend(methods::absdiff_features(ra, rb, d).map_err(method_err(what))?)
                }
                None => out.extend_from_slice(ra),
            }
        }
        let mut stats = sa;
        add_stats(&mut stats, sb);
        Ok((out, stats, ta + tb))
    }

    fn probe_inputs(&self) -> Vec<FeatureInput<'_>> {
        self.probe
            .texts
            .iter()
            .map(|t| FeatureInput {
                text: &t.text,
                pair: t.text_pair.as_deref(),
            })
            .collect()
    }

    fn probe_features(&self) -> Result<(Vec<f32>, CacheStats, usize)> {
        self.features(&self.probe_inputs(), "probe set U")
    }

    /// Whether U holds text pairs (the default U does not).
    fn probe_has_pairs(&self) -> bool {
        self.probe.texts.iter().any(|t| t.text_pair.is_some())
    }

    /// The pair featurisation that matters for U: `Joint` when U has no text pairs (the
    /// default U), where every mode gives the same features.
    fn probe_mode(&self, mode: PairFeatures) -> PairFeatures {
        if self.probe_has_pairs() {
            mode
        } else {
            PairFeatures::Joint
        }
    }

    /// Embeds `task` in the space of each wanted method.
    fn embed_all(
        &self,
        db: &TaskDb,
        methods_wanted: &[MethodKind],
        opts: &IngestOptions,
        task: TaskRows<'_, '_>,
        stages: &mut Stages,
        notes: &mut Vec<String>,
    ) -> Result<Embedded> {
        let TaskRows {
            xs,
            x_for,
            has_pairs,
            y,
            what,
        } = task;
        let d = self.surrogate.dim();
        let mut probe_x = ProbeX::new();
        let mut vectors = Vec::new();
        let mut spaces = BTreeMap::new();
        let mut details = serde_json::Map::new();
        for &m in methods_wanted {
            let (space_ref, space_name, space) = stages.time(&format!("space {m}"), || {
                self.space_def(db, m, opts.params.as_ref(), &mut probe_x, notes)
            })?;
            // The space's parameters are what the embedding follows: stored or new, its
            // frozen whitening and its featurisation of text pairs.
            let whitening = space.whitening(&space_name)?;
            // Without text pairs every featurisation is the joint one.
            let mode = match has_pairs {
                true => space.method_params.pair_features(m),
                false => PairFeatures::Joint,
            };
            let x = match xs.entry(mode) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(stages.time(features_stage(mode), || x_for(mode))?)
                }
            };
            let f = methods::Features::new(x.len() / d, d, x).map_err(method_err(what))?;
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
                json!({"space": space_name, "rank": rank, "params": space.method_params,
                       "centring": space.centring(), "pairs": mode}),
            );
            spaces.insert(m.name().to_string(), space_name);
            vectors.push(NewVector {
                method: m.name().to_string(),
                space: space_ref,
                embedding,
            });
        }
        Ok(Embedded {
            vectors,
            details: serde_json::Value::Object(details),
            spaces,
        })
    }

    /// Writes an embedded task as one entry (one transaction) and reports what was done.
    fn write(&self, db: &TaskDb, p: Pending, opts: &IngestOptions) -> Result<IngestReport> {
        let Pending {
            name,
            kind,
            vectors,
            spaces,
            mut provenance,
            mut stages,
            t0,
            cache,
            truncated,
            mut warnings,
            outputs,
        } = p;
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
        let written = stages.time("write", || db.put_with_outputs(vec![(entry, outputs)]))?;
        let w = written
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("put wrote no entry".into()))?;
        // The surrogate's own warnings (a CUDA fallback, a second ONNX Runtime) belong in the
        // report too: a `--json` caller has no other place to see them.
        warnings.extend(self.surrogate.info().warnings.iter().cloned());
        // A full disk kept the feature cache from saving this run's features.
        warnings.extend(self.cache.warning());
        Ok(IngestReport {
            id: w.id,
            name: w.name,
            version: w.version,
            kind,
            spaces,
            stages: stages.0,
            cache,
            truncated,
            warnings,
        })
    }
}

/// The stage name of computing features in a pair featurisation.
fn features_stage(mode: PairFeatures) -> &'static str {
    match mode {
        PairFeatures::Joint => "features",
        PairFeatures::AbsDiff => "features (pairs: absdiff)",
    }
}

fn add_stats(acc: &mut CacheStats, c: CacheStats) {
    acc.hits += c.hits;
    acc.computed += c.computed;
    acc.repaired += c.repaired;
}

/// An embedded task waiting to be written (see [`Ingestor::write`]).
struct Pending<'a> {
    name: &'a str,
    kind: Kind,
    vectors: Vec<NewVector>,
    spaces: BTreeMap<String, String>,
    provenance: Provenance,
    stages: Stages,
    t0: Instant,
    cache: CacheStats,
    truncated: usize,
    warnings: Vec<String>,
    /// A model's outputs on U, written with the entry (`None` for a dataset).
    outputs: Option<crate::ModelOutputs>,
}

/// A task embedded in each wanted method's space (see [`Ingestor::embed_all`]).
struct Embedded {
    vectors: Vec<NewVector>,
    /// Per method: its space, rank, parameters, centring and pair featurisation (provenance).
    details: serde_json::Value,
    /// Per method: the name of its space.
    spaces: BTreeMap<String, String>,
}

/// What `Ingestor::embed_all` embeds: one task's rows as features, and its targets.
struct TaskRows<'a, 'x> {
    /// The task's feature rows per pair featurisation, computed in advance.
    xs: &'a mut FeatureSets,
    /// Computes (and the stage "features…" times) a featurisation a space asks for that `xs`
    /// lacks.
    x_for: &'a mut XFor<'x>,
    /// Whether the rows are text pairs (without pairs every featurisation is the joint one).
    has_pairs: bool,
    /// The targets (labels, soft labels or values) of the rows.
    y: &'a methods::Targets,
    /// The task, for error messages ("dataset …", "model …'s predictions on U").
    what: &'a str,
}

/// Feature rows of a task per pair featurisation.
type FeatureSets = BTreeMap<PairFeatures, Vec<f32>>;

/// Feature rows of a task for a pair featurisation (see `Ingestor::embed_all`).
type XFor<'a> = dyn FnMut(PairFeatures) -> Result<Vec<f32>> + 'a;

/// U's features per pair featurisation, computed on first use while spaces are defined.
type ProbeX = BTreeMap<PairFeatures, Vec<f32>>;

fn method_err(what: &str) -> impl Fn(methods::MethodError) -> Error + '_ {
    move |e| Error::invalid(what, e.to_string())
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
        use super::spaces::space_name;
        assert_eq!(
            space_name(
                MethodKind::Scatter,
                &MethodParams::library_centred(),
                "0123456789abcdef",
                "fedcba9876543210"
            ),
            "scatter:0123456789ab:fedcba987654"
        );
    }
}
