//! Persisted graphs are derived state: deleted, truncated, bit-flipped or stale graph files are
//! detected and rebuilt (stale or truncated ones on open, damaged bytes before the graph's first
//! use: graphs are loaded lazily), with identical answers.

mod engine_common;

use std::path::{Path, PathBuf};

use engine_common::*;
use taskdb::{Filter, Hit, IndexParams, Kind, NewEntry, OpenOptions, Query, SearchPath, TaskDb};

fn opts() -> OpenOptions {
    // Force the HNSW path so the graph's answers are what is compared.
    OpenOptions {
        read_only: false,
        index: IndexParams {
            brute_force_below: 0,
            exact_matrix_below: 0,
            // Search wide enough that the graph answers exactly (recall 1.0 on this data), so
            // answers of a rebuilt graph are comparable with those of the original.
            m: 16,
            ef_construction: 100,
            ef_search: 400,
            // Through taskdb's export of the graph from the first query.
            export_after: 0,
            lean_dense: false,
        },
        ..OpenOptions::default()
    }
}

fn answers(db: &TaskDb, qs: &[Vec<f32>]) -> Vec<Vec<Hit>> {
    qs.iter()
        .map(|q| {
            db.nearest(&Query::dense("s", q.clone()), 10, &Filter::all())
                .unwrap()
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf, Vec<Vec<f32>>, Vec<Vec<Hit>>) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.taskdb");
    let vecs = clustered(1000, 16, 25, 11);
    let qs = clustered(10, 16, 25, 12);
    let a = {
        let db = TaskDb::open_with(&p, opts()).unwrap();
        db.put(entries("e", "s", &vecs)).unwrap();
        db.flush().unwrap();
        answers(&db, &qs)
    };
    (d, p, qs, a)
}

fn graph_file(p: &Path, ext: &str) -> PathBuf {
    taskdb::files::index_dir(p).join(format!("space-1.{ext}"))
}

fn reopen_event(p: &Path) -> String {
    let db = TaskDb::open_with(p, opts()).unwrap();
    db.stats().unwrap().spaces[0].index.clone()
}

#[test]
fn valid_graph_is_loaded_with_identical_answers() {
    let (_d, p, qs, before) = setup();
    let db = TaskDb::open_with(&p, opts()).unwrap();
    assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
    assert_eq!(answers(&db, &qs), before);
}

#[test]
fn deleted_graph_is_rebuilt() {
    let (_d, p, qs, before) = setup();
    std::fs::remove_file(graph_file(&p, "graph")).unwrap();
    let mut db = TaskDb::open_with(&p, opts()).unwrap();
    let ev = db.stats().unwrap().spaces[0].index.clone();
    assert!(ev.starts_with("rebuilt"), "{ev}");
    assert!(db.check().unwrap().ok());
    assert_eq!(answers(&db, &qs), before);
    drop(db);
    // The rebuilt graph was persisted again.
    assert_eq!(reopen_event(&p), "loaded");
}

#[test]
fn truncated_graph_is_rebuilt() {
    let (_d, p, qs, before) = setup();
    {
        let ext = "graph";
        let f = graph_file(&p, ext);
        let len = std::fs::metadata(&f).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.set_len(len / 2).unwrap();
        let db = TaskDb::open_with(&p, opts()).unwrap();
        let ev = db.stats().unwrap().spaces[0].index.clone();
        assert!(ev.contains("checksum"), "{ext}: {ev}");
        assert_eq!(answers(&db, &qs), before);
    }
}

#[test]
fn bit_flipped_graph_or_manifest_is_rebuilt() {
    let (_d, p, qs, before) = setup();
    for ext in ["graph", "manifest.json"] {
        let f = graph_file(&p, ext);
        let mut bytes = std::fs::read(&f).unwrap();
        let i = bytes.len() / 3;
        bytes[i] ^= 0x04;
        std::fs::write(&f, &bytes).unwrap();
        let db = TaskDb::open_with(&p, opts()).unwrap();
        let ev = db.stats().unwrap().spaces[0].index.clone();
        assert!(ev.starts_with("rebuilt"), "{ext}: {ev}");
        assert_eq!(answers(&db, &qs), before, "{ext}");
    }
}

#[test]
fn stale_graph_is_rebuilt() {
    let (_d, p, qs, _) = setup();
    let old_manifest = std::fs::read(graph_file(&p, "manifest.json")).unwrap();
    let old_graph = std::fs::read(graph_file(&p, "graph")).unwrap();
    let after = {
        let db = TaskDb::open_with(&p, opts()).unwrap();
        db.put(vec![NewEntry::external(
            "new",
            Kind::Model,
            "s",
            qs[0].clone(),
        )])
        .unwrap();
        answers(&db, &qs)
    };
    // Put the old (valid but stale) graph back, as if the last save had been lost.
    std::fs::write(graph_file(&p, "manifest.json"), old_manifest).unwrap();
    std::fs::write(graph_file(&p, "graph"), old_graph).unwrap();
    let mut db = TaskDb::open_with(&p, opts()).unwrap();
    let ev = db.stats().unwrap().spaces[0].index.clone();
    assert!(ev.contains("stale"), "{ev}");
    assert_eq!(answers(&db, &qs), after);
    assert_eq!(answers(&db, &qs)[0][0].name, "new");
    assert!(db.check().unwrap().ok());
}

#[test]
fn graph_of_another_database_is_not_used() {
    let (d, p, qs, before) = setup();
    // A second database with different vectors under the same space id.
    let p2 = d.path().join("other.taskdb");
    {
        let db = TaskDb::open_with(&p2, opts()).unwrap();
        db.put(entries("e", "s", &clustered(1000, 16, 25, 13)))
            .unwrap();
    }
    let src = taskdb::files::index_dir(&p2);
    for ext in ["graph", "manifest.json"] {
        std::fs::copy(src.join(format!("space-1.{ext}")), graph_file(&p, ext)).unwrap();
    }
    let db = TaskDb::open_with(&p, opts()).unwrap();
    let ev = db.stats().unwrap().spaces[0].index.clone();
    assert!(ev.starts_with("rebuilt"), "{ev}");
    assert_eq!(answers(&db, &qs), before);
}

/// Flips one byte in the middle of a file, keeping its length (so only a checksum finds it).
fn flip_byte(f: &Path) {
    let mut bytes = std::fs::read(f).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x10;
    std::fs::write(f, &bytes).unwrap();
}

/// A graph is loaded lazily, by its first use (issue 14). The first query after an open
/// searches the persisted graph itself, not a rebuilt one, and answers what the handle that
/// built and saved it answered.
#[test]
fn first_query_after_open_uses_the_persisted_graph_with_identical_answers() {
    let (_d, p, qs, before) = setup();
    for read_only in [false, true] {
        let db = TaskDb::open_with(
            &p,
            OpenOptions {
                read_only,
                ..opts()
            },
        )
        .unwrap();
        let (hits, path) = db
            .nearest_explain(&Query::dense("s", qs[0].clone()), 10, &Filter::all())
            .unwrap();
        assert_eq!(path, SearchPath::Hnsw);
        assert_eq!(hits, before[0]);
        assert_eq!(answers(&db, &qs), before);
        assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
    }
}

/// Damage done to a graph's files after the open, before the graph's first use, is found by
/// the checksum that first use verifies: the graph is rebuilt from the store before any query
/// searches it (saved again by a writable handle), and answers are unchanged.
#[test]
fn graph_damaged_after_open_is_rebuilt_before_first_use() {
    let (_d, p, qs, before) = setup();
    for read_only in [false, true] {
        {
            let ext = "graph";
            let db = TaskDb::open_with(
                &p,
                OpenOptions {
                    read_only,
                    ..opts()
                },
            )
            .unwrap();
            flip_byte(&graph_file(&p, ext));
            let (hits, path) = db
                .nearest_explain(&Query::dense("s", qs[0].clone()), 10, &Filter::all())
                .unwrap();
            assert_eq!(path, SearchPath::Hnsw, "{ext}");
            assert_eq!(hits, before[0], "{ext}");
            let ev = db.stats().unwrap().spaces[0].index.clone();
            assert!(
                ev.starts_with("rebuilt") && ev.contains("checksum"),
                "{ext}: {ev}"
            );
            assert_eq!(answers(&db, &qs), before, "{ext}");
            drop(db);
            if read_only {
                // Nothing was saved: the damage is still there, found again (by `stats`) and
                // repaired by a writable handle for the next round.
                let ev = reopen_event(&p);
                assert!(
                    ev.starts_with("rebuilt") && ev.contains("checksum"),
                    "{ext}: {ev}"
                );
            }
            assert_eq!(
                reopen_event(&p),
                "loaded",
                "{ext}: the rebuilt graph was saved"
            );
        }
    }
}

/// Several threads asking a lazy, damaged graph at once: one verifies (and rebuilds) it, the
/// others wait for that and answer the same.
#[test]
fn concurrent_first_queries_share_one_verified_graph() {
    let (_d, p, qs, before) = setup();
    let db = TaskDb::open_with(&p, opts()).unwrap();
    flip_byte(&graph_file(&p, "graph"));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| answers(&db, &qs))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), before);
        }
    });
    let ev = db.stats().unwrap().spaces[0].index.clone();
    assert!(ev.starts_with("rebuilt") && ev.contains("checksum"), "{ev}");
}

/// `check` verifies every graph eagerly, lazy ones included: damage after the open is found,
/// the graph rebuilt, and the report names it.
#[test]
fn check_verifies_lazy_graphs() {
    let (_d, p, _qs, _) = setup();
    let mut db = TaskDb::open_with(&p, opts()).unwrap();
    flip_byte(&graph_file(&p, "graph"));
    let report = db.check().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.repaired.len(), 1, "{:?}", report.repaired);
    assert_eq!(report.spaces_checked, 1);
    drop(db);
    assert_eq!(reopen_event(&p), "loaded");
}

/// Since issue 14 a dense space's graph file holds its structure only: the vectors are read
/// from the store when the graph is loaded, so the disk holds each vector once. None of the
/// stored vectors' bytes (their first two components, little-endian) is in the file.
#[test]
fn a_dense_graph_file_holds_no_vectors() {
    let (_d, p, _qs, _) = setup();
    let bytes = std::fs::read(graph_file(&p, "graph")).unwrap();
    let vecs = clustered(1000, 16, 25, 11);
    let found = vecs
        .iter()
        .filter(|v| {
            let mut pat = v[0].to_le_bytes().to_vec();
            pat.extend_from_slice(&v[1].to_le_bytes());
            bytes.windows(8).any(|w| w == pat.as_slice())
        })
        .count();
    assert_eq!(found, 0, "{found} stored vectors are in the graph file");
    assert!(!graph_file(&p, "hnsw.data").exists());
}

/// A graph persisted by an older taskdb (hnsw_rs's dump: manifest format 1, two files) is
/// rebuilt from the store once, with the same answers, and saved in the current format; the
/// old files are removed.
#[test]
fn a_graph_saved_in_the_old_format_is_rebuilt_once_and_replaced() {
    let (_d, p, qs, before) = setup();
    let manifest = graph_file(&p, "manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["format"] = 1.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::remove_file(graph_file(&p, "graph")).unwrap();
    for ext in ["hnsw.graph", "hnsw.data"] {
        std::fs::write(graph_file(&p, ext), b"an hnsw_rs dump").unwrap();
    }
    let db = TaskDb::open_with(&p, opts()).unwrap();
    let ev = db.stats().unwrap().spaces[0].index.clone();
    assert!(
        ev.starts_with("rebuilt") && ev.contains("older format"),
        "{ev}"
    );
    assert_eq!(answers(&db, &qs), before);
    drop(db);
    for ext in ["hnsw.graph", "hnsw.data"] {
        assert!(!graph_file(&p, ext).exists(), "{ext} left behind");
    }
    assert_eq!(reopen_event(&p), "loaded");
}

/// A dense graph loaded from its file is searched through the flat structure made from it;
/// hnsw_rs's graph is made from that structure when the first insert needs it. Inserts after
/// the load are found like the rest (answers equal the exact scan's), `check` agrees, and the
/// graph saved afterwards loads again with the same answers.
#[test]
fn a_loaded_dense_graph_takes_inserts_and_saves_them() {
    let (_d, p, qs, _) = setup();
    let more = clustered(300, 16, 25, 99);
    let exact = OpenOptions {
        read_only: true,
        index: IndexParams {
            brute_force_below: usize::MAX,
            ..opts().index
        },
        ..OpenOptions::default()
    };
    let after = {
        let mut db = TaskDb::open_with(&p, opts()).unwrap();
        // Loaded (and searched) before the insert.
        assert_eq!(answers(&db, &qs).len(), qs.len());
        assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
        db.put(entries("more", "s", &more)).unwrap();
        // Still the graph (made from the loaded structure), not an exact scan of an unusable one.
        assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
        let (_, path) = db
            .nearest_explain(&Query::dense("s", more[0].clone()), 10, &Filter::all())
            .unwrap();
        assert_eq!(path, SearchPath::Hnsw);
        let mut probes = qs.clone();
        probes.extend(more.iter().step_by(30).cloned());
        let got = answers(&db, &probes);
        assert!(db.check().unwrap().ok());
        drop(db);
        let scan = TaskDb::open_with(&p, exact).unwrap();
        assert_eq!(
            got,
            answers(&scan, &probes),
            "graph answers differ from the exact scan"
        );
        // Each probe taken from the new entries finds itself first.
        for (i, hits) in got[qs.len()..].iter().enumerate() {
            assert_eq!(hits[0].name, format!("more{}", i * 30));
        }
        (probes, got)
    };
    let db = TaskDb::open_with(&p, opts()).unwrap();
    assert_eq!(answers(&db, &after.0), after.1);
    assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
    drop(db);
    // A put before any query loads the file straight into hnsw_rs's graph (the writer's
    // path); the answers after it are again the exact scan's.
    let extra = clustered(50, 16, 25, 7);
    let got = {
        let db = TaskDb::open_with(&p, opts()).unwrap();
        db.put(entries("extra", "s", &extra)).unwrap();
        assert_eq!(db.stats().unwrap().spaces[0].index, "loaded");
        answers(&db, &extra)
    };
    let scan = TaskDb::open_with(&p, exact).unwrap();
    assert_eq!(got, answers(&scan, &extra));
    for (i, hits) in got.iter().enumerate() {
        assert_eq!(hits[0].name, format!("extra{i}"));
    }
}

/// `IndexParams::lean_dense`: a read-only handle's dense export holds the int8 walk rows only,
/// and the walk's best (with a margin of two) are scored exactly from the store. The hits and
/// their score bits are a default handle's, on both ways an export is made (loaded from the
/// graph file, and exported from a graph rebuilt in memory). A writable handle ignores it,
/// since an insert needs hnsw_rs's graph made from f32 rows.
#[test]
fn a_lean_read_only_handle_answers_exactly_like_a_default_one() {
    let (_d, p, qs, _) = setup();
    let mut probes = qs.clone();
    probes.extend(clustered(40, 16, 25, 13));
    let with = |read_only: bool, lean_dense: bool| OpenOptions {
        read_only,
        index: IndexParams {
            lean_dense,
            ..opts().index
        },
        ..OpenOptions::default()
    };
    let want = answers(&TaskDb::open_with(&p, with(true, false)).unwrap(), &probes);
    let lean = TaskDb::open_with(&p, with(true, true)).unwrap();
    assert_eq!(answers(&lean, &probes), want);
    // Lean unless the walk is switched to f32 rows (`TASKDB_EXPORT_I8=0`, A/B runs only).
    let i8 = std::env::var_os("TASKDB_EXPORT_I8").is_none_or(|x| x != "0");
    assert_eq!(taskdb::testing::dense_export_is_lean(&lean, "s"), Some(i8));
    drop(lean);
    // A graph rebuilt in memory (its file gone), exported by the first query.
    std::fs::remove_dir_all(taskdb::files::index_dir(&p)).unwrap();
    let rebuilt = TaskDb::open_with(&p, with(true, true)).unwrap();
    assert_eq!(answers(&rebuilt, &probes), want);
    assert_eq!(
        taskdb::testing::dense_export_is_lean(&rebuilt, "s"),
        Some(i8)
    );
    drop(rebuilt);
    // Writable: not lean, and a query then a put work as without it.
    let db = TaskDb::open_with(&p, with(false, true)).unwrap();
    assert_eq!(answers(&db, &probes), want);
    assert_eq!(taskdb::testing::dense_export_is_lean(&db, "s"), Some(false));
    let more = clustered(20, 16, 25, 14);
    db.put(entries("more", "s", &more)).unwrap();
    let hits = db
        .nearest(&Query::dense("s", more[3].clone()), 10, &Filter::all())
        .unwrap();
    assert_eq!(hits[0].name, "more3");
}
