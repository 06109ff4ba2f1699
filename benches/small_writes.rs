//! Small writes (a bench binary, not a timed test): the cost of a transaction that writes one
//! entry, or deletes one, which is where a per-transaction cost such as the write log's record
//! (issue 12) shows most. Each `put` and `delete` is its own redb transaction with its fsync.
//!
//! Run: `cargo bench -p taskdb --bench small_writes` (defaults: 300 puts then 300 deletes, 5
//! rounds, each in a fresh database). Environment: `TASKDB_BENCH_N`, `TASKDB_BENCH_ROUNDS`.
//! Uses only API that predates the write log, so the same file measures an older build.

use std::time::Instant;

use taskdb::{Kind, NewEntry, TaskDb};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("TASKDB_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let rounds: usize = std::env::var("TASKDB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (mut puts, mut dels) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let db = TaskDb::open(dir.path().join("w.taskdb")).unwrap();
        let t = Instant::now();
        for i in 0..n {
            let v: Vec<f32> = (0..384)
                .map(|j| ((i * 7 + j * 13) % 101) as f32 + 1.0)
                .collect();
            db.put(vec![NewEntry::external(
                format!("e{i}"),
                Kind::Dataset,
                "s",
                v,
            )])
            .unwrap();
        }
        puts.push(t.elapsed().as_secs_f64() * 1e3 / n as f64);
        let t = Instant::now();
        for i in 0..n {
            db.delete(&format!("e{i}").parse().unwrap()).unwrap();
        }
        dels.push(t.elapsed().as_secs_f64() * 1e3 / n as f64);
        eprintln!("round {r}: put {:.3} ms, delete {:.3} ms", puts[r], dels[r]);
    }
    println!(
        "single-entry put: {:.3} ms per transaction; delete: {:.3} ms (medians of {rounds} rounds of {n})",
        median(puts),
        median(dels)
    );
}
