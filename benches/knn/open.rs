//! `open`: opening a 100k-entry database with a persisted graph (issue 14).
//!
//! Dense 768-d clustered vectors, the recipe of `benches/engine.rs` (docs/PERFORMANCE.md,
//! "Engine"): 200 Gaussian centres N(0, 1) per component (seed 7), points = centre +
//! N(0, 0.35²) per component, L2-normalised (seed 1 for the entries, 2 for the queries), one
//! external space, put 1,000 per transaction, taskdb's default index parameters.
//!
//! The database is built once and cached (`TASKDB_BENCH_CACHE`, default
//! `$CARGO_TARGET_DIR/bench-cache` or `target/bench-cache`); a rerun reuses it, so `build_s`
//! is `-` then. Each of 5 rounds opens it read-only (as the CLI's `knn` does), times the
//! open, then the handle's first query (a different query each round), and drops the handle.
//! Then the last handle answers every query on a rayon pool of one thread (steady state).
//! `recall10` is the steady state's, against an exact top 10 computed here; the first
//! queries' recall is printed as `first_recall10`.
//!
//! Prints `RESULT bench=open n=… dim=768 recall10=… qps=… p50_ms=… p99_ms=… build_s=…
//! open_s=…` (open_s the median of 5) followed by `first_ms` (median first-query latency),
//! `open_first_s` (median of open + first query) and `first_recall10`.
//! Environment: `TASKDB_BENCH_OPEN_N` (default 100000), `TASKDB_BENCH_OPEN_QUERIES` (default
//! 200), `TASKDB_BENCH_CACHE`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::clustered::{centres, dataset, put_all, DIM};
use taskdb::{Filter, Query, TaskDb};

const SPACE: &str = "bench-open";
const ROUNDS: usize = 5;

fn exact_top10(q: &[f32], data: &[Vec<f32>]) -> Vec<String> {
    super::clustered::exact_top10(q, data)
        .into_iter()
        .map(|i| format!("e{i}"))
        .collect()
}

fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TASKDB_BENCH_CACHE") {
        return PathBuf::from(d);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    Path::new(&target).join("bench-cache")
}

/// Builds the database unless a finished one is cached; returns the build's seconds, if built.
fn build_once(path: &Path, data: &[Vec<f32>]) -> Option<f64> {
    let done = path.with_extension("built");
    if done.exists() && path.exists() {
        return None;
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(path));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("cache dir");
    let t = Instant::now();
    let db = TaskDb::open(path).expect("open");
    put_all(&db, SPACE, data);
    db.flush().expect("flush");
    drop(db);
    let s = t.elapsed().as_secs_f64();
    std::fs::write(&done, format!("{s}\n")).expect("marker");
    Some(s)
}

/// Seconds to read and CRC32 every file in `dir` on one thread (what verifying a graph reads).
fn crc_files(dir: &Path) -> f64 {
    use std::io::Read;
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(dir).expect("index dir").flatten() {
        let mut f = std::fs::File::open(e.path()).expect("open");
        let mut h = crc32fast::Hasher::new();
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        std::hint::black_box(h.finalize());
    }
    t.elapsed().as_secs_f64()
}

fn recall(hits: &[taskdb::Hit], want: &[String]) -> f64 {
    hits.iter().filter(|h| want.contains(&h.name)).count() as f64 / want.len().max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn open() {
    let n = super::env_usize("TASKDB_BENCH_OPEN_N", 100_000);
    let nq = super::env_usize("TASKDB_BENCH_OPEN_QUERIES", 200).max(ROUNDS);
    let centres = centres();
    let data = dataset(n, 1, &centres);
    let qvecs = dataset(nq, 2, &centres);
    let path = cache_dir().join(format!("open-{n}-{DIM}.taskdb"));
    let build_s = build_once(&path, &data);
    let truth: Vec<Vec<String>> = {
        use rayon::prelude::*;
        qvecs.par_iter().map(|q| exact_top10(q, &data)).collect()
    };
    drop(data);
    let queries: Vec<Query> = qvecs.into_iter().map(|v| Query::dense(SPACE, v)).collect();
    let all = Filter::all();
    let graph_bytes: u64 = std::fs::read_dir(taskdb::files::index_dir(&path))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let crc_s = crc_files(&taskdb::files::index_dir(&path));
    let (mut opens, mut firsts, mut both, mut first_recall) = (vec![], vec![], vec![], 0.0);
    let mut last: Option<TaskDb> = None;
    for r in 0..ROUNDS {
        drop(last.take()); // the previous handle is closed before the next open
        let t = Instant::now();
        let db = TaskDb::open_read_only(&path).expect("open");
        let open_s = t.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let hits = db.nearest(&queries[r], 10, &all).expect("knn");
        let first_s = t1.elapsed().as_secs_f64();
        first_recall += recall(&hits, &truth[r]) / ROUNDS as f64;
        let event = db.stats().expect("stats").spaces[0].index.clone();
        println!(
            "# round {r}: open {open_s:.3} s, first query {:.1} ms, graph: {event}",
            first_s * 1e3
        );
        opens.push(open_s);
        firsts.push(first_s);
        both.push(open_s + first_s);
        last = Some(db);
    }
    let db = last.expect("a handle");
    let steady = super::run(&queries, |q| db.nearest(q, 10, &all).expect("knn"));
    let steady_recall = steady
        .hits
        .iter()
        .zip(&truth)
        .map(|(h, w)| recall(h, w))
        .sum::<f64>()
        / nq as f64;
    drop(db);
    let mut ms = steady.ms.clone();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "# n={n}: graph files {:.0} MB, their CRC32 on one thread {crc_s:.3} s; opens {opens:.3?} s",
        graph_bytes as f64 / 1e6
    );
    println!(
        "RESULT bench=open n={n} dim={DIM} recall10={steady_recall:.4} qps={:.1} p50_ms={:.3} \
         p99_ms={:.3} build_s={} open_s={:.3} first_ms={:.1} open_first_s={:.3} \
         first_recall10={first_recall:.3} queries={nq}",
        1e3 / mean,
        super::percentile(&ms, 0.5),
        super::percentile(&ms, 0.99),
        build_s.map_or("-".to_string(), |s| format!("{s:.1}")),
        median(opens),
        median(firsts) * 1e3,
        median(both),
    );
}
