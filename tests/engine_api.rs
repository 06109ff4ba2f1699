//! Engine behaviour through the public API: persistence, versions, delete/compact, filters,
//! exactness, search paths, concurrency.

mod engine_common;

use engine_common::*;
use taskdb::{
    EntryRef, Error, Filter, IndexParams, Kind, NewEntry, OpenOptions, Query, SearchPath, SpaceDef,
    SpaceRef, TaskDb,
};

fn tmp() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.taskdb");
    (d, p)
}

#[test]
fn persistence_across_reopen() {
    let (_d, p) = tmp();
    let vecs = clustered(50, 16, 5, 1);
    {
        let db = TaskDb::open(&p).unwrap();
        db.put(entries("e", "s", &vecs)).unwrap();
    }
    let db = TaskDb::open_read_only(&p).unwrap();
    let e = db.get(&EntryRef::parse("e7").unwrap()).unwrap();
    assert_eq!(e.kind, Kind::Model);
    assert_eq!(e.version, 1);
    assert_eq!(e.vectors["s"].1.as_dense().unwrap(), vecs[7].as_slice());
    assert_eq!(e.tags["parity"], "odd");
    assert_eq!(e.provenance.taskdb_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(db.list(&Filter::all()).unwrap().len(), 50);
    let st = db.stats().unwrap();
    assert_eq!((st.datasets, st.models), (25, 25));
    assert_eq!(
        st.spaces[0].index, "loaded",
        "graph persisted on close is reused"
    );
}

#[test]
fn versions_and_latest_only_in_knn() {
    let (_d, p) = tmp();
    let db = TaskDb::open(&p).unwrap();
    db.put(vec![
        NewEntry::external("a", Kind::Dataset, "s", vec![1.0, 0.0, 0.0]),
        NewEntry::external("b", Kind::Dataset, "s", vec![0.0, 1.0, 0.0]),
    ])
    .unwrap();
    db.put(vec![NewEntry::external(
        "a",
        Kind::Dataset,
        "s",
        vec![0.5, 0.5, 0.0],
    )])
    .unwrap();
    assert_eq!(db.get(&EntryRef::parse("a").unwrap()).unwrap().version, 2);
    let a1 = db.get(&EntryRef::parse("a@1").unwrap()).unwrap();
    assert_eq!(a1.version, 1);
    assert!(!a1.latest);
    assert!(matches!(
        db.get(&EntryRef::parse("a@3").unwrap()),
        Err(Error::NotFound { .. })
    ));
    // Query near a@1's vector: only latest versions come back, a@1 is superseded.
    let hits = db
        .nearest(&Query::dense("s", vec![1.0, 0.0, 0.0]), 10, &Filter::all())
        .unwrap();
    let names: Vec<_> = hits.iter().map(|h| (h.name.as_str(), h.version)).collect();
    assert_eq!(names, vec![("a", 2), ("b", 1)]);
    // Querying by the old version excludes exactly that entry; a@2 is a different entry.
    let hits = db
        .nearest(&Query::entry("a@1").unwrap(), 10, &Filter::all())
        .unwrap();
    assert_eq!(hits.len(), 2);
    let all = db
        .list(&Filter {
            all_versions: true,
            ..Filter::all()
        })
        .unwrap();
    assert_eq!(all.len(), 3);
}

#[test]
fn delete_and_compact() {
    let (_d, p) = tmp();
    let vecs = clustered(40, 8, 4, 2);
    let mut db = TaskDb::open(&p).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    db.put(vec![NewEntry::external(
        "e3",
        Kind::Model,
        "s",
        vecs[4].clone(),
    )])
    .unwrap();
    // Delete the latest version: the previous one becomes the latest again.
    db.delete(&EntryRef::parse("e3@2").unwrap()).unwrap();
    assert_eq!(db.get(&EntryRef::parse("e3").unwrap()).unwrap().version, 1);
    // Delete a name entirely.
    let ids = db.delete(&EntryRef::parse("e5").unwrap()).unwrap();
    assert_eq!(ids.len(), 1);
    assert!(matches!(
        db.get(&EntryRef::parse("e5").unwrap()),
        Err(Error::NotFound { .. })
    ));
    let hits = db
        .nearest(&Query::dense("s", vecs[5].clone()), 40, &Filter::all())
        .unwrap();
    assert_eq!(hits.len(), 39);
    assert!(hits.iter().all(|h| h.name != "e5"));
    assert_eq!(db.stats().unwrap().tombstones, 2);
    let r = db.compact().unwrap();
    assert_eq!(r.purged, 2);
    assert_eq!(db.stats().unwrap().tombstones, 0);
    assert!(db.check().unwrap().ok());
    let hits2 = db
        .nearest(&Query::dense("s", vecs[5].clone()), 40, &Filter::all())
        .unwrap();
    assert_eq!(hits, hits2);
    drop(db);
    let mut db = TaskDb::open(&p).unwrap();
    assert!(db.check().unwrap().ok());
    assert_eq!(db.list(&Filter::all()).unwrap().len(), 39);
    // A re-created name continues its version sequence.
    db.put(vec![NewEntry::external(
        "e5",
        Kind::Model,
        "s",
        vecs[5].clone(),
    )])
    .unwrap();
    assert_eq!(db.get(&EntryRef::parse("e5").unwrap()).unwrap().version, 2);
}

fn params(brute_force_below: usize) -> OpenOptions {
    OpenOptions {
        read_only: false,
        index: IndexParams {
            brute_force_below,
            ..IndexParams::default()
        },
        ..OpenOptions::default()
    }
}

/// The store's page cache is a cache: with none at all (every page read from the file, a
/// write transaction's pages written before its commit) a database takes the same writes
/// and gives the same answers as with the default, and a handle of either size reads what
/// the other wrote.
#[test]
fn the_store_page_cache_size_changes_no_answer() {
    let (_d, p) = tmp();
    let (_d2, p2) = tmp();
    let vecs = clustered(3000, 24, 30, 4);
    let none = OpenOptions {
        cache_bytes: 0,
        ..params(100)
    };
    let queries: Vec<Query> = (0..20)
        .map(|i| Query::dense("s", vecs[i * 97].clone()))
        .collect();
    let answers = |db: &TaskDb| -> Vec<Vec<(String, f32)>> {
        queries
            .iter()
            .map(|q| {
                let hits = db.nearest(q, 10, &Filter::all()).unwrap();
                hits.into_iter().map(|h| (h.name, h.score)).collect()
            })
            .collect()
    };
    let (without, with) = {
        let a = TaskDb::open_with(&p, none).unwrap();
        let b = TaskDb::open_with(&p2, params(100)).unwrap();
        for chunk in entries("e", "s", &vecs).chunks(700) {
            a.put(chunk.to_vec()).unwrap();
            b.put(chunk.to_vec()).unwrap();
        }
        (answers(&a), answers(&b))
    };
    assert_eq!(without, with);
    assert_eq!(without[0].len(), 10);
    // Reopened the other way round: each file read through the other cache size.
    let a = TaskDb::open_with(&p, params(100)).unwrap();
    let mut b = TaskDb::open_with(&p2, none).unwrap();
    assert_eq!(answers(&a), with);
    assert_eq!(answers(&b), with);
    assert!(b.check().unwrap().ok());
}

#[test]
fn filtered_knn_returns_exactly_k_when_k_match() {
    let (_d, p) = tmp();
    let vecs = clustered(3000, 24, 30, 3);
    // Force the HNSW path for large candidate sets.
    let db = TaskDb::open_with(&p, params(100)).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    // bucket=3 and kind=model: 300 entries with bucket 3, all odd -> models.
    let f = Filter::all().kind(Kind::Model).tag("bucket", "3");
    let (hits, path) = db
        .nearest_explain(&Query::dense("s", vecs[0].clone()), 50, &f)
        .unwrap();
    assert_eq!(hits.len(), 50);
    assert!(hits
        .iter()
        .all(|h| h.kind == Kind::Model && h.name.ends_with('3')));
    assert_ne!(path, SearchPath::BruteForce);
    // A filter passing only 7 entries gives those 7 (exact path).
    let f = Filter::all().name_prefix("e299");
    let (hits, path) = db
        .nearest_explain(&Query::dense("s", vecs[0].clone()), 20, &f)
        .unwrap();
    assert_eq!(hits.len(), 1 + 10); // e299, e2990..e2999
    assert_eq!(path, SearchPath::BruteForce);
    // k larger than the space.
    let f = Filter::all().tag("bucket", "1").tag("parity", "odd");
    let hits = db
        .nearest(&Query::dense("s", vecs[0].clone()), 5000, &f)
        .unwrap();
    assert_eq!(hits.len(), 300);
}

#[test]
fn small_space_equals_exact_search() {
    let (_d, p) = tmp();
    let vecs = clustered(500, 16, 10, 4);
    let db = TaskDb::open(&p).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    let items: Vec<(String, Vec<f32>)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("e{i}"), v.clone()))
        .collect();
    for qi in [0, 17, 250, 499] {
        let (hits, path) = db
            .nearest_explain(
                &Query::entry(&format!("e{qi}")).unwrap(),
                10,
                &Filter::all(),
            )
            .unwrap();
        assert_eq!(path, SearchPath::BruteForce);
        let got: Vec<String> = hits.iter().map(|h| h.name.clone()).collect();
        let want = exact_topk(&vecs[qi], &items, 10, Some(&format!("e{qi}")));
        assert_eq!(got, want);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn hnsw_path_matches_exact_search() {
    let (_d, p) = tmp();
    let vecs = clustered(3000, 32, 40, 5);
    let mut opts = params(0);
    opts.index.export_after = 0;
    let db = TaskDb::open_with(&p, opts).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    let items: Vec<(String, Vec<f32>)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("e{i}"), v.clone()))
        .collect();
    let mut found = 0;
    let queries = clustered(50, 32, 40, 99);
    for q in &queries {
        let (hits, path) = db
            .nearest_explain(&Query::dense("s", q.clone()), 10, &Filter::all())
            .unwrap();
        assert_eq!(path, SearchPath::Hnsw);
        assert_eq!(hits.len(), 10);
        let want = exact_topk(q, &items, 10, None);
        found += hits.iter().filter(|h| want.contains(&h.name)).count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
}

/// Issue 14: a dense space's graph is searched through its export to flat arrays, made by the
/// first graph query. Entries put after it are appended to the export and scanned exactly, so
/// they are found at once; past a tenth of the graph the export is made again from the graph.
/// Every answer stays as good as the graph's.
#[test]
fn the_exported_graph_finds_entries_put_after_it_and_is_made_again_when_stale() {
    let (_d, p) = tmp();
    let vecs = clustered(3000, 32, 40, 5);
    let db = TaskDb::open_with(&p, params(0)).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    let mut items: Vec<(String, Vec<f32>)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("e{i}"), v.clone()))
        .collect();
    let queries = clustered(30, 32, 40, 99);
    let recall = |db: &TaskDb, items: &[(String, Vec<f32>)]| {
        let mut found = 0;
        for q in &queries {
            let (hits, path) = db
                .nearest_explain(&Query::dense("s", q.clone()), 10, &Filter::all())
                .unwrap();
            assert_eq!(path, SearchPath::Hnsw);
            let want = exact_topk(q, items, 10, None);
            found += hits.iter().filter(|h| want.contains(&h.name)).count();
        }
        found as f64 / (10 * queries.len()) as f64
    };
    assert!(recall(&db, &items) >= 0.95);
    // Near-copies of the queries, put after the export: each is its query's nearest entry.
    let copies: Vec<Vec<f32>> = queries
        .iter()
        .map(|q| q.iter().map(|x| x * 1.001 + 1e-4).collect())
        .collect();
    db.put(entries("late", "s", &copies)).unwrap();
    for (i, q) in queries.iter().enumerate() {
        let hits = db
            .nearest(&Query::dense("s", q.clone()), 3, &Filter::all())
            .unwrap();
        assert_eq!(hits[0].name, format!("late{i}"));
    }
    items.extend(
        copies
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("late{i}"), v.clone())),
    );
    // 1,100 more (more than a tenth of the graph): the export is made again; answers hold.
    let more = clustered(1100, 32, 40, 7);
    db.put(entries("more", "s", &more)).unwrap();
    items.extend(
        more.iter()
            .enumerate()
            .map(|(i, v)| (format!("more{i}"), v.clone())),
    );
    // The graph itself after 1,100 parallel insertions finds 0.94–0.97 of these top 10s
    // (hnsw_rs's own search of it gave the same figures, build by build).
    let r = recall(&db, &items);
    assert!(r >= 0.9, "recall@10 {r}");
}

#[test]
fn a_dense_query_through_the_export_scores_exactly_like_the_exact_scan() {
    // Stored vectors of lengths 0.5–6.5: the export must hold them as stored, since the exact
    // scan scores the stored vector, not the graph's unit copy.
    let scaled = |vs: Vec<Vec<f32>>| -> Vec<Vec<f32>> {
        vs.into_iter()
            .enumerate()
            .map(|(i, v)| v.iter().map(|x| x * (0.5 + (i % 7) as f32)).collect())
            .collect()
    };
    let (_d, p) = tmp();
    let queries = clustered(20, 32, 40, 12);
    let ask = |db: &TaskDb| -> Vec<(Vec<taskdb::Hit>, SearchPath)> {
        queries
            .iter()
            .map(|q| {
                db.nearest_explain(&Query::dense("s", q.clone()), 10, &Filter::all())
                    .unwrap()
            })
            .collect()
    };
    let mut opts = params(0);
    opts.index.export_after = 0;
    let db = TaskDb::open_with(&p, opts).unwrap();
    db.put(entries("e", "s", &scaled(clustered(3000, 32, 40, 11))))
        .unwrap();
    ask(&db);
    // Entries put after the export are appended to it, with their stored vectors.
    db.put(entries("late", "s", &scaled(clustered(300, 32, 40, 13))))
        .unwrap();
    let graph = ask(&db);
    drop(db);
    let exact = ask(&TaskDb::open_with(&p, params(usize::MAX)).unwrap());
    let (mut same, mut late) = (0, 0);
    for ((g, g_path), (e, e_path)) in graph.iter().zip(&exact) {
        assert_eq!(
            (*g_path, *e_path),
            (SearchPath::Hnsw, SearchPath::BruteForce)
        );
        for h in g {
            if let Some(x) = e.iter().find(|x| x.name == h.name) {
                assert_eq!(h.score.to_bits(), x.score.to_bits(), "{}", h.name);
                same += 1;
                late += usize::from(h.name.starts_with("late"));
            }
        }
    }
    assert!(
        same >= 180 && late > 0,
        "{same} of 200 hits shared, {late} late"
    );
}

#[test]
fn identical_query_vector_does_not_panic() {
    let (_d, p) = tmp();
    let vecs = clustered(3000, 64, 10, 6);
    let db = TaskDb::open_with(&p, params(0)).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    for i in [0, 1, 2999] {
        let hits = db
            .nearest(&Query::dense("s", vecs[i].clone()), 3, &Filter::all())
            .unwrap();
        assert_eq!(hits[0].name, format!("e{i}"));
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        // Scaled copies are the same direction.
        let scaled: Vec<f32> = vecs[i].iter().map(|x| x * 1000.0).collect();
        let hits = db
            .nearest(&Query::dense("s", scaled), 1, &Filter::all())
            .unwrap();
        assert_eq!(hits[0].name, format!("e{i}"));
    }
}

#[test]
fn spaces_never_mix() {
    let (_d, p) = tmp();
    let db = TaskDb::open(&p).unwrap();
    db.put(vec![
        NewEntry::external("a", Kind::Dataset, "s1", vec![1.0, 0.0]),
        NewEntry::external("b", Kind::Dataset, "s2", vec![1.0, 0.0, 0.0]),
        NewEntry::external("c", Kind::Dataset, "s2", vec![0.0, 1.0, 0.0]),
    ])
    .unwrap();
    let hits = db
        .nearest(&Query::entry("a").unwrap(), 5, &Filter::all())
        .unwrap();
    assert!(hits.is_empty(), "nothing else lives in s1");
    let err = db
        .nearest(&Query::dense("s2", vec![1.0, 0.0]), 5, &Filter::all())
        .unwrap_err();
    assert!(matches!(err, Error::SpaceMismatch(_)), "{err}");
    let err = db
        .nearest(&Query::entry("a").unwrap(), 5, &Filter::all().method("s2"))
        .unwrap_err();
    assert!(matches!(err, Error::SpaceMismatch(_)), "{err}");
    // A space definition is immutable: same name, different definition is refused.
    let mut def = SpaceDef::external("s1", 2);
    def.method = Some("scatter".into());
    let e = NewEntry {
        vectors: vec![taskdb::NewVector {
            method: "scatter".into(),
            space: SpaceRef::Def(def),
            embedding: taskdb::Embedding::Dense(vec![1.0, 1.0]),
        }],
        ..NewEntry::external("d", Kind::Model, "x", vec![1.0])
    };
    assert!(matches!(db.put(vec![e]), Err(Error::SpaceMismatch(_))));
}

#[test]
fn multiple_methods_per_entry() {
    let (_d, p) = tmp();
    let db = TaskDb::open(&p).unwrap();
    let mk = |name: &str, a: Vec<f32>, b: Vec<f32>| NewEntry {
        name: name.into(),
        kind: Kind::Dataset,
        vectors: vec![
            taskdb::NewVector {
                method: "m1".into(),
                space: SpaceRef::Def(SpaceDef {
                    method: Some("m1".into()),
                    surrogate_fingerprint: Some("sha256:abc".into()),
                    params: serde_json::json!({"rank": 4}),
                    ..SpaceDef::external("m1/abc", 2)
                }),
                embedding: taskdb::Embedding::Dense(a),
            },
            taskdb::NewVector {
                method: "m2".into(),
                space: SpaceRef::External("m2".into()),
                embedding: taskdb::Embedding::Dense(b),
            },
        ],
        tags: Default::default(),
        provenance: Default::default(),
    };
    db.put(vec![
        mk("x", vec![1.0, 0.0], vec![0.0, 1.0, 0.0]),
        mk("y", vec![0.9, 0.1], vec![1.0, 0.0, 0.0]),
        mk("z", vec![0.0, 1.0], vec![0.0, 0.9, 0.1]),
    ])
    .unwrap();
    let q = Query::entry("x").unwrap();
    assert!(matches!(
        db.nearest(&q, 1, &Filter::all()),
        Err(Error::SpaceMismatch(_))
    ));
    assert_eq!(
        db.nearest(&q, 1, &Filter::all().method("m1")).unwrap()[0].name,
        "y"
    );
    assert_eq!(
        db.nearest(&q, 1, &Filter::all().method("m2")).unwrap()[0].name,
        "z"
    );
    assert_eq!(db.spaces().unwrap().len(), 2);
}

#[test]
fn concurrent_readers_in_process() {
    let (_d, p) = tmp();
    let vecs = clustered(300, 16, 5, 7);
    let db = TaskDb::open(&p).unwrap();
    db.put(entries("e", "s", &vecs)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = &db;
            let vecs = &vecs;
            s.spawn(move || {
                for i in 0..50 {
                    let q = vecs[(t * 50 + i) % vecs.len()].clone();
                    let h = db
                        .nearest(&Query::dense("s", q), 5, &Filter::all())
                        .unwrap();
                    assert_eq!(h.len(), 5);
                }
            });
        }
        let db = &db;
        s.spawn(move || {
            for i in 0..20 {
                db.put(vec![NewEntry::external(
                    format!("w{i}"),
                    Kind::Model,
                    "s",
                    vec![1.0; 16],
                )])
                .unwrap();
            }
        });
    });
    assert_eq!(db.list(&Filter::all()).unwrap().len(), 320);
}

#[test]
fn second_writer_in_process_is_refused() {
    let (_d, p) = tmp();
    let _db = TaskDb::open(&p).unwrap();
    let err = TaskDb::open(&p).err().expect("second open must fail");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked by another process"));
}

/// `TaskDb::import_jsonl`, the library side of `taskdb import`: events in order, a report, the
/// provenance of each line, and a refused file that writes nothing.
#[test]
fn import_jsonl_validates_everything_then_commits_in_batches() {
    use taskdb::{ImportEvent, ImportOptions};
    let (d, p) = tmp();
    let file = d.path().join("v.jsonl");
    let vecs = clustered(5, 8, 2, 3);
    let text: String = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| jsonl_line(&format!("v{i}"), "model", "ext", v) + "\n")
        .collect();
    std::fs::write(&file, &text).unwrap();
    let db = TaskDb::open(&p).unwrap();
    let opts = ImportOptions {
        batch_size: 2,
        ..ImportOptions::default()
    };
    let mut events = Vec::new();
    let report = db
        .import_jsonl(&file, &opts, &mut |ev| events.push(format!("{ev:?}")))
        .unwrap();
    assert_eq!((report.imported, report.batches), (5, 3));
    assert_eq!(report.sha256.len(), 64);
    assert!(report.warnings.is_empty());
    assert_eq!(
        events,
        [
            "Committed { batch: 1, entries: 2 }",
            "Committed { batch: 2, entries: 4 }",
            "Committed { batch: 3, entries: 5 }"
        ]
    );
    let e = db.get(&EntryRef::parse("v3").unwrap()).unwrap();
    assert_eq!(e.vectors["ext"].1.as_dense().unwrap(), vecs[3].as_slice());
    assert_eq!(
        e.provenance.input_sha256.as_deref(),
        Some(report.sha256.as_str())
    );
    assert_eq!(e.provenance.params["import"]["line"], 4);

    // A bad last line: an error naming the file and line, and nothing of the file written.
    let bad = d.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        jsonl_line("w0", "model", "ext", &vecs[0]) + "\n{\"name\": \"w1\"}\n",
    )
    .unwrap();
    let err = db
        .import_jsonl(&bad, &opts, &mut |_| panic!("no event for a refused file"))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("bad.jsonl line 2"), "{err}");
    assert!(matches!(
        db.get(&EntryRef::parse("w0").unwrap()),
        Err(Error::NotFound { .. })
    ));

    // A line that is not UTF-8 is bad input naming its line, not an I/O error.
    let latin1 = d.path().join("latin1.jsonl");
    let mut bytes = (jsonl_line("w2", "model", "ext", &vecs[0]) + "\n").into_bytes();
    bytes.extend_from_slice(b"{\"name\": \"caf\xe9\"}\n");
    std::fs::write(&latin1, bytes).unwrap();
    let err = db.import_jsonl(&latin1, &opts, &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("latin1.jsonl line 2") && err.to_string().contains("UTF-8"));

    // A new version in another space is refused without `replace`, and warned about with it.
    let moved = d.path().join("moved.jsonl");
    std::fs::write(&moved, jsonl_line("v0", "model", "other", &vecs[0]) + "\n").unwrap();
    let err = db
        .import_jsonl(&moved, &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("hides the entry from knn in \"ext\""), "{err}");
    let mut warned = Vec::new();
    let r = db
        .import_jsonl(
            &moved,
            &ImportOptions {
                replace: true,
                ..opts.clone()
            },
            &mut |ev| {
                if let ImportEvent::Warning(w) = ev {
                    warned.push(w.to_string())
                }
            },
        )
        .unwrap();
    assert_eq!(r.imported, 1);
    assert_eq!(warned, r.warnings);
    assert!(warned[0].contains("entry \"v0\" version 1"), "{warned:?}");
}

/// `ImportOptions::skip_identical` (`import --resume`): re-importing a file skips every line
/// whose name's latest version holds exactly its kind, space, method, vector and tags, and
/// writes the rest (a changed vector or tags, a new name) as before.
#[test]
fn import_with_skip_identical_writes_only_what_is_not_there() {
    use taskdb::ImportOptions;
    let (d, p) = tmp();
    let vecs = clustered(6, 8, 2, 5);
    let line = |i: usize, v: &[f32]| jsonl_line(&format!("v{i}"), "model", "ext", v) + "\n";
    let part = d.path().join("part.jsonl");
    std::fs::write(&part, (0..3).map(|i| line(i, &vecs[i])).collect::<String>()).unwrap();
    let db = TaskDb::open(&p).unwrap();
    let resume = ImportOptions {
        skip_identical: true,
        batch_size: 2,
        ..ImportOptions::default()
    };
    let r = db.import_jsonl(&part, &resume, &mut |_| {}).unwrap();
    assert_eq!((r.imported, r.skipped), (3, 0));

    // The whole file: lines 0..3 are there, v1 changed its vector, v2 gained a tag.
    let mut changed = vecs[1].clone();
    changed[0] = f32::from_bits(changed[0].to_bits() ^ 1); // one ulp: not identical
    let whole = d.path().join("whole.jsonl");
    let mut text = line(0, &vecs[0]) + &line(1, &changed);
    text += &(serde_json::json!({"name": "v2", "kind": "model", "space": "ext",
                                  "vector": vecs[2], "tags": {"t": "1"}})
    .to_string()
        + "\n");
    text += &(3..6).map(|i| line(i, &vecs[i])).collect::<String>();
    std::fs::write(&whole, text).unwrap();
    let r = db.import_jsonl(&whole, &resume, &mut |_| {}).unwrap();
    assert_eq!((r.imported, r.skipped), (5, 1), "only v0 is identical");
    let version = |n: &str| db.get(&EntryRef::latest(n)).unwrap().version;
    assert_eq!(
        ["v0", "v1", "v2", "v3", "v5"].map(version),
        [1, 2, 2, 1, 1],
        "a changed vector or tags make a new version"
    );

    // Running it again skips everything; without the option every line is a new version.
    let r = db.import_jsonl(&whole, &resume, &mut |_| {}).unwrap();
    assert_eq!((r.imported, r.skipped, r.batches), (0, 6, 0));
    let plain = ImportOptions::default();
    let r = db.import_jsonl(&whole, &plain, &mut |_| {}).unwrap();
    assert_eq!((r.imported, r.skipped), (6, 0));
    assert_eq!(version("v0"), 2);
}
