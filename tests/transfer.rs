//! Issue 11: recorded outcomes, `recommend`, `compare` and `eval recommend`, through the
//! library and the CLI, on a small database of imported vectors (one external space).

use std::path::Path;
use std::process::Command;

use taskdb::{Basis, EntryRef, Error, Kind, NewEntry, NewOutcome, RecommendOptions, TaskDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// `t` is the target; `near` is most like it, `far` least; `p1` is a task very like `t` on
/// which outcomes were measured; `m` is a model.
fn small_db(dir: &Path) -> TaskDb {
    let db = TaskDb::open(dir.join("t.taskdb")).unwrap();
    let e = |n: &str, k, v: Vec<f32>| NewEntry::external(n, k, "s", v);
    db.put(vec![
        e("t", Kind::Dataset, vec![1.0, 0.0, 0.0, 0.0]),
        e("near", Kind::Dataset, vec![0.9, 0.1, 0.0, 0.0]),
        e("mid", Kind::Dataset, vec![0.5, 0.5, 0.2, 0.0]),
        e("far", Kind::Dataset, vec![0.0, 0.1, 1.0, 0.2]),
        e("p1", Kind::Dataset, vec![0.95, 0.0, 0.05, 0.1]),
        e("m", Kind::Model, vec![0.99, 0.01, 0.0, 0.0]),
    ])
    .unwrap();
    db
}

fn names(r: &[taskdb::Recommendation]) -> Vec<&str> {
    r.iter().map(|r| r.name.as_str()).collect()
}

fn opts() -> RecommendOptions {
    RecommendOptions {
        k: 10,
        from: Some(Kind::Dataset),
        ..RecommendOptions::default()
    }
}

#[test]
fn recommend_ranks_by_similarity_then_lets_outcomes_move_it_as_documented() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let t = EntryRef::latest("t");
    let r = db.recommend(&t, &opts()).unwrap();
    assert_eq!(
        names(&r),
        ["near", "p1", "mid", "far"],
        "models left out by --from"
    );
    assert!(r.iter().all(|r| r.basis == Basis::Estimated));
    assert!(r[0].similarity["s"] > r[1].similarity["s"]);
    // With models: the model is most like t.
    let all = db
        .recommend(
            &t,
            &RecommendOptions {
                from: None,
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(all[0].name, "m");

    // A measured gain outranks every estimate; a measured loss sinks below them.
    db.add_outcomes(
        vec![
            NewOutcome::new("far", "t", 0.05),
            NewOutcome::new("near", "t", -0.02),
        ],
        &|i| format!("test {i}"),
    )
    .unwrap();
    let r = db.recommend(&t, &opts()).unwrap();
    assert_eq!(names(&r), ["far", "p1", "mid", "near"]);
    assert_eq!(r[0].basis, Basis::Measured);
    assert_eq!(r[0].measured_gain, Some(0.05));
    assert_eq!(r[3].basis, Basis::MeasuredNoGain);

    // Pivots: mid helped p1 (a task much more like t than t's average neighbour) and p1 is
    // not measured on t, so mid rises above p1... only if the pivot evidence says so.
    db.add_outcomes(vec![NewOutcome::new("mid", "p1", 0.2)], &|_| "test".into())
        .unwrap();
    let r = db.recommend(&t, &opts()).unwrap();
    assert_eq!(names(&r), ["far", "mid", "p1", "near"], "{r:#?}");
    let mid = &r[1];
    assert_eq!(mid.pivot_estimate, Some(0.2));
    assert_eq!(mid.pivots[0].target, "p1");
    assert!(mid.pivots[0].weight > 0.0);
    // Without outcomes, or with λ = 0 for the pivots, similarity decides again.
    let plain = db
        .recommend(
            &t,
            &RecommendOptions {
                use_outcomes: false,
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(names(&plain), ["near", "p1", "mid", "far"]);
    let no_pivots = db
        .recommend(
            &t,
            &RecommendOptions {
                lambda: 0.0,
                ..opts()
            },
        )
        .unwrap();
    assert_eq!(names(&no_pivots), ["far", "p1", "mid", "near"]);
    // Bad options are errors, not panics.
    let e = db
        .recommend(
            &t,
            &RecommendOptions {
                lambda: 2.0,
                ..opts()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = db
        .recommend(
            &t,
            &RecommendOptions {
                method: Some("fisher".into()),
                ..opts()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("no fisher vector"), "{e}");
}

#[test]
fn outcomes_refuse_unknown_entries_non_finite_values_and_duplicates_whole() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let at = |i: usize| format!("record {}", i + 1);
    let err = |v: Vec<NewOutcome>| db.add_outcomes(v, &at).unwrap_err().to_string();
    let e = err(vec![
        NewOutcome::new("near", "t", 0.1),
        NewOutcome::new("nope", "t", 0.1),
    ]);
    assert!(
        e.contains("record 2") && e.contains("no entry named \"nope\""),
        "{e}"
    );
    let e = err(vec![NewOutcome::new("near", "t", f64::NAN)]);
    assert!(e.contains("not a finite number"), "{e}");
    let e = err(vec![NewOutcome::new("t", "t", 0.1)]);
    assert!(e.contains("from one task to another"), "{e}");
    let mut seeded = NewOutcome::new("near", "t", 0.1);
    seeded.seed = Some(3);
    let e = err(vec![seeded.clone(), seeded.clone()]);
    assert!(
        e.contains("record 2") && e.contains("already recorded (record 1)"),
        "{e}"
    );
    assert!(e.contains("seed 3"), "{e}");
    assert!(
        db.outcomes().unwrap().is_empty(),
        "a refused batch writes nothing"
    );
    let ids = db.add_outcomes(vec![seeded.clone()], &at).unwrap();
    let e = err(vec![seeded.clone()]);
    assert!(e.contains(&format!("outcome {}", ids[0])), "{e}");
    // Another seed is another measurement; both count in the mean.
    let mut other = seeded.clone();
    other.seed = Some(4);
    other.value = 0.3;
    db.add_outcomes(vec![other], &at).unwrap();
    let r = db.recommend(&EntryRef::latest("t"), &opts()).unwrap();
    assert_eq!((r[0].name.as_str(), r[0].measured_records), ("near", 2));
    assert!((r[0].measured_gain.unwrap() - 0.2).abs() < 1e-12);
    // Remove by id; a missing id is NotFound.
    db.remove_outcome(ids[0]).unwrap();
    assert_eq!(db.outcomes().unwrap().len(), 1);
    assert!(matches!(
        db.remove_outcome(999),
        Err(Error::NotFound { .. })
    ));
    // Outcomes survive reopening and compaction.
    drop(db);
    let mut db = TaskDb::open(d.path().join("t.taskdb")).unwrap();
    db.compact().unwrap();
    assert_eq!(db.outcomes().unwrap().len(), 1);
    assert!(db.check().unwrap().ok());
}

#[test]
fn compare_reports_similarity_and_ranks_in_each_shared_space() {
    let d = tempfile::tempdir().unwrap();
    let db = small_db(d.path());
    let c = db
        .compare(&EntryRef::latest("t"), &EntryRef::latest("far"))
        .unwrap();
    assert_eq!(c.spaces.len(), 1);
    let s = &c.spaces[0];
    assert_eq!((s.method.as_str(), s.space.as_str()), ("s", "s"));
    assert_eq!(s.neighbours, 5);
    assert_eq!(s.rank_of_b_for_a, 5, "far is t's farthest neighbour");
    // cos(t, far) = 0 / (1 · |far|)
    assert!(s.similarity.abs() < 1e-6, "{}", s.similarity);
    assert!(c.not_shared.is_empty());
    assert_eq!(c.a.entry, "t@1");
}

#[test]
fn the_cli_records_outcomes_recommends_and_evaluates() {
    let d = tempfile::tempdir().unwrap();
    drop(small_db(d.path()));
    let db = d.path().join("t.taskdb");
    let run = |args: &[&str]| {
        let o = Command::new(BIN)
            .env_remove("TASKDB_DB")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (c, _, e) = run(&["outcome", "add", "far", "t", "0.8", "--baseline", "0.75"]);
    assert_eq!(c, 0, "{e}");
    let (c, out, _) = run(&["recommend", "t", "-k", "2"]);
    assert_eq!(c, 0);
    assert!(
        out.contains("far@1") && out.contains("measured gain +0.0500"),
        "{out}"
    );
    let (c, out, _) = run(&["recommend", "t", "--json"]);
    assert_eq!(c, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["basis"], "measured");
    let (c, _, e) = run(&["outcome", "add", "far", "t", "0.8", "--baseline", "0.75"]);
    assert_eq!(c, 4, "a duplicate is invalid input: {e}");
    let (c, _, e) = run(&["outcome", "add", "far", "ghost", "0.1"]);
    assert_eq!(c, 4, "{e}");
    assert!(e.contains("no entry named \"ghost\""), "{e}");
    let csv = d.path().join("o.csv");
    std::fs::write(
        &csv,
        "target,source,score\nt,near,0.1\nt,mid,0.05\nt,far,-0.02\np1,near,0.2\np1,mid,0.1\np1,far,0.0\n",
    )
    .unwrap();
    let (c, _, e) = run(&["eval", "recommend", "--outcomes", csv.to_str().unwrap()]);
    assert_eq!(c, 4, "no value column: {e}");
    assert!(e.contains("--value-column"), "{e}");
    let (c, out, e) = run(&[
        "eval",
        "recommend",
        "--outcomes",
        csv.to_str().unwrap(),
        "--value-column",
        "score",
        "-k",
        "2",
        "--json",
    ]);
    assert_eq!(c, 0, "{e}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["targets"], serde_json::json!(["p1", "t"]));
    let rows = v["rows"].as_array().unwrap();
    let random = rows
        .iter()
        .find(|r| r["ranker"] == "random order (expected)")
        .unwrap();
    assert!(random["ndcg"].as_f64().unwrap() < 1.0);
    // The file holds far → t again: a duplicate of outcome 1, so the import is refused
    // whole until outcome 1 is removed.
    let (c, _, e) = run(&[
        "outcome",
        "import",
        csv.to_str().unwrap(),
        "--value-column",
        "score",
    ]);
    assert_eq!(c, 4, "{e}");
    assert!(
        e.contains("record 3") && e.contains("already recorded (outcome 1)"),
        "{e}"
    );
    let (c, _, e) = run(&["outcome", "rm", "1"]);
    assert_eq!(c, 0, "{e}");
    // Stored outcomes are not used by the evaluation: the same figures with six stored.
    let (c, out2, _) = run(&[
        "outcome",
        "import",
        csv.to_str().unwrap(),
        "--value-column",
        "score",
    ]);
    assert_eq!(c, 0);
    assert!(out2.contains("recorded 6 outcomes"), "{out2}");
    let (c, out3, _) = run(&[
        "eval",
        "recommend",
        "--outcomes",
        csv.to_str().unwrap(),
        "--value-column",
        "score",
        "-k",
        "2",
        "--json",
    ]);
    assert_eq!(c, 0);
    assert_eq!(out, out3);
    let (c, out, _) = run(&["compare", "t", "near"]);
    assert_eq!(c, 0);
    assert!(out.contains("near@1 is #"), "{out}");
}
