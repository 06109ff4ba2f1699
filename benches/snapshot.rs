//! Snapshot benchmark (a bench binary, not a timed test): `snapshot create`, `snapshot verify`
//! and opening a snapshot (verify + decode), against a plain copy of the database file (with
//! fsync, as a snapshot is fsynced) measured in the same run, alternating, median of R rounds.
//! Also the two exports (issue 13), once per database.
//!
//! Spaces: dense (384-d external vectors, like MiniLM's) and matrix (fisher-style low-rank
//! 384×384 matrices of rank 4). Graphs are built with small HNSW parameters, since snapshots do
//! not read them.
//!
//! Run: `cargo bench -p taskdb --bench snapshot` (defaults: N = 10000,100000; 3 rounds).
//! Environment: `TASKDB_BENCH_N` (comma list), `TASKDB_BENCH_ROUNDS`, `TASKDB_BENCH_DIR`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{
    Embedding, IndexParams, Kind, LowRank, MethodKind, MethodParams, NewEntry, NewVector,
    OpenOptions, Snapshot, SnapshotOptions, SpaceRef, TaskDb, TaskSpaceParams,
};

const DIM: usize = 384;
const RANK: usize = 4;

fn dense(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn low_rank(rng: &mut ChaCha8Rng) -> LowRank {
    let mut cols: Vec<Vec<f32>> = (0..RANK).map(|_| dense(rng)).collect();
    for j in 0..RANK {
        for p in 0..j {
            let d: f32 = cols[j].iter().zip(&cols[p]).map(|(a, b)| a * b).sum();
            let prev = cols[p].clone();
            cols[j].iter_mut().zip(prev).for_each(|(a, b)| *a -= d * b);
        }
        let n = cols[j].iter().map(|x| x * x).sum::<f32>().sqrt();
        cols[j].iter_mut().for_each(|x| *x /= n);
    }
    LowRank {
        dim: DIM,
        u: cols.concat(),
        s: (0..RANK).map(|i| 2.0 / (i + 1) as f32).collect(),
    }
}

fn build(path: &Path, n: usize, matrix: bool) {
    let db = TaskDb::open_with(
        path,
        OpenOptions {
            index: IndexParams {
                m: 4,
                ef_construction: 16,
                ..IndexParams::default()
            },
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let def = TaskSpaceParams::new(MethodKind::Fisher, MethodParams::default(), None).into_def(
        "fisher:bench".into(),
        DIM as u32,
        "surrogate-fp",
        "probe-fp",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for start in (0..n).step_by(5000) {
        let batch = (start..(start + 5000).min(n))
            .map(|i| {
                let name = format!("t{i:06}");
                if matrix {
                    NewEntry {
                        name,
                        kind: Kind::Dataset,
                        vectors: vec![NewVector {
                            method: "fisher".into(),
                            space: SpaceRef::Def(def.clone()),
                            embedding: Embedding::LowRank(low_rank(&mut rng)),
                        }],
                        tags: BTreeMap::new(),
                        provenance: Default::default(),
                    }
                } else {
                    NewEntry::external(name, Kind::Dataset, "dense", dense(&mut rng))
                }
            })
            .collect();
        db.put(batch).unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let ns: Vec<usize> = std::env::var("TASKDB_BENCH_N")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("TASKDB_BENCH_N: numbers"))
        .collect();
    let rounds: usize = std::env::var("TASKDB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let base = std::env::var("TASKDB_BENCH_DIR").ok();
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!(
        "| entries | space | db MB | snapshot MB | copy s | create s | verify s | open s | create/copy | verify/copy | export jsonl s (MB) | export parquet s (MB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &ns {
        for matrix in [false, true] {
            let db = dir.path().join(format!("b{n}-{matrix}.taskdb"));
            let t = Instant::now();
            build(&db, n, matrix);
            eprintln!(
                "built {n} {} in {:.1} s",
                if matrix { "matrix" } else { "dense" },
                t.elapsed().as_secs_f64()
            );
            let (mut copy, mut create, mut verify, mut open) = (vec![], vec![], vec![], vec![]);
            let mut snap_bytes = 0;
            for r in 0..rounds {
                let c = dir.path().join(format!("copy{r}"));
                let t = Instant::now();
                std::fs::copy(&db, &c).unwrap();
                std::fs::File::open(&c).unwrap().sync_all().unwrap();
                copy.push(t.elapsed().as_secs_f64());
                std::fs::remove_file(&c).unwrap();

                let s = dir.path().join(format!("s{r}.tdbsnap"));
                let t = Instant::now();
                Snapshot::create(&db, &s, &SnapshotOptions::default()).unwrap();
                create.push(t.elapsed().as_secs_f64());
                snap_bytes = std::fs::metadata(&s).unwrap().len();

                let t = Instant::now();
                let rep = Snapshot::verify(&s, None).unwrap();
                verify.push(t.elapsed().as_secs_f64());
                assert!(rep.ok, "{:?}", rep.problems);

                let t = Instant::now();
                let snap = Snapshot::open(&s).unwrap();
                open.push(t.elapsed().as_secs_f64());
                assert_eq!(snap.manifest().entries.len(), n);
                drop(snap);
                std::fs::remove_file(&s).unwrap();
            }
            // Export (issue 13), once per size: from a read-only handle, as `taskdb export` does.
            let (jsonl_s, jsonl_mb, pq_s, pq_mb) = {
                let h = TaskDb::open_read_only(&db).unwrap();
                let j = dir.path().join("export.jsonl");
                let t = Instant::now();
                h.export_jsonl(&j).unwrap();
                let js = t.elapsed().as_secs_f64();
                let jm = std::fs::metadata(&j).unwrap().len() as f64 / 1e6;
                std::fs::remove_file(&j).unwrap();
                let p = dir.path().join("export.parquet");
                let t = Instant::now();
                let r = h.export_parquet(&p).unwrap();
                let ps = t.elapsed().as_secs_f64();
                let pm = r
                    .files
                    .iter()
                    .map(|f| std::fs::metadata(f).unwrap().len())
                    .sum::<u64>() as f64
                    / 1e6;
                std::fs::remove_dir_all(&p).unwrap();
                (js, jm, ps, pm)
            };
            let db_bytes = std::fs::metadata(&db).unwrap().len();
            let (cp, cr, ve, op) = (median(copy), median(create), median(verify), median(open));
            println!(
                "| {n} | {} | {:.1} | {:.1} | {cp:.3} | {cr:.3} | {ve:.3} | {op:.3} | {:.1} | {:.1} | {jsonl_s:.2} ({jsonl_mb:.0}) | {pq_s:.2} ({pq_mb:.0}) |",
                if matrix { "matrix 384×384 rank 4" } else { "dense 384" },
                db_bytes as f64 / 1e6,
                snap_bytes as f64 / 1e6,
                cr / cp,
                ve / cp
            );
            std::fs::remove_file(&db).unwrap();
            let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&db));
        }
    }
}
