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
use taskdb_methods::{self as methods, MethodKind, MethodParams, PairFeatures, TaskEmbedding};
use taskdb_sources::{self as sources, Dataset, ModelOutputs, ProbeSet};
use taskdb_surrogate::{Surrogate, TextInput};

use crate::error::{Error, Result};
use crate::features::{CacheStats, FeatureCache, FeatureInput};
use crate::model::{Embedding, EntryId, Kind, NewEntry, NewVector, Provenance};
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
    /// Method parameters (part of each space's definition). `None` (the default): today's
    /// default space of each method ([`MethodParams::default`]) if the database has it or no
    /// space of that method yet; else the database's existing space of that method (made
    /// under an earlier default, with its stored parameters, and a warning in the report), so
    /// a database keeps working, and its entries stay comparable, after taskdb's defaults
    /// change. `Some`: exactly these, in the space they name ([`space_name`]); an existing
    /// space of that name created with other parameters is then an error (a space never
    /// changes).
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
        probe_x: &mut ProbeX,
        notes: &mut Vec<String>,
    ) -> Result<SpaceDef> {
        let (sfp, pfp) = (self.surrogate.fingerprint(), self.probe.fingerprint_hex());
        let params = &match wanted {
            Some(p) => p.clone(),
            None => self.default_params(method),
        };
        let mut name = space_name(method, params, sfp, &pfp);
        if wanted.is_none() && matches!(db.space(&name), Err(Error::NotFound { .. })) {
            // A database made under an earlier default keeps growing its own space, so that
            // new entries stay comparable with the ones it holds; it says so.
            let earlier = db
                .spaces()?
                .into_iter()
                .filter(|s| {
                    s.def.method.as_deref() == Some(method.name())
                        && s.def.surrogate_fingerprint.as_deref() == Some(sfp)
                        && s.def.probe_fingerprint.as_deref() == Some(pfp.as_str())
                })
                .max_by_key(|s| s.id);
            if let Some(s) = earlier {
                notes.push(format!(
                    "{method}: this database's {method} entries are in space {:?}, made with an \
                     earlier default; this entry joins it so that it stays comparable with them. \
                     Today's default {method} space is {name:?} (docs/METHODS.md); to move to it, \
                     ingest the entries again into a new database",
                    s.def.name
                ));
                name = s.def.name;
            }
        }
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
                let mut p = TaskSpaceParams::new(method, params.clone(), None);
                // The whitening first: a reference of a whitening space is built in it.
                if let (true, Some(alpha)) =
                    (method.uses_whitening(params), params.scatter_whitening)
                {
                    p.whitening = Some(self.whitening(method, params, alpha, probe_x)?);
                }
                if method.uses_reference(params) {
                    let w = p.whitening(&name)?;
                    p.reference = Some(self.reference(method, params, w.as_ref(), probe_x)?);
                } else if let Some(lib) = self.library_for(method, params)? {
                    p = p.with_library_reference(&lib.reference()?, lib.describe());
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

    /// U's features as a space featurising pairs by `mode` sees them, computed (from the
    /// feature cache) on first use.
    fn probe_x<'a>(&self, probe_x: &'a mut ProbeX, mode: PairFeatures) -> Result<&'a [f32]> {
        let mode = self.probe_mode(mode);
        let x = match probe_x.entry(mode) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(
                self.features_in(&self.probe_inputs(), mode, "probe set U")?
                    .0,
            ),
        };
        Ok(x.as_slice())
    }

    /// The frozen reference of a new space. Building it fits dozens of pseudo-tasks on U
    /// (seconds to a minute), so it is cached per machine (see [`Ingestor::frozen`]). Once in a
    /// space definition, the reference is part of the database.
    fn reference(
        &self,
        method: MethodKind,
        params: &MethodParams,
        whitening: Option<&methods::Whitening>,
        probe_x: &mut ProbeX,
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
        let mode = params.pair_features(method);
        self.frozen(method.name(), key, verify, (probe_x, mode), |f| {
            self.progress.stage(
                &format!("building the {method} space's frozen reference (once per machine)"),
                None,
            );
            let reference = methods::build_reference_in(method, params, whitening, f, &spec)
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
        probe_x: &mut ProbeX,
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
        let mode = params.pair_features(method);
        self.frozen("whitening", key, verify, (probe_x, mode), |f| {
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
    /// (checksums), else rebuilt; writing the cache is best effort. `mode`: how the space
    /// featurises U's text pairs (part of the key only when U has pairs).
    fn frozen<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        mut key: serde_json::Value,
        verify: impl Fn(&T) -> bool,
        (probe_x, mode): (&mut ProbeX, PairFeatures),
        build: impl FnOnce(&methods::Features) -> Result<T>,
    ) -> Result<T> {
        key["surrogate"] = json!(self.surrogate.fingerprint());
        key["probe"] = json!(self.probe.fingerprint_hex());
        if self.probe_mode(mode) != PairFeatures::Joint {
            key["pairs"] = json!(mode);
        }
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
        let x = self.probe_x(probe_x, mode)?;
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

    /// Embeds the task in the space of each wanted method. `xs` holds the task's feature rows
    /// per pair featurisation computed in advance; `x_for(mode)` computes (and the stage
    /// "features…" times) a featurisation a space asks for that `xs` lacks.
    fn embed_all(
        &self,
        db: &TaskDb,
        methods_wanted: &[MethodKind],
        opts: &IngestOptions,
        (xs, x_for, has_pairs, y, what): (
            &mut FeatureSets,
            &mut XFor<'_>,
            bool,
            &methods::Targets,
            &str,
        ),
        stages: &mut Stages,
        notes: &mut Vec<String>,
    ) -> Result<(Vec<NewVector>, serde_json::Value)> {
        let d = self.surrogate.dim();
        let mut probe_x = ProbeX::new();
        let mut vectors = Vec::new();
        let mut details = serde_json::Map::new();
        for &m in methods_wanted {
            let def = stages.time(&format!("space {m}"), || {
                self.space_def(db, m, opts.params.as_ref(), &mut probe_x, notes)
            })?;
            // The space's definition is what the embedding follows: its parameters (stored or
            // new), its frozen whitening and its featurisation of text pairs.
            let space = TaskSpaceParams::from_def(&def)?;
            let whitening = space.whitening(&def.name)?;
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
                json!({"space": def.name, "rank": rank, "params": space.method_params,
                       "centring": space.centring(), "pairs": mode}),
            );
            vectors.push(NewVector {
                method: m.name().to_string(),
                space: SpaceRef::Def(def),
                embedding,
            });
        }
        Ok((vectors, serde_json::Value::Object(details)))
    }

    /// Ingests a dataset file as a new entry (or a new version of `name`):
    /// [`Ingestor::prepare_dataset`] then [`Ingestor::write_dataset`].
    pub fn dataset(
        &self,
        db: &TaskDb,
        name: &str,
        path: &Path,
        dopts: &sources::DatasetOptions,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let prepared = self.prepare_dataset(path, dopts, opts)?;
        self.write_dataset(db, name, prepared, opts)
    }

    /// The slow half of a dataset ingestion, which needs no database: reads the file and
    /// encodes its rows (through the feature cache) for the featurisations the default spaces
    /// of `opts`'s methods use. Run it before opening the database for writing, so that readers
    /// are not locked out while the surrogate works.
    pub fn prepare_dataset(
        &self,
        path: &Path,
        dopts: &sources::DatasetOptions,
        opts: &IngestOptions,
    ) -> Result<PreparedDataset> {
        let t0 = Instant::now();
        let mut stages = Stages(Vec::new());
        self.progress
            .stage(&format!("reading {}", path.display()), None);
        let ds: Dataset = stages.time("read", || {
            sources::read_dataset(path, dopts).map_err(Error::from)
        })?;
        self.progress.done();
        let has_pairs = ds.rows.iter().any(|r| r.text_pair.is_some());
        let mut modes = std::collections::BTreeSet::new();
        for m in dataset_methods(opts) {
            let params = opts
                .params
                .clone()
                .unwrap_or_else(|| self.default_params(m));
            modes.insert(match has_pairs {
                true => params.pair_features(m),
                false => PairFeatures::Joint,
            });
        }
        let mut xs = FeatureSets::new();
        let (mut cache, mut truncated) = (CacheStats::default(), 0);
        {
            let inputs = dataset_inputs(&ds);
            for mode in modes {
                let (x, c, t) = stages.time(features_stage(mode), || {
                    self.features_in(&inputs, mode, "dataset rows")
                })?;
                add_stats(&mut cache, c);
                truncated += t;
                xs.insert(mode, x);
            }
        }
        Ok(PreparedDataset {
            path: path.to_path_buf(),
            ds,
            xs,
            cache,
            truncated,
            stages,
            t0,
        })
    }

    /// The quick half of a dataset ingestion: embeds a [`PreparedDataset`] in each method's
    /// space of `db` (features a stored space needs that were not prepared are computed
    /// here) and writes it as one entry in one transaction.
    pub fn write_dataset(
        &self,
        db: &TaskDb,
        name: &str,
        prepared: PreparedDataset,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let methods_wanted = dataset_methods(opts);
        let PreparedDataset {
            path,
            ds,
            mut xs,
            mut cache,
            mut truncated,
            mut stages,
            t0,
        } = prepared;
        let inputs = dataset_inputs(&ds);
        let has_pairs = inputs.iter().any(|i| i.pair.is_some());
        let mut x_for = |mode| {
            let (x, c, t) = self.features_in(&inputs, mode, "dataset rows")?;
            add_stats(&mut cache, c);
            truncated += t;
            Ok(x)
        };
        let y = dataset_targets(&ds);
        let what = format!("dataset {}", path.display());
        let mut warnings = Vec::new();
        let (vectors, details) = self.embed_all(
            db,
            &methods_wanted,
            opts,
            (&mut xs, &mut x_for, has_pairs, &y, &what),
            &mut stages,
            &mut warnings,
        )?;
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
            warnings,
        )
    }

    /// Ingests a black-box model: its predictions on U become the targets of a
    /// pseudo-dataset embedded exactly like a dataset (FUTE's model task embedding).
    ///
    /// [`Ingestor::prepare_model`] then [`Ingestor::write_model`].
    pub fn model(
        &self,
        db: &TaskDb,
        name: &str,
        source: &ModelSource,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let prepared = self.prepare_model(source, opts)?;
        self.write_model(db, name, source, prepared, opts)
    }

    /// The slow half of a model ingestion, which needs no database: U's features (through the
    /// feature cache) and the model's run over U (up to its timeout). Run it before opening the
    /// database for writing, so that readers are not locked out while the model works.
    pub fn prepare_model(
        &self,
        source: &ModelSource,
        opts: &IngestOptions,
    ) -> Result<PreparedModel> {
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
        Ok(PreparedModel {
            outputs,
            ux,
            cache,
            truncated,
            stages,
            t0,
        })
    }

    /// The quick half of a model ingestion: embeds a [`PreparedModel`]'s predictions in each
    /// method's space of `db` and writes them as one entry in one transaction. `source` must be
    /// the one the predictions came from (it is recorded in the provenance).
    pub fn write_model(
        &self,
        db: &TaskDb,
        name: &str,
        source: &ModelSource,
        prepared: PreparedModel,
        opts: &IngestOptions,
    ) -> Result<IngestReport> {
        let methods_wanted: Vec<MethodKind> = if opts.methods.is_empty() {
            MethodKind::ALL
                .into_iter()
                .filter(|m| m.uses_targets())
                .collect()
        } else {
            opts.methods.clone()
        };
        let PreparedModel {
            outputs,
            ux,
            cache,
            truncated,
            mut stages,
            t0,
        } = prepared;
        let targets = sources::to_targets(&outputs, sources::ScoreKind::Probabilities)
            .map_err(Error::from)?;
        // Rows of U the model answered (verbalizer misses are left out).
        let d = self.surrogate.dim();
        let mut positions = Vec::with_capacity(targets.ids.len());
        for id in &targets.ids {
            positions.push(
                self.probe.position(*id).ok_or_else(|| {
                    Error::Internal(format!("probe id {id} answered but not in U"))
                })?,
            );
        }
        let mut x_for = |mode| {
            let owned;
            let u: &[f32] = match self.probe_mode(mode) {
                PairFeatures::Joint => &ux,
                m => {
                    owned = self.features_in(&self.probe_inputs(), m, "probe set U")?.0;
                    &owned
                }
            };
            let mut x = Vec::with_capacity(positions.len() * d);
            for &pos in &positions {
                x.extend_from_slice(&u[pos * d..(pos + 1) * d]);
            }
            Ok(x)
        };
        // The joint featurisation (U's features, computed in `prepare_model`) is at hand: only
        // another featurisation of a U with text pairs is computed (and timed) in embed_all.
        let mut prepared_x = FeatureSets::new();
        prepared_x.insert(PairFeatures::Joint, x_for(PairFeatures::Joint)?);
        let y = model_targets(&targets);
        let mut warnings = Vec::new();
        if targets.labels.len() > MANY_LABELS {
            warnings.push(format!(
                "the model gave {} distinct labels on U (more than {MANY_LABELS}): a task \
                 embedding has one direction per class, so this is slow and rarely what a \
                 classifier means; check its output (a label per text, not a free-text reply), \
                 or map replies to classes with --verbalizers",
                targets.labels.len()
            ));
        }
        let (vectors, details) = self.embed_all(
            db,
            &methods_wanted,
            opts,
            (
                &mut prepared_x,
                &mut x_for,
                self.probe_has_pairs(),
                &y,
                &format!("model {name}'s predictions on U"),
            ),
            &mut stages,
            &mut warnings,
        )?;
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
        // The surrogate's own warnings (a CUDA fallback, a second ONNX Runtime) belong in the
        // report too: a `--json` caller has no other place to see them.
        let mut warnings = warnings;
        warnings.extend(self.surrogate.info().warnings.iter().cloned());
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

/// The name of a method's space for a surrogate and probe set: `method:surrogate12:probe12`,
/// with the method's design tag when its parameters change what the first design of that
/// method computed (`scatter-kmeans-absdiff:…` for today's default; see
/// [`MethodParams::design_tag`]). So a changed default makes a new space, and a database made
/// before it keeps its old spaces, which stay readable and searchable as they were.
pub fn space_name(
    method: MethodKind,
    params: &MethodParams,
    surrogate_fp: &str,
    probe_fp: &str,
) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let method = match params.design_tag(method) {
        Some(tag) => format!("{}-{tag}", method.name()),
        None => method.name().to_string(),
    };
    format!("{method}:{}:{}", short(surrogate_fp), short(probe_fp))
}

/// A dataset read and encoded by [`Ingestor::prepare_dataset`], to be written by
/// [`Ingestor::write_dataset`] (holds the rows and their features; a few MB for 2,000 rows).
pub struct PreparedDataset {
    path: PathBuf,
    ds: Dataset,
    xs: FeatureSets,
    cache: CacheStats,
    truncated: usize,
    stages: Stages,
    t0: Instant,
}

/// A model's predictions on U and U's features, from [`Ingestor::prepare_model`], to be
/// written by [`Ingestor::write_model`].
pub struct PreparedModel {
    outputs: ModelOutputs,
    ux: Vec<f32>,
    cache: CacheStats,
    truncated: usize,
    stages: Stages,
    t0: Instant,
}

/// The feature-cache inputs of a dataset's rows (a text, or a text pair).
fn dataset_inputs(ds: &Dataset) -> Vec<FeatureInput<'_>> {
    ds.rows
        .iter()
        .map(|r| FeatureInput {
            text: &r.text,
            pair: r.text_pair.as_deref(),
        })
        .collect()
}

/// The methods a dataset ingestion computes: `opts.methods`, or all four.
fn dataset_methods(opts: &IngestOptions) -> Vec<MethodKind> {
    if opts.methods.is_empty() {
        MethodKind::ALL.to_vec()
    } else {
        opts.methods.clone()
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

/// Feature rows of a task per pair featurisation.
type FeatureSets = BTreeMap<PairFeatures, Vec<f32>>;

/// Feature rows of a task for a pair featurisation (see `Ingestor::embed_all`).
type XFor<'a> = dyn FnMut(PairFeatures) -> Result<Vec<f32>> + 'a;

/// U's features per pair featurisation, computed on first use while spaces are defined.
type ProbeX = BTreeMap<PairFeatures, Vec<f32>>;

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
