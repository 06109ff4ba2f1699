//! Issue 10: every documented failure of the CLI exits with its documented code (the table
//! in schema/cli-json.md), never with a signal status; and the defect-11 fixes that live
//! in the CLI (`--threads`, `list --method`, missing surrogate, `--scores-are logits`).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::BIN;

fn fx(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn run(db: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TASKDB_DB");
    if let Some(db) = db {
        c.arg("--db").arg(db);
    }
    c.args(args).output().unwrap()
}

fn tiny(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend([
        "--surrogate".into(),
        fx("surrogate/tiny"),
        "--probe".into(),
        fx("probe/probe_small.jsonl"),
        "--quiet".into(),
    ]);
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// Exit code (asserting it is not a signal death) and stderr.
fn code(o: &Output, what: &str) -> (i32, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.signal(), None, "{what}: killed by a signal; {err}");
    (o.status.code().unwrap(), err)
}

#[test]
fn documented_failures_exit_with_their_documented_code_never_a_signal() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let db = p("t.taskdb");
    std::fs::write(
        p("good.jsonl"),
        "{\"name\": \"a\", \"kind\": \"dataset\", \"space\": \"ext\", \"vector\": [1, 0, 0]}\n\
         {\"name\": \"b\", \"kind\": \"model\", \"space\": \"ext\", \"vector\": [0, 1, 0]}\n",
    )
    .unwrap();
    std::fs::write(p("bad.jsonl"), "{\"name\": \"c\", \"kind\": \"dataset\"}\n").unwrap();
    std::fs::write(p("junk.taskdb"), vec![0x5a; 8192]).unwrap();
    let o = run(Some(&db), &["import", p("good.jsonl").to_str().unwrap()]);
    assert_eq!(code(&o, "import").0, 0, "{}", code(&o, "import").1);

    let good_ds = fx("datasets/sentiment_a.jsonl");
    let bad_ds = fx("datasets/bad/malformed.jsonl");
    let missing = p("missing.jsonl");
    let crash = format!("python3 {}", fx("models/crash.py"));
    let junk = p("junk.taskdb");
    let nope = p("nope.taskdb");
    let cases: Vec<(&str, Option<&Path>, Vec<String>, i32)> = vec![
        (
            "unknown flag",
            Some(&db),
            vec!["list".into(), "--bogus".into()],
            2,
        ),
        ("no --db", None, vec!["list".into()], 2),
        ("missing database", Some(&nope), vec!["list".into()], 3),
        (
            "missing entry",
            Some(&db),
            vec!["show".into(), "zzz".into()],
            3,
        ),
        (
            "invalid import line",
            Some(&db),
            vec!["import".into(), p("bad.jsonl").display().to_string()],
            4,
        ),
        (
            "malformed dataset",
            Some(&db),
            tiny(&["ingest", "dataset", "x", &bad_ds]),
            4,
        ),
        (
            "missing dataset file",
            Some(&db),
            tiny(&["ingest", "dataset", "x", missing.to_str().unwrap()]),
            8,
        ),
        ("not a taskdb database", Some(&junk), vec!["list".into()], 6),
        (
            "surrogate missing",
            Some(&db),
            vec![
                "ingest".into(),
                "dataset".into(),
                "x".into(),
                good_ds.clone(),
                "--surrogate".into(),
                p("no-surrogate").display().to_string(),
            ],
            9,
        ),
        (
            "model command crashes",
            Some(&db),
            tiny(&["ingest", "model", "m", "--command", &crash]),
            10,
        ),
    ];
    for (what, db, args, want) in &cases {
        let o = run(*db, &refs(args));
        let (c, err) = code(&o, what);
        assert_eq!(c, *want, "{what}: {err}");
        assert!(err.contains("error"), "{what}: no error message: {err}");
    }
}

#[test]
fn absurd_thread_counts_are_refused_not_hung() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let a = tiny(&[
        "ingest",
        "dataset",
        "x",
        &fx("datasets/sentiment_a.jsonl"),
        "--threads",
        "100000",
    ]);
    let (c, err) = code(&run(Some(&db), &refs(&a)), "--threads 100000");
    assert_eq!(c, 4, "{err}");
    assert!(
        err.contains("--threads") && err.contains("per core"),
        "{err}"
    );
    assert!(!db.exists());
}

#[test]
fn list_with_an_unknown_method_is_an_error_not_an_empty_list() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    std::fs::write(
        d.path().join("v.jsonl"),
        "{\"name\": \"a\", \"kind\": \"dataset\", \"space\": \"ext\", \"vector\": [1, 0]}\n",
    )
    .unwrap();
    let v = d.path().join("v.jsonl");
    assert_eq!(
        code(&run(Some(&db), &["import", v.to_str().unwrap()]), "import").0,
        0
    );
    let (c, err) = code(&run(Some(&db), &["list", "--method", "bogus"]), "bogus");
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("\"bogus\"") && err.contains("ext"), "{err}");
    // Known methods, and an external space's method, are fine (even with no hits).
    for m in ["ext", "scatter"] {
        let (c, err) = code(&run(Some(&db), &["list", "--method", m]), m);
        assert_eq!(c, 0, "{m}: {err}");
    }
}

#[test]
fn missing_default_surrogate_points_at_provisioning() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    // An empty cache: the default surrogate is not installed there.
    let o = Command::new(BIN)
        .env("XDG_CACHE_HOME", d.path())
        .env("HOME", d.path())
        .env("TASKDB_HOME", d.path())
        .arg("--db")
        .arg(&db)
        .args(["ingest", "dataset", "x", &fx("datasets/sentiment_a.jsonl")])
        .output()
        .unwrap();
    let (c, err) = code(&o, "no surrogate");
    assert_eq!(c, 9, "{err}");
    assert!(err.contains("scripts/provision.sh"), "{err}");
}

#[test]
fn logits_from_a_model_command_are_ingested_with_scores_are_logits() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let ds = tiny(&["ingest", "dataset", "a", &fx("datasets/sentiment_a.jsonl")]);
    assert_eq!(code(&run(Some(&db), &refs(&ds)), "dataset").0, 0);
    let cmd = format!("python3 {} --logits", fx("models/sentiment_soft.py"));
    let (c, err) = code(
        &run(
            Some(&db),
            &refs(&tiny(&["ingest", "model", "m", "--command", &cmd])),
        ),
        "logits as probabilities",
    );
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("--scores-are logits"), "{err}");
    let a = tiny(&[
        "ingest",
        "model",
        "m",
        "--command",
        &cmd,
        "--scores-are",
        "logits",
    ]);
    let (c, err) = code(&run(Some(&db), &refs(&a)), "logits");
    assert_eq!(c, 0, "{err}");
}

#[test]
fn maintenance_commands_on_a_mistyped_path_do_not_create_a_database() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("typo.taskdb");
    for args in [
        &["check"][..],
        &["compact"],
        &["rm", "a"],
        &["check", "--json"],
    ] {
        let (c, err) = code(&run(Some(&db), args), &format!("{args:?}"));
        assert_eq!(c, 3, "{args:?}: {err}");
        assert!(err.contains("not found"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
}

#[test]
fn quiet_does_not_hide_surrogate_warnings() {
    // Whatever this machine has: the warnings `surrogate info` reports for --device cuda
    // (a CPU fallback here without a GPU) are printed by a --quiet ingestion too.
    let info = run(
        None,
        &[
            "surrogate",
            "info",
            "--surrogate",
            &fx("surrogate/tiny"),
            "--device",
            "cuda",
            "--json",
        ],
    );
    let (c, err) = code(&info, "surrogate info");
    assert_eq!(c, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let a = tiny(&[
        "ingest",
        "dataset",
        "a",
        &fx("datasets/sentiment_a.jsonl"),
        "--device",
        "cuda",
    ]);
    let (c, err) = code(&run(Some(&db), &refs(&a)), "ingest --device cuda -q");
    assert_eq!(c, 0, "{err}");
    for w in &warnings {
        let head: String = w.chars().take(40).collect();
        assert!(err.contains(&head), "-q hid {w:?}: {err}");
        // printed once, not again by the report
        assert_eq!(err.matches(&head).count(), 1, "{w:?} repeated: {err}");
    }
    // The --json report carries them too (it was empty on a CUDA fallback).
    let mut a = a.clone();
    a.push("--json".into());
    let o = run(Some(&db), &refs(&a));
    let (c, err) = code(&o, "ingest --device cuda --json");
    assert_eq!(c, 0, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    for w in &warnings {
        assert!(
            got.contains(&w.as_str()),
            "{w:?} not in the report's warnings {got:?}"
        );
    }
}

/// Issue 10, defect 11: thousands of distinct model labels took minutes without a word; more
/// than 100 now give a warning in the report (human and --json).
#[test]
fn a_model_with_very_many_labels_is_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let pred = d.path().join("pred.jsonl");
    let lines: Vec<String> = (0..120)
        .map(|i| format!("{{\"id\": {i}, \"label\": \"class-{}\"}}", i % 110))
        .collect();
    std::fs::write(&pred, lines.join("\n") + "\n").unwrap();
    let a = tiny(&[
        "ingest",
        "model",
        "m",
        "--predictions",
        pred.to_str().unwrap(),
        "--method",
        "scatter",
        "--json",
    ]);
    let o = run(Some(&db), &refs(&a));
    let (c, err) = code(&o, "ingest model with 110 labels");
    assert_eq!(c, 0, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = r["warnings"].to_string();
    assert!(w.contains("110 distinct labels"), "{w}");
    // a model with few labels gets no such warning
    let few: Vec<String> = (0..120)
        .map(|i| format!("{{\"id\": {i}, \"label\": \"c{}\"}}", i % 3))
        .collect();
    std::fs::write(&pred, few.join("\n") + "\n").unwrap();
    let mut a = a.clone();
    a[2] = "m2".into();
    let o = run(Some(&db), &refs(&a));
    let (c, err) = code(&o, "ingest model with 3 labels");
    assert_eq!(c, 0, "{err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !r["warnings"].to_string().contains("distinct labels"),
        "{r}"
    );
}
