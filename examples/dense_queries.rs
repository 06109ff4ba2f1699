//! Times dense k-nearest queries on one handle of an existing database: random unit queries
//! (xorshift, seed 1) of the space's width, k = 10, after enough untimed ones to pass
//! `IndexParams::export_after`; prints the mean time per query. Used for the A/B figures of docs/PERFORMANCE.md §19 (for example with
//! `TASKDB_HUGE_PAGES=0` against the default, on the database the dense bench keeps).
//!
//! Run: `cargo run --release --example dense_queries -- PATH SPACE [QUERIES] [EF] [lean]`
//! (`lean`: `IndexParams::lean_dense`; it then also counts the 200 queries whose hits, ids
//! and score bits, equal a default handle's).

mod common;

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

fn main() -> taskdb::Result<()> {
    let (args, path, space, _) = common::leading_args(
        "dense_queries PATH SPACE [QUERIES (5000)] [EF (32)] [lean]",
        false,
    );
    let (path, space) = (path.as_str(), space.as_str());
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let ef: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(32);
    let index = IndexParams {
        ef_search: ef,
        lean_dense: args.get(4).is_some_and(|a| a == "lean"),
        ..IndexParams::default()
    };
    let db = TaskDb::open_with(
        path,
        OpenOptions {
            read_only: true,
            index,
            ..OpenOptions::default()
        },
    )?;
    let stats = db.stats()?;
    let Some(sp) = stats.spaces.iter().find(|s| s.name == space) else {
        eprintln!("{path}: no space named {space:?}");
        std::process::exit(2);
    };
    let mut next = common::xorshift(1);
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let v: Vec<f32> = (0..sp.dim).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect();
    // Past `IndexParams::export_after`, so the timed queries run on the exported graph.
    for q in queries.iter().take(index.export_after + 1) {
        db.nearest(&Query::dense(space, q.clone()), 10, &Filter::all())?;
    }
    let t = std::time::Instant::now();
    for i in 0..n {
        db.nearest(
            &Query::dense(space, queries[i % 200].clone()),
            10,
            &Filter::all(),
        )?;
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!("{path} {space}: {per:.3} ms a query over {n} (ef {ef})");
    if index.lean_dense {
        let default = TaskDb::open_with(
            path,
            OpenOptions {
                read_only: true,
                index: IndexParams {
                    lean_dense: false,
                    ..index
                },
                ..OpenOptions::default()
            },
        )?;
        let mut same = 0;
        for q in &queries {
            let q = Query::dense(space, q.clone());
            let a = db.nearest(&q, 10, &Filter::all())?;
            let b = default.nearest(&q, 10, &Filter::all())?;
            same += usize::from(a == b);
        }
        println!("lean answers equal to the default's for {same} of 200 queries");
    }
    Ok(())
}
