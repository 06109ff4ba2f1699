//! `matrix-sketch`: where the sketch path of a matrix space loses neighbours (issue 14).
//!
//! The population and queries of `matrix` (synthetic scatter-space low-rank values, d = 384,
//! ranks 1–19, near 64 shared directions; queries from seed 99), put 500 per transaction into a
//! database whose matrix exact-scan size is 0, so that `nearest` takes the sketch path.
//! (Until docs/PERFORMANCE.md §29 a matrix space also had an hnsw_rs graph over its sketches,
//! and the `matrix-sketch-graph` lines measured it; a matrix space's index is now the 4-bit
//! scan alone, which those lines measure.) The reference answers are the exact scan's (a second handle on the same file
//! with `exact_matrix_below = usize::MAX`), correct by construction. Then, for each candidate
//! count C, with k = 10, one query at a time on a rayon pool of one thread:
//!
//! * `matrix-sketch-flat`: every entry's sketch (`Space::index_vector`, the vector the graph
//!   holds) ranked by its dot product with the query's sketch, a plain f32 scan; the top C
//!   re-ranked exactly by taskdb (`taskdb::testing::nearest_reranking`). The best any index over
//!   these sketches can do with C candidates. `p50_ms` is the whole query, `cand_ms` the
//!   query's sketch, the scan and the selection of the top C;
//! * `matrix-sketch-graph`: the index's own first C candidates (the 4-bit sketch scan's,
//!   `taskdb::testing::graph_candidates`): `cand_recall10` (the exact top 10 among them),
//!   `overlap` (the share of the f32 flat top C among them: the 4-bit rows' loss against the
//!   sketch itself) and `cand_ms`; then the whole path asked for C candidates
//!   (`taskdb::testing::nearest_with_graph_want`): `recall10`, `p50_ms`;
//! * `matrix-sketch-graph C=plan`: the path as taskdb plans it (max(512, N/4) candidates);
//! * `matrix-sketch-scores`: for 20 queries, the exact scores at ranks 1 to 1000 and the
//!   error of the sketch's estimate of them ([`score_spread`]).
//!
//! `recall10` is the mean share of the exact top 10 in the answer's top 10 (after an exact
//! re-rank that is the share found among the candidates). `matrix-sketch-bound` is the sketch
//! bytes a flat scan reads (f32, f16, int8) over the single-core read bandwidth of `matrix`.
//!
//! Environment: `TASKDB_BENCH_N` (comma list, default 50000), `TASKDB_BENCH_QUERIES` (default
//! 100), `TASKDB_BENCH_SKETCH_C` (comma list, default 10,20,50,100,200,500,1000),
//! `TASKDB_BENCH_DIR`. On the shared 2-core VM a run takes about 5 minutes at 50k and 9 at
//! 100k, most of it `put` and sketching the entries again (docs/PERFORMANCE.md §15).

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use super::{
    build_with, directions, entry_rng, env_list, env_usize, low_rank, percentile, query_rng,
    read_bandwidth, recall10, run, stop_rule, Timed, SPACE,
};
use taskdb::{
    Embedding, EntryId, Filter, Hit, IndexParams, OpenOptions, Query, SearchOptions, SpaceSel,
    TaskDb,
};

const K: usize = 10;

fn opts(exact_matrix_below: usize) -> OpenOptions {
    OpenOptions {
        index: IndexParams {
            exact_matrix_below,
            ..IndexParams::default()
        },
        ..OpenOptions::default()
    }
}

fn p50(ms: &[f64]) -> f64 {
    let mut ms = ms.to_vec();
    ms.sort_by(f64::total_cmp);
    percentile(&ms, 0.5)
}

/// Share of `want`'s ids among `got`, averaged over the queries.
fn share(got: &[Vec<EntryId>], want: &[Vec<EntryId>]) -> f64 {
    let mut sum = 0.0;
    for (g, w) in got.iter().zip(want) {
        let found = w.iter().filter(|id| g.contains(id)).count();
        sum += found as f64 / w.len().max(1) as f64;
    }
    sum / got.len().max(1) as f64
}

/// Runs `f` for each query index one at a time on a rayon pool of one thread: ms and results.
fn timed<T: Send>(nq: usize, f: impl Fn(usize) -> T + Sync) -> (Vec<f64>, Vec<T>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| {
        (0..nq)
            .map(|i| {
                let t = Instant::now();
                let r = f(i);
                (t.elapsed().as_secs_f64() * 1e3, r)
            })
            .unzip()
    })
}

/// The indices of the `c` largest of `scores`, largest first.
fn top(scores: &[f32], c: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let c = c.min(idx.len());
    if c == 0 {
        return Vec::new();
    }
    let desc = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]);
    if c < idx.len() {
        idx.select_nth_unstable_by(c - 1, desc);
        idx.truncate(c);
    }
    idx.sort_by(desc);
    idx
}

/// Dot product of each `dim`-row of `rows` with `q`.
fn dots(rows: &[f32], q: &[f32]) -> Vec<f32> {
    rows.chunks_exact(q.len())
        .map(|r| {
            let mut acc = [0f32; 8];
            for (a, b) in r.chunks_exact(8).zip(q.chunks_exact(8)) {
                for l in 0..8 {
                    acc[l] += a[l] * b[l];
                }
            }
            acc.iter().sum()
        })
        .collect()
}

fn ids_of(hits: &[Vec<Hit>]) -> Vec<Vec<EntryId>> {
    hits.iter()
        .map(|h| h.iter().map(|h| h.id).collect())
        .collect()
}

fn line(name: &str, n: usize, c: &str, recall: f64, ms: &[f64], extra: &str) {
    println!(
        "RESULT bench={name} n={n} C={c} recall10={recall:.4} p50_ms={:.2} p99_ms={:.2}{extra} \
         queries={}",
        p50(ms),
        {
            let mut s = ms.to_vec();
            s.sort_by(f64::total_cmp);
            percentile(&s, 0.99)
        },
        ms.len()
    );
}

/// Exact top lists this long are read for [`score_spread`], for this many queries.
const DEEP: usize = 1000;
const DEEP_QUERIES: usize = 20;

/// Prints `matrix-sketch-scores`: the median over queries of the exact score at ranks 1, 10,
/// 50, 100, 500 and 1000, and the error of the sketch's estimate of those scores (the dot
/// product of unit sketches, unscaled from the graph's 0.9999) over all those pairs: its
/// standard deviation and mean. A sketch cannot order entries whose exact scores differ by
/// less than about that deviation.
fn score_spread(
    n: usize,
    deep: &[Vec<Hit>],
    values: &[Embedding],
    space: &taskdb::Space,
    ids: &[EntryId],
    sketches: &[f32],
) {
    let row: std::collections::HashMap<EntryId, usize> =
        ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
    let dim = sketches.len() / ids.len().max(1);
    let scale = 0.9999f64 * 0.9999;
    let ranks = [1usize, 10, 50, 100, 500, 1000];
    let mut at: Vec<Vec<f64>> = vec![Vec::new(); ranks.len()];
    let (mut s1, mut s2, mut m) = (0.0f64, 0.0f64, 0usize);
    for (hits, v) in deep.iter().zip(values) {
        let q = space.index_vector(v).expect("sketch");
        for (j, &r) in ranks.iter().enumerate() {
            if let Some(h) = hits.get(r - 1) {
                at[j].push(h.score as f64);
            }
        }
        for h in hits {
            let x = &sketches[row[&h.id] * dim..][..dim];
            let est = x
                .iter()
                .zip(&q)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
                / scale;
            let e = est - h.score as f64;
            s1 += e;
            s2 += e * e;
            m += 1;
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            percentile(v, 0.5)
        }
    };
    let mean = s1 / m.max(1) as f64;
    let sd = (s2 / m.max(1) as f64 - mean * mean).max(0.0).sqrt();
    let cols: Vec<String> = ranks
        .iter()
        .zip(at.iter_mut())
        .map(|(r, v)| format!("s{r}={:.4}", med(v)))
        .collect();
    println!(
        "RESULT bench=matrix-sketch-scores n={n} {} sketch_err_sd={sd:.4} sketch_err_mean={mean:.4} \
         queries={}",
        cols.join(" "),
        deep.len()
    );
}

/// Every entry's sketch (the vector the graph holds), drawn again in `put` order, row after row.
fn entry_sketches(space: &taskdb::Space, n: usize, dirs: &[Vec<f32>]) -> Vec<f32> {
    let mut erng = entry_rng();
    let mut sketches: Vec<f32> = Vec::new();
    for _ in 0..n {
        let e = Embedding::LowRank(low_rank(&mut erng, dirs));
        sketches.extend(space.index_vector(&e).expect("sketch"));
    }
    sketches
}

/// `TASKDB_BENCH_QUERIES` (default 100) query values of `matrix`'s kind (query seed), and the
/// same as queries in the bench's space.
fn bench_queries() -> (Vec<Embedding>, Vec<Query>) {
    let nq = env_usize("TASKDB_BENCH_QUERIES", 100).max(2);
    let dirs = directions();
    let mut rng = query_rng();
    let values: Vec<Embedding> = (0..nq)
        .map(|_| Embedding::LowRank(low_rank(&mut rng, &dirs)))
        .collect();
    let queries: Vec<Query> = values
        .iter()
        .map(|e| Query::Vector {
            space: SpaceSel::Name(SPACE.into()),
            embedding: e.clone(),
        })
        .collect();
    (values, queries)
}

pub fn matrix_sketch(dir: &Path) {
    let ns = env_list("TASKDB_BENCH_N", "50000");
    let cs = env_list("TASKDB_BENCH_SKETCH_C", "10,20,50,100,200,500,1000");
    let (values, queries) = bench_queries();
    let nq = values.len();
    let dirs = directions();
    let all = Filter::all();
    let so = SearchOptions::default();
    let ef_search = IndexParams::default().ef_search;
    for n in ns {
        let wall = Instant::now();
        let path = dir.join(format!("knn-sketch-{n}.taskdb"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
        let (put_s, ids) = build_with(&path, n, &dirs, opts(0));
        println!(
            "# n={n}: put {put_s:.1} s ({:.0} entries/s), graph M = {}, ef_construction = {}",
            n as f64 / put_s,
            IndexParams::default().m,
            IndexParams::default().ef_construction
        );

        // The exact answers: a handle that scans exactly (its first two queries build the
        // arena and are not timed).
        let db = TaskDb::open_with(&path, opts(usize::MAX)).expect("open");
        let knn = |q: &Query| db.nearest_with(q, K, &all, &so).expect("knn").0;
        run(&queries[..2], knn);
        let exact: Timed = run(&queries, knn);
        let want = ids_of(&exact.hits);
        line("matrix-sketch-exact", n, "all", 1.0, &exact.ms, "");
        // The exact top DEEP of a few queries: how far apart the scores are, and (below)
        // how far the sketch's estimate of each is from it.
        let nd = nq.min(DEEP_QUERIES);
        let deep = run(&queries[..nd], |q| {
            db.nearest_with(q, DEEP.min(n), &all, &so).expect("knn").0
        });
        drop(db);

        // The sketch path's handle; every entry's sketch, drawn again in `put` order.
        let db = TaskDb::open_with(&path, opts(0)).expect("open");
        let space = db.space(SPACE).expect("space");
        let t = Instant::now();
        let sketches = entry_sketches(&space, n, &dirs);
        let dim = sketches.len() / n.max(1);
        println!(
            "# n={n}: {n} sketches of {dim} dims in {:.1} s; {:.1} s into the run",
            t.elapsed().as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
        score_spread(n, &deep.hits, &values[..nd], &space, &ids, &sketches);
        // Warm the graph path (graph load, arena build) on two queries.
        let knn = |q: &Query| db.nearest_with(q, K, &all, &so).expect("knn").0;
        run(&queries[..2], knn);

        for &c in &cs {
            // Flat: the top C by sketch dot product, then taskdb's exact re-rank of them.
            let cand_ms = Mutex::new(Vec::new());
            let flat_top = Mutex::new(Vec::new());
            let (ms, hits) = timed(nq, |i| {
                let t = Instant::now();
                let q = space.index_vector(&values[i]).expect("sketch");
                let s = dots(&sketches, &q);
                let cand: Vec<EntryId> = top(&s, c).into_iter().map(|r| ids[r]).collect();
                cand_ms
                    .lock()
                    .expect("lock")
                    .push(t.elapsed().as_secs_f64() * 1e3);
                flat_top.lock().expect("lock").push((i, cand.clone()));
                taskdb::testing::nearest_reranking(&db, &queries[i], K, &all, &so, cand)
                    .expect("rerank")
                    .0
            });
            let mut flat_top = flat_top.into_inner().expect("lock");
            flat_top.sort_by_key(|(i, _)| *i);
            let flat_top: Vec<Vec<EntryId>> = flat_top.into_iter().map(|(_, v)| v).collect();
            let cand_ms = cand_ms.into_inner().expect("lock");
            line(
                "matrix-sketch-flat",
                n,
                &c.to_string(),
                recall10(&hits, &exact.hits),
                &ms,
                &format!(
                    " cand_recall10={:.4} cand_ms={:.2}",
                    share(&flat_top, &want),
                    p50(&cand_ms)
                ),
            );

            // Graph: its own first C candidates, then the whole path asked for C.
            let ef = ef_search.max(c);
            let (gms, graph_top) = timed(nq, |i| {
                taskdb::testing::graph_candidates(&db, SPACE, &values[i], c, ef).expect("graph")
            });
            let (ms, hits) = timed(nq, |i| {
                taskdb::testing::nearest_with_graph_want(&db, &queries[i], K, &all, &so, c)
                    .expect("knn")
                    .0
            });
            line(
                "matrix-sketch-graph",
                n,
                &c.to_string(),
                recall10(&hits, &exact.hits),
                &ms,
                &format!(
                    " ef={ef} cand_recall10={:.4} overlap={:.4} cand_ms={:.2}",
                    share(&graph_top, &want),
                    share(&graph_top, &flat_top),
                    p50(&gms)
                ),
            );
        }

        // The path as planned: max(512, N/4) candidates.
        let plan_c = (n / 4).max(512).min(n);
        let planned = run(&queries, knn);
        line(
            "matrix-sketch-graph",
            n,
            &format!("plan({plan_c})"),
            recall10(&planned.hits, &exact.hits),
            &planned.ms,
            "",
        );
        drop(db);

        let bytes = sketches.len() * 4;
        let gbs = read_bandwidth(bytes);
        let at = |b: usize| b as f64 / (gbs * 1e9) * 1e3;
        println!(
            "RESULT bench=matrix-sketch-bound n={n} dims={dim} read_gbs={gbs:.2} \
             f32_bytes={bytes} f32_ms={:.2} f16_ms={:.2} int8_ms={:.2}",
            at(bytes),
            at(bytes / 2),
            at(bytes / 4)
        );
        println!("# n={n}: wall {:.1} s", wall.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
    }
}

/// `matrix-stop`: data to calibrate an adaptive stop rule (issue 14; `benches/common/stop_rule.rs`
/// says the rule and what is simulated). The database, queries and exact answers of
/// `matrix-sketch`; for each query every entry's sketch similarity (the dot product of the
/// index vectors, unscaled from the graph's 0.9999²), the top max(512, N/4) by it re-ranked
/// exactly by taskdb (`nearest_reranking` with k = that count: their exact scores), and the
/// whole graph path's time at each C of the rule's schedule (`nearest_with_graph_want`, one
/// query at a time, one thread), from which each query's latency at its stopping C is taken.
pub fn matrix_stop(dir: &Path) {
    let ns = env_list("TASKDB_BENCH_N", "50000");
    let (values, queries) = bench_queries();
    let nq = values.len();
    let dirs = directions();
    let all = Filter::all();
    let so = SearchOptions::default();
    let scale = 0.9999f32 * 0.9999;
    for n in ns {
        let wall = Instant::now();
        let path = dir.join(format!("knn-stop-{n}.taskdb"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
        let (put_s, ids) = build_with(&path, n, &dirs, opts(0));
        println!("# n={n}: put {put_s:.1} s");
        let db = TaskDb::open_with(&path, opts(usize::MAX)).expect("open");
        let knn = |q: &Query| db.nearest_with(q, K, &all, &so).expect("knn").0;
        run(&queries[..2], knn);
        let exact: Timed = run(&queries, knn);
        let want = ids_of(&exact.hits);
        drop(db);

        let db = TaskDb::open_with(&path, opts(0)).expect("open");
        let space = db.space(SPACE).expect("space");
        let t = Instant::now();
        let sketches = entry_sketches(&space, n, &dirs);
        println!(
            "# n={n}: sketches in {:.1} s; {:.1} s into the run",
            t.elapsed().as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
        let sched = stop_rule::schedule(n, K);
        let cap = *sched.last().expect("schedule");
        let t = Instant::now();
        let cands: Vec<stop_rule::Cands> = (0..nq)
            .map(|i| {
                let q = space.index_vector(&values[i]).expect("sketch");
                let s = dots(&sketches, &q);
                let order = top(&s, cap);
                let cand: Vec<EntryId> = order.iter().map(|&r| ids[r]).collect();
                let hits = taskdb::testing::nearest_reranking(
                    &db,
                    &queries[i],
                    cap,
                    &all,
                    &so,
                    cand.clone(),
                )
                .expect("rerank")
                .0;
                let ex: std::collections::HashMap<EntryId, f32> =
                    hits.iter().map(|h| (h.id, h.score)).collect();
                assert_eq!(ex.len(), cand.len(), "every candidate re-ranked");
                stop_rule::Cands {
                    sketch: order.iter().map(|&r| s[r] / scale).collect(),
                    exact: cand.iter().map(|id| ex[id]).collect(),
                    hit: cand.iter().map(|id| want[i].contains(id)).collect(),
                }
            })
            .collect();
        println!(
            "# n={n}: exact scores of the top {cap} by sketch in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        // Warm the graph path, then time it at each C of the schedule.
        let knn = |q: &Query| db.nearest_with(q, K, &all, &so).expect("knn").0;
        run(&queries[..2], knn);
        let mut lat = vec![Vec::new(); nq];
        for &c in &sched {
            let (ms, _) = timed(nq, |i| {
                taskdb::testing::nearest_with_graph_want(&db, &queries[i], K, &all, &so, c)
                    .expect("knn")
                    .0
                    .len()
            });
            for (l, m) in lat.iter_mut().zip(ms) {
                l.push(m);
            }
        }
        stop_rule::simulate("matrix-stop", n, K, &cands, Some(&lat), cap);
        drop(db);
        println!("# n={n}: wall {:.1} s", wall.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));
    }
}
