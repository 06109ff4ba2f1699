//! A model entry's outputs on U (issue 11): stored with the entry by every model ingestion,
//! read back exactly (`TaskDb::model_outputs`, `taskdb outputs`), removed with the entry,
//! verified by `check`, carried by snapshots; and the mutual-information baseline of
//! `select-prompt` computed from them. On fixtures only (tiny surrogate, small probe set).

mod ingest_common;

use std::path::Path;

use ingest_common::*;
use taskdb::{EntryRef, ModelOutputs, OutputValues, TaskDb};

const U_ROWS: usize = 120; // fixtures/probe/probe_small.jsonl

fn ingest_model(db: &Path, name: &str, extra: &[&str]) {
    let mut args = vec!["ingest", "model", name];
    args.extend(extra);
    ok(run_tiny(db, &args), &format!("ingest model {name}"));
}

/// A model command written to `dir`: `body` is the Python loop body over `(i, d)`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    let src = format!(
        "import json, sys\nfor i, line in enumerate(sys.stdin):\n    d = json.loads(line)\n    {body}\n"
    );
    std::fs::write(&p, src).unwrap();
    format!("python3 {}", p.display())
}

fn outputs(db: &Path, name: &str) -> Option<ModelOutputs> {
    let tdb = TaskDb::open_read_only(db).unwrap();
    tdb.model_outputs(&EntryRef::latest(name)).unwrap()
}

/// The mutual information of stored outputs, computed here from their distributions alone:
/// H(mean p) − mean H(p), over ln(max(task labels, labels given probability)).
fn mi_by_hand(o: &ModelOutputs, task_labels: usize) -> f64 {
    let k = o.labels.len();
    let rows: Vec<Vec<f64>> = match &o.values {
        OutputValues::Hard(l) => l
            .iter()
            .map(|&j| {
                (0..k)
                    .map(|c| f64::from(u8::from(c == j as usize)))
                    .collect()
            })
            .collect(),
        OutputValues::Soft(p) => p
            .chunks(k)
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect(),
    };
    let h = |p: &[f64]| -> f64 { p.iter().filter(|&&x| x > 0.0).map(|x| -x * x.ln()).sum() };
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..k)
        .map(|c| rows.iter().map(|r| r[c]).sum::<f64>() / n)
        .collect();
    let cond = rows.iter().map(|r| h(r)).sum::<f64>() / n;
    let used = mean.iter().filter(|&&m| m > 0.0).count();
    (h(&mean) - cond) / (task_labels.max(used) as f64).ln()
}

/// Soft-score stand-in LLM prompts, a nearly degenerate prompt and a hard-label model: the
/// stored outputs are what was ingested, select-prompt's MI is the one computed by hand from
/// them, the degenerate prompt ranks last on MI, hard labels give MI = output entropy; rm and
/// compact remove the outputs; check counts and verifies them; a damaged record is named.
#[test]
fn outputs_are_stored_read_back_and_give_select_prompt_its_mutual_information() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("mi.taskdb");
    let f = fxs("datasets/sentiment_a.jsonl");
    ok(
        run_tiny(&db, &["ingest", "dataset", "sentiment_a", &f]),
        "ingest dataset",
    );
    let llm = format!("python3 {} --scores", fxs("models/llm_like.py"));
    // The same distribution for every text but every 30th: almost no information about x.
    let flat = script(
        d.path(),
        "flat.py",
        "p = 0.9 if i % 30 == 0 else 0.5\n    print(json.dumps({'id': d['id'], 'scores': {'good': p, 'bad': 1 - p}}))",
    );
    ingest_model(
        &db,
        "p_soft",
        &["--command", &llm, "--prompt", "Text: {text}"],
    );
    ingest_model(&db, "p_flat", &["--command", &flat]);
    let hard = format!("python3 {}", fxs("models/sentiment_rule.py"));
    ingest_model(&db, "p_hard", &["--command", &hard]);

    // Stored exactly as ingested: every text of U answered, llm_like's four score words
    // normalised to sum 1 (0.8 or 0.2 split 0.9/0.1 over good/Great, the rest bad, 0.05 maybe).
    let soft = outputs(&db, "p_soft").expect("p_soft has outputs");
    assert_eq!(soft.labels, ["Great", "bad", "good", "maybe"]);
    assert_eq!(soft.rows, (0..U_ROWS as u32).collect::<Vec<_>>());
    assert_eq!(soft.probe_rows as usize, U_ROWS);
    assert!(!soft.is_hard());
    let (mut pos, mut neg) = (0, 0);
    for i in 0..soft.rows.len() {
        let p = soft.distribution(i);
        let want = |pp: f64| [pp * 0.1, 1.0 - pp, pp * 0.9, 0.05].map(|x| x / 1.05);
        let close = |w: [f64; 4]| p.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-6);
        match (close(want(0.8)), close(want(0.2))) {
            (true, _) => pos += 1,
            (_, true) => neg += 1,
            _ => panic!("row {i}: {p:?} is neither of llm_like's two distributions"),
        }
    }
    assert!(pos > 10 && neg > 10, "{pos} positive, {neg} negative rows");
    let hard_o = outputs(&db, "p_hard").expect("p_hard has outputs");
    assert!(hard_o.is_hard());
    assert_eq!(hard_o.labels, ["negative", "positive"]);
    assert_eq!(hard_o.rows.len(), U_ROWS);

    // `taskdb outputs --json`: a head line, then one line per row, the same values.
    let lines = ok(run(&db, &["outputs", "p_soft", "--json"]), "outputs");
    let lines: Vec<serde_json::Value> = lines.lines().map(json).collect();
    assert_eq!(lines.len(), 1 + U_ROWS);
    assert_eq!(lines[0]["kind"], "soft");
    assert_eq!(lines[0]["answered"], U_ROWS);
    assert_eq!(lines[0]["name"], "p_soft");
    let probs: Vec<f64> = lines[5]["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(lines[5]["row"], soft.rows[4]);
    assert!(probs
        .iter()
        .zip(soft.distribution(4))
        .all(|(a, b)| (a - b).abs() < 1e-7));
    let h = ok(run(&db, &["outputs", "p_hard"]), "outputs (text)");
    assert!(
        h.starts_with("p_hard@1: outputs on U (hard labels), 120 of 120"),
        "{h}"
    );

    // select-prompt: MI equals the hand computation from the stored outputs.
    let sel = json(&ok(
        run(
            &db,
            &["select-prompt", "sentiment_a", "--prefix", "p_", "--json"],
        ),
        "select-prompt",
    ));
    let row = |n: &str| {
        sel.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("{n} not in {sel}"))
            .clone()
    };
    let mi = |n: &str| row(n)["mutual_information"].as_f64().unwrap();
    let want = mi_by_hand(&soft, 2);
    assert!(
        (mi("p_soft") - want).abs() < 1e-9,
        "{} vs {want}",
        mi("p_soft")
    );
    assert!(want > 0.1, "{want}");
    let flat_o = outputs(&db, "p_flat").unwrap();
    assert!((mi("p_flat") - mi_by_hand(&flat_o, 2)).abs() < 1e-9);
    assert!(mi("p_flat") < 0.05, "{sel}");
    assert_eq!(row("p_flat")["mi_rank"], 3, "{sel}");
    // Hard labels: H(p(y|x)) = 0, so MI is the label entropy.
    let e = row("p_hard")["output_entropy"].as_f64().unwrap();
    assert!((mi("p_hard") - e).abs() < 1e-9, "{} vs {e}", mi("p_hard"));
    let human = run(&db, &["select-prompt", "sentiment_a", "--prefix", "p_"]);
    assert!(ok(human, "select-prompt").contains("mutual info"));

    // check verifies them; rm hides them with the entry, compact removes them.
    let check = |what: &str| json(&ok(run(&db, &["check", "--json"]), what));
    assert_eq!(check("check")["outputs_checked"], 3);
    ok(run(&db, &["rm", "p_flat"]), "rm");
    let e = fails(
        run(&db, &["outputs", "p_flat"]),
        "outputs of a removed entry",
    );
    assert!(e.contains("p_flat"), "{e}");
    assert_eq!(
        check("check after rm")["outputs_checked"],
        3,
        "a tombstone keeps them"
    );
    ok(run(&db, &["compact", "--json"]), "compact");
    let c = check("check after compact");
    assert_eq!(c["outputs_checked"], 2, "{c}");
    assert_eq!(c["ok"], true, "{c}");

    // A damaged record: check names the entry, reads refuse it.
    damage_outputs(&db, |b| b[40] ^= 0x01);
    let c = json(&String::from_utf8(run(&db, &["check", "--json"]).stdout).unwrap());
    let problems = c["problems"].to_string();
    assert!(
        problems.contains("outputs on U of entry") && problems.contains("checksum"),
        "{problems}"
    );
    let e = fails(
        run(&db, &["outputs", "p_hard"]),
        "outputs of a damaged record",
    );
    assert!(e.contains("checksum"), "{e}");
}

/// Flips bytes of every record of the `model_outputs` table with `f`.
fn damage_outputs(db: &Path, f: impl Fn(&mut Vec<u8>)) {
    let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("model_outputs");
    let r = redb::Database::open(db).unwrap();
    let txn = r.begin_write().unwrap();
    {
        let mut t = txn.open_table(def).unwrap();
        let rows: Vec<(u64, Vec<u8>)> = redb::ReadableTable::iter(&t)
            .unwrap()
            .map(|x| {
                let (k, v) = x.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect();
        for (k, mut v) in rows {
            f(&mut v);
            t.insert(k, v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// Removes the `model_outputs` table: the database is then what one made before outputs were
/// stored looks like.
fn drop_outputs_table(db: &Path) {
    let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("model_outputs");
    let r = redb::Database::open(db).unwrap();
    let txn = r.begin_write().unwrap();
    assert!(txn.delete_table(def).unwrap(), "the table existed");
    txn.commit().unwrap();
}

/// A database without the table (as before this change) opens read-only and writable, and
/// select-prompt shows MI as unavailable with one note saying how to get it; `outputs` says why
/// there are none; re-ingesting stores them. `--probe-limit` stores only the subset's rows.
/// Snapshots carry outputs (verified by taskdb and by the independent Python verifier) and a
/// restore has them.
#[test]
fn older_databases_work_and_snapshots_and_subsets_carry_outputs() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("old.taskdb");
    let f = fxs("datasets/sentiment_a.jsonl");
    ok(
        run_tiny(&db, &["ingest", "dataset", "sentiment_a", &f]),
        "ingest dataset",
    );
    let hard = format!("python3 {}", fxs("models/sentiment_rule.py"));
    ingest_model(&db, "p_a", &["--command", &hard]);
    drop_outputs_table(&db);
    {
        let tdb = TaskDb::open_read_only(&db).expect("read-only open without the table");
        assert_eq!(tdb.model_outputs(&EntryRef::latest("p_a")).unwrap(), None);
    }
    let out = run(
        &db,
        &["select-prompt", "sentiment_a", "--prefix", "p_", "--json"],
    );
    let note = stderr(&out);
    let sel = json(&ok(out, "select-prompt on an older database"));
    assert_eq!(sel[0]["mutual_information"], serde_json::Value::Null);
    assert_eq!(sel[0]["mi_rank"], serde_json::Value::Null);
    assert!(sel[0]["output_entropy"].as_f64().is_some());
    assert_eq!(note.matches("note:").count(), 1, "{note}");
    assert!(note.contains("p_a@1") && note.contains("ingest"), "{note}");
    let human = run(&db, &["select-prompt", "sentiment_a", "--prefix", "p_"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains('—'));
    let e = fails(run(&db, &["outputs", "p_a"]), "outputs of an older entry");
    assert!(e.contains("ingest the model again"), "{e}");
    let c = json(&ok(run(&db, &["check", "--json"]), "check"));
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(c["outputs_checked"], 0);

    // Re-ingesting stores them (the writable open creates the table); a subset of U stores
    // the subset's rows only, as indices into the whole of U.
    ingest_model(&db, "p_a", &["--command", &hard]);
    ingest_model(&db, "p_part", &["--command", &hard, "--probe-limit", "60"]);
    let part = outputs(&db, "p_part").unwrap();
    assert_eq!(part.rows.len(), 60);
    assert_eq!(part.probe_rows as usize, U_ROWS);
    assert!(part.rows.windows(2).all(|w| w[0] < w[1]));
    assert!(*part.rows.last().unwrap() < U_ROWS as u32);
    assert!(
        part.rows.iter().any(|&r| r >= 60),
        "a seeded subset, not the first 60"
    );
    let sel = json(&ok(
        run(
            &db,
            &["select-prompt", "sentiment_a", "--prefix", "p_", "--json"],
        ),
        "select-prompt",
    ));
    assert!(sel
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["mutual_information"].as_f64().is_some()));

    // Snapshots: outputs are content, verified by both verifiers, restored exactly.
    let snap = d.path().join("s.tdbsnap");
    ok(
        run(
            &db,
            &["snapshot", "create", snap.to_str().unwrap(), "--json"],
        ),
        "snapshot",
    );
    let v = json(&ok(
        run(
            &db,
            &["snapshot", "verify", snap.to_str().unwrap(), "--json"],
        ),
        "verify",
    ));
    assert_eq!(v["ok"], true, "{v}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify_snapshot.py");
    let o = std::process::Command::new("python3")
        .arg(&script)
        .arg(&snap)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let restored = d.path().join("r.taskdb");
    ok(
        run(
            &restored,
            &["snapshot", "restore", snap.to_str().unwrap(), "--json"],
        ),
        "restore",
    );
    assert_eq!(outputs(&restored, "p_part"), Some(part));
    // Read straight from the snapshot (verified, held in memory).
    let lines = ok(
        run(&snap, &["outputs", "p_a", "--json"]),
        "outputs from a snapshot",
    );
    assert_eq!(lines.lines().count(), 1 + U_ROWS);
}

/// `export` → `import` keeps every model's outputs on U (on its first row in the JSON-lines
/// file): the copy reads back the same outputs and snapshots of both have the same root. A
/// row of a dataset carrying outputs, or outputs on a later row, is refused naming the line.
#[test]
fn an_export_carries_outputs_and_reads_back_exactly() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("src.taskdb");
    let f = fxs("datasets/sentiment_a.jsonl");
    ok(
        run_tiny(&db, &["ingest", "dataset", "sent", &f]),
        "ingest dataset",
    );
    let soft = format!("python3 {} --scores", fxs("models/llm_like.py"));
    ingest_model(
        &db,
        "soft",
        &[
            "--command",
            &soft,
            "--prompt",
            "Text: {text}",
            "--verbalizer",
            "positive=good|great",
            "--verbalizer",
            "negative=bad",
        ],
    );
    let hard = format!("python3 {}", fxs("models/sentiment_rule.py"));
    ingest_model(&db, "hard", &["--command", &hard]);
    let x = d.path().join("x.jsonl");
    ok(run(&db, &["export", x.to_str().unwrap()]), "export");
    let text = std::fs::read_to_string(&x).unwrap();
    assert_eq!(
        text.matches("\"outputs\":{\"probe_fingerprint\"").count(),
        2,
        "one outputs field per model"
    );
    let copy = d.path().join("copy.taskdb");
    ok(run(&copy, &["import", x.to_str().unwrap()]), "import");
    for name in ["soft", "hard"] {
        let (a, b) = (outputs(&db, name), outputs(&copy, name));
        assert!(a.is_some(), "{name}");
        assert_eq!(a, b, "{name}");
    }
    assert_eq!(outputs(&copy, "sent"), None);
    let root = |p: &Path, out: &str| {
        let s = d.path().join(out);
        let j = json(&ok(
            run(p, &["snapshot", "create", s.to_str().unwrap(), "--json"]),
            "snapshot",
        ));
        j["root"].as_str().unwrap().to_string()
    };
    assert_eq!(root(&db, "a.tdbsnap"), root(&copy, "b.tdbsnap"));
    // Outputs moved onto a later row of their entry: refused, nothing written.
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains("\"outputs\":{\"probe_fingerprint\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(lines[first]).unwrap();
    let mut moved: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut a: serde_json::Value = serde_json::from_str(&moved[first]).unwrap();
    let mut b: serde_json::Value = serde_json::from_str(&moved[first + 1]).unwrap();
    assert_eq!(a["name"], b["name"], "a model has more than one row");
    b["outputs"] = a["outputs"].take();
    a.as_object_mut().unwrap().remove("outputs");
    moved[first] = a.to_string();
    moved[first + 1] = b.to_string();
    let bad = d.path().join("bad.jsonl");
    std::fs::write(&bad, moved.join("\n") + "\n").unwrap();
    let empty = d.path().join("empty.taskdb");
    let e = fails(
        run(&empty, &["import", bad.to_str().unwrap()]),
        "moved outputs",
    );
    assert!(
        e.contains(&format!("line {}", first + 2)) && e.contains("first row only"),
        "{e}"
    );
    assert!(v["outputs"]["labels"].is_array(), "{v}");
}
