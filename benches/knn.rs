//! knn benchmark (a bench binary, not a timed test), by name:
//!
//! * `matrix`: the exact scan of a matrix space (issue 14). Builds a database of synthetic
//!   low-rank entries resembling the default scatter space (d = 384, ranks 1–19 uniformly,
//!   orthonormal factors near shared directions, positive decreasing weights, a frozen
//!   reference so every score has its centring terms) through `TaskDb::put`, then answers
//!   `nearest(k = 10)` with raw low-rank queries of ranks 1–19 on a rayon pool of one thread:
//!   first through the scan arena (the default path), then, on the same data in the same run,
//!   through the old exact scan (`taskdb::testing::nearest_with_old_scan`). Prints
//!   `RESULT bench=matrix-exact …` and `RESULT bench=matrix-exact-old …`, and the physical
//!   bound: the arena's factor bytes over a measured single-core streaming-read bandwidth
//!   (`RESULT bench=matrix-bound …`).
//! * `dense`: taskdb's dense HNSW path against hnswlib, usearch and faiss on the same 100k ×
//!   768 clustered vectors, one query thread, an ef sweep (`benches/knn/dense.rs`, peers run
//!   by `scripts/dense_peers.py`).
//! * `matrix-sketch`: where the sketch path of a matrix space loses neighbours, on the
//!   population of `matrix`: a flat scan over the sketches against the graph over them, for a
//!   sweep of candidate counts (`benches/knn/sketch.rs`, which says how).
//! * `matrix-stop`: data to calibrate an adaptive stop rule for the sketch path (issue 14),
//!   simulated on the flat sketch ranking of `matrix-sketch`'s population, with the graph
//!   path's measured time at each candidate count (`sketch::matrix_stop`,
//!   `benches/common/stop_rule.rs`).
//! * `open`: open time of a 100k-entry dense database with a persisted graph, the first
//!   query after open and the steady state (`benches/knn/open.rs`, which says how).
//!
//! Run: `cargo bench --bench knn -- matrix` (no name: `matrix` only), `cargo bench --bench knn -- open`,
//! `cargo bench --bench knn -- matrix-sketch`, `cargo bench --bench knn -- matrix-stop`.
//! Environment: `TASKDB_BENCH_N` (comma list, default 10000,50000), `TASKDB_BENCH_QUERIES`
//! (arena path, default 300), `TASKDB_BENCH_OLD_QUERIES` (old scan, default 40: it takes
//! about a second per query at 50k), `TASKDB_BENCH_DIR` (default: a temp dir),
//! `TASKDB_BENCH_KEEP=1` (`matrix` and `dense`: keep each database in `TASKDB_BENCH_DIR` and
//! reuse it on the next run instead of building it again).
//!
//! `build_s` is a handle's second query of the space, which builds the arena (the first scans
//! the old way);
//! `open_s` is `TaskDb::open_with` of the built database (catalog, persisted graph);
//! `recall10` compares each path's top 10 with the old exact scan's on the queries both ran.

#[path = "common/clustered.rs"]
mod clustered;
#[path = "knn/dense.rs"]
mod dense;
#[path = "common/env.rs"]
mod env;
#[path = "knn/open.rs"]
mod open;
#[path = "knn/sketch.rs"]
mod sketch;
#[path = "common/stop_rule.rs"]
mod stop_rule;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use env::{env_list, env_usize};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{
    Embedding, Filter, Hit, IndexParams, Kind, LowRank, MethodKind, MethodParams, NewEntry,
    NewVector, OpenOptions, Query, SearchOptions, SearchPath, SpaceRef, SpaceSel, TaskDb,
    TaskSpaceParams,
};

const DIM: usize = 384;
const SPACE: &str = "scatter:bench-knn";
const DIRECTIONS: usize = 64;

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Shared directions the factors lie near (so neighbourhoods are dense, as real tasks are).
fn directions() -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..DIRECTIONS)
        .map(|_| (0..DIM).map(|_| gauss(&mut rng)).collect())
        .collect()
}

/// One low-rank value: rank 1–19, columns near consecutive shared directions, orthonormal.
fn low_rank(rng: &mut ChaCha8Rng, dirs: &[Vec<f32>]) -> LowRank {
    let rank = rng.random_range(1..=19usize);
    let first = rng.random_range(0..dirs.len());
    let noise = rng.random_range(0.3f32..1.2);
    let mut cols: Vec<Vec<f32>> = (0..rank)
        .map(|j| {
            dirs[(first + j) % dirs.len()]
                .iter()
                .map(|x| x + noise * gauss(rng))
                .collect()
        })
        .collect();
    for j in 0..rank {
        for p in 0..j {
            let d: f32 = cols[j].iter().zip(&cols[p]).map(|(a, b)| a * b).sum();
            let prev = cols[p].clone();
            cols[j].iter_mut().zip(prev).for_each(|(a, b)| *a -= d * b);
        }
        let n = cols[j].iter().map(|x| x * x).sum::<f32>().sqrt();
        cols[j].iter_mut().for_each(|x| *x /= n);
    }
    let mut s: Vec<f32> = (0..rank).map(|_| rng.random_range(0.01f32..1.0)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    LowRank {
        dim: DIM,
        u: cols.concat(),
        s,
    }
}

/// A scatter space (no whitening) with a frozen reference: the mean of 200 such values.
fn space_def(dirs: &[Vec<f32>]) -> taskdb::SpaceDef {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let vals: Vec<taskdb_methods::TaskEmbedding> = (0..200)
        .map(|_| taskdb_methods::TaskEmbedding::LowRank(low_rank(&mut rng, dirs)))
        .collect();
    let refs: Vec<&taskdb_methods::TaskEmbedding> = vals.iter().collect();
    let reference =
        taskdb_methods::library_reference(MethodKind::Scatter, DIM, &refs).expect("reference");
    let params = MethodParams {
        scatter_whitening: None,
        ..MethodParams::default()
    };
    TaskSpaceParams::new(MethodKind::Scatter, params, Some(reference)).into_def(
        SPACE.into(),
        DIM as u32,
        "surrogate-fp",
        "probe-fp",
    )
}

fn options() -> OpenOptions {
    OpenOptions {
        index: IndexParams {
            m: 4,
            ef_construction: 16,
            // Every size is answered by the exact scan, the path measured here.
            exact_matrix_below: usize::MAX,
            ..IndexParams::default()
        },
        ..OpenOptions::default()
    }
}

/// The random source of the entries' values, in `put` order (`matrix-sketch` draws them again
/// to sketch them).
fn entry_rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// The random source of the queries' values.
fn query_rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(99)
}

/// Builds the database of `n` entries (500 per `put`); returns the seconds it took.
fn build(path: &Path, n: usize, dirs: &[Vec<f32>]) -> f64 {
    build_with(path, n, dirs, options()).0
}

/// [`build`] with the given options (their index parameters shape the graph built by `put`);
/// also returns the entries' ids, in `put` order.
fn build_with(
    path: &Path,
    n: usize,
    dirs: &[Vec<f32>],
    opts: OpenOptions,
) -> (f64, Vec<taskdb::EntryId>) {
    let t = Instant::now();
    let db = TaskDb::open_with(path, opts).expect("open");
    let def = space_def(dirs);
    let mut rng = entry_rng();
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(500) {
        let batch = (start..(start + 500).min(n))
            .map(|i| NewEntry {
                name: format!("t{i:06}"),
                kind: if i.is_multiple_of(4) {
                    Kind::Model
                } else {
                    Kind::Dataset
                },
                vectors: vec![NewVector {
                    method: "scatter".into(),
                    space: SpaceRef::Def(def.clone()),
                    embedding: Embedding::LowRank(low_rank(&mut rng, dirs)),
                }],
                tags: BTreeMap::new(),
                provenance: Default::default(),
            })
            .collect();
        ids.extend(db.put(batch).expect("put"));
    }
    db.flush().expect("flush");
    (t.elapsed().as_secs_f64(), ids)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Timed {
    ms: Vec<f64>,
    hits: Vec<Vec<Hit>>,
}

/// Runs `queries` one at a time on a rayon pool of one thread.
fn run(queries: &[Query], f: impl Fn(&Query) -> Vec<Hit> + Sync) -> Timed {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| {
        let mut ms = Vec::with_capacity(queries.len());
        let mut hits = Vec::with_capacity(queries.len());
        for q in queries {
            let t = Instant::now();
            let h = f(q);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            hits.push(h);
        }
        Timed { ms, hits }
    })
}

/// Mean overlap of each top 10 with the reference's, on the queries both answered.
fn recall10(got: &[Vec<Hit>], want: &[Vec<Hit>]) -> f64 {
    let n = got.len().min(want.len()).max(1);
    let mut sum = 0.0;
    for (g, w) in got.iter().zip(want) {
        let w: Vec<u64> = w.iter().map(|h| h.id).collect();
        let found = g.iter().filter(|h| w.contains(&h.id)).count();
        sum += found as f64 / w.len().max(1) as f64;
    }
    sum / n as f64
}

fn result(name: &str, n: usize, t: &Timed, recall: f64, build_s: f64, open_s: f64) {
    let mut ms = t.ms.clone();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    println!(
        "RESULT bench={name} n={n} dim={DIM} recall10={recall:.4} qps={:.2} p50_ms={:.2} \
         p99_ms={:.2} build_s={build_s:.2} open_s={open_s:.3} queries={}",
        1e3 / mean,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.len()
    );
}

/// Single-core streaming-read bandwidth over a buffer of `bytes` (best of 5 passes), GB/s.
fn read_bandwidth(bytes: usize) -> f64 {
    let words = (bytes / 8).max(1 << 20);
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = [0u64; 8];
        for c in buf.chunks_exact(8) {
            for l in 0..8 {
                acc[l] = acc[l].wrapping_add(c[l]);
            }
        }
        sink = sink.wrapping_add(acc.iter().fold(0, |a, &b| a.wrapping_add(b)));
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    (words * 8) as f64 / best / 1e9
}

fn matrix(dir: &Path) {
    let ns: Vec<usize> = std::env::var("TASKDB_BENCH_N")
        .unwrap_or_else(|_| "10000,50000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let nq = env_usize("TASKDB_BENCH_QUERIES", 300).max(1);
    let nq_old = env_usize("TASKDB_BENCH_OLD_QUERIES", 40).clamp(1, nq);
    let keep = env_usize("TASKDB_BENCH_KEEP", 0) != 0;
    let dirs = directions();
    let mut rng = query_rng();
    let queries: Vec<Query> = (0..nq)
        .map(|_| Query::Vector {
            space: SpaceSel::Name(SPACE.into()),
            embedding: Embedding::LowRank(low_rank(&mut rng, &dirs)),
        })
        .collect();
    let opts = SearchOptions::default();
    let all = Filter::all();
    for n in ns {
        let path = dir.join(format!("knn-matrix-{n}.taskdb"));
        // TASKDB_BENCH_KEEP=1 (with TASKDB_BENCH_DIR): keep the database, and reuse it if there.
        let put_s = if keep && path.exists() {
            0.0
        } else {
            build(&path, n, &dirs)
        };
        let t = Instant::now();
        let db = TaskDb::open_with(&path, options()).expect("open");
        let open_s = t.elapsed().as_secs_f64();
        // A handle's first exact query of a space scans the old way (no arena yet); the
        // second builds the arena (src/db/scan.rs), and its time is `build_s`.
        let first = run(&queries[..1], |q| {
            db.nearest_with(q, 10, &all, &opts).expect("knn").0
        });
        let second = run(&queries[1..2], |q| {
            db.nearest_with(q, 10, &all, &opts).expect("knn").0
        });
        let build_s = second.ms[0] / 1e3;
        let new = run(&queries, |q| {
            db.nearest_with(q, 10, &all, &opts).expect("knn").0
        });
        let old = run(&queries[..nq_old], |q| {
            taskdb::testing::nearest_with_old_scan(&db, q, 10, &all, &opts)
                .expect("knn")
                .0
        });
        let identical = new
            .hits
            .iter()
            .zip(&old.hits)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "# n={n}: put {put_s:.1} s ({:.0} entries/s); {identical} of {nq_old} answers \
             identical to the old scan (ids, order, score bits)",
            n as f64 / put_s
        );
        result(
            "matrix-exact",
            n,
            &new,
            recall10(&new.hits, &old.hits),
            build_s,
            open_s,
        );
        result(
            "matrix-exact-old",
            n,
            &old,
            recall10(&old.hits, &old.hits),
            0.0,
            open_s,
        );
        let (rows, bytes) = taskdb::testing::scan_arena_size(&db, SPACE).expect("arena");
        drop(db);
        sketch_path(&path, n, &queries, &new.hits);
        // The old scan's first query on a fresh handle (redb's cache cold, as the arena's
        // build found it): what a one-query process paid before.
        let db = TaskDb::open_with(&path, options()).expect("open");
        let cold = run(&queries[..1], |q| {
            taskdb::testing::nearest_with_old_scan(&db, q, 10, &all, &opts)
                .expect("knn")
                .0
        });
        drop(db);
        println!(
            "# n={n}: a fresh handle's first query {:.2} s (the old scan: no arena yet), its \
             second {build_s:.2} s (builds the arena); the old scan's first query on another \
             fresh handle {:.2} s",
            first.ms[0] / 1e3,
            cold.ms[0] / 1e3
        );
        let gbs = read_bandwidth(bytes);
        let mut ms = new.ms.clone();
        ms.sort_by(f64::total_cmp);
        let bound_ms = bytes as f64 / (gbs * 1e9) * 1e3;
        println!(
            "RESULT bench=matrix-bound n={n} dim={DIM} rows={rows} factor_bytes={bytes} \
             read_gbs={gbs:.2} bound_ms={bound_ms:.2} p50_over_bound={:.2}",
            percentile(&ms, 0.5) / bound_ms
        );
        if !keep {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
        }
    }
}

/// The sketch path (issue 14) on the database at `path`: a handle whose matrix exact-scan size
/// is the dense one (2,048), so every query goes through the flat int8 sketch scan, exact
/// re-ranking and the stop rule (src/search/plan.rs). Recall against the exact answers
/// `exact` of the same queries; `build_s` is the first query (loads the graph, builds the flat
/// scan and the arena); how many queries the rule answered and how many fell back to the exact
/// scan. Prints `RESULT bench=matrix-flat …`.
fn sketch_path(path: &Path, n: usize, queries: &[Query], exact: &[Vec<Hit>]) {
    let opts = OpenOptions {
        index: IndexParams {
            exact_matrix_below: 0,
            ..options().index
        },
        ..OpenOptions::default()
    };
    let t = Instant::now();
    let db = TaskDb::open_with(path, opts).expect("open");
    let open_s = t.elapsed().as_secs_f64();
    let all = Filter::all();
    let so = SearchOptions::default();
    let paths = std::sync::Mutex::new(Vec::new());
    let knn = |q: &Query| {
        let (hits, p) = db.nearest_with(q, 10, &all, &so).expect("knn");
        paths.lock().expect("paths").push(p);
        hits
    };
    let first = run(&queries[..1], knn);
    paths.lock().expect("paths").clear();
    let timed = run(queries, knn);
    let paths = paths.into_inner().expect("paths");
    let fell_back = paths
        .iter()
        .filter(|&&p| p == SearchPath::SketchScanThenBruteForce)
        .count();
    println!(
        "# n={n}: sketch path: {} of {} queries answered by the stop rule, {fell_back} fell back \
         to the exact scan; first query {:.2} s",
        paths.len() - fell_back,
        paths.len(),
        first.ms[0] / 1e3
    );
    result(
        "matrix-flat",
        n,
        &timed,
        recall10(&timed.hits, exact),
        first.ms[0] / 1e3,
        open_s,
    );
}

fn main() {
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var("TASKDB_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let names = if names.is_empty() {
        vec!["matrix".to_string()]
    } else {
        names
    };
    for name in names {
        match name.as_str() {
            "matrix" => matrix(&dir),
            "dense" => dense::dense(&dir),
            "open" => open::open(),
            "matrix-sketch" => sketch::matrix_sketch(&dir),
            "matrix-stop" => sketch::matrix_stop(&dir),
            other => println!("# bench {other:?}: not implemented yet (skipped)"),
        }
    }
}
