//! Engine benchmark (a bench binary, not a timed test).
//!
//! Measures, for N entries of 768-d clustered vectors (200 Gaussian clusters, seeded):
//! import throughput (one `put` per 1,000 entries, HNSW insertion included), knn latency
//! (single-threaded, `nearest` with a raw vector, exact re-scoring included) and recall@10
//! against exact search for several `ef_search` values, and open time with a persisted graph
//! versus a forced rebuild.
//!
//! Run: `cargo bench -p taskdb --bench engine` (defaults: N = 10000,100000; 1000 queries).
//! Environment: `TASKDB_BENCH_N=10000` (comma list), `TASKDB_BENCH_QUERIES=1000`,
//! `TASKDB_BENCH_EF=32,64,96,128,200`, `TASKDB_BENCH_DIR` (default: a temp dir),
//! `TASKDB_BENCH_REBUILD=0` to skip the forced-rebuild timing.

#[path = "common/clustered.rs"]
mod clustered;
#[path = "common/env.rs"]
mod env;
use env::env_list;

use std::time::{Duration, Instant};

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

use clustered::{centres, dataset, exact_top10, put_all, CLUSTERS, DIM};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let ns = env_list("TASKDB_BENCH_N", "10000,100000");
    let nq = env_list("TASKDB_BENCH_QUERIES", "1000")[0];
    let efs = env_list("TASKDB_BENCH_EF", "32,64,96,128,200");
    let rebuild = std::env::var("TASKDB_BENCH_REBUILD")
        .map(|v| v != "0")
        .unwrap_or(true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("TASKDB_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let base = IndexParams::default();
    println!(
        "taskdb engine bench: dim {DIM}, {CLUSTERS} clusters, {nq} queries, M {}, ef_construction {}, rayon threads {}",
        base.m,
        base.ef_construction,
        rayon::current_num_threads()
    );
    let centres = centres();
    for &n in &ns {
        let path = dir.join(format!("bench-{n}.taskdb"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
        let data = dataset(n, 1, &centres);
        let queries = dataset(nq, 2, &centres);

        // Import.
        let t = Instant::now();
        {
            let db = TaskDb::open(&path).unwrap();
            put_all(&db, "bench", &data);
            let put_s = t.elapsed().as_secs_f64();
            let tf = Instant::now();
            db.flush().unwrap();
            println!(
                "N={n}: import {:.1} s ({:.0} vectors/s, HNSW insertion included); graph save {:.2} s",
                put_s,
                n as f64 / put_s,
                tf.elapsed().as_secs_f64()
            );
        }

        // Ground truth.
        let t = Instant::now();
        let truth: Vec<Vec<String>> = {
            use rayon::prelude::*;
            queries
                .par_iter()
                .map(|q| {
                    exact_top10(q, &data)
                        .into_iter()
                        .map(|i| format!("e{i}"))
                        .collect()
                })
                .collect()
        };
        println!(
            "N={n}: exact ground truth in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        // Open with a valid graph.
        let mut opens = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let db = TaskDb::open_read_only(&path).unwrap();
            opens.push(t.elapsed());
            assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
        }
        println!(
            "N={n}: open with persisted graph: median {:.3} s of 3 ({:?})",
            median(opens.clone()).as_secs_f64(),
            opens
        );

        // knn latency and recall per ef_search.
        for &ef in &efs {
            let db = TaskDb::open_with(
                &path,
                OpenOptions {
                    read_only: true,
                    index: IndexParams {
                        ef_search: ef,
                        ..base
                    },
                    ..OpenOptions::default()
                },
            )
            .unwrap();
            // Warm-up.
            for q in queries.iter().take(20) {
                db.nearest(&Query::dense("bench", q.clone()), 10, &Filter::all())
                    .unwrap();
            }
            let mut lat = Vec::with_capacity(nq);
            let mut found = 0usize;
            let t_all = Instant::now();
            for (q, want) in queries.iter().zip(&truth) {
                let t = Instant::now();
                let hits = db
                    .nearest(&Query::dense("bench", q.clone()), 10, &Filter::all())
                    .unwrap();
                lat.push(t.elapsed());
                found += hits.iter().filter(|h| want.contains(&h.name)).count();
            }
            let total = t_all.elapsed().as_secs_f64();
            let p50 = median(lat.clone());
            lat.sort();
            let p99 = lat[lat.len() * 99 / 100];
            println!(
                "N={n}: ef_search {ef:>3}: recall@10 {:.4}, {:.0} queries/s single-threaded, latency p50 {:.3} ms p99 {:.3} ms",
                found as f64 / (10 * nq) as f64,
                nq as f64 / total,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }

        if rebuild {
            std::fs::remove_dir_all(taskdb::files::index_dir(&path)).unwrap();
            let t = Instant::now();
            let db = TaskDb::open_read_only(&path).unwrap();
            println!(
                "N={n}: open with forced rebuild (graph files deleted): {:.1} s ({})",
                t.elapsed().as_secs_f64(),
                db.stats().unwrap().spaces[0].index
            );
        }
    }
}
