//! Issue 10, defects 2 and 3: vectors whose f32 norm underflows (all-subnormal components) or
//! overflows (components near 3e38). Subnormal-only vectors are refused before anything is
//! committed; a database that already holds one (written by an older taskdb) still opens,
//! `check` names it, and `rm` + `compact` repair it; scores are the true cosine at every
//! scale.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{Embedding, Filter, Kind, NewEntry, Query, SpaceSel, TaskDb};

use crate::common::{code, run};

fn ok(db: &Path, args: &[&str]) -> String {
    let o = run(db, args);
    let (c, out, err) = code(&o, &args.join(" "));
    assert_eq!(c, 0, "{args:?}: exit {c}\nstdout: {out}\nstderr: {err}");
    out
}

fn line(name: &str, v: &[f64]) -> String {
    serde_json::json!({"name": name, "kind": "dataset", "space": "ext", "vector": v}).to_string()
}

fn cosine64(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let n = |v: &[f32]| {
        v.iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt()
    };
    d / (n(a) * n(b))
}

#[test]
fn import_of_an_all_subnormal_vector_is_refused_before_anything_is_committed() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let good = d.path().join("good.jsonl");
    std::fs::write(
        &good,
        format!(
            "{}\n{}\n",
            line("a", &[1.0, 0.0, 0.0]),
            line("b", &[0.0, 1.0, 0.0])
        ),
    )
    .unwrap();
    ok(&db, &["import", good.to_str().unwrap()]);
    let bad = d.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n",
            line("c", &[1.0, 1.0, 0.0]),
            line("tiny", &[1e-45, 1e-45, 1e-45])
        ),
    )
    .unwrap();
    let o = run(&db, &["import", bad.to_str().unwrap()]);
    let (c, _, err) = code(&o, "import of a subnormal vector");
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("line 2"), "names the line: {err}");
    assert!(err.contains("subnormal"), "says why: {err}");
    // Nothing of the file was committed, and every command still works.
    let list: serde_json::Value = serde_json::from_str(&ok(&db, &["list", "--json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    ok(&db, &["check"]);
    ok(&db, &["knn", "a", "-k", "5"]);
}

#[test]
fn a_database_holding_a_subnormal_vector_opens_check_reports_it_and_rm_compact_repair_it() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.taskdb");
    {
        let db = TaskDb::open(&path).unwrap();
        db.put(vec![
            NewEntry::external("a", Kind::Dataset, "ext", vec![1.0, 0.0, 0.0]),
            NewEntry::external("b", Kind::Model, "ext", vec![0.0, 1.0, 0.0]),
            NewEntry::external("c", Kind::Model, "ext", vec![1.0, 1.0, 0.0]),
        ])
        .unwrap();
        // As an older taskdb wrote it: the vector passed its validation. (Before the fix the
        // commit succeeded and the graph insertion then failed.)
        let _ = taskdb::testing::put_unvalidated(
            &db,
            vec![NewEntry::external(
                "tiny",
                Kind::Dataset,
                "ext",
                vec![1e-45, 1e-45, 1e-45],
            )],
        );
    }
    // The graph is rebuilt from the store at the next open (as after any lost graph file).
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&path));

    let list = ok(&path, &["list"]);
    assert!(list.contains("tiny"), "{list}");
    ok(&path, &["stats"]);
    ok(&path, &["show", "a"]);
    let knn = ok(&path, &["knn", "a", "-k", "5"]);
    assert!(knn.contains('c'), "{knn}");
    let o = run(&path, &["check"]);
    let (c, out, err) = code(&o, "check");
    assert_eq!(c, 7, "check reports the damage: {out}{err}");
    assert!(
        out.contains("tiny") && out.contains("subnormal"),
        "check names the entry and what is wrong: {out}"
    );
    ok(&path, &["rm", "tiny"]);
    ok(&path, &["compact"]);
    let out = ok(&path, &["check"]);
    assert!(out.trim_end().ends_with("ok"), "{out}");
    let list = ok(&path, &["list"]);
    assert!(!list.contains("tiny") && list.contains('b'), "{list}");
}

#[test]
fn knn_between_vectors_near_the_f32_limit_returns_the_true_cosine() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("t.taskdb")).unwrap();
    let a = vec![3e38f32, 1e38, 2e38, 0.0];
    let b = vec![1e38f32, 3e38, 0.0, 3e38];
    db.put(vec![
        NewEntry::external("a", Kind::Dataset, "ext", a.clone()),
        NewEntry::external("b", Kind::Model, "ext", b.clone()),
    ])
    .unwrap();
    let want = cosine64(&a, &b);
    assert!(want > 0.3, "{want}");
    let hits = db
        .nearest(&Query::entry("a").unwrap(), 5, &Filter::all())
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(
        (hits[0].score as f64 - want).abs() < 1e-6,
        "score {} but the cosine is {want}",
        hits[0].score
    );
    // The same through a query vector, and through the CLI.
    let hits = db
        .nearest(
            &Query::Vector {
                space: SpaceSel::Name("ext".into()),
                embedding: Embedding::Dense(b.clone()),
            },
            5,
            &Filter::all(),
        )
        .unwrap();
    let top = hits.iter().find(|h| h.name == "a").unwrap();
    assert!((top.score as f64 - want).abs() < 1e-6, "{}", top.score);
}

#[test]
fn every_stored_vector_scores_the_f64_cosine_at_every_scale() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("t.taskdb")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let dim = 6;
    let mut stored: Vec<(String, Vec<f32>)> = Vec::new();
    let mut trial = 0;
    while stored.len() < 120 {
        trial += 1;
        // Scales from 1e-40 (every component subnormal) to 3e38 (near f32::MAX).
        let exp = rng.random_range(-40.0f64..38.47);
        let scale = 10f64.powf(exp);
        let v: Vec<f32> = (0..dim)
            .map(|_| (rng.random_range(-1.0f64..1.0) * scale) as f32)
            .collect();
        if v.iter().any(|x| !x.is_finite()) || v.iter().all(|&x| x == 0.0) {
            continue;
        }
        let name = format!("v{trial}");
        let e = NewEntry::external(name.clone(), Kind::Dataset, "ext", v.clone());
        // Vectors taskdb now refuses (all components subnormal) are stored as an older
        // taskdb stored them: they must score correctly all the same.
        let subnormal = v.iter().all(|x| x.abs() < f32::MIN_POSITIVE);
        if subnormal {
            let _ = taskdb::testing::put_unvalidated(&db, vec![e]);
        } else {
            db.put(vec![e]).unwrap();
        }
        stored.push((name, v));
    }
    assert!(
        stored
            .iter()
            .any(|(_, v)| v.iter().all(|x| x.abs() < f32::MIN_POSITIVE)),
        "the loop covers subnormal vectors"
    );
    assert!(
        stored.iter().any(|(_, v)| v.iter().any(|x| x.abs() > 1e37)),
        "the loop covers huge vectors"
    );
    for (qname, q) in stored.iter().step_by(7) {
        let hits = db
            .nearest(
                &Query::entry(qname.as_str()).unwrap(),
                stored.len(),
                &Filter::all(),
            )
            .unwrap();
        assert_eq!(hits.len(), stored.len() - 1, "every stored vector is found");
        for h in &hits {
            let v = &stored.iter().find(|(n, _)| n == &h.name).unwrap().1;
            let want = cosine64(q, v);
            assert!(h.score.is_finite(), "{qname} vs {}: {}", h.name, h.score);
            assert!(
                (h.score as f64 - want).abs() < 1e-6,
                "{qname} vs {}: score {} but the cosine is {want} ({q:?} vs {v:?})",
                h.name,
                h.score
            );
        }
    }
}
