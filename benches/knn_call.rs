//! The cost of one `nearest` call through the Rust API, for comparison with the same call from
//! Python (`scripts/bench_python.py` runs this binary and its own loop in the same run).
//!
//! Run: `TASKDB_BENCH_DB=db.taskdb TASKDB_BENCH_NAMES=names.txt cargo bench --bench knn_call`
//! (names one per line; `TASKDB_BENCH_K`, default 10; `TASKDB_BENCH_ROUNDS`, default 5).
//! Prints the median over rounds of each round's median per-call latency, in microseconds.

use std::time::Instant;

use taskdb::{Filter, OpenOptions, Query, TaskDb};

fn main() {
    let (Ok(db), Ok(names)) = (
        std::env::var("TASKDB_BENCH_DB"),
        std::env::var("TASKDB_BENCH_NAMES"),
    ) else {
        eprintln!("knn_call: set TASKDB_BENCH_DB and TASKDB_BENCH_NAMES (see the file's docs)");
        return;
    };
    let k: usize = std::env::var("TASKDB_BENCH_K")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("TASKDB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let names: Vec<String> = std::fs::read_to_string(names)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let db = TaskDb::open_with(
        &db,
        OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let mut medians = Vec::new();
    for _ in 0..rounds {
        let mut t = Vec::with_capacity(names.len());
        for n in &names {
            let s = Instant::now();
            let q = Query::entry(n).unwrap();
            let hits = db.nearest(&q, k, &Filter::all()).unwrap();
            t.push(s.elapsed().as_secs_f64() * 1e6);
            assert_eq!(hits.len(), k);
        }
        t.sort_by(f64::total_cmp);
        medians.push(t[t.len() / 2]);
    }
    medians.sort_by(f64::total_cmp);
    println!("{:.1}", medians[medians.len() / 2]);
}
