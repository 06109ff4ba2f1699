//! The CLI end to end: import, list, show, knn --json, rm, stats, compact, check, locking.

mod engine_common;

use std::path::Path;
use std::process::{Command, Output};

use engine_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let o = run(db, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(db: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(db, args)).unwrap()
}

fn import_file(dir: &Path, n: usize) -> std::path::PathBuf {
    let vecs = clustered(n, 8, 4, 21);
    let lines: Vec<String> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let kind = if i % 2 == 0 { "dataset" } else { "model" };
            let mut j: serde_json::Value =
                serde_json::from_str(&jsonl_line(&format!("t{i}"), kind, "ext", v)).unwrap();
            j["tags"] = serde_json::json!({"cluster": (i % 4).to_string()});
            j["provenance"] = serde_json::json!({"source": "test"});
            j.to_string()
        })
        .collect();
    let f = dir.join("in.jsonl");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    f
}

#[test]
fn import_list_show_knn_rm_stats_compact_check() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("cli.taskdb");
    let f = import_file(d.path(), 40);
    let o = run(&db, &["import", f.to_str().unwrap(), "--batch-size", "15"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("committed batch 3 (40 entries)"), "{err}");

    let list = json(&db, &["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 40);
    let models = json(
        &db,
        &["list", "--kind", "model", "--tag", "cluster=1", "--json"],
    );
    assert_eq!(models.as_array().unwrap().len(), 10);

    let show = json(&db, &["show", "t3", "--json"]);
    assert_eq!(show["name"], "t3");
    assert_eq!(show["version"], 1);
    assert_eq!(show["kind"], "model");
    assert_eq!(show["vectors"]["ext"]["dim"], 8);
    assert_eq!(show["provenance"]["details"]["source"], "test");
    assert_eq!(show["provenance"]["params"]["import"]["line"], 4);
    assert_eq!(
        show["provenance"]["input_sha256"].as_str().unwrap().len(),
        64
    );

    let hits = json(&db, &["knn", "t0", "-k", "5", "--json"]);
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 5);
    for h in hits {
        assert_ne!(h["name"], "t0", "the query entry is left out");
        for key in ["name", "version", "kind", "score"] {
            assert!(h.get(key).is_some(), "hit lacks {key}");
        }
    }
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    let filtered = json(
        &db,
        &[
            "knn",
            "t0",
            "-k",
            "50",
            "--kind",
            "model",
            "--tag",
            "cluster=1",
            "--method",
            "ext",
            "--json",
        ],
    );
    assert_eq!(filtered.as_array().unwrap().len(), 10);

    // Re-import one name: a new version.
    let one = d.path().join("one.jsonl");
    std::fs::write(&one, jsonl_line("t0", "dataset", "ext", &[1.0; 8]) + "\n").unwrap();
    ok(&db, &["import", one.to_str().unwrap()]);
    assert_eq!(json(&db, &["show", "t0", "--json"])["version"], 2);
    assert_eq!(json(&db, &["show", "t0@1", "--json"])["version"], 1);

    ok(&db, &["rm", "t1"]);
    let o = run(&db, &["show", "t1"]);
    assert_eq!(o.status.code(), Some(3));
    let stats = json(&db, &["stats", "--json"]);
    assert_eq!(stats["names"], 39);
    assert_eq!(stats["tombstones"], 1);
    assert_eq!(stats["spaces"][0]["name"], "ext");
    assert_eq!(stats["spaces"][0]["dim"], 8);
    let c = json(&db, &["compact", "--json"]);
    assert_eq!(c["purged"], 1);
    let chk = json(&db, &["check", "--json"]);
    assert_eq!(chk["ok"], true);
    assert!(ok(&db, &["check"]).contains("ok"));
    let human = ok(&db, &["knn", "t2", "-k", "3"]);
    assert_eq!(human.lines().count(), 3);
    let o = run(&db, &["knn", "nope"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn second_writer_process_gets_locked_error() {
    let d = tempfile::tempdir().unwrap();
    let db_path = d.path().join("lock.taskdb");
    let f = import_file(d.path(), 5);
    ok(&db_path, &["import", f.to_str().unwrap()]);
    // This test process holds the database open for writing...
    let held = taskdb::TaskDb::open(&db_path).unwrap();
    // ...so another process trying to write fails at once with a clear message.
    let t = std::time::Instant::now();
    let o = run(&db_path, &["rm", "t1"]);
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "no hang");
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("locked by another process"), "{err}");
    drop(held);
    ok(&db_path, &["rm", "t1"]);
}

#[test]
fn missing_db_argument_and_missing_file() {
    let o = Command::new(BIN)
        .arg("list")
        .env_remove("TASKDB_DB")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .arg("list")
        .env("TASKDB_DB", d.path().join("none.taskdb"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn bundled_sample_answers_by_family() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("sample.taskdb");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/engine/sample.jsonl");
    ok(&db, &["import", sample]);
    let hits = json(&db, &["knn", "sst2", "-k", "4", "--json"]);
    let names: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["distilbert-sst2", "imdb", "roberta-imdb", "yelp"],
        "{names:?}"
    );
    let models = json(
        &db,
        &["knn", "mnli", "-k", "2", "--kind", "model", "--json"],
    );
    let mut m: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    m.sort();
    assert_eq!(m, ["bart-mnli", "deberta-snli"]);
}

/// `knn` says when the first hits are within sampling noise of each other in a scatter space
/// (docs/METHODS.md, "What a score means"; 0.005 in today's default space, 0.01 in older
/// scatter spaces), and stays quiet when they are not, with `--quiet`, with `--json`, and in
/// spaces of other methods.
#[test]
fn knn_notes_hits_within_sampling_noise_of_the_best() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("note.taskdb");
    // cosines to q: a 0.500, b 0.497, c 0.493, e 0.100
    let unit = |c: f64, axis: usize| {
        let mut v = vec![c, 0.0, 0.0, 0.0, 0.0];
        v[axis] = (1.0 - c * c).sqrt();
        v
    };
    let spaces = [
        ("new", "scatter-kmeans-absdiff:test:test", "scatter"),
        ("old", "sp-scatter", "scatter"),
        ("fisher", "sp-fisher", "fisher"),
    ];
    let mut lines = Vec::new();
    for (tag, space, method) in spaces {
        for (name, v) in [
            ("q", vec![1.0, 0.0, 0.0, 0.0, 0.0]),
            ("a", unit(0.5, 1)),
            ("b", unit(0.497, 2)),
            ("c", unit(0.493, 3)),
            ("e", unit(0.1, 4)),
        ] {
            lines.push(
                serde_json::json!({"name": format!("{name}-{tag}"), "kind": "dataset",
                    "space": space, "vector": v, "method": method})
                .to_string(),
            );
        }
    }
    let f = d.path().join("note.jsonl");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    ok(&db, &["import", f.to_str().unwrap()]);

    let note = |args: &[&str]| {
        let o = run(&db, args);
        assert!(o.status.success(), "{args:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // today's default space: a and b are tied (0.003 < 0.005), c is not (0.007)
    let err = note(&["knn", "q-new", "-k", "4"]);
    assert!(
        err.contains("note: the first 2 hits score within 0.005 of the best"),
        "{err}"
    );
    assert!(err.contains("not meaningful"), "{err}");
    // an older scatter space: its noise is 0.01, so c is tied too
    let err = note(&["knn", "q-old", "-k", "4"]);
    assert!(
        err.contains("note: the first 3 hits score within 0.01 of the best"),
        "{err}"
    );
    // all hits tied
    assert!(note(&["knn", "q-new", "-k", "2"]).contains("note: all 2 hits"));
    // a single hit cannot be tied; --quiet and --json print no note; fisher is not measured
    for args in [
        &["knn", "q-new", "-k", "1"][..],
        &["-q", "knn", "q-new", "-k", "3"][..],
        &["knn", "q-new", "-k", "3", "--json"][..],
        &["knn", "q-fisher", "-k", "3"][..],
    ] {
        let err = note(args);
        assert!(!err.contains("note:"), "{args:?}: {err}");
    }
    // the stdout listing is unchanged by the note
    let o = run(&db, &["knn", "q-new", "-k", "4"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
}
