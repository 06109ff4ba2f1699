//! Issue 10, defects 5 and 6: names that an entry reference would read as another entry's
//! version (`a@1`) are refused at import and ingestion, and names already stored that way stay
//! reachable (an exact name wins); an import that would hide an ingested entry from its
//! spaces (a new version of another kind or in other spaces) is refused unless asked for.

use std::path::Path;

use crate::common::code;
use crate::ingest_common::*;
use taskdb::{Kind, NewEntry, TaskDb};

fn line(name: &str, kind: &str, space: &str, v: &[f32]) -> String {
    serde_json::json!({"name": name, "kind": kind, "space": space, "vector": v}).to_string()
}

fn write(dir: &Path, file: &str, lines: &[String]) -> String {
    let p = dir.join(file);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

fn names(db: &Path) -> Vec<String> {
    listing(db)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}@{}", e["name"].as_str().unwrap(), e["version"]))
        .collect()
}

#[test]
fn names_ending_in_at_digits_are_refused_at_import_and_ingestion() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let f = write(
        d.path(),
        "a.jsonl",
        &[
            line("a", "dataset", "ext", &[1.0, 0.0]),
            line("a@1", "dataset", "ext", &[0.0, 1.0]),
        ],
    );
    let (c, _, err) = code(&run(&db, &["import", &f]), "import a@1");
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("line 2"), "names the line: {err}");
    assert!(err.contains("\"a@1\""), "names the name: {err}");
    assert!(err.contains("version"), "says why: {err}");
    // Nothing was written.
    if db.exists() {
        assert!(names(&db).is_empty(), "{:?}", names(&db));
    }
    for bad in ["x@2", "x@+3", "x@007", "x@0"] {
        let f = write(
            d.path(),
            "b.jsonl",
            &[line(bad, "model", "ext", &[1.0, 1.0])],
        );
        let (c, _, err) = code(&run(&db, &["import", &f]), bad);
        assert_eq!(c, 4, "{bad}: {err}");
    }
    // Names with an `@` that is not followed by a version number stay allowed.
    let f = write(
        d.path(),
        "c.jsonl",
        &[
            line("user@host", "model", "ext", &[1.0, 1.0]),
            line("v@1.5", "model", "ext", &[1.0, 2.0]),
        ],
    );
    let (c, _, err) = code(&run(&db, &["import", &f]), "import user@host");
    assert_eq!(c, 0, "{err}");

    let ds = fxs("datasets/sentiment_a.jsonl");
    let o = run_tiny(&db, &["ingest", "dataset", "s@1", &ds]);
    let (c, _, err) = code(&o, "ingest dataset s@1");
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("\"s@1\""), "{err}");
    assert_eq!(names(&db), vec!["user@host@1", "v@1.5@1"]);
}

#[test]
fn an_existing_name_like_a_at_1_wins_over_version_1_of_a() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    {
        let t = TaskDb::open(&db).unwrap();
        t.put(vec![
            NewEntry::external("a", Kind::Dataset, "ext", vec![1.0, 0.0, 0.0]),
            NewEntry::external("b", Kind::Model, "ext", vec![0.0, 1.0, 0.0]),
        ])
        .unwrap();
        // A name an older taskdb accepted.
        taskdb::testing::put_unvalidated(
            &t,
            vec![NewEntry::external(
                "a@1",
                Kind::Model,
                "ext",
                vec![1.0, 1.0, 0.0],
            )],
        )
        .unwrap();
    }
    let shown = json(&ok(run(&db, &["show", "a@1", "--json"]), "show a@1"));
    assert_eq!(shown["name"], "a@1", "{shown}");
    let hits = json(&ok(run(&db, &["knn", "a@1", "--json"]), "knn a@1"));
    let hit_names: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(
        hit_names.contains(&"a") && !hit_names.contains(&"a@1"),
        "{hit_names:?}"
    );
    ok(run(&db, &["rm", "a@1"]), "rm a@1");
    assert_eq!(names(&db), vec!["a@1", "b@1"], "rm a@1 removed a@1, kept a");
}

#[test]
fn import_that_would_hide_an_ingested_entry_is_refused_without_replace() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    for (name, file, extra) in [
        ("sentiment_a", "datasets/sentiment_a.jsonl", vec![]),
        (
            "sentiment_b",
            "datasets/sentiment_b.csv",
            vec!["--text", "sentence"],
        ),
        ("topic", "datasets/topic.tsv", vec![]),
    ] {
        let f = fxs(file);
        let mut args = vec!["ingest", "dataset", name, f.as_str()];
        args.extend(extra);
        ok(run_tiny(&db, &args), name);
    }
    let cmd = format!("python3 {}", fxs("models/sentiment_rule.py"));
    ok(
        run_tiny(&db, &["ingest", "model", "rule", "--command", &cmd]),
        "ingest model",
    );
    let before = knn_datasets(&db, "rule", None);
    assert_eq!(before.len(), 3, "{before:?}");
    let listed = listing(&db);

    let f = write(
        d.path(),
        "clash.jsonl",
        &[
            line("other", "dataset", "ext", &[1.0, 0.0, 0.0]),
            line("sentiment_a", "dataset", "ext", &[0.0, 1.0, 0.0]),
        ],
    );
    let (c, _, err) = code(&run(&db, &["import", &f]), "import over an ingested name");
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("line 2"), "names the line: {err}");
    assert!(err.contains("\"sentiment_a\""), "names the entry: {err}");
    assert!(err.contains("--replace"), "names the flag: {err}");
    assert_eq!(listing(&db), listed, "nothing was written");
    assert_eq!(
        knn_datasets(&db, "rule", None),
        before,
        "knn still finds every dataset"
    );

    // A new version of another kind in the same external space is refused too.
    let f = write(
        d.path(),
        "m.jsonl",
        &[line("x", "model", "ext", &[1.0, 0.0, 0.0])],
    );
    ok(run(&db, &["import", &f]), "import x");
    let f = write(
        d.path(),
        "m2.jsonl",
        &[line("x", "dataset", "ext", &[1.0, 1.0, 0.0])],
    );
    let (c, _, err) = code(&run(&db, &["import", &f]), "import x as a dataset");
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("model") && err.contains("dataset"), "{err}");
    // Same kind, same space: an ordinary new version.
    let f = write(
        d.path(),
        "m3.jsonl",
        &[line("x", "model", "ext", &[1.0, 1.0, 0.0])],
    );
    ok(run(&db, &["import", &f]), "import x again");

    // With --replace the user gets what they asked for.
    let f = write(
        d.path(),
        "replace.jsonl",
        &[line("sentiment_a", "dataset", "ext", &[0.0, 1.0, 0.0])],
    );
    ok(run(&db, &["import", "--replace", &f]), "import --replace");
    assert_eq!(knn_datasets(&db, "rule", None).len(), 2);
}
