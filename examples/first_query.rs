//! Times what a one-shot client pays on a large dense database: the open, the first k-nearest
//! query (which loads the space's graph for search), and the queries after it; prints the
//! process's resident memory after the open and after the queries (Linux). Used for the open,
//! first-query and memory figures of docs/PERFORMANCE.md §21–22, on the database
//! `cargo bench --bench knn -- dense` keeps.
//!
//! Run: `cargo run --release --example first_query -- PATH SPACE DIM [QUERIES (200)] [CACHE_MIB]
//! [lean]` (CACHE_MIB: the store's page cache, `OpenOptions::cache_bytes`, default taskdb's;
//! `lean`: `IndexParams::lean_dense`).

mod common;

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

fn main() -> taskdb::Result<()> {
    let (args, path, space, dim) = common::leading_args(
        "first_query PATH SPACE DIM [QUERIES (200)] [CACHE_MIB] [lean]",
        true,
    );
    let (path, space) = (path.as_str(), space.as_str());
    let n: usize = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200)
        .max(1);
    let cache_bytes = match args.get(4).map(|a| a.parse::<usize>()) {
        Some(Ok(mib)) => mib << 20,
        Some(Err(_)) => {
            eprintln!("first_query: CACHE_MIB must be a whole number of MiB");
            std::process::exit(2);
        }
        None => taskdb::DEFAULT_CACHE_BYTES,
    };
    let t = std::time::Instant::now();
    let db = TaskDb::open_with(
        path,
        OpenOptions {
            read_only: true,
            index: IndexParams {
                export_after: 0,
                lean_dense: args.get(5).is_some_and(|a| a == "lean"),
                ..IndexParams::default()
            },
            cache_bytes,
        },
    )?;
    let open = t.elapsed().as_secs_f64();
    let rss_open = resident();
    let mut next = common::xorshift(1);
    let mut query = || -> taskdb::Result<f64> {
        let v: Vec<f32> = (0..dim).map(|_| next()).collect();
        let t = std::time::Instant::now();
        let hits = db.nearest(&Query::dense(space, v), 10, &Filter::all())?;
        assert_eq!(hits.len(), 10);
        Ok(t.elapsed().as_secs_f64())
    };
    let first = query()?;
    let mut rest: Vec<f64> = (0..n).map(|_| query()).collect::<taskdb::Result<_>>()?;
    rest.sort_by(f64::total_cmp);
    let rss = resident();
    println!(
        "open {open:.3} s (resident {rss_open}), first query {first:.3} s, then p50 {:.3} ms over {n}; resident {rss}",
        rest[n.saturating_sub(1) / 2] * 1e3
    );
    Ok(())
}

/// The process's resident memory (Linux's VmRSS), "n/a" elsewhere.
fn resident() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or("n/a".to_string(), |kib| format!("{:.0} MiB", kib / 1024.0))
}
