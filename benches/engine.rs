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

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{Filter, IndexParams, Kind, NewEntry, OpenOptions, Query, TaskDb};

const DIM: usize = 768;
const CLUSTERS: usize = 200;

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Cluster centres ~ N(0, 1); points = centre + N(0, 0.35²) per component, L2-normalised.
fn dataset(n: usize, seed: u64, centres: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.35 * gauss(&mut rng)).collect();
            let nrm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= nrm);
            v
        })
        .collect()
}

fn exact_top10(q: &[f32], data: &[Vec<f32>]) -> Vec<usize> {
    let mut s: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    s.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
    s.truncate(10);
    s.into_iter().map(|(_, i)| i).collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().parse().expect("number list"))
        .collect()
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
    let mut crng = ChaCha8Rng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| gauss(&mut crng)).collect())
        .collect();
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
            for (b, chunk) in data.chunks(1000).enumerate() {
                let batch: Vec<NewEntry> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        NewEntry::external(
                            format!("e{}", b * 1000 + i),
                            if i % 2 == 0 {
                                Kind::Dataset
                            } else {
                                Kind::Model
                            },
                            "bench",
                            v.clone(),
                        )
                    })
                    .collect();
                db.put(batch).unwrap();
            }
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
