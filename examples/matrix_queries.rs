//! Times k-nearest queries by stored entries in a matrix (task) space of an existing database,
//! one query at a time on one handle: the query entries are `PREFIX<i>` for i spread over
//! `0..N` (the names `cargo bench --bench ingest -- knn` gives its population: `t0`, `t1`, …);
//! prints p50 / p95 per query and how many took each search path. For profiling the sketch path
//! on the database that bench keeps (`TASKDB_BENCH_KEEP=1`, docs/PERFORMANCE.md §17, §24, §28).
//!
//! Run: `cargo run --release --example matrix_queries -- PATH PREFIX N [QUERIES (200)] [ROUNDS
//! (1)] [exact|recall]` (`exact`: every query scanned exactly; otherwise the sketch path is
//! forced even below `exact_matrix_below`, as the bench's `TASKDB_BENCH_KNN_FORCE_HNSW=1`;
//! `recall`: then, on a fresh exact handle (the first is closed first: at 1M entries one handle's
//! scan structures take ≈ 16 GB), the same queries scanned exactly, and recall@10 of the
//! sketch path's answers against them).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

/// One timed pass of `names` (`rounds` times) on a handle opened with exact scans everywhere
/// (`exact`) or the sketch path forced; prints p50 / p95 and the paths taken, and returns each
/// query's hit names from the first round.
fn pass(
    path: &str,
    names: &[String],
    rounds: usize,
    exact: bool,
) -> taskdb::Result<Vec<Vec<String>>> {
    let (below, matrix_below) = match exact {
        true => (usize::MAX, usize::MAX),
        false => (0, 0),
    };
    let db = TaskDb::open_with(
        path,
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
    // The first query loads the graph and builds the flat scan; the second builds the exact
    // arena (a space's first exact query only asks for it, docs/PERFORMANCE.md §11): neither
    // is timed.
    for (i, what) in ["graph and sketch scan", "exact arena"].iter().enumerate() {
        let t = Instant::now();
        db.nearest(
            &Query::entry(&names[i.min(names.len() - 1)])?,
            10,
            &Filter::all(),
        )?;
        println!(
            "warm-up query {} ({what}): {:.2} s",
            i + 1,
            t.elapsed().as_secs_f64()
        );
    }
    let mut times = Vec::with_capacity(names.len() * rounds);
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();
    let mut answers = Vec::with_capacity(names.len());
    for round in 0..rounds {
        for name in names {
            let q = Query::entry(name)?;
            let t = Instant::now();
            let (hits, path) = db.nearest_explain(&q, 10, &Filter::all())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            *paths.entry(format!("{path:?}")).or_default() += 1;
            if round == 0 {
                answers.push(hits.into_iter().map(|h| h.name).collect());
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{path}{}: {} queries, p50 {:.2} ms, p95 {:.2} ms, paths {paths:?}",
        if exact { " (exact)" } else { "" },
        times.len(),
        at(0.5),
        at(0.95)
    );
    Ok(answers)
}

fn main() -> taskdb::Result<()> {
    let (args, path, prefix, n) = common::leading_args(
        "matrix_queries PATH PREFIX N [QUERIES (200)] [ROUNDS (1)] [exact|recall]",
        true,
    );
    let queries: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let mode = args.get(5).map(String::as_str).unwrap_or("");
    let names: Vec<String> = (0..queries.max(1))
        .map(|i| format!("{prefix}{}", (i * 7919 + 13) % n.max(1)))
        .collect();
    let got = pass(&path, &names, rounds, mode == "exact")?;
    if mode == "recall" {
        let want = pass(&path, &names, 1, true)?;
        let (mut found, mut total) = (0usize, 0usize);
        for (g, w) in got.iter().zip(&want) {
            found += g.iter().filter(|h| w.contains(h)).count();
            total += w.len();
        }
        println!(
            "recall@10 of the sketch path against the exact scan: {:.4} ({found} of {total})",
            found as f64 / total.max(1) as f64
        );
    }
    Ok(())
}
