//! `taskdb._taskdb`: the Python extension module, over the `taskdb` library's public API only.
//!
//! Thin by design, like the CLI: the library's own `Serialize` types cross as JSON (the shapes
//! of `schema/cli-json.md`), vectors as little-endian f32 bytes that the Python layer
//! (`python/taskdb/__init__.py`) views as numpy arrays without a copy. The GIL is released
//! during ingestion, search and every other call that touches the store. Errors become
//! `taskdb.Error` subclasses chosen by the library's exit code, with its message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use taskdb::ingest::sources::{self, DatasetOptions, ProbeSet};
use taskdb::ingest::surrogate::{self, Surrogate};
use taskdb::ingest::{IngestOptions, IngestReport, Ingestor, ModelSource, Progress};
use taskdb::{
    exit, Embedding, EntryRef, Filter, Kind, MapLayout, MapOptions, MethodKind, NewOutcome, Query,
    RecommendOptions, RenderOptions, Snapshot, SnapshotOptions, TaskDb,
};

create_exception!(taskdb, Error, PyException, "Every taskdb error.");
create_exception!(
    taskdb,
    NotFoundError,
    Error,
    "No such entry, space or file."
);
create_exception!(
    taskdb,
    InvalidInputError,
    Error,
    "Bad input: the message names the row, field or entry."
);
create_exception!(
    taskdb,
    LockedError,
    Error,
    "Another process holds the database for writing."
);
create_exception!(
    taskdb,
    IncompatibleError,
    Error,
    "Not a taskdb database or snapshot, or a newer format."
);
create_exception!(
    taskdb,
    CorruptError,
    Error,
    "Stored data failed a checksum or the storage layer failed."
);
create_exception!(taskdb, FileError, Error, "An I/O error on a named file.");
create_exception!(
    taskdb,
    SurrogateError,
    Error,
    "The surrogate (ONNX Runtime or the model) cannot run."
);
create_exception!(taskdb, ModelError, Error, "A model command failed.");
create_exception!(
    taskdb,
    DiskFullError,
    Error,
    "No space left; nothing of the failed write was committed."
);
create_exception!(
    taskdb,
    SnapshotInvalidError,
    Error,
    "A snapshot failed verification."
);

/// The library error as the Python exception of its kind.
fn err(e: taskdb::Error) -> PyErr {
    let msg = e.to_string();
    match e.exit_code() {
        exit::NOT_FOUND => NotFoundError::new_err(msg),
        exit::INVALID_INPUT => InvalidInputError::new_err(msg),
        exit::LOCKED => LockedError::new_err(msg),
        exit::INCOMPATIBLE => IncompatibleError::new_err(msg),
        exit::CORRUPT => CorruptError::new_err(msg),
        exit::IO => FileError::new_err(msg),
        exit::SURROGATE => SurrogateError::new_err(msg),
        exit::MODEL => ModelError::new_err(msg),
        exit::DISK_FULL => DiskFullError::new_err(msg),
        exit::SNAPSHOT_INVALID => SnapshotInvalidError::new_err(msg),
        _ => Error::new_err(msg),
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| Error::new_err(format!("JSON: {e}")))
}

fn entry_ref(s: &str) -> PyResult<EntryRef> {
    s.parse::<EntryRef>().map_err(err)
}

fn kind(k: Option<&str>) -> PyResult<Option<Kind>> {
    k.map(|k| k.parse::<Kind>().map_err(err)).transpose()
}

/// The library's [`Filter`] from the keyword arguments the Python calls share.
fn filter(
    kind: Option<&str>,
    prefix: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    method: Option<String>,
) -> PyResult<Filter> {
    let mut f = Filter::all();
    f.kind = self::kind(kind)?;
    f.name_prefix = prefix;
    f.tags = tags.unwrap_or_default();
    if let Some(m) = method {
        f = f.method(m);
    }
    Ok(f)
}

fn methods(m: Option<Vec<String>>) -> PyResult<Vec<MethodKind>> {
    m.unwrap_or_default()
        .iter()
        .map(|s| {
            s.parse::<MethodKind>()
                .map_err(|e| InvalidInputError::new_err(format!("method {s:?}: {e}")))
        })
        .collect()
}

/// How ingestion finds its surrogate and probe set (the CLI's `--surrogate`, `--probe`,
/// `--device`, `--threads`).
#[derive(Clone, Default)]
struct IngestConfig {
    surrogate: Option<PathBuf>,
    probe: Option<PathBuf>,
    device: String,
    threads: usize,
    reference_cache: Option<PathBuf>,
}

/// Progress reported to the Python callable of the ingestion running now (if any):
/// `progress(event, name, n)` with `("stage", name, total or None)`, `("advance", "", n)`,
/// `("done", "", None)`. Its exceptions are ignored.
#[derive(Default)]
struct PyProgress(Mutex<Option<Py<PyAny>>>);

impl PyProgress {
    fn send(&self, event: &str, name: &str, n: Option<u64>) {
        let Ok(cb) = self.0.lock() else { return };
        if let Some(cb) = cb.as_ref() {
            Python::attach(|py| {
                let _ = cb.call1(py, (event, name, n));
            });
        }
    }
}

impl Progress for PyProgress {
    fn stage(&self, name: &str, total: Option<u64>) {
        self.send("stage", name, total);
    }
    fn advance(&self, n: u64) {
        self.send("advance", "", Some(n));
    }
    fn done(&self) {
        self.send("done", "", None);
    }
}

/// A database (or a snapshot, read-only) opened from Python.
#[pyclass(frozen, module = "taskdb._taskdb")]
struct Database {
    /// `None` once closed.
    db: RwLock<Option<TaskDb>>,
    path: PathBuf,
    config: IngestConfig,
    /// Loaded on the first ingestion (loading the surrogate takes a moment).
    ingestor: Mutex<Option<Arc<Ingestor>>>,
    /// Where the ingestor reports progress (the current call's callable).
    progress: Arc<PyProgress>,
}

impl Database {
    /// Runs `f` on the open database with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TaskDb) -> taskdb::Result<T> + Send,
    ) -> PyResult<T> {
        let guard = self
            .db
            .read()
            .map_err(|_| Error::new_err("database lock poisoned"))?;
        let db = guard
            .as_ref()
            .ok_or_else(|| Error::new_err(format!("database {} is closed", self.path.display())))?;
        py.detach(|| f(db)).map_err(err)
    }

    fn ingestor(&self, py: Python<'_>) -> PyResult<Arc<Ingestor>> {
        let mut slot = self
            .ingestor
            .lock()
            .map_err(|_| Error::new_err("ingestor lock poisoned"))?;
        if let Some(i) = slot.as_ref() {
            return Ok(i.clone());
        }
        let c = self.config.clone();
        let path = self.path.clone();
        let progress = self.progress.clone();
        let ing = py
            .detach(move || -> taskdb::Result<Ingestor> {
                let dir = c
                    .surrogate
                    .clone()
                    .unwrap_or_else(surrogate::default_surrogate_dir);
                let opts = surrogate::Options {
                    device: c.device.parse()?,
                    intra_threads: c.threads,
                    ..surrogate::Options::default()
                };
                let s = Surrogate::load(&dir, &opts)?;
                let probe = match &c.probe {
                    Some(p) => ProbeSet::from_file(p)?,
                    None => ProbeSet::builtin()?,
                };
                Ok(Ingestor::new(&path, s, probe)?
                    .with_reference_cache(c.reference_cache.clone())
                    .with_progress(progress))
            })
            .map_err(err)?;
        let ing = Arc::new(ing);
        *slot = Some(ing.clone());
        Ok(ing)
    }
}

impl Database {
    /// One ingestion: its options, the ingestor (loaded once), this call's progress callable,
    /// then `run` with the GIL released; the report as JSON.
    fn ingest(
        &self,
        py: Python<'_>,
        progress: Option<Py<PyAny>>,
        methods_: Option<Vec<String>>,
        tags: Option<BTreeMap<String, String>>,
        provenance: Option<Vec<String>>,
        run: impl FnOnce(&Ingestor, &TaskDb, &IngestOptions) -> taskdb::Result<IngestReport> + Send,
    ) -> PyResult<String> {
        let opts = IngestOptions {
            methods: methods(methods_)?,
            tags: tags.unwrap_or_default(),
            command_line: provenance.unwrap_or_else(|| vec!["python".into()]),
            ..IngestOptions::default()
        };
        let ing = self.ingestor(py)?;
        let _reporting = Reporting::new(&self.progress, progress);
        let report = self.with(py, |db| run(&ing, db, &opts))?;
        json(&report)
    }
}

#[pymethods]
impl Database {
    /// The file this handle reads.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether writes are refused (a read-only open, or a snapshot).
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |db| Ok(db.is_read_only()))
    }

    /// Saves graphs and releases the file (later calls raise `taskdb.Error`).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .db
            .write()
            .map_err(|_| Error::new_err("database lock poisoned"))?
            .take();
        py.detach(move || drop(taken));
        Ok(())
    }

    #[pyo3(signature = (name, k, kind=None, method=None))]
    fn knn_json(
        &self,
        py: Python<'_>,
        name: &str,
        k: usize,
        kind: Option<&str>,
        method: Option<String>,
    ) -> PyResult<String> {
        let q = Query::entry(name).map_err(err)?;
        let f = filter(kind, None, None, method)?;
        let hits = self.with(py, |db| db.nearest(&q, k, &f))?;
        json(&hits)
    }

    /// `(metadata JSON, [(method, space, shape, f32 LE bytes)])`; a low-rank vector gives
    /// `u` then `s` (shapes `(rank, dim)` and `(rank,)`).
    #[allow(clippy::type_complexity)]
    fn get_raw<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(
        String,
        Vec<(String, String, Vec<usize>, Bound<'py, PyBytes>)>,
    )> {
        let r = entry_ref(name)?;
        let (e, spaces) = self.with(py, |db| Ok((db.get(&r)?, db.spaces()?)))?;
        let space_name = |id| {
            spaces
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.def.name.clone())
                .unwrap_or_default()
        };
        let mut vectors = Vec::new();
        for (method, (sid, emb)) in &e.vectors {
            let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
            match emb {
                Embedding::Dense(v) => vectors.push((
                    method.clone(),
                    space_name(*sid),
                    vec![v.len()],
                    PyBytes::new(py, &bytes(v)),
                )),
                Embedding::LowRank(l) => {
                    vectors.push((
                        format!("{method}.u"),
                        space_name(*sid),
                        vec![l.s.len(), l.dim],
                        PyBytes::new(py, &bytes(&l.u)),
                    ));
                    vectors.push((
                        format!("{method}.s"),
                        space_name(*sid),
                        vec![l.s.len()],
                        PyBytes::new(py, &bytes(&l.s)),
                    ));
                }
                _ => {}
            }
        }
        let meta = serde_json::json!({
            "id": e.id, "name": e.name, "version": e.version, "kind": e.kind,
            "tags": e.tags, "provenance": e.provenance, "created_at_ms": e.created_at_ms,
            "latest": e.latest,
        });
        Ok((json(&meta)?, vectors))
    }

    #[pyo3(signature = (kind=None, prefix=None, tags=None, method=None, all_versions=false))]
    fn list_json(
        &self,
        py: Python<'_>,
        kind: Option<&str>,
        prefix: Option<String>,
        tags: Option<BTreeMap<String, String>>,
        method: Option<String>,
        all_versions: bool,
    ) -> PyResult<String> {
        let mut f = filter(kind, prefix, tags, method)?;
        f.all_versions = all_versions;
        let list = self.with(py, |db| db.list(&f))?;
        json(&list)
    }

    /// Imports precomputed vectors from a JSON-lines file (the `taskdb import` format);
    /// returns `(imported, skipped, batches)`.
    #[pyo3(signature = (path, batch_size=1000, replace=false, resume=false))]
    fn import_jsonl(
        &self,
        py: Python<'_>,
        path: PathBuf,
        batch_size: usize,
        replace: bool,
        resume: bool,
    ) -> PyResult<(u64, u64, u64)> {
        let opts = taskdb::ImportOptions {
            batch_size,
            replace,
            skip_identical: resume,
            command_line: vec![
                "python".into(),
                "import_jsonl".into(),
                path.display().to_string(),
            ],
        };
        if taskdb::is_export(&path) {
            // A file written by `export`: read back exactly, spaces included.
            let (n, _warnings) = self.with(py, |db| db.import_export(&path))?;
            return Ok((n, 0, n));
        }
        let r = self.with(py, |db| db.import_jsonl(&path, &opts, &mut |_| {}))?;
        Ok((r.imported, r.skipped, r.batches))
    }

    /// Deletes `name` (every version) or `name@N`; returns the ids deleted.
    fn remove(&self, py: Python<'_>, name: &str) -> PyResult<Vec<u64>> {
        let r = entry_ref(name)?;
        self.with(py, |db| db.delete(&r))
    }

    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        let s = self.with(py, |db| db.stats())?;
        json(&s)
    }

    #[pyo3(signature = (target, k=5, source_kind=None, method=None, use_outcomes=true, lambda_=None))]
    #[allow(clippy::too_many_arguments)]
    fn recommend_json(
        &self,
        py: Python<'_>,
        target: &str,
        k: usize,
        source_kind: Option<&str>,
        method: Option<String>,
        use_outcomes: bool,
        lambda_: Option<f64>,
    ) -> PyResult<String> {
        let r = entry_ref(target)?;
        let mut o = RecommendOptions {
            k,
            from: self::kind(source_kind)?,
            method,
            use_outcomes,
            ..RecommendOptions::default()
        };
        if let Some(l) = lambda_ {
            o.lambda = l;
        }
        let rec = self.with(py, |db| db.recommend(&r, &o))?;
        json(&rec)
    }

    #[pyo3(signature = (dataset, prefix=None, tags=None, method=None))]
    fn select_prompt_json(
        &self,
        py: Python<'_>,
        dataset: &str,
        prefix: Option<String>,
        tags: Option<BTreeMap<String, String>>,
        method: Option<String>,
    ) -> PyResult<(String, Option<String>)> {
        let r = entry_ref(dataset)?;
        let f = filter(None, prefix, tags, None)?;
        let c = self.with(py, |db| db.select_prompt(&r, &f, method.as_deref()))?;
        Ok((json(&c)?, taskdb::PromptChoice::mi_note(&c)))
    }

    /// A model entry's outputs on U as JSON (`null` when none are stored).
    fn model_outputs_json(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let r = entry_ref(name)?;
        let o = self.with(py, |db| db.model_outputs(&r))?;
        json(&o)
    }

    fn compare_json(&self, py: Python<'_>, a: &str, b: &str) -> PyResult<String> {
        let (a, b) = (entry_ref(a)?, entry_ref(b)?);
        let c = self.with(py, |db| db.compare(&a, &b))?;
        json(&c)
    }

    #[pyo3(signature = (out, note=None))]
    fn snapshot_json(
        &self,
        py: Python<'_>,
        out: PathBuf,
        note: Option<String>,
    ) -> PyResult<String> {
        let m = self.with(py, |db| db.snapshot(&out, &SnapshotOptions { note }))?;
        json(&m)
    }

    /// Exports every live entry (`format` `jsonl`: one file; `parquet`: a directory).
    #[pyo3(signature = (out, format="jsonl"))]
    fn export_json(&self, py: Python<'_>, out: PathBuf, format: &str) -> PyResult<String> {
        let r = match format {
            "jsonl" => self.with(py, |db| db.export_jsonl(&out))?,
            "parquet" => self.with(py, |db| db.export_parquet(&out))?,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "format {other:?}: expected jsonl or parquet"
                )))
            }
        };
        json(&r)
    }

    /// A map of one space: `(map JSON, render report JSON or None)`; with `out`, the picture is
    /// written there too (by extension: .svg, .png, .html, .json).
    #[pyo3(signature = (method=None, kind=None, prefix=None, tags=None, layout="tsne", neighbours=5, frozen_layout=None, out=None, colour_tag=None, label_top=60, edges=2, title=None))]
    #[allow(clippy::too_many_arguments)]
    fn map_json(
        &self,
        py: Python<'_>,
        method: Option<String>,
        kind: Option<&str>,
        prefix: Option<String>,
        tags: Option<BTreeMap<String, String>>,
        layout: &str,
        neighbours: usize,
        frozen_layout: Option<PathBuf>,
        out: Option<PathBuf>,
        colour_tag: Option<String>,
        label_top: usize,
        edges: usize,
        title: Option<String>,
    ) -> PyResult<(String, Option<String>)> {
        let opts = MapOptions {
            filter: filter(kind, prefix, tags, None)?,
            method,
            layout: MapLayout::parse(layout).map_err(err)?,
            neighbours: neighbours.max(edges),
            frozen: frozen_layout,
        };
        let render = RenderOptions {
            colour_tag,
            label_top,
            edges,
            title,
        };
        let (m, report) = self.with(py, |db| {
            let m = db.map(&opts)?;
            let r = match &out {
                Some(p) => Some(m.write(p, &render)?),
                None => None,
            };
            Ok((m, r))
        })?;
        Ok((json(&m)?, report.map(|r| json(&r)).transpose()?))
    }

    #[pyo3(signature = (since=0))]
    fn log_json(&self, py: Python<'_>, since: u64) -> PyResult<String> {
        let l = self.with(py, |db| db.log(since))?;
        json(&l)
    }

    fn verify_log_json(&self, py: Python<'_>) -> PyResult<String> {
        let c = self.with(py, |db| db.verify_log())?;
        json(&c)
    }

    #[pyo3(signature = (source, target, value, metric=None, baseline=None, model=None, seed=None, note=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_outcome(
        &self,
        py: Python<'_>,
        source: String,
        target: String,
        value: f64,
        metric: Option<String>,
        baseline: Option<f64>,
        model: Option<String>,
        seed: Option<u64>,
        note: Option<String>,
    ) -> PyResult<u64> {
        let mut o = NewOutcome::new(source, target, value);
        o.metric = metric;
        o.baseline = baseline;
        o.model = model;
        o.seed = seed;
        o.note = note;
        let ids = self.with(py, |db| {
            db.add_outcomes(vec![o], &|_| "python add_outcome".into())
        })?;
        Ok(ids[0])
    }

    fn outcomes_json(&self, py: Python<'_>) -> PyResult<String> {
        let o = self.with(py, |db| db.outcomes())?;
        json(&o)
    }

    /// The probe set U that models label: `[(id, text, text_pair or None)]`.
    fn probe_texts(&self, py: Python<'_>) -> PyResult<Vec<(u32, String, Option<String>)>> {
        let ing = self.ingestor(py)?;
        Ok(ing
            .probe()
            .texts
            .iter()
            .map(|t| (t.id, t.text.clone(), t.text_pair.clone()))
            .collect())
    }

    #[pyo3(signature = (name, path, text=None, pair=None, label=None, task=None, limit=Some(2000), seed=0, methods=None, tags=None, progress=None, provenance=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_dataset_json(
        &self,
        py: Python<'_>,
        name: String,
        path: PathBuf,
        text: Option<String>,
        pair: Option<String>,
        label: Option<String>,
        task: Option<String>,
        limit: Option<usize>,
        seed: u64,
        methods: Option<Vec<String>>,
        tags: Option<BTreeMap<String, String>>,
        progress: Option<Py<PyAny>>,
        provenance: Option<Vec<String>>,
    ) -> PyResult<String> {
        let mut d = DatasetOptions::default();
        if let Some(t) = text {
            d.text_col = t;
        }
        d.pair_col = pair;
        if let Some(l) = label {
            d.label_col = l;
        }
        if let Some(t) = task {
            d.task = match t.as_str() {
                "auto" => sources::TaskKind::Auto,
                "classification" => sources::TaskKind::Classification,
                "regression" => sources::TaskKind::Regression,
                other => {
                    return Err(InvalidInputError::new_err(format!(
                        "task {other:?}: expected auto, classification or regression"
                    )))
                }
            };
        }
        d.limit = limit;
        d.seed = seed;
        self.ingest(py, progress, methods, tags, provenance, |ing, db, opts| {
            ing.dataset(db, &name, &path, &d, opts)
        })
    }

    #[pyo3(signature = (name, command=None, predictions=None, timeout=None, methods=None, tags=None, progress=None, provenance=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_model_json(
        &self,
        py: Python<'_>,
        name: String,
        command: Option<String>,
        predictions: Option<PathBuf>,
        timeout: Option<f64>,
        methods: Option<Vec<String>>,
        tags: Option<BTreeMap<String, String>>,
        progress: Option<Py<PyAny>>,
        provenance: Option<Vec<String>>,
    ) -> PyResult<String> {
        let source = match (command, predictions) {
            (Some(command), None) => {
                let mut options = sources::CommandOptions::default();
                if let Some(t) = timeout {
                    options.timeout = std::time::Duration::try_from_secs_f64(t)
                        .map_err(|e| InvalidInputError::new_err(format!("timeout {t}: {e}")))?;
                }
                ModelSource::Command { command, options }
            }
            (None, Some(path)) => ModelSource::Predictions {
                path,
                options: sources::PredictionOptions::default(),
            },
            _ => {
                return Err(InvalidInputError::new_err(
                    "give exactly one of predict=, command= or predictions=",
                ))
            }
        };
        self.ingest(py, progress, methods, tags, provenance, |ing, db, opts| {
            ing.model(db, &name, &source, opts)
        })
    }
}

/// A snapshot (verified, in memory, read-only), or a database: read-only, or writable and
/// created if missing.
fn open_db(p: &std::path::Path, read_only: bool) -> taskdb::Result<TaskDb> {
    if taskdb::is_snapshot(p) {
        TaskDb::open_snapshot(p)
    } else if read_only {
        TaskDb::open_read_only(p)
    } else {
        TaskDb::open(p)
    }
}

/// Opens a database (created if missing, unless `read_only`), or a snapshot (verified, held
/// in memory, read-only).
#[pyfunction]
#[pyo3(signature = (path, read_only=false, surrogate=None, probe=None, device=None, threads=0, reference_cache=None))]
#[allow(clippy::too_many_arguments)]
fn open(
    py: Python<'_>,
    path: PathBuf,
    read_only: bool,
    surrogate: Option<PathBuf>,
    probe: Option<PathBuf>,
    device: Option<String>,
    threads: usize,
    reference_cache: Option<PathBuf>,
) -> PyResult<Database> {
    let p = path.clone();
    let db = py.detach(move || open_db(&p, read_only)).map_err(err)?;
    Ok(Database {
        db: RwLock::new(Some(db)),
        path,
        config: IngestConfig {
            surrogate,
            probe,
            device: device.unwrap_or_else(|| "cpu".into()),
            threads,
            reference_cache,
        },
        ingestor: Mutex::new(None),
        progress: Arc::new(PyProgress::default()),
    })
}

/// Sets the progress callable for one call and clears it when the call ends.
struct Reporting<'a>(&'a PyProgress);

impl<'a> Reporting<'a> {
    fn new(p: &'a PyProgress, cb: Option<Py<PyAny>>) -> Reporting<'a> {
        if let Ok(mut slot) = p.0.lock() {
            *slot = cb;
        }
        Reporting(p)
    }
}

impl Drop for Reporting<'_> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.0 .0.lock() {
            *slot = None;
        }
    }
}

/// Verifies a snapshot offline; `root` is a root published elsewhere. Returns the report as
/// JSON (damage is in its `problems`; raises only when the file is not a snapshot).
#[pyfunction]
#[pyo3(signature = (path, root=None))]
fn verify_snapshot_json(py: Python<'_>, path: PathBuf, root: Option<String>) -> PyResult<String> {
    let r = py
        .detach(|| Snapshot::verify(&path, root.as_deref()))
        .map_err(err)?;
    json(&r)
}

/// What changed from `a` to `b` (each a database or a snapshot), as JSON.
#[pyfunction]
#[pyo3(signature = (a, b, neighbours=None))]
fn diff_json(
    py: Python<'_>,
    a: PathBuf,
    b: PathBuf,
    neighbours: Option<usize>,
) -> PyResult<String> {
    let d = py
        .detach(|| {
            let (da, db) = (open_db(&a, true)?, open_db(&b, true)?);
            taskdb::diff(&da, &db, &taskdb::DiffOptions { neighbours })
        })
        .map_err(err)?;
    json(&d)
}

#[pymodule]
fn _taskdb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Database>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(verify_snapshot_json, m)?)?;
    m.add_function(wrap_pyfunction!(diff_json, m)?)?;
    let py = m.py();
    for (name, ty) in [
        ("Error", py.get_type::<Error>()),
        ("NotFoundError", py.get_type::<NotFoundError>()),
        ("InvalidInputError", py.get_type::<InvalidInputError>()),
        ("LockedError", py.get_type::<LockedError>()),
        ("IncompatibleError", py.get_type::<IncompatibleError>()),
        ("CorruptError", py.get_type::<CorruptError>()),
        ("FileError", py.get_type::<FileError>()),
        ("SurrogateError", py.get_type::<SurrogateError>()),
        ("ModelError", py.get_type::<ModelError>()),
        ("DiskFullError", py.get_type::<DiskFullError>()),
        (
            "SnapshotInvalidError",
            py.get_type::<SnapshotInvalidError>(),
        ),
    ] {
        m.add(name, ty)?;
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
