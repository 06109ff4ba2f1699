use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskdb_sources::{
    read_dataset, read_predictions, run_command, to_targets, CommandOptions, DatasetOptions, Error,
    Label, Prediction, PredictionOptions, ProbeSet, PromptTemplate, ScoreKind, TargetValues,
    Verbalizers,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model(name: &str) -> String {
    format!("{}/fixtures/models/{name}", root().display())
}

fn probe() -> ProbeSet {
    ProbeSet::from_file(&root().join("fixtures/probe/probe_small.jsonl")).unwrap()
}

fn opts() -> CommandOptions {
    CommandOptions {
        timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

#[test]
fn good_model_hard_labels_reproduce_rule() {
    let u = probe();
    let out = run_command(&model("sentiment_rule.py"), &u, &opts()).unwrap();
    assert_eq!(out.predictions.len(), 120);
    assert_eq!(out.report.hard_labels, 120);
    assert_eq!(out.probe_fingerprint, u.fingerprint_hex());
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    assert_eq!(t.labels, vec!["negative", "positive"]);
    assert_eq!(t.ids.len(), 120);
    let TargetValues::Hard(h) = &t.values else {
        panic!("hard expected")
    };
    // the fixture model's rule agrees with the fixture dataset's labels: check on the data.
    let d = read_dataset(
        &root().join("fixtures/datasets/sentiment_a.jsonl"),
        &DatasetOptions::default(),
    )
    .unwrap();
    let data_u = ProbeSet::from_texts(
        "d",
        d.rows
            .iter()
            .enumerate()
            .map(|(i, r)| taskdb_sources::ProbeText {
                id: i as u32,
                text: r.text.clone(),
                text_pair: None,
            })
            .collect(),
    )
    .unwrap();
    let o = run_command(&model("sentiment_rule.py"), &data_u, &opts()).unwrap();
    for (i, r) in d.rows.iter().enumerate() {
        let Prediction::Label(l) = &o.predictions[&(i as u32)] else {
            panic!()
        };
        let Label::Class(c) = r.label else { panic!() };
        assert_eq!(l, &d.labels[c as usize], "row {i}");
    }
    assert!(h.contains(&0) && h.contains(&1));
}

#[test]
fn soft_model_scores_normalised() {
    let u = probe();
    let out = run_command(&model("sentiment_soft.py"), &u, &opts()).unwrap();
    assert_eq!(out.report.soft_scores, 120);
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    let TargetValues::Soft(rows) = &t.values else {
        panic!()
    };
    assert_eq!(rows.len(), 120);
    for r in rows {
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    // logits mode with negative logits
    let out = run_command(
        &format!("{} --logits", model("sentiment_soft.py")),
        &u,
        &opts(),
    )
    .unwrap();
    assert!(matches!(
        to_targets(&out, ScoreKind::Probabilities),
        Err(Error::Scores { .. })
    ));
    let t = to_targets(&out, ScoreKind::Logits).unwrap();
    let TargetValues::Soft(rows) = &t.values else {
        panic!()
    };
    for r in rows {
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(r.iter().all(|&x| x > 0.0));
    }
}

#[test]
fn crash_reports_status_and_stderr() {
    let e = run_command(&model("crash.py"), &probe(), &opts()).unwrap_err();
    match &e {
        Error::ChildFailed {
            status,
            stderr_tail,
            lines,
            ..
        } => {
            assert_eq!(status, "exit status 3");
            assert!(stderr_tail.contains("CUDA out of memory"), "{stderr_tail}");
            assert_eq!(*lines, 2);
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn hang_times_out_and_kills_process_group() {
    let o = CommandOptions {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let t0 = Instant::now();
    let e = run_command(
        &format!("echo started >&2; exec {} 3593", model("hang.py")),
        &probe(),
        &o,
    )
    .unwrap_err();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    match &e {
        Error::Timeout {
            lines, stderr_tail, ..
        } => {
            assert_eq!(*lines, 1);
            assert!(stderr_tail.contains("started"), "{stderr_tail}");
        }
        _ => panic!("{e}"),
    }
    // the grandchild `sleep 3593` was killed with the group
    std::thread::sleep(Duration::from_millis(200));
    assert!(!sleeping_grandchild_alive("3593"));
}

fn sleeping_grandchild_alive(arg: &str) -> bool {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|c| c == want.as_bytes())
}

#[test]
fn too_few_lines() {
    let e = run_command(&model("too_few.py"), &probe(), &opts()).unwrap_err();
    match &e {
        Error::TooFewLines {
            got,
            expected,
            missing,
            ..
        } => {
            assert_eq!((*got, *expected), (60, 120));
            assert_eq!(missing[0], 60);
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn wrong_and_duplicate_ids_name_the_line() {
    let e = run_command(&model("wrong_ids.py"), &probe(), &opts()).unwrap_err();
    match &e {
        Error::UnknownId { line, id, .. } => {
            assert_eq!(*line, 3);
            assert_eq!(id, "100002");
        }
        _ => panic!("{e}"),
    }
    let e = run_command(
        &format!("{} --dup", model("wrong_ids.py")),
        &probe(),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DuplicateId {
                line: 3,
                id: 1,
                first_line: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn non_json_line_named_with_text() {
    let e = run_command(&model("non_json.py"), &probe(), &opts()).unwrap_err();
    match &e {
        Error::NotJson { line, text, .. } => {
            assert_eq!(*line, 3);
            assert!(text.contains("loading weights"), "{text}");
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn missing_label_and_spawn_failure() {
    let e = run_command(
        "while read l; do echo '{\"id\": 0}'; done",
        &probe(),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::BadPrediction { line: 1, .. }), "{e}");
    let e = run_command("exit 127", &probe(), &opts()).unwrap_err();
    assert!(matches!(e, Error::ChildFailed { .. }), "{e}");
}

#[test]
fn child_that_ignores_stdin_does_not_deadlock() {
    // Writes all answers before reading anything (and never reads): the writer thread
    // must not block the reader.
    let u = ProbeSet::builtin().unwrap();
    let cmd = "python3 -c 'import json\nfor i in range(3000): print(json.dumps({\"id\": i, \"label\": \"a\" if i % 2 else \"b\"}))'";
    let out = run_command(cmd, &u, &opts()).unwrap();
    assert_eq!(out.predictions.len(), 3000);
}

#[test]
fn llm_prompt_and_verbalizers() {
    let u = probe();
    let prompt =
        PromptTemplate::parse("Is this review positive or negative? {{answer}} Text: {text}")
            .unwrap();
    let vb =
        Verbalizers::parse(&["positive=positive|great|good", "negative=negative|bad"]).unwrap();
    let o = CommandOptions {
        prompt: Some(prompt.clone()),
        predictions: PredictionOptions {
            verbalizers: Some(vb.clone()),
            ..Default::default()
        },
        ..opts()
    };
    let out = run_command(&model("llm_like.py"), &u, &o).unwrap();
    assert_eq!(out.report.unmatched, 12); // every 10th reply is evasive
    assert_eq!(out.predictions.len(), 108);
    assert_eq!(out.report.unmatched_examples.len(), 5);
    // the replies agree with the rule model where matched
    let rule = run_command(&model("sentiment_rule.py"), &u, &opts()).unwrap();
    for (id, p) in &out.predictions {
        assert_eq!(p, &rule.predictions[id], "id {id}");
    }
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    assert_eq!(t.ids.len(), 108);
    // reply in "label" works as well
    let out2 = run_command(&format!("{} --label", model("llm_like.py")), &u, &o).unwrap();
    assert_eq!(out2.predictions, out.predictions);
    // per-word scores, summed per label
    let out = run_command(&format!("{} --scores", model("llm_like.py")), &u, &o).unwrap();
    assert_eq!(out.report.unmatched, 0);
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    let TargetValues::Soft(rows) = &t.values else {
        panic!()
    };
    // good 0.72 + Great 0.08 = 0.8 positive, bad 0.2; "maybe" ignored
    let first_pos = rows.iter().find(|r| r[1] > 0.5).unwrap();
    assert!((first_pos[1] - 0.8).abs() < 1e-9, "{first_pos:?}");
    // too many unmatched -> error
    let e = run_command(&format!("{} --evasive", model("llm_like.py")), &u, &o).unwrap_err();
    match &e {
        Error::TooManyUnmatched {
            unmatched, total, ..
        } => assert_eq!((*unmatched, *total), (120, 120)),
        _ => panic!("{e}"),
    }
}

#[test]
fn prompt_with_pair_requires_pairs() {
    let p = PromptTemplate::parse("A: {text} B: {text_pair}").unwrap();
    let o = CommandOptions {
        prompt: Some(p.clone()),
        ..opts()
    };
    let e = run_command(&model("sentiment_rule.py"), &probe(), &o).unwrap_err();
    assert!(matches!(e, Error::Template { .. }), "{e}");
    // with pairs: the command receives the filled prompt and no separate text_pair
    let u = ProbeSet::from_file(&root().join("fixtures/probe/probe_pairs.jsonl")).unwrap();
    let out = run_command(
        "python3 -c 'import sys,json\nfor l in sys.stdin:\n d=json.loads(l); assert \"text_pair\" not in d and \" B: \" in d[\"text\"]; print(json.dumps({\"id\": d[\"id\"], \"label\": str(d[\"id\"] % 2)}))'",
        &u,
        &o,
    )
    .unwrap();
    assert_eq!(out.predictions.len(), 40);
}

#[test]
fn predictions_file() {
    let u = probe();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("preds.jsonl");
    // answers in reverse order, with a blank line
    let mut s = String::new();
    for t in u.texts.iter().rev() {
        s.push_str(&format!(
            "{{\"id\": {}, \"label\": \"{}\"}}\n\n",
            t.id,
            t.id % 3
        ));
    }
    std::fs::write(&p, &s).unwrap();
    let out = read_predictions(&p, &u, &PredictionOptions::default()).unwrap();
    assert_eq!(out.predictions.len(), 120);
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    assert_eq!(t.labels, vec!["0", "1", "2"]);
    // a bad line names its line number
    std::fs::write(
        &p,
        "{\"id\": 0, \"label\": \"a\"}\n{\"id\": 1, \"scores\": {\"a\": \"x\"}}\n",
    )
    .unwrap();
    let e = read_predictions(&p, &u, &PredictionOptions::default()).unwrap_err();
    assert!(matches!(e, Error::BadPrediction { line: 2, .. }), "{e}");
    std::fs::write(&p, "{\"id\": 0, \"label\": \"a\"}\n").unwrap();
    let e = read_predictions(&p, &u, &PredictionOptions::default()).unwrap_err();
    assert!(matches!(e, Error::TooFewLines { got: 1, .. }), "{e}");
}
