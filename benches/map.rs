//! Map benchmark (a bench binary, not a timed test): `TaskDb::map` with each layout, and
//! writing the PNG and the HTML, against the n exact knn queries a map makes (its similarity
//! matrix), measured in the same run. Median of R rounds.
//!
//! Spaces: dense (384-d external vectors, like MiniLM's) and matrix (fisher-style low-rank
//! 384×384 matrices of rank 4), random entries.
//!
//! Run: `cargo bench -p taskdb --bench map` (defaults: N = 200,1000,2000; 3 rounds).
//! Environment: `TASKDB_BENCH_N` (comma list), `TASKDB_BENCH_ROUNDS`.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{
    Embedding, Filter, Kind, LowRank, MapLayout, MapOptions, MethodKind, MethodParams, NewEntry,
    NewVector, Query, RenderOptions, SpaceRef, TaskDb, TaskSpaceParams,
};

const DIM: usize = 384;
const RANK: usize = 4;

fn dense(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn low_rank(rng: &mut ChaCha8Rng) -> LowRank {
    LowRank {
        dim: DIM,
        u: (0..RANK).flat_map(|_| dense(rng)).collect(),
        s: (0..RANK).map(|i| 2.0 / (i + 1) as f32).collect(),
    }
}

fn build(db: &TaskDb, n: usize, matrix: bool) {
    let def = TaskSpaceParams::new(MethodKind::Fisher, MethodParams::default(), None).into_def(
        "fisher:bench".into(),
        DIM as u32,
        "surrogate-fp",
        "probe-fp",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let batch = (0..n)
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

fn main() {
    let ns: Vec<usize> = std::env::var("TASKDB_BENCH_N")
        .unwrap_or_else(|_| "200,1000,2000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("TASKDB_BENCH_N: numbers"))
        .collect();
    let rounds: usize = std::env::var("TASKDB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    println!("| entries | space | n knn queries s | map tsne s | map pca s | write png s | write html s | tsne/knn |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &ns {
        for matrix in [false, true] {
            let db = TaskDb::open(dir.path().join(format!("m{n}-{matrix}.taskdb"))).unwrap();
            build(&db, n, matrix);
            let method = if matrix { "fisher" } else { "dense" };
            let names: Vec<String> = (0..n).map(|i| format!("t{i:06}")).collect();
            let f = Filter::all().method(method);
            let opts = |layout| MapOptions {
                method: Some(method.into()),
                layout,
                ..MapOptions::default()
            };
            let (mut knn, mut tsne, mut pca, mut png, mut html) =
                (vec![], vec![], vec![], vec![], vec![]);
            for r in 0..rounds {
                knn.push(
                    timed(|| {
                        for q in &names {
                            db.nearest(&Query::entry(q).unwrap(), n, &f).unwrap();
                        }
                    })
                    .0,
                );
                let (t, m) = timed(|| db.map(&opts(MapLayout::Tsne)).unwrap());
                tsne.push(t);
                pca.push(timed(|| db.map(&opts(MapLayout::Pca)).unwrap()).0);
                let o = RenderOptions::default();
                let p = dir.path().join(format!("m{r}.png"));
                png.push(timed(|| m.write(&p, &o).unwrap()).0);
                let h = dir.path().join(format!("m{r}.html"));
                html.push(timed(|| m.write(&h, &o).unwrap()).0);
            }
            let (k, t) = (median(knn), median(tsne));
            println!(
                "| {n} | {} | {k:.3} | {t:.3} | {:.3} | {:.3} | {:.3} | {:.2} |",
                if matrix {
                    "matrix (rank 4)"
                } else {
                    "dense 384"
                },
                median(pca),
                median(png),
                median(html),
                t / k
            );
        }
    }
}
