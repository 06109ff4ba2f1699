//! Issue 10, defect 2 (containment): whatever happens inside an HNSW graph, the database stays
//! usable. Here every graph insertion panics (injected, as hnsw_rs's assertions do on a
//! vector that is not unit length): the database must still open, list, answer knn exactly
//! (through the exact scan), check, delete, compact and report stats; once graphs build
//! again, compact restores them. One test per file: the injection is process-wide.

use taskdb::{Filter, Kind, NewEntry, OpenOptions, Query, SearchPath, TaskDb};

mod engine_common;

#[test]
fn a_space_whose_graph_cannot_be_built_falls_back_to_the_exact_scan() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.taskdb");
    let vecs = engine_common::clustered(40, 8, 4, 7);
    let opts = OpenOptions {
        index: taskdb::IndexParams {
            brute_force_below: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let exact = {
        let db = TaskDb::open_with(&path, opts).unwrap();
        db.put(engine_common::entries("e", "ext", &vecs)).unwrap();
        let (hits, p) = db
            .nearest_explain(&Query::entry("e0").unwrap(), 5, &Filter::all())
            .unwrap();
        assert_eq!(p, SearchPath::Hnsw);
        hits
    };
    std::fs::remove_dir_all(taskdb::files::index_dir(&path)).unwrap();

    taskdb::testing::set_graph_insert_panics(true);
    let mut db = TaskDb::open_with(&path, opts).expect("opens although its graph cannot be built");
    assert_eq!(db.list(&Filter::all()).unwrap().len(), 40);
    let (hits, p) = db
        .nearest_explain(&Query::entry("e0").unwrap(), 5, &Filter::all())
        .unwrap();
    assert_eq!(p, SearchPath::BruteForce);
    let names = |h: &[taskdb::Hit]| h.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&hits),
        names(&exact),
        "the exact scan gives the exact answer"
    );
    let stats = db.stats().unwrap();
    assert!(
        stats.spaces[0].index.contains("unusable"),
        "{:?}",
        stats.spaces[0]
    );
    let r = db.check().unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("graph")),
        "check says the graph is unusable: {:?}",
        r.problems
    );
    // Writes still work (their graph insertion fails; the space stays on the exact scan).
    db.put(vec![NewEntry::external(
        "new",
        Kind::Model,
        "ext",
        vec![1.0; 8],
    )])
    .unwrap();
    db.delete(&"e1".parse().unwrap()).unwrap();
    db.compact().unwrap();
    assert_eq!(db.list(&Filter::all()).unwrap().len(), 40);
    drop(db);

    taskdb::testing::set_graph_insert_panics(false);
    let mut db = TaskDb::open_with(&path, opts).unwrap();
    let r = db.check().unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    let (_, p) = db
        .nearest_explain(&Query::entry("e0").unwrap(), 5, &Filter::all())
        .unwrap();
    assert_eq!(p, SearchPath::Hnsw, "the graph is rebuilt once it can be");
}
