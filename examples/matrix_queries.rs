//! Times k-nearest queries by stored entries in a matrix (task) space of an existing database,
//! one query at a time on one handle: the query entries are `PREFIX<i>` for i spread over
//! `0..N` (the names `cargo bench --bench ingest -- knn` gives its population: `t0`, `t1`, …);
//! prints p50 / p95 per query and how many took each search path. For profiling the sketch path
//! on the database that bench keeps (`TASKDB_BENCH_KEEP=1`, docs/PERFORMANCE.md §17, §24).
//!
//! Run: `cargo run --release --example matrix_queries -- PATH PREFIX N [QUERIES (200)] [ROUNDS
//! (1)] [exact]` (`exact`: every query scanned exactly; otherwise the sketch path is forced even
//! below `exact_matrix_below`, as the bench's `TASKDB_BENCH_KNN_FORCE_HNSW=1`).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

fn main() -> taskdb::Result<()> {
    let (args, path, prefix, n) = common::leading_args(
        "matrix_queries PATH PREFIX N [QUERIES (200)] [ROUNDS (1)] [exact]",
        true,
    );
    let queries: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let exact = args.get(5).is_some_and(|a| a == "exact");
    let (below, matrix_below) = match exact {
        true => (usize::MAX, usize::MAX),
        false => (0, 0),
    };
    let db = TaskDb::open_with(
        &path,
        OpenOptions {
            read_only: true,
            index: IndexParams {
                brute_force_below: below,
                exact_matrix_below: matrix_below,
                ..IndexParams::default()
            },
            ..OpenOptions::default()
        },
    )?;
    let names: Vec<String> = (0..queries)
        .map(|i| format!("{prefix}{}", (i * 7919 + 13) % n.max(1)))
        .collect();
    // The first query loads the graph and builds the scan structures: not timed.
    let t = Instant::now();
    db.nearest(&Query::entry(&names[0])?, 10, &Filter::all())?;
    println!("first query (loads): {:.2} s", t.elapsed().as_secs_f64());
    let mut times = Vec::with_capacity(queries * rounds);
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..rounds {
        for name in &names {
            let q = Query::entry(name)?;
            let t = Instant::now();
            let (_, path) = db.nearest_explain(&q, 10, &Filter::all())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            *paths.entry(format!("{path:?}")).or_default() += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{path}: {} queries, p50 {:.2} ms, p95 {:.2} ms, paths {paths:?}",
        times.len(),
        at(0.5),
        at(0.95)
    );
    Ok(())
}
