//! `cargo bench --bench knn -- dense` (issue 14): taskdb's dense HNSW path against hnswlib and
//! usearch (and faiss's HNSWFlat when installed) on the same data, one query thread.
//!
//! Data: the recipe of docs/PERFORMANCE.md "Engine" (768-d, 200 Gaussian clusters, centres
//! N(0,1), points = centre + N(0, 0.35²), L2-normalised; seeds 7/1/2): N points (default
//! 100,000) and 1,000 queries. Index: M = 16, ef_construction = 100 for every library.
//! taskdb: `TaskDb::put` of 1,000 entries a transaction, then `nearest(k = 10)` with raw
//! vectors (redb read transaction, HNSW, tombstone post-filter, exact re-score from redb
//! included), for each `ef_search` of `TASKDB_BENCH_EF`. The peers: `scripts/dense_peers.py`,
//! run by `TASKDB_BENCH_PYTHON` (default `.cache/bench-venv/bin/python`; see that script for
//! the pinned packages), on the same vectors written to `TASKDB_BENCH_DIR`.
//!
//! Prints one `RESULT bench=dense[-LIB] n= dim= ef= recall10= qps= p50_ms= p99_ms= build_s=
//! open_s=` line per library and ef, then `RESULT bench=dense-vs-peers … ratio=` with each
//! library's queries/s at recall@10 = 0.98 (linear interpolation between the two sweep
//! points around 0.98; `-` when a library never reaches it) and the ratio of taskdb's to the
//! best peer's. Memory: resident-set growth of opening the database (taskdb) or building
//! the index (peers), and bytes on disk, beside the raw vectors' N·d·4 bytes.
//! `TASKDB_BENCH_DENSE_LEAN=1` also measures each ef with `IndexParams::lean_dense`
//! (`bench=dense-lean`; `taskdb_lean=` and `ratio_lean=` on the last line).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use taskdb::{Filter, IndexParams, OpenOptions, Query, TaskDb};

use super::clustered::{centres, dataset, put_all, DIM};
use super::{env_list, env_usize, percentile};

const SPACE: &str = "bench";

fn exact_top10(q: &[f32], data: &[Vec<f32>]) -> Vec<u32> {
    super::clustered::exact_top10(q, data)
        .into_iter()
        .map(|i| i as u32)
        .collect()
}

fn write_f32(path: &Path, rows: &[Vec<f32>]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for r in rows {
        for x in r {
            f.write_all(&x.to_le_bytes()).expect("write");
        }
    }
    f.flush().expect("flush");
}

fn write_u32(path: &Path, rows: &[Vec<u32>]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for r in rows {
        for x in r {
            f.write_all(&x.to_le_bytes()).expect("write");
        }
    }
    f.flush().expect("flush");
}

/// Resident set size of this process, bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

fn disk_bytes(path: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    walk(path) + walk(&taskdb::files::index_dir(path))
}

/// One (ef, recall, q/s) point of a sweep.
#[derive(Clone, Copy, Debug)]
struct Point {
    recall: f64,
    qps: f64,
}

/// Queries/s at `target` recall: linear interpolation between the sweep points around it.
fn qps_at(points: &[Point], target: f64) -> Option<f64> {
    let mut ps = points.to_vec();
    ps.sort_by(|a, b| a.recall.total_cmp(&b.recall));
    let hi = ps.iter().position(|p| p.recall >= target)?;
    if hi == 0 || ps[hi].recall == target {
        return Some(ps[hi].qps);
    }
    let (a, b) = (ps[hi - 1], ps[hi]);
    let t = (target - a.recall) / (b.recall - a.recall);
    Some(a.qps + t * (b.qps - a.qps))
}

fn build(path: &Path, data: &[Vec<f32>]) -> f64 {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(path));
    let t = Instant::now();
    let db = TaskDb::open(path).expect("create");
    put_all(&db, SPACE, data);
    db.flush().expect("flush");
    t.elapsed().as_secs_f64()
}

pub fn dense(dir: &Path) {
    let n = env_usize("TASKDB_BENCH_DENSE_N", 100_000);
    let nq = env_usize("TASKDB_BENCH_DENSE_QUERIES", 1000);
    let efs = env_list("TASKDB_BENCH_EF", "16,24,32,48,64,96,128,192");
    let target = 0.98;
    let centres = centres();
    let data = dataset(n, 1, &centres);
    let queries = dataset(nq, 2, &centres);
    let truth: Vec<Vec<u32>> = {
        use rayon::prelude::*;
        queries.par_iter().map(|q| exact_top10(q, &data)).collect()
    };
    let raw = (n * DIM * 4) as f64;
    println!(
        "# dense: n {n}, dim {DIM}, {nq} queries, M 16, ef_construction 100, raw vectors {:.0} MiB",
        raw / 1048576.0
    );

    // taskdb: build once per run (the database is the bench's own).
    // TASKDB_BENCH_KEEP=1: reuse the database a previous run left in TASKDB_BENCH_DIR
    // (build_s then reads 0).
    let path = dir.join(format!("dense-{n}.taskdb"));
    let keep = env_usize("TASKDB_BENCH_KEEP", 0) != 0;
    let build_s = if keep && path.exists() {
        println!("# dense: reusing {} (TASKDB_BENCH_KEEP=1)", path.display());
        0.0
    } else {
        build(&path, &data)
    };
    let mut taskdb_points = Vec::new();
    let mut lean_points = Vec::new();
    // Each ef twice: through the graph exported to flat arrays (the default, `dense`), then
    // through hnsw_rs's own search of the same graph (`dense-hnsw_rs`, the baseline); with
    // TASKDB_BENCH_DENSE_LEAN=1 a third time with `IndexParams::lean_dense` (`dense-lean`: int8
    // rows only, exact scores read from the store).
    let lean_too = env_usize("TASKDB_BENCH_DENSE_LEAN", 0) != 0;
    let modes: Vec<(usize, bool, bool)> = efs
        .iter()
        .flat_map(|&ef| [(ef, false, false), (ef, true, false), (ef, false, true)])
        .filter(|m| lean_too || !m.2)
        .collect();
    for &(ef, hnsw_rs, lean) in &modes {
        taskdb::testing::set_hnsw_rs_search(hnsw_rs);
        let rss0 = rss_bytes();
        let t = Instant::now();
        let db = TaskDb::open_with(
            &path,
            OpenOptions {
                read_only: true,
                index: IndexParams {
                    ef_search: ef,
                    lean_dense: lean,
                    ..IndexParams::default()
                },
                ..OpenOptions::default()
            },
        )
        .expect("open");
        let open_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        db.nearest(&Query::dense(SPACE, queries[0].clone()), 10, &Filter::all())
            .expect("first query");
        let first_s = t.elapsed().as_secs_f64();
        // The warm-up passes `IndexParams::export_after` (16): the export is made in it.
        let t = Instant::now();
        for q in queries.iter().take(20) {
            db.nearest(&Query::dense(SPACE, q.clone()), 10, &Filter::all())
                .expect("warm-up");
        }
        let warm_s = t.elapsed().as_secs_f64();
        let mut ms = Vec::with_capacity(nq);
        let mut found = 0usize;
        let t_all = Instant::now();
        for (q, want) in queries.iter().zip(&truth) {
            let t = Instant::now();
            let hits = db
                .nearest(&Query::dense(SPACE, q.clone()), 10, &Filter::all())
                .expect("nearest");
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            found += hits
                .iter()
                .filter(|h| h.name[1..].parse::<u32>().is_ok_and(|i| want.contains(&i)))
                .count();
        }
        let qps = nq as f64 / t_all.elapsed().as_secs_f64();
        let rss = rss_bytes().saturating_sub(rss0);
        drop(db);
        ms.sort_by(f64::total_cmp);
        let recall = found as f64 / (10 * nq) as f64;
        let name = match (hnsw_rs, lean) {
            (true, _) => "dense-hnsw_rs",
            (false, true) => {
                lean_points.push(Point { recall, qps });
                "dense-lean"
            }
            (false, false) => {
                taskdb_points.push(Point { recall, qps });
                "dense"
            }
        };
        println!(
            "RESULT bench={name} n={n} dim={DIM} ef={ef} recall10={recall:.4} qps={qps:.0} \
             p50_ms={:.3} p99_ms={:.3} build_s={build_s:.1} open_s={open_s:.2} \
             first_query_s={first_s:.2} warm_up_s={warm_s:.2} rss_mib={:.0} disk_mib={:.0}",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            rss as f64 / 1048576.0,
            disk_bytes(&path) as f64 / 1048576.0
        );
    }

    taskdb::testing::set_hnsw_rs_search(false);

    // The peers, on the same vectors.
    let (xf, qf, tf) = (
        dir.join("dense-data.f32"),
        dir.join("dense-queries.f32"),
        dir.join("dense-truth.u32"),
    );
    write_f32(&xf, &data);
    write_f32(&qf, &queries);
    write_u32(&tf, &truth);
    drop(data);
    let python = std::env::var("TASKDB_BENCH_PYTHON")
        .unwrap_or_else(|_| ".cache/bench-venv/bin/python".into());
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dense_peers.py"))
        .args([
            "--data",
            xf.to_str().unwrap(),
            "--queries",
            qf.to_str().unwrap(),
        ])
        .args(["--truth", tf.to_str().unwrap(), "--dim", &DIM.to_string()])
        .args([
            "--ef",
            &efs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ])
        .stderr(std::process::Stdio::inherit())
        .output();
    let mut best_peer: Option<(String, f64)> = None;
    let mut peer_cells = String::new();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut by_lib: std::collections::BTreeMap<String, Vec<Point>> = Default::default();
            for line in text.lines() {
                println!("{line}");
                let field = |k: &str| {
                    line.split_whitespace()
                        .find_map(|f| f.strip_prefix(&format!("{k}=")))
                        .map(str::to_string)
                };
                if let (Some(b), Some(r), Some(q)) =
                    (field("bench"), field("recall10"), field("qps"))
                {
                    if let (Ok(recall), Ok(qps)) = (r.parse(), q.parse()) {
                        by_lib.entry(b).or_default().push(Point { recall, qps });
                    }
                }
            }
            for (lib, pts) in &by_lib {
                let q = qps_at(pts, target);
                peer_cells += &format!(
                    " {}={}",
                    lib.trim_start_matches("dense-"),
                    q.map_or("-".into(), |q| format!("{q:.0}"))
                );
                if let Some(q) = q {
                    if best_peer.as_ref().is_none_or(|b| q > b.1) {
                        best_peer = Some((lib.clone(), q));
                    }
                }
            }
        }
        Ok(o) => println!("# dense peers failed ({}): see stderr above", o.status),
        Err(e) => println!("# dense peers not run: {python}: {e} (see scripts/dense_peers.py)"),
    }
    let ours = qps_at(&taskdb_points, target);
    let ratio = match (ours, &best_peer) {
        (Some(a), Some((_, b))) => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    // With TASKDB_BENCH_DENSE_LEAN=1: `lean_dense`'s queries/s at the same recall and its
    // ratio to the same best peer, appended to the line.
    let lean_cells = match (lean_too, qps_at(&lean_points, target)) {
        (false, _) => String::new(),
        (true, q) => format!(
            " taskdb_lean={} ratio_lean={}",
            q.map_or("-".into(), |q| format!("{q:.0}")),
            match (q, &best_peer) {
                (Some(a), Some((_, b))) => format!("{:.2}", a / b),
                _ => "-".into(),
            }
        ),
    };
    println!(
        "RESULT bench=dense-vs-peers n={n} dim={DIM} recall10={target} qps={} taskdb={}{peer_cells} best_peer={} ratio={ratio}{lean_cells}",
        ours.map_or("-".into(), |q| format!("{q:.0}")),
        ours.map_or("-".into(), |q| format!("{q:.0}")),
        best_peer.map_or("-".into(), |b| b.0.trim_start_matches("dense-").to_string()),
    );
    for f in [&xf, &qf, &tf] {
        let _ = std::fs::remove_file(f);
    }
    if !keep {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
    }
}
