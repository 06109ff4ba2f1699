//! Matrix-valued (low-rank) task spaces: the HNSW graph holds sketches, candidates are re-ranked
//! exactly, and the answers equal an exact scan.

mod engine_common;

use std::collections::BTreeMap;

use engine_common::orthonormal;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{
    Embedding, Filter, IndexParams, Kind, LowRank, MethodKind, MethodParams, NewEntry, NewVector,
    OpenOptions, Query, SearchOptions, SearchPath, SpaceRef, TaskDb, TaskSpaceParams,
};

const DIM: usize = 16;
const RANK: usize = 3;

/// Clustered random low-rank symmetric matrices: each near one of `clusters` centres.
fn low_ranks(n: usize, clusters: usize, seed: u64) -> Vec<LowRank> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<Vec<f32>>> = (0..clusters)
        .map(|_| {
            (0..RANK)
                .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            let cols: Vec<Vec<f32>> = centres[i % clusters]
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|x| x + rng.random_range(-0.4f32..0.4))
                        .collect()
                })
                .collect();
            let mut s: Vec<f32> = (0..RANK).map(|_| rng.random_range(0.1f32..2.0)).collect();
            s.sort_by(|a, b| b.total_cmp(a));
            LowRank {
                dim: DIM,
                u: orthonormal(cols),
                s,
            }
        })
        .collect()
}

/// Exact cosine of two symmetric matrices (Frobenius), computed densely here.
fn frob_cos(a: &LowRank, b: &LowRank) -> f64 {
    let (da, db) = (a.to_dense(), b.to_dense());
    let dot: f64 = da.iter().zip(&db).map(|(x, y)| x * y).sum();
    let n = |m: &[f64]| m.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (n(&da) * n(&db))
}

fn open(path: &std::path::Path, brute_force_below: usize) -> TaskDb {
    TaskDb::open_with(
        path,
        OpenOptions {
            index: IndexParams {
                brute_force_below,
                exact_matrix_below: brute_force_below,
                ..IndexParams::default()
            },
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

/// Entry `t{i}` (datasets at even i, models at odd i) with one fisher vector in `def`.
fn fisher_entry(i: usize, l: &LowRank, def: &taskdb::SpaceDef) -> NewEntry {
    NewEntry {
        name: format!("t{i}"),
        kind: if i.is_multiple_of(2) {
            Kind::Dataset
        } else {
            Kind::Model
        },
        vectors: vec![NewVector {
            method: "fisher".into(),
            space: SpaceRef::Def(def.clone()),
            embedding: Embedding::LowRank(l.clone()),
        }],
        tags: BTreeMap::new(),
        provenance: Default::default(),
    }
}

#[test]
fn the_sketch_path_with_exact_reranking_equals_an_exact_scan() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("rr.taskdb");
    let n = 3000;
    let items = low_ranks(n, 40, 7);
    // Fisher spaces need no reference: the exact score is the plain Frobenius cosine.
    let def = TaskSpaceParams::new(MethodKind::Fisher, MethodParams::default(), None).into_def(
        "fisher:test".into(),
        DIM as u32,
        "surrogate-fp",
        "probe-fp",
    );
    {
        let db = open(&path, 16);
        let entries: Vec<NewEntry> = items
            .iter()
            .enumerate()
            .map(|(i, l)| fisher_entry(i, l, &def))
            .collect();
        db.put(entries).unwrap();
    }
    let k = 10;
    let queries: Vec<Query> = low_ranks(8, 40, 99)
        .into_iter()
        .map(|q| Query::Vector {
            space: taskdb::SpaceSel::Name("fisher:test".into()),
            embedding: Embedding::LowRank(q),
        })
        .chain(["t0", "t1", "t1234"].map(|n| Query::entry(n).unwrap()))
        .collect();
    // Entry queries are also narrowed by kind (filtered graph search).
    let filter = |q: &Query| match q {
        Query::Entry(_) => Filter::all().kind(Kind::Model),
        _ => Filter::all(),
    };
    let run_all = |brute_force_below: usize| -> Vec<(Vec<taskdb::Hit>, SearchPath)> {
        let db = open(&path, brute_force_below);
        queries
            .iter()
            .map(|q| db.nearest_explain(q, k, &filter(q)).unwrap())
            .collect()
    };
    let graph = run_all(16);
    let exact = run_all(usize::MAX);
    let names = |h: &[taskdb::Hit]| h.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    for (qi, ((hits, p), (ex, p2))) in graph.iter().zip(&exact).enumerate() {
        // A matrix space: the flat sketch scan, answered by its stop rule or its exact fallback.
        assert!(
            matches!(
                p,
                SearchPath::SketchScan | SearchPath::SketchScanThenBruteForce
            ),
            "query {qi} did not take the sketch path: {p:?}"
        );
        assert_eq!(*p2, SearchPath::BruteForce);
        assert_eq!(hits.len(), k);
        assert_eq!(
            names(hits),
            names(ex),
            "query {qi}: graph answer != exact scan"
        );
        for (a, b) in hits.iter().zip(ex) {
            assert_eq!(a.score.to_bits(), b.score.to_bits(), "query {qi}");
        }
        // The exact scan agrees with an independent dense computation.
        let (q, exclude) = match &queries[qi] {
            Query::Vector {
                embedding: Embedding::LowRank(l),
                ..
            } => (l.clone(), None),
            Query::Entry(r) => {
                let i: usize = r.to_string().trim_start_matches('t').parse().unwrap();
                (items[i].clone(), Some(i))
            }
            other => panic!("{other:?}"),
        };
        let mut mine: Vec<(f64, usize)> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != exclude && (exclude.is_none() || i % 2 == 1))
            .map(|(i, l)| (frob_cos(&q, l), i))
            .collect();
        mine.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<String> = mine[..k].iter().map(|(_, i)| format!("t{i}")).collect();
        assert_eq!(names(hits), want, "query {qi}");
        for (h, (s, _)) in hits.iter().zip(&mine) {
            assert!(
                (h.score as f64 - s).abs() < 1e-4,
                "query {qi}: {} vs {s}",
                h.score
            );
        }
    }
}

fn dense_unit(l: &LowRank) -> Vec<f64> {
    let m = l.to_dense();
    let n = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    m.into_iter().map(|x| x / n).collect()
}

/// Centred cosine of unit-normalised matrices, computed densely here.
fn centred_cos(a: &[f64], b: &[f64], r: &[f64]) -> f64 {
    let ca: Vec<f64> = a.iter().zip(r).map(|(x, y)| x - y).collect();
    let cb: Vec<f64> = b.iter().zip(r).map(|(x, y)| x - y).collect();
    let dot: f64 = ca.iter().zip(&cb).map(|(x, y)| x * y).sum();
    let n = |m: &[f64]| m.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (n(&ca) * n(&cb))
}

#[test]
fn live_centring_uses_the_live_library_mean_and_follows_changes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("lib.taskdb");
    let items = low_ranks(41, 4, 11);
    let def = TaskSpaceParams::new(MethodKind::Fisher, MethodParams::default(), None).into_def(
        "fisher:lib".into(),
        DIM as u32,
        "surrogate-fp",
        "probe-fp",
    );
    let entry = |i: usize, l: &LowRank| fisher_entry(i, l, &def);
    let db = open(&path, 16);
    db.put(
        items[..40]
            .iter()
            .enumerate()
            .map(|(i, l)| entry(i, l))
            .collect(),
    )
    .unwrap();
    db.delete(&"t39".parse().unwrap()).unwrap();
    let lib = SearchOptions {
        centring: taskdb::Centring::Live,
    };
    let q = Query::entry("t0").unwrap();
    let check = |live: &[usize]| {
        let units: Vec<Vec<f64>> = live.iter().map(|&i| dense_unit(&items[i])).collect();
        let mut r = vec![0.0f64; DIM * DIM];
        for u in &units {
            for (a, b) in r.iter_mut().zip(u) {
                *a += b / live.len() as f64;
            }
        }
        let (hits, path) = db.nearest_with(&q, 100, &Filter::all(), &lib).unwrap();
        assert_eq!(path, SearchPath::BruteForce);
        assert_eq!(hits.len(), live.len() - 1, "every live entry but the query");
        let mut want: Vec<(f64, String)> = live
            .iter()
            .zip(&units)
            .filter(|(&i, _)| i != 0)
            .map(|(&i, u)| (centred_cos(&units[0], u, &r), format!("t{i}")))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (h, (s, name)) in hits.iter().zip(&want) {
            assert_eq!(&h.name, name);
            assert!(
                (h.score as f64 - s).abs() < 1e-4,
                "{}: {} vs {s}",
                h.name,
                h.score
            );
        }
        hits
    };
    let frozen_before = db.nearest(&q, 100, &Filter::all()).unwrap();
    let live: Vec<usize> = (0..39).collect();
    let before = check(&live);
    // The library answer differs from the frozen (uncentred) one.
    assert!(before
        .iter()
        .zip(&frozen_before)
        .any(|(a, b)| (a.score - b.score).abs() > 1e-3));
    // Adding an entry moves library scores (the cached centre is rebuilt) but no frozen score.
    db.put(vec![entry(40, &items[40])]).unwrap();
    let mut live2 = live.clone();
    live2.push(40);
    let after = check(&live2);
    assert!(after.iter().any(|h| before
        .iter()
        .any(|b| b.name == h.name && (b.score - h.score).abs() > 1e-6)));
    let frozen_after = db.nearest(&q, 100, &Filter::all()).unwrap();
    for b in &frozen_before {
        let a = frozen_after.iter().find(|a| a.name == b.name).unwrap();
        assert_eq!(a.score.to_bits(), b.score.to_bits());
    }
    // A filter narrows the hits, not the library.
    let models = db
        .nearest_with(&q, 100, &Filter::all().kind(Kind::Model), &lib)
        .unwrap()
        .0;
    for m in &models {
        let h = after.iter().find(|h| h.name == m.name).unwrap();
        assert_eq!(m.score.to_bits(), h.score.to_bits());
    }
    // Imported (external) spaces have no method to centre: a clear error, not a panic.
    db.put(vec![NewEntry {
        name: "ext".into(),
        kind: Kind::Dataset,
        vectors: vec![NewVector {
            method: "ext".into(),
            space: SpaceRef::External("imported".into()),
            embedding: Embedding::Dense(vec![1.0, 0.0, 0.5]),
        }],
        tags: BTreeMap::new(),
        provenance: Default::default(),
    }])
    .unwrap();
    let err = db
        .nearest_with(&Query::entry("ext").unwrap(), 3, &Filter::all(), &lib)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("live centring applies to task spaces"),
        "{err}"
    );
}
