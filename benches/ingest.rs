//! Ingestion benchmark (a bench binary, not a timed test), with the REAL default surrogate
//! (all-MiniLM-L6-v2 int8, provisioned by `bash scripts/provision.sh`).
//!
//! Subcommands (run all three when none is given):
//! * `dataset`: a 2,000-row dataset ingested cold (fresh database: empty feature cache, spaces
//!   created, frozen references from the per-machine cache) and warm (same database, same file
//!   again: every feature cached), per stage, for each file in `TASKDB_BENCH_DATASETS`.
//! * `refs`: the one-time cost of building the frozen references (empty reference cache), with
//!   U's and the dataset's features already cached, against the same ingestion with the
//!   reference cache warm (same-run baseline); plus one all-cold first ingestion (U encoded too).
//! * `model`: a model over U with a warm feature cache, the model being a predictions file
//!   written once (U exported through `ProbeSet::export`, labelled by a trivial length rule), so
//!   "model" time is reading that file; per stage.
//! * `knn`: `TaskDb::nearest(k = 10)` over N matrix-valued entries in the real `scatter` space
//!   (whitened by U's features, uncentred; d = 384): HNSW sketch + exact re-ranking versus
//!   brute-force exact scoring (`brute_force_below = usize::MAX`), recall@10, p50/p95, `put`
//!   throughput, and `knn --centre live` (first query, which builds the library mean, and
//!   the rest). Entries are scatter embeddings of pseudo-tasks drawn from the real
//!   surrogate features of U (200–400 rows, 2–20 classes, so ranks 1–19); with
//!   `TASKDB_BENCH_KNN_POP=datasets`, perturbed copies of real labelled datasets instead
//!   (bootstrap, label noise, class merges; `benches/ingest/population.rs` says how).
//!
//! * `stop`: not run by default; the data to calibrate an adaptive stop rule for the sketch
//!   path (issue 14) on `knn`'s entries and queries, simulated on the flat sketch ranking
//!   without a database (`bench_stop`, `benches/common/stop_rule.rs`).
//!
//! Run: `cargo bench -p taskdb --bench ingest -- [dataset|refs|model|knn|stop]...`
//! Environment: `TASKDB_BENCH_RUNS=3`, `TASKDB_BENCH_DESIGNS=default|both` (`both`: also the
//! previous default design, library-centred with joint pairs, as a same-run baseline), `TASKDB_BENCH_DATA=../shared/data/datasets`,
//! `TASKDB_BENCH_DATASETS=sentiment/sst2_glue.jsonl,nli/mnli.jsonl`, `TASKDB_BENCH_KNN_N=10000`,
//! `TASKDB_BENCH_KNN_QUERIES=200`, `TASKDB_BENCH_KNN_POP=pseudo|datasets`,
//! `TASKDB_BENCH_DATA_ROWS=500` (rows read per dataset for `datasets`), `TASKDB_BENCH_KEEP=1`
//! (`knn`: keep the database in `TASKDB_BENCH_DIR` and reuse it next time), `TASKDB_BENCH_KNN_FORCE_HNSW=1` (sketch path even below
//! `IndexParams::exact_matrix_below`), `TASKDB_BENCH_KNN_EXTRAS=0` (`knn`: no live centring
//! and no sketch oracle; needed at 1M entries, where they would not fit in memory), `TASKDB_BENCH_DIR` (default: a temp dir; U's features are
//! cached there as `u.features` for `knn`), `TASKDB_SURROGATE` (default: the provisioned one).
//!
//! Without `--bench` on its command line and without a subcommand (e.g. under
//! `cargo test --all-targets`), it prints this usage and exits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::ingest::{IngestOptions, IngestReport, Ingestor, ModelSource};
use taskdb::testing::{space_name, FeatureCache, FeatureInput};
use taskdb::{
    Centring, Embedding, Filter, IndexParams, Kind, MethodKind, MethodParams, NewEntry, NewVector,
    OpenOptions, Provenance, Query, SearchOptions, SearchPath, SpaceRef, SpaceSel, TaskDb,
    TaskSpaceParams,
};
use taskdb_methods as methods;
use taskdb_sources as sources;
use taskdb_surrogate as surrogate;

#[path = "common/env.rs"]
mod env;
use env::env_usize;
#[path = "ingest/population.rs"]
mod population;
#[path = "common/stop_rule.rs"]
mod stop_rule;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn load_surrogate() -> Res<(surrogate::Surrogate, f64)> {
    let dir = std::env::var("TASKDB_SURROGATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| surrogate::default_surrogate_dir());
    let t = Instant::now();
    let s = surrogate::Surrogate::load(&dir, &surrogate::Options::default()).map_err(|e| {
        format!(
            "cannot load the surrogate at {} ({e}); run `bash scripts/provision.sh` first",
            dir.display()
        )
    })?;
    Ok((s, t.elapsed().as_secs_f64()))
}

/// A table of named stages × runs (seconds), printed with the median per row.
#[derive(Default, Clone)]
struct Table {
    rows: Vec<(String, Vec<f64>)>,
}

impl Table {
    fn add(&mut self, stage: &str, secs: f64) {
        match self.rows.iter_mut().find(|(s, _)| s == stage) {
            Some((_, v)) => v.push(secs),
            None => self.rows.push((stage.to_string(), vec![secs])),
        }
    }

    /// Adds a report's stages, the total wall time of the call, and the total minus `exclude`.
    fn add_report(&mut self, r: &IngestReport, wall: f64) {
        for (s, t) in &r.stages {
            self.add(s, *t);
        }
        self.add("TOTAL (wall, ingest call)", wall);
    }

    fn print(&self, title: &str) {
        let runs = self.rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        println!("\n### {title}");
        let mut head = "| stage |".to_string();
        for i in 1..=runs {
            head += &format!(" run {i} (s) |");
        }
        head += " median (s) |";
        println!("{head}");
        println!("|---|{}---|", "---|".repeat(runs));
        for (s, v) in &self.rows {
            let mut line = format!("| {s} |");
            for i in 0..runs {
                match v.get(i) {
                    Some(x) => line += &format!(" {x:.3} |"),
                    None => line += " |",
                }
            }
            line += &format!(" **{:.3}** |", median(v));
            println!("{line}");
        }
    }
}

fn fresh_db(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir.join("bench.taskdb")
}

fn dataset_files() -> Vec<PathBuf> {
    let base = PathBuf::from(env_str("TASKDB_BENCH_DATA", "../shared/data/datasets"));
    env_str(
        "TASKDB_BENCH_DATASETS",
        "sentiment/sst2_glue.jsonl,nli/mnli.jsonl",
    )
    .split(',')
    .map(|s| base.join(s.trim()))
    .collect()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().replace('.', "_"))
        .unwrap_or_else(|| "dataset".into())
}

fn cache_note(r: &IngestReport) -> String {
    format!(
        "features: {} computed, {} from cache",
        r.cache.computed, r.cache.hits
    )
}

/// The space designs to measure: `TASKDB_BENCH_DESIGNS=default` (the default) or `both`
/// (today's default and, as the same-run baseline, the library-centred design it replaced,
/// `MethodParams::library_centred()`, interleaved run by run).
fn designs() -> Vec<(&'static str, Option<MethodParams>)> {
    let mut v = vec![("default design", None)];
    if env_str("TASKDB_BENCH_DESIGNS", "default") == "both" {
        v.push((
            "previous default (library-centred, joint pairs)",
            Some(MethodParams::library_centred()),
        ));
    }
    v
}

/// Cold (fresh DB) then warm (same DB, same file) ingestion of each dataset, `runs` times,
/// for each design of [`designs`].
fn bench_dataset(root: &Path, runs: usize) -> Res<()> {
    let designs = designs();
    for file in dataset_files() {
        let name = stem(&file);
        let mut cold = vec![Table::default(); designs.len()];
        let mut warm = vec![Table::default(); designs.len()];
        let mut load = Vec::new();
        for run in 0..runs {
            for (di, (design, params)) in designs.iter().enumerate() {
                let db_path = fresh_db(root, &format!("dataset-{name}-{run}-{di}"));
                let db = TaskDb::open(&db_path)?;
                let (s, load_s) = load_surrogate()?;
                load.push(load_s);
                let ing = Ingestor::new(&db_path, s, sources::ProbeSet::builtin()?)?;
                let dopts = sources::DatasetOptions::default();
                let opts = IngestOptions {
                    params: params.clone(),
                    ..IngestOptions::default()
                };
                let t = Instant::now();
                let r = ing.dataset(&db, &name, &file, &dopts, &opts)?;
                cold[di].add_report(&r, t.elapsed().as_secs_f64());
                let t = Instant::now();
                db.flush()?;
                cold[di].add("flush (graph save)", t.elapsed().as_secs_f64());
                eprintln!("{name} {design} run {}: cold {}", run + 1, cache_note(&r));
                let t = Instant::now();
                let r = ing.dataset(&db, &name, &file, &dopts, &opts)?;
                warm[di].add_report(&r, t.elapsed().as_secs_f64());
                let t = Instant::now();
                db.flush()?;
                warm[di].add("flush (graph save)", t.elapsed().as_secs_f64());
                eprintln!(
                    "{name} {design} run {}: warm {} (version {})",
                    run + 1,
                    cache_note(&r),
                    r.version
                );
            }
        }
        println!(
            "\n{}: surrogate load (not in the tables; paid once per process): median {:.3} s of {}",
            file.display(),
            median(&load),
            load.len()
        );
        for (di, (design, _)) in designs.iter().enumerate() {
            cold[di].print(&format!(
                "dataset {} — {design} — COLD (fresh DB, empty feature cache, spaces created, references from the machine cache)",
                file.display()
            ));
            warm[di].print(&format!(
                "dataset {} — {design} — WARM (same DB, same file again; all features cached)",
                file.display()
            ));
        }
    }
    Ok(())
}

/// The one-time cost of frozen references.
fn bench_refs(root: &Path, runs: usize) -> Res<()> {
    let file = dataset_files()
        .into_iter()
        .next()
        .ok_or("no dataset configured")?;
    let name = stem(&file);
    let dopts = sources::DatasetOptions::default();
    let opts = IngestOptions::default();
    // All cold: empty feature cache (U and the dataset encoded), empty reference cache.
    let seed_db = fresh_db(root, "refs-seed");
    let seed_refs = tempfile::tempdir()?;
    {
        let db = TaskDb::open(&seed_db)?;
        let (s, _) = load_surrogate()?;
        let ing = Ingestor::new(&seed_db, s, sources::ProbeSet::builtin()?)?
            .with_reference_cache(Some(seed_refs.path().to_path_buf()));
        let t = Instant::now();
        let r = ing.dataset(&db, &name, &file, &dopts, &opts)?;
        let mut all_cold = Table::default();
        all_cold.add_report(&r, t.elapsed().as_secs_f64());
        all_cold.print(&format!(
            "first ingestion on a new machine: {} into a fresh DB, EMPTY reference cache, empty feature cache (U encoded inside the first `space` stage that needs a reference); {}",
            file.display(),
            cache_note(&r)
        ));
    }
    let features = FeatureCache::path_for(&seed_db);
    let mut cold_refs = Table::default();
    let mut warm_refs = Table::default();
    for run in 0..runs {
        for (warm, table) in [(false, &mut cold_refs), (true, &mut warm_refs)] {
            let db_path = fresh_db(root, &format!("refs-{run}-{warm}"));
            std::fs::copy(&features, FeatureCache::path_for(&db_path))?;
            let refs = tempfile::tempdir()?;
            let ref_dir = if warm {
                seed_refs.path().to_path_buf()
            } else {
                refs.path().to_path_buf()
            };
            let db = TaskDb::open(&db_path)?;
            let (s, _) = load_surrogate()?;
            let ing = Ingestor::new(&db_path, s, sources::ProbeSet::builtin()?)?
                .with_reference_cache(Some(ref_dir));
            let t = Instant::now();
            let r = ing.dataset(&db, &name, &file, &dopts, &opts)?;
            table.add_report(&r, t.elapsed().as_secs_f64());
            eprintln!(
                "refs run {} ({}): {}",
                run + 1,
                if warm { "cache warm" } else { "cache empty" },
                cache_note(&r)
            );
        }
    }
    cold_refs.print(&format!(
        "{}: fresh DB with U's and the dataset's features cached, EMPTY reference cache (references built)",
        file.display()
    ));
    warm_refs.print(&format!(
        "{}: same, reference cache WARM (same-run baseline)",
        file.display()
    ));
    Ok(())
}

/// Writes predictions on U by a trivial rule: "long" when the text (plus pair) is longer than
/// the median length, else "short".
fn write_predictions(probe: &sources::ProbeSet, path: &Path) -> Res<usize> {
    let mut exported = Vec::new();
    probe.export(&mut exported)?;
    let lines: Vec<serde_json::Value> = exported
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()?;
    let len = |v: &serde_json::Value| {
        v["text"].as_str().map_or(0, str::len) + v["text_pair"].as_str().map_or(0, str::len)
    };
    let mut lens: Vec<usize> = lines.iter().map(len).collect();
    lens.sort_unstable();
    let cut = lens[lens.len() / 2];
    let mut out = String::new();
    for v in &lines {
        let label = if len(v) > cut { "long" } else { "short" };
        out += &serde_json::json!({"id": v["id"], "label": label}).to_string();
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(lines.len())
}

fn bench_model(root: &Path, runs: usize) -> Res<()> {
    for (di, (design, params)) in designs().into_iter().enumerate() {
        bench_model_in(root, runs, di, design, params)?;
    }
    Ok(())
}

fn bench_model_in(
    root: &Path,
    runs: usize,
    di: usize,
    design: &str,
    params: Option<MethodParams>,
) -> Res<()> {
    let db_path = fresh_db(root, &format!("model-{di}"));
    let db = TaskDb::open(&db_path)?;
    let (s, _) = load_surrogate()?;
    let probe = sources::ProbeSet::builtin()?;
    let pred = db_path.with_file_name("predictions.jsonl");
    let n = write_predictions(&probe, &pred)?;
    let ing = Ingestor::new(&db_path, s, probe)?;
    let source = ModelSource::Predictions {
        path: pred.clone(),
        options: sources::PredictionOptions::default(),
    };
    let opts = IngestOptions {
        params,
        ..IngestOptions::default()
    };
    // First model: U's features computed (once per database and surrogate).
    let t = Instant::now();
    let r = ing.model(&db, "rule-model-0", &source, &opts)?;
    let mut first = Table::default();
    first.add_report(&r, t.elapsed().as_secs_f64());
    first.print(&format!(
        "model over U ({n} texts) — {design} — FIRST in a fresh DB: U's features not cached yet, spaces created; {}",
        cache_note(&r)
    ));
    let mut warm = Table::default();
    for run in 0..runs {
        let t = Instant::now();
        let r = ing.model(&db, &format!("rule-model-{}", run + 1), &source, &opts)?;
        let wall = t.elapsed().as_secs_f64();
        warm.add_report(&r, wall);
        let model_s = r
            .stages
            .iter()
            .filter(|(s, _)| s == "model")
            .map(|(_, t)| t)
            .sum::<f64>();
        warm.add("TOTAL excluding the model's own time", wall - model_s);
        eprintln!("model run {}: {}", run + 1, cache_note(&r));
    }
    warm.print(&format!(
        "model over U ({n} texts) — {design} — with a WARM feature cache (model = reading a predictions file; methods scatter, fisher, tuned)"
    ));
    Ok(())
}

/// U's real surrogate features, cached in `root/u.features` across bench runs.
fn probe_features(root: &Path) -> Res<(Vec<f32>, usize, String, String)> {
    let probe = sources::ProbeSet::builtin()?;
    let (s, _) = load_surrogate()?;
    let d = s.dim();
    let cache = FeatureCache::open(&root.join("u.features"))?;
    let inputs: Vec<FeatureInput<'_>> = probe
        .texts
        .iter()
        .map(|t| FeatureInput {
            text: &t.text,
            pair: t.text_pair.as_deref(),
        })
        .collect();
    let t = Instant::now();
    let (x, stats) = cache.get_or_compute(s.fingerprint(), d, &inputs, |missing| {
        let ti: Vec<surrogate::TextInput<'_>> = missing
            .iter()
            .map(|&i| match inputs[i].pair {
                None => surrogate::TextInput::Single(inputs[i].text),
                Some(p) => surrogate::TextInput::Pair(inputs[i].text, p),
            })
            .collect();
        Ok(s.embed_inputs(&ti).map_err(taskdb::Error::from)?.data)
    })?;
    eprintln!(
        "U features: {} rows, {} computed, {} cached, {:.1} s",
        probe.len(),
        stats.computed,
        stats.hits,
        t.elapsed().as_secs_f64()
    );
    Ok((x, d, s.fingerprint().to_string(), probe.fingerprint_hex()))
}

/// A pseudo-task over rows of U: 200–400 rows, C = 2–20 classes given by the nearest of C
/// random anchor rows (a topical rule), with 0–30 % of labels replaced at random.
fn pseudo_task(
    rng: &mut ChaCha8Rng,
    x: &[f32],
    d: usize,
    params: &MethodParams,
    whitening: Option<&methods::Whitening>,
) -> methods::LowRank {
    let nu = x.len() / d;
    loop {
        let n = rng.random_range(200..=400usize);
        let c = rng.random_range(2..=20usize);
        let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..nu)).collect();
        let anchors: Vec<usize> = (0..c).map(|_| rng.random_range(0..nu)).collect();
        let noise = rng.random_range(0.0..0.3f64);
        let mut feats = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for &i in &rows {
            let xi = &x[i * d..(i + 1) * d];
            feats.extend_from_slice(xi);
            let best = anchors
                .iter()
                .enumerate()
                .map(|(k, &a)| {
                    let xa = &x[a * d..(a + 1) * d];
                    (k, xi.iter().zip(xa).map(|(p, q)| p * q).sum::<f32>())
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k)
                .unwrap_or(0);
            let l = if rng.random_bool(noise) {
                rng.random_range(0..c)
            } else {
                best
            };
            labels.push(l as u32);
        }
        let f = methods::Features::new(n, d, &feats).expect("features");
        let y = methods::Targets::Classes {
            labels,
            n_classes: c,
        };
        if let Ok(methods::TaskEmbedding::LowRank(l)) =
            methods::embed_in(MethodKind::Scatter, params, whitening, &f, &y)
        {
            if l.rank() > 0 {
                return l;
            }
        }
    }
}

/// The `n` entries (seed 11) and `nq` queries (seed 12) of `bench_knn` and `bench_stop`:
/// pseudo-tasks over U's features `x` (d columns), embedded in the whitened space.
fn pseudo_population(
    x: &[f32],
    d: usize,
    params: &MethodParams,
    whitening: &methods::Whitening,
    n: usize,
    nq: usize,
) -> (Vec<methods::LowRank>, Vec<methods::LowRank>) {
    let draw = |seed: u64, count: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| pseudo_task(&mut rng, x, d, params, Some(whitening)))
            .collect()
    };
    (draw(11, n), draw(12, nq))
}

/// The entries and queries of `bench_knn` and `bench_stop` by `TASKDB_BENCH_KNN_POP`: pseudo-tasks
/// over U (`pseudo`) or perturbed real datasets (`datasets`, `population.rs`).
#[allow(clippy::too_many_arguments)]
fn population_of(
    pop: &str,
    root: &Path,
    x: &[f32],
    d: usize,
    params: &MethodParams,
    whitening: &methods::Whitening,
    n: usize,
    nq: usize,
) -> Res<(Vec<methods::LowRank>, Vec<methods::LowRank>)> {
    match pop {
        "pseudo" => Ok(pseudo_population(x, d, params, whitening, n, nq)),
        "datasets" => population::dataset_population(root, d, params, whitening, n, nq),
        other => Err(format!("TASKDB_BENCH_KNN_POP={other}: expected pseudo or datasets").into()),
    }
}

/// The space `bench_knn` and `bench_stop` search, whitened by U (frozen) and centred like the
/// default space: k-means pseudo-tasks of U in the whitened space (frozen); for
/// library-centred parameters, the built-in reference library when it matches.
fn default_space(
    method: MethodKind,
    params: &MethodParams,
    f: &methods::Features,
    whitening: &methods::Whitening,
    surrogate_fp: &str,
    probe_fp: &str,
) -> Res<(TaskSpaceParams, Option<methods::Reference>)> {
    let (sp, reference) = if method.uses_reference(params) {
        let spec = methods::ReferenceSpec::default();
        let r = methods::build_reference_in(method, params, Some(whitening), f, &spec)?;
        let sp = TaskSpaceParams::new(method, params.clone(), Some(r.clone()));
        (sp, Some(r))
    } else {
        let mut sp = TaskSpaceParams::new(method, params.clone(), None);
        let lib = taskdb::ReferenceLibrary::builtin()?;
        let r = if lib.matches(method, params, surrogate_fp, probe_fp) {
            let r = lib.reference()?;
            sp = sp.with_library_reference(&r, lib.describe());
            Some(r)
        } else {
            None
        };
        (sp, r)
    };
    Ok((sp.with_whitening(Some(whitening)), reference))
}

fn bench_knn(root: &Path, runs: usize) -> Res<()> {
    let n = env_usize("TASKDB_BENCH_KNN_N", 10_000);
    let nq = env_usize("TASKDB_BENCH_KNN_QUERIES", 200);
    let k = 10;
    let (x, d, surrogate_fp, probe_fp) = probe_features(root)?;
    let params = MethodParams::default();
    let method = MethodKind::Scatter;
    // The default scatter space: whitened by U (frozen), centred by the built-in reference
    // library when it matches this surrogate and probe set (it does for the defaults).
    let t = Instant::now();
    let f = methods::Features::new(x.len() / d, d, &x)?;
    let alpha = params.scatter_whitening.unwrap_or(0.5);
    let whitening = methods::build_whitening(&f, alpha, 3000)?;
    let white_s = t.elapsed().as_secs_f64();
    let space = space_name(method, &params, &surrogate_fp, &probe_fp);
    let (sp, reference) = default_space(method, &params, &f, &whitening, &surrogate_fp, &probe_fp)?;
    let centring = sp.centring();
    let sketch_spec = sp.sketch;
    let def = sp.into_def(space.clone(), d as u32, &surrogate_fp, &probe_fp);
    println!(
        "\nknn: space {space} (scatter whitened by U, built in {white_s:.2} s; d = {d}; centring: {centring}), {n} entries, {nq} queries, k = {k}"
    );

    // Entries and queries.
    let t = Instant::now();
    let pop = env_str("TASKDB_BENCH_KNN_POP", "pseudo");
    let (entries, queries) = population_of(&pop, root, &x, d, &params, &whitening, n, nq)?;
    let gen_s = t.elapsed().as_secs_f64();
    let mut hist = BTreeMap::<usize, usize>::new();
    for e in &entries {
        *hist.entry(e.rank()).or_default() += 1;
    }
    let mean_rank = entries.iter().map(|e| e.rank()).sum::<usize>() as f64 / n as f64;
    println!(
        "generated {n} entries + {nq} queries in {gen_s:.1} s (not in the put figure); entry ranks: mean {mean_rank:.1}, min {}, max {}",
        hist.keys().next().unwrap_or(&0),
        hist.keys().last().unwrap_or(&0)
    );

    // Put (TASKDB_BENCH_KEEP=1: reuse the database a previous run of the same population and
    // size left in TASKDB_BENCH_DIR; entries are generated deterministically, so it holds them).
    let keep = env_usize("TASKDB_BENCH_KEEP", 0) != 0;
    let kept = root.join(format!("knn-{pop}-{n}")).join("bench.taskdb");
    let reuse = keep && kept.exists();
    let db_path = if reuse {
        println!("put: reusing {} (TASKDB_BENCH_KEEP=1)", kept.display());
        kept
    } else {
        fresh_db(root, &format!("knn-{pop}-{n}"))
    };
    let batch = 500;
    let t = Instant::now();
    let extras = env_usize("TASKDB_BENCH_KNN_EXTRAS", 1) != 0;
    if !reuse {
        let db = TaskDb::open(&db_path)?;
        for (b, chunk) in entries.chunks(batch).enumerate() {
            let es: Vec<NewEntry> = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| NewEntry {
                    name: format!("t{}", b * batch + i),
                    kind: if i % 2 == 0 {
                        Kind::Dataset
                    } else {
                        Kind::Model
                    },
                    vectors: vec![NewVector {
                        method: method.name().to_string(),
                        space: SpaceRef::Def(def.clone()),
                        embedding: Embedding::LowRank(l.clone()),
                    }],
                    tags: BTreeMap::new(),
                    provenance: Provenance::default(),
                })
                .collect();
            db.put(es)?;
        }
        let put_s = t.elapsed().as_secs_f64();
        let tf = Instant::now();
        db.flush()?;
        println!(
            "put: {n} entries in {put_s:.1} s = {:.0} entries/s ({batch} per put; validation, exact-scoring constants, sketch m = {} and its 4-bit row, redb write); index save {:.2} s; db file {:.0} MB",
            n as f64 / put_s,
            taskdb::SKETCH_DIM,
            tf.elapsed().as_secs_f64(),
            std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
        );
    }

    // Without the extras nothing reads the entries again: freed (≈ 6 KB each; 6 GB at 1M).
    let entries = if extras { entries } else { Vec::new() };
    let query = |q: &methods::LowRank| Query::Vector {
        space: SpaceSel::Name(space.clone()),
        embedding: Embedding::LowRank(q.clone()),
    };
    // TASKDB_BENCH_KNN_FORCE_HNSW=1: the "default" database always takes the sketch path
    // (exact_matrix_below = brute_force_below = 0), to measure it below the exact threshold.
    let force_hnsw = env_usize("TASKDB_BENCH_KNN_FORCE_HNSW", 0) != 0;
    let open = |brute: bool| -> Res<TaskDb> {
        let index = if brute {
            IndexParams {
                brute_force_below: usize::MAX,
                exact_matrix_below: usize::MAX,
                ..IndexParams::default()
            }
        } else if force_hnsw {
            IndexParams {
                brute_force_below: 0,
                exact_matrix_below: 0,
                ..IndexParams::default()
            }
        } else {
            IndexParams::default()
        };
        Ok(TaskDb::open_with(
            &db_path,
            OpenOptions {
                read_only: true,
                index,
                ..OpenOptions::default()
            },
        )?)
    };
    // One pass of every query; returns hits and latencies.
    type Pass = (Vec<Vec<(String, f32)>>, Vec<Duration>, Vec<SearchPath>);
    let pass = |db: &TaskDb| -> Res<Pass> {
        for q in queries.iter().take(5) {
            db.nearest(&query(q), k, &Filter::all())?;
        }
        let mut hits = Vec::new();
        let mut lat = Vec::new();
        let mut paths = Vec::new();
        for q in &queries {
            let t = Instant::now();
            let (h, p) = db.nearest_explain(&query(q), k, &Filter::all())?;
            lat.push(t.elapsed());
            hits.push(h.iter().map(|h| (h.name.clone(), h.score)).collect());
            paths.push(p);
        }
        Ok((hits, lat, paths))
    };
    let mut hnsw_p50 = Vec::new();
    let mut hnsw_p95 = Vec::new();
    let mut hnsw_qps = Vec::new();
    let mut brute_p50 = Vec::new();
    let mut brute_p95 = Vec::new();
    let mut exact: Vec<Vec<(String, f32)>> = Vec::new();
    let mut approx: Vec<Vec<(String, f32)>> = Vec::new();
    let mut path_counts = BTreeMap::<String, usize>::new();
    let brute_runs = env_usize("TASKDB_BENCH_KNN_BRUTE_RUNS", 1).max(1);
    for run in 0..runs.max(brute_runs) {
        if run < runs {
            let db = open(false)?;
            let t = Instant::now();
            let (h, mut lat, paths) = pass(&db)?;
            hnsw_qps.push(nq as f64 / t.elapsed().as_secs_f64());
            lat.sort();
            hnsw_p50.push(pct(&lat, 50));
            hnsw_p95.push(pct(&lat, 95));
            if run == 0 {
                approx = h;
                for p in paths {
                    *path_counts.entry(format!("{p:?}")).or_default() += 1;
                }
            }
            eprintln!("knn hnsw pass {} done", run + 1);
        }
        if run < brute_runs {
            let db = open(true)?;
            let (h, mut lat, _) = pass(&db)?;
            lat.sort();
            brute_p50.push(pct(&lat, 50));
            brute_p95.push(pct(&lat, 95));
            if run == 0 {
                exact = h;
            }
            eprintln!("knn brute-force pass {} done", run + 1);
        }
    }
    let mut found = 0usize;
    let mut identical = 0usize;
    let mut max_score_diff = 0f32;
    for (a, e) in approx.iter().zip(&exact) {
        let want: Vec<&String> = e.iter().map(|x| &x.0).collect();
        found += a.iter().filter(|h| want.contains(&&h.0)).count();
        if a.iter().map(|x| &x.0).collect::<Vec<_>>() == want {
            identical += 1;
        }
        for ((_, sa), (_, se)) in a.iter().zip(e) {
            max_score_diff = max_score_diff.max((sa - se).abs());
        }
    }
    println!(
        "search paths of the default database (force_hnsw {force_hnsw}): {path_counts:?}\n\
         recall@10 of the default path vs brute-force exact: {:.4} ({found} of {}); \
         identical ranked top-10 lists: {identical} of {nq}; max |score difference| at equal rank: {max_score_diff:.2e}",
        found as f64 / (k * nq) as f64,
        k * nq
    );
    println!("\n| path | runs | p50 latency (ms), median of runs | p95 latency (ms), median of runs | per-run p50 (ms) |");
    println!("|---|---|---|---|---|");
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| default IndexParams (HNSW sketch m = {} + exact re-rank above the exact threshold) | {} | **{:.2}** | **{:.2}** | {} |",
        taskdb::SKETCH_DIM,
        hnsw_p50.len(),
        median(&hnsw_p50),
        median(&hnsw_p95),
        fmt(&hnsw_p50)
    );
    println!(
        "| brute-force exact (`brute_force_below = usize::MAX`) | {} | **{:.2}** | **{:.2}** | {} |",
        brute_p50.len(),
        median(&brute_p50),
        median(&brute_p95),
        fmt(&brute_p50)
    );
    println!(
        "default-path queries/s (single thread): median {:.0} ({})",
        median(&hnsw_qps),
        fmt(&hnsw_qps)
    );
    // TASKDB_BENCH_KNN_EXTRAS=0 (at 1M: they would hold several more copies of the entries
    // in memory and take longer than the rest): no live centring, no sketch oracle.
    if !extras {
        println!("live centring and sketch oracle skipped (TASKDB_BENCH_KNN_EXTRAS=0)");
        return Ok(());
    }
    live_centring(&open(false)?, &queries, &query, k)?;
    sketch_oracle(
        &entries,
        &queries,
        &exact,
        reference.as_ref(),
        d,
        sketch_spec,
        k,
    )
}

/// `stop`: data to calibrate an adaptive stop rule for the sketch path on the hard population
/// (issue 14; `benches/common/stop_rule.rs` says the rule and what is simulated): the `knn`
/// subcommand's entries and queries (same seeds; default space: whitened by U, centred by the
/// built-in reference library), no database. Every entry's sketch (the space's own basis and
/// reference, as in [`sketch_oracle`]), every entry's exact centred cosine with each query
/// (`methods::prepare` + `cosine`, the oracle's exact score), all N in decreasing sketch
/// similarity with their exact scores, and the exact top 10 of all N; the rule simulated with
/// the plan's cap max(512, N/4) and again with cap N; `default-stop-err`: the sketch's error
/// over all entries and over each query's exact top 1000. No graph and no timing: the flat
/// sketch ranking stands for the graph's.
fn bench_stop(root: &Path) -> Res<()> {
    use rayon::prelude::*;
    let n = env_usize("TASKDB_BENCH_KNN_N", 10_000);
    let nq = env_usize("TASKDB_BENCH_KNN_QUERIES", 200);
    let k = 10;
    let (x, d, surrogate_fp, probe_fp) = probe_features(root)?;
    let params = MethodParams::default();
    let method = MethodKind::Scatter;
    let f = methods::Features::new(x.len() / d, d, &x)?;
    let alpha = params.scatter_whitening.unwrap_or(0.5);
    let whitening = methods::build_whitening(&f, alpha, 3000)?;
    let (sp, reference) = default_space(method, &params, &f, &whitening, &surrogate_fp, &probe_fp)?;
    let centring = sp.centring();
    let spec = sp.sketch;
    let t = Instant::now();
    let pop = env_str("TASKDB_BENCH_KNN_POP", "pseudo");
    let (entries, queries) = population_of(&pop, root, &x, d, &params, &whitening, n, nq)?;
    println!(
        "\nstop: default scatter space (centring: {centring}; sketch m = {}), {n} entries, {nq} queries, k = {k}; generated in {:.1} s",
        spec.m,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (sk, esk, eprep) = sketch_and_prepare(&entries, reference.as_ref(), d, spec)?;
    println!(
        "entries sketched and prepared in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cap = *stop_rule::schedule(n, k).last().expect("schedule");
    let t = Instant::now();
    let mut cands = Vec::with_capacity(nq);
    // The sketch's error (sketch − exact) over all entries and over each query's exact top
    // 1000 (as `knn -- matrix-sketch-scores` measures it on `matrix`: sd 0.053 there).
    let mut err: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for q in &queries {
        let qs = sk.sketch(&te(q))?;
        let qp = methods::prepare(&te(q), reference.as_ref())?;
        let exact: Vec<f32> = eprep
            .par_iter()
            .map(|e| qp.cosine(e).map(|c| c as f32))
            .collect::<Result<_, _>>()?;
        let sketch: Vec<f32> = esk
            .iter()
            .map(|z| z.iter().zip(&qs).map(|(a, b)| a * b).sum::<f32>())
            .collect();
        let mut by_exact: Vec<usize> = (0..n).collect();
        by_exact.sort_by(|a, b| exact[*b].total_cmp(&exact[*a]));
        for (i, e) in exact.iter().enumerate() {
            err[0].push(sketch[i] as f64 - *e as f64);
        }
        for &i in by_exact.iter().take(1000) {
            err[1].push(sketch[i] as f64 - exact[i] as f64);
        }
        let truth: std::collections::HashSet<usize> = by_exact.into_iter().take(k).collect();
        let mut by_sketch: Vec<usize> = (0..n).collect();
        by_sketch.sort_by(|a, b| sketch[*b].total_cmp(&sketch[*a]));
        cands.push(stop_rule::Cands {
            sketch: by_sketch.iter().map(|&i| sketch[i]).collect(),
            exact: by_sketch.iter().map(|&i| exact[i]).collect(),
            hit: by_sketch.iter().map(|i| truth.contains(i)).collect(),
        });
    }
    println!(
        "exact scores of all {n} entries for {nq} queries in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ms = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64;
        (m, var.sqrt())
    };
    let (m_all, sd_all) = ms(&err[0]);
    let (m_top, sd_top) = ms(&err[1]);
    println!(
        "RESULT bench=default-stop-err n={n} sketch_err_sd_all={sd_all:.4} \
         sketch_err_mean_all={m_all:.4} sketch_err_sd_top1000={sd_top:.4} \
         sketch_err_mean_top1000={m_top:.4} queries={nq}"
    );
    stop_rule::simulate("default-stop", n, k, &cands, None, cap);
    stop_rule::simulate("default-stop", n, k, &cands, None, n);
    Ok(())
}

/// `knn --centre live` over the same space: the first query builds the library mean (reads
/// every vector, N × r × d² flops) and every entry's constants against it; later queries reuse
/// them until the live set changes, and each is an exact scan.
fn live_centring(
    db: &TaskDb,
    queries: &[methods::LowRank],
    query: &dyn Fn(&methods::LowRank) -> Query,
    k: usize,
) -> Res<()> {
    let opts = SearchOptions {
        centring: Centring::Live,
    };
    let t = Instant::now();
    db.nearest_with(&query(&queries[0]), k, &Filter::all(), &opts)?;
    let first = t.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for q in queries.iter().skip(1) {
        let t = Instant::now();
        db.nearest_with(&query(q), k, &Filter::all(), &opts)?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "live centring (`knn --centre live`): first query {first:.2} s (builds the library mean and every entry's constants), then p50 {:.2} ms, p95 {:.2} ms over {} queries (exact scan)",
        pct(&lat, 50),
        pct(&lat, 95),
        lat.len()
    );
    Ok(())
}

/// A low-rank value as a task embedding.
fn te(l: &methods::LowRank) -> methods::TaskEmbedding {
    methods::TaskEmbedding::LowRank(l.clone())
}

/// The default space's sketcher (its basis, seed and reference), every entry's sketch and every
/// entry prepared for exact scoring (`stop` and the sketch oracle of `knn`).
fn sketch_and_prepare(
    entries: &[methods::LowRank],
    reference: Option<&methods::Reference>,
    d: usize,
    spec: taskdb::SketchSpec,
) -> Res<(methods::Sketcher, Vec<Vec<f32>>, Vec<methods::Prepared>)> {
    use rayon::prelude::*;
    let basis = methods::SketchBasis::new(d, spec.m, spec.seed);
    let sk = methods::Sketcher::new(&basis, reference)?;
    let esk = entries
        .par_iter()
        .map(|e| sk.sketch(&te(e)))
        .collect::<Result<_, _>>()?;
    let eprep = entries
        .par_iter()
        .map(|e| methods::prepare(&te(e), reference))
        .collect::<Result<_, _>>()?;
    Ok((sk, esk, eprep))
}

/// Diagnostic, outside the database: the same sketch (same basis, seed and reference), top C
/// entries by brute-force sketch cosine, re-ranked exactly; recall@10 against the database's
/// brute-force answers. Says what an exact re-rank of C sketch candidates can reach.
fn sketch_oracle(
    entries: &[methods::LowRank],
    queries: &[methods::LowRank],
    exact: &[Vec<(String, f32)>],
    reference: Option<&methods::Reference>,
    d: usize,
    spec: taskdb::SketchSpec,
    k: usize,
) -> Res<()> {
    let t = Instant::now();
    let (sk, esk, eprep) = sketch_and_prepare(entries, reference, d, spec)?;
    let cs = [10usize, 128, 512, 2048];
    let mut found = vec![0usize; cs.len()];
    for (q, truth) in queries.iter().zip(exact) {
        let qs = sk.sketch(&te(q))?;
        let qp = methods::prepare(&te(q), reference)?;
        let mut by_sketch: Vec<(f32, usize)> = esk
            .iter()
            .enumerate()
            .map(|(i, z)| (z.iter().zip(&qs).map(|(a, b)| a * b).sum::<f32>(), i))
            .collect();
        by_sketch.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<&String> = truth.iter().map(|x| &x.0).collect();
        for (ci, &c) in cs.iter().enumerate() {
            let mut rer: Vec<(f64, usize)> = by_sketch
                .iter()
                .take(c.min(entries.len()))
                .map(|&(_, i)| Ok((qp.cosine(&eprep[i])?, i)))
                .collect::<Result<_, methods::MethodError>>()?;
            rer.sort_by(|a, b| b.0.total_cmp(&a.0));
            found[ci] += rer
                .iter()
                .take(k)
                .filter(|(_, i)| want.contains(&&format!("t{i}")))
                .count();
        }
    }
    println!(
        "\nsketch oracle (same sketch as the space; brute force over sketches, top C re-ranked exactly; {:.1} s):",
        t.elapsed().as_secs_f64()
    );
    println!("| C (sketch candidates re-ranked exactly) | recall@10 vs brute-force exact |");
    println!("|---|---|");
    for (c, f) in cs.iter().zip(&found) {
        println!("| {c} | {:.4} |", *f as f64 / (k * queries.len()) as f64);
    }
    Ok(())
}

const USAGE: &str =
    "usage: cargo bench -p taskdb --bench ingest -- [dataset|refs|model|knn|stop]...
(see the header of benches/ingest.rs for the environment variables)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let under_cargo_bench = args.iter().any(|a| a == "--bench");
    let mut cmds: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    if cmds.is_empty() {
        if !under_cargo_bench {
            println!("{USAGE}");
            return;
        }
        cmds = ["dataset", "refs", "model", "knn"]
            .map(String::from)
            .to_vec();
    }
    let runs = env_usize("TASKDB_BENCH_RUNS", 3).max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = std::env::var("TASKDB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("bench dir");
    println!(
        "taskdb ingest bench: {runs} runs, rayon threads {}, surrogate {}",
        rayon::current_num_threads(),
        std::env::var("TASKDB_SURROGATE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| surrogate::default_surrogate_dir())
            .display()
    );
    for c in &cmds {
        let r = match c.as_str() {
            "dataset" => bench_dataset(&root, runs),
            "refs" => bench_refs(&root, runs),
            "model" => bench_model(&root, runs),
            "knn" => bench_knn(&root, runs),
            "stop" => bench_stop(&root),
            other => Err(format!("unknown subcommand {other:?}\n{USAGE}").into()),
        };
        if let Err(e) = r {
            eprintln!("ingest bench {c}: {e}");
            std::process::exit(1);
        }
    }
}
