//! `taskdb ingest|probe|surrogate` end to end through the binary, on fixtures only (tiny
//! surrogate, small probe set): models land nearest the dataset whose rule they reproduce, the
//! command protocol's failures leave the database unchanged, the feature cache is reported,
//! thread counts do not change the vectors.

mod ingest_common;

use std::path::Path;

use ingest_common::*;
use taskdb::TaskDb;

fn ingest_dataset(db: &Path, name: &str, file: &str, extra: &[&str]) {
    let f = fxs(file);
    let mut args = vec!["ingest", "dataset", name, f.as_str()];
    args.extend(extra);
    ok(run_tiny(db, &args), &format!("ingest dataset {name}"));
}

fn ingest_model(db: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["ingest", "model", name];
    args.extend(extra);
    ok(run_tiny(db, &args), &format!("ingest model {name}"))
}

#[test]
fn models_land_nearest_the_dataset_whose_rule_they_reproduce() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("n.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    ingest_dataset(
        &db,
        "sentiment_b",
        "datasets/sentiment_b.csv",
        &["--text", "sentence"],
    );
    ingest_dataset(&db, "topic", "datasets/topic.tsv", &[]);
    let sent = format!("python3 {}", fxs("models/sentiment_rule.py"));
    let topic = format!("python3 {}", fxs("models/topic_rule.py"));
    ingest_model(&db, "sentiment_rule", &["--command", &sent]);
    ingest_model(&db, "topic_rule", &["--command", &topic]);
    let labels = std::fs::read_to_string(fx("models/tiny_classifier/labels.txt")).unwrap();
    let labels: Vec<&str> = labels.lines().filter(|l| !l.is_empty()).collect();
    let (onnx, tok) = (
        fxs("models/tiny_classifier/model.onnx"),
        fxs("models/tiny_classifier/tokenizer.json"),
    );
    ingest_model(
        &db,
        "tiny_onnx",
        &[
            "--onnx",
            &onnx,
            "--tokenizer",
            &tok,
            "--labels",
            &labels.join(","),
        ],
    );
    for method in [None, Some("scatter")] {
        let s = knn_datasets(&db, "sentiment_rule", method);
        assert_eq!(s[0], "sentiment_a", "{method:?}: {s:?}");
        let t = knn_datasets(&db, "topic_rule", method);
        assert_eq!(t[0], "topic", "{method:?}: {t:?}");
        let o = knn_datasets(&db, "tiny_onnx", method);
        assert_eq!(o[0], "sentiment_a", "{method:?}: {o:?}");
    }
    // Without --kind, hits of both kinds come back: the rule model and the classifier
    // reproducing the same rule are each other's nearest entries.
    let all = json(&ok(
        run(&db, &["knn", "sentiment_rule", "-k", "3", "--json"]),
        "knn",
    ));
    assert_eq!(all[0]["name"], "tiny_onnx", "{all}");
    assert_eq!(all[0]["kind"], "model");
    // --labels: each hit's labels as recorded, in the same order as the JSON answer (a
    // model's declared labels; a dataset's, most frequent first).
    let human = ok(
        run(&db, &["knn", "sentiment_rule", "-k", "3", "--labels"]),
        "knn --labels",
    );
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 3, "{human}");
    for (line, hit) in lines.iter().zip(all.as_array().unwrap()) {
        assert!(
            line.contains(&format!("{}@", hit["name"].as_str().unwrap())),
            "{human}"
        );
    }
    assert!(
        lines[0].ends_with("model  labels: negative, positive"),
        "{human}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" sentiment_a@1 ") && l.ends_with("labels: negative, positive")),
        "{human}"
    );
    let topic = ok(
        run(
            &db,
            &[
                "knn",
                "topic_rule",
                "-k",
                "1",
                "--kind",
                "dataset",
                "--labels",
            ],
        ),
        "knn --labels",
    );
    assert!(
        topic.contains(" topic@1 ") && topic.trim_end().ends_with("labels: food, sports, weather"),
        "{topic}"
    );
    let both = fails(
        run(&db, &["knn", "sentiment_rule", "--labels", "--json"]),
        "knn --labels --json",
    );
    assert!(both.contains("--json"), "{both}");

    // --centre live: the same matches, other scores (centred on the live library mean).
    let args = |centre: &str| {
        json(&ok(
            run(
                &db,
                &[
                    "knn",
                    "sentiment_rule",
                    "-k",
                    "10",
                    "--kind",
                    "dataset",
                    "--centre",
                    centre,
                    "--json",
                ],
            ),
            "knn --centre",
        ))
    };
    let (frozen, library) = (args("frozen"), args("live"));
    assert_eq!(library[0]["name"], "sentiment_a", "{library}");
    assert_eq!(
        frozen.as_array().unwrap().len(),
        library.as_array().unwrap().len()
    );
    assert_ne!(frozen[0]["score"], library[0]["score"]);
    let bad = fails(
        run(&db, &["knn", "sentiment_rule", "--centre", "middle"]),
        "bad --centre",
    );
    assert!(bad.contains("frozen") && bad.contains("live"), "{bad}");

    // The default scatter space carries its frozen whitening (built from U), verified by check.
    let mut t = TaskDb::open(&db).unwrap();
    let scatter = t
        .spaces()
        .unwrap()
        .into_iter()
        .find(|s| s.def.method.as_deref() == Some("scatter"))
        .unwrap();
    let w = &scatter.def.params["whitening"];
    assert_eq!(w["dim"], scatter.def.dim, "{w}");
    assert_eq!(w["shrinkage"], 0.5, "{w}");
    assert!(w["rows"].as_u64().unwrap() >= 2, "{w}");
    // ... and its frozen reference: k-means pseudo-tasks of U embedded in the whitened space
    // (no library source), verified by check too.
    let r = &scatter.def.params["reference"];
    assert!(r.get("source").is_none(), "{r}");
    assert_eq!(r["spec"]["ks"], serde_json::json!([8, 12, 16, 20]), "{r}");
    assert_eq!(
        scatter.def.params["method_params"]["scatter_pairs"],
        "absdiff"
    );
    assert!(t.check().unwrap().ok());
}

#[test]
fn command_failures_are_reported_and_leave_the_database_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("c.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    let before = listing(&db);
    let m = |s: &str| format!("python3 {}", fxs(&format!("models/{s}")));
    // A unique grandchild duration, so its survival can be checked.
    let hang = format!("{} 4719", m("hang.py"));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            m("crash.py"),
            vec![
                "exit status 3",
                "after 2 output lines",
                "CUDA out of memory (fake)",
            ],
        ),
        (hang.clone(), vec!["timed out after 2s", "killed"]),
        (
            m("too_few.py"),
            vec![
                "60 predictions for 120 probe texts",
                "missing ids include 60",
            ],
        ),
        (
            m("wrong_ids.py"),
            vec!["line 3", "id 100002 is not in the probe set"],
        ),
        (
            m("wrong_ids.py --dup"),
            vec!["line 3", "id 1 was already answered on line 2"],
        ),
        (
            m("non_json.py"),
            vec!["line 3", "not a JSON object", "loading weights"],
        ),
    ];
    for (cmd, needles) in &cases {
        let t = std::time::Instant::now();
        let err = fails(
            run_tiny(
                &db,
                &["ingest", "model", "bad", "--command", cmd, "--timeout", "2"],
            ),
            cmd,
        );
        assert!(t.elapsed().as_secs() < 20, "{cmd} took {:?}", t.elapsed());
        for n in needles {
            assert!(err.contains(n), "{cmd}: stderr lacks {n:?}: {err}");
        }
        assert_eq!(listing(&db), before, "{cmd} changed the database");
    }
    // The hanging model's whole process group was killed, grandchild included.
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("sleep 4719"))
        .collect();
    assert!(survivors.is_empty(), "left running: {survivors:?}");
    // textemb for a model is refused with the reason.
    let sent = m("sentiment_rule.py");
    let err = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "model",
                "x",
                "--command",
                &sent,
                "--method",
                "textemb",
            ],
        ),
        "textemb model",
    );
    assert!(err.contains("identical for every model"), "{err}");
    assert_eq!(listing(&db), before);
}

#[test]
fn llm_with_prompt_and_verbalizers_reports_unmatched_replies() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("v.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    ingest_dataset(&db, "topic", "datasets/topic.tsv", &[]);
    let llm = format!("python3 {}", fxs("models/llm_like.py"));
    let o = run_tiny(
        &db,
        &[
            "ingest",
            "model",
            "llm",
            "--command",
            &llm,
            "--prompt",
            "Classify the sentiment. Text: {text}",
            "--verbalizer",
            "positive=positive|great",
            "--verbalizer",
            "negative=negative|bad",
            "--json",
        ],
    );
    let r = json(&ok(o, "llm ingest"));
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("12 of 120 replies matched no verbalizer"),
        "{w}"
    );
    assert!(w.contains("As an AI language model"), "{w}");
    let show = json(&ok(run(&db, &["show", "llm", "--json"]), "show"));
    let p = &show["provenance"];
    assert_eq!(p["rows"]["answered"], 108, "{p}");
    assert_eq!(
        p["params"]["source"]["prompt"],
        "Classify the sentiment. Text: {text}"
    );
    assert_eq!(knn_datasets(&db, "llm", None)[0], "sentiment_a");
    // A map draws it as an LLM with a prompt, the datasets as datasets.
    let map = d.path().join("v.json");
    ok(run(&db, &["map", map.to_str().unwrap()]), "map");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&map).unwrap()).unwrap();
    let roles: Vec<(&str, &str)> = m["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("sentiment_a", "dataset"),
            ("topic", "dataset"),
            ("llm", "llm-prompt")
        ]
    );
    // Every reply evasive: refused, nothing written.
    let before = listing(&db);
    let err = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "model",
                "evasive",
                "--command",
                &format!("{llm} --evasive"),
                "--prompt",
                "Text: {text}",
                "--verbalizer",
                "positive=positive|great",
                "--verbalizer",
                "negative=negative|bad",
            ],
        ),
        "evasive llm",
    );
    assert!(
        err.contains("120 of 120 replies matched no verbalizer"),
        "{err}"
    );
    assert_eq!(listing(&db), before);
}

#[test]
fn bad_dataset_via_cli_names_the_place_and_lists_columns() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("b.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    let before = listing(&db);
    let err = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "dataset",
                "x",
                &fxs("datasets/bad/no_such_column.csv"),
            ],
        ),
        "no_such_column",
    );
    assert!(err.contains("columns found: sentence, target"), "{err}");
    let err = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "dataset",
                "x",
                &fxs("datasets/bad/missing_text.jsonl"),
            ],
        ),
        "missing_text",
    );
    assert!(err.contains("row 4 (line 4)"), "{err}");
    // Naming the columns makes the same file's header usable (and the error goes away).
    let err = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "dataset",
                "x",
                &fxs("datasets/bad/no_such_column.csv"),
                "--text",
                "sentence",
                "--label",
                "nope",
            ],
        ),
        "no label column",
    );
    assert!(
        err.contains("\"nope\"") && err.contains("sentence, target"),
        "{err}"
    );
    assert_eq!(listing(&db), before);
}

#[test]
fn feature_cache_is_reported_and_survives_damage() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("f.taskdb");
    let f = fxs("datasets/sentiment_a.jsonl");
    let args = ["ingest", "dataset", "s", f.as_str(), "--json"];
    let r1 = json(&ok(run_tiny(&db, &args), "first"));
    assert_eq!(r1["cache"]["computed"], 120, "{r1}");
    let r2 = json(&ok(run_tiny(&db, &args), "second"));
    assert_eq!(r2["cache"]["hits"], 120, "{r2}");
    assert_eq!(r2["cache"]["computed"], 0, "{r2}");
    let v2 = vectors(&TaskDb::open(&db).unwrap(), "s");
    let cache = taskdb::files::feature_cache(&db);
    // Damage everything past the first page (the cache also holds U's features, which the
    // first ingestion computed for the scatter space's whitening; where the dataset's rows
    // live depends on redb's layout).
    let mut bytes = std::fs::read(&cache).unwrap();
    for b in &mut bytes[4096..] {
        *b ^= 0x5A;
    }
    std::fs::write(&cache, &bytes).unwrap();
    let r3 = json(&ok(run_tiny(&db, &args), "after damage"));
    assert_eq!(r3["version"], 3);
    assert_eq!(r3["cache"]["computed"], 120, "{r3}");
    let v3 = vectors(&TaskDb::open(&db).unwrap(), "s");
    for (m, e) in &v2 {
        assert_eq!(bits(e), bits(&v3[m]), "{m}");
    }
}

#[test]
fn thread_counts_do_not_change_the_vectors() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("t1.taskdb"), d.path().join("t2.taskdb"));
    ingest_dataset(&a, "topic", "datasets/topic.tsv", &["--threads", "1"]);
    ingest_dataset(&b, "topic", "datasets/topic.tsv", &["--threads", "2"]);
    let sent = format!("python3 {}", fxs("models/sentiment_soft.py"));
    ingest_model(&a, "soft", &["--command", &sent, "--threads", "1"]);
    ingest_model(&b, "soft", &["--command", &sent, "--threads", "2"]);
    let (da, db) = (TaskDb::open(&a).unwrap(), TaskDb::open(&b).unwrap());
    for name in ["topic", "soft"] {
        let (va, vb) = (vectors(&da, name), vectors(&db, name));
        assert_eq!(va.keys().collect::<Vec<_>>(), vb.keys().collect::<Vec<_>>());
        for (m, e) in &va {
            let c = cosine(&flat(e), &flat(&vb[m]));
            assert!(c >= 0.9999, "{name} {m}: cosine {c} across thread counts");
        }
    }
}

#[test]
fn probe_export_surrogate_info_and_embed() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("unused.taskdb");
    let probe = fxs("probe/probe_small.jsonl");
    let out = d.path().join("u.jsonl");
    let o = out.to_str().unwrap();
    ok(
        run(&db, &["probe", "export", o, "--probe", &probe]),
        "export",
    );
    let src: Vec<serde_json::Value> = std::fs::read_to_string(fx("probe/probe_small.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), src.len());
    for (l, s) in lines.iter().zip(&src) {
        assert_eq!(l["id"], s["id"]);
        assert_eq!(l["text"], s["text"]);
    }
    ok(
        run(
            &db,
            &[
                "probe",
                "export",
                o,
                "--probe",
                &probe,
                "--prompt",
                "Review: {text} Sentiment:",
            ],
        ),
        "export --prompt",
    );
    let prompted: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    assert_eq!(prompted.len(), src.len());
    assert_eq!(
        prompted[0]["text"],
        format!("Review: {} Sentiment:", src[0]["text"].as_str().unwrap())
    );
    let err = fails(
        run(
            &db,
            &[
                "probe",
                "export",
                o,
                "--probe",
                &probe,
                "--prompt",
                "no placeholder",
            ],
        ),
        "bad prompt",
    );
    assert!(err.contains("{text}"), "{err}");

    let tiny = fxs("surrogate/tiny");
    let info = json(&ok(
        run(&db, &["surrogate", "info", "--surrogate", &tiny, "--json"]),
        "info",
    ));
    assert_eq!(info["fingerprint"].as_str().unwrap().len(), 64, "{info}");
    assert_eq!(info["execution_provider"], "CPUExecutionProvider", "{info}");
    assert_eq!(info["dim"], 32);
    let emb = ok(
        run(
            &db,
            &["surrogate", "embed", &probe, "--surrogate", &tiny, "-q"],
        ),
        "embed",
    );
    let rows: Vec<serde_json::Value> = emb.lines().map(json).collect();
    assert_eq!(rows.len(), src.len());
    for (r, s) in rows.iter().zip(&src) {
        assert_eq!(r["id"], s["id"]);
        assert_eq!(r["vector"].as_array().unwrap().len(), 32);
    }
}

#[test]
fn reference_library_export_info_and_use_via_cli() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.taskdb");
    ingest_dataset(&a, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    ingest_dataset(&a, "topic", "datasets/topic.tsv", &[]);
    let lib = d.path().join("lib.json");
    let libs = lib.to_str().unwrap();
    ok(
        run(
            &a,
            &[
                "reference-library",
                "export",
                libs,
                "--kind",
                "dataset",
                "--name",
                "mine",
            ],
        ),
        "export",
    );
    let info = json(&ok(
        run(&a, &["reference-library", "info", libs, "--json"]),
        "info",
    ));
    assert_eq!(info["name"], "mine");
    assert_eq!(info["method"], "scatter");
    assert_eq!(info["tasks"].as_array().unwrap().len(), 2, "{info}");
    // A new database centred by it.
    let b = d.path().join("b.taskdb");
    let r = json(&ok(
        run_tiny(
            &b,
            &[
                "ingest",
                "dataset",
                "topic",
                &fxs("datasets/topic.tsv"),
                "--method",
                "scatter",
                "--reference-library",
                libs,
                "--json",
            ],
        ),
        "ingest with library",
    ));
    assert_eq!(r["version"], 1, "{r}");
    let t = TaskDb::open(&b).unwrap();
    let src = t.spaces().unwrap()[0].def.params["reference"]["source"].clone();
    assert!(src.as_str().unwrap().contains("\"mine\""), "{src}");
    drop(t);
    let stats = json(&ok(run(&b, &["stats", "--json"]), "stats"));
    assert_eq!(stats["spaces"][0]["centring"], src, "{stats}");
    // the first database: scatter by k-means pseudo-tasks in its whitened space, fisher
    // uncentred, tuned by k-means pseudo-tasks, textemb by U's mean feature
    let sa = json(&ok(run(&a, &["stats", "--json"]), "stats a"));
    let centring = |m: &str| {
        sa["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["method"] == m)
            .unwrap()["centring"]
            .clone()
    };
    assert_eq!(
        centring("scatter"),
        "k-means pseudo-tasks on the probe set, in the whitened space"
    );
    assert_eq!(centring("fisher"), "none");
    assert_eq!(centring("tuned"), "k-means pseudo-tasks on the probe set");
    assert_eq!(
        centring("textemb"),
        "the unit mean feature of the probe set"
    );
    // A file that is not a library: a clear error naming it, nothing written.
    let junk = d.path().join("junk.json");
    std::fs::write(&junk, "[1, 2]").unwrap();
    let c = d.path().join("c.taskdb");
    let err = fails(
        run_tiny(
            &c,
            &[
                "ingest",
                "dataset",
                "topic",
                &fxs("datasets/topic.tsv"),
                "--reference-library",
                junk.to_str().unwrap(),
            ],
        ),
        "junk library",
    );
    assert!(
        err.contains("junk.json") && err.contains("not a taskdb reference library"),
        "{err}"
    );
    assert!(
        !c.exists()
            || TaskDb::open(&c)
                .unwrap()
                .list(&taskdb::Filter::all())
                .unwrap()
                .is_empty()
    );
}

/// `recommend --file`: a dataset that is not stored gets recommendations; the database is not
/// written; the file's reading options apply; a missing target is a usage error.
#[test]
fn recommend_for_a_file_embeds_it_on_the_fly_and_stores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("r.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    ingest_dataset(&db, "topic", "datasets/topic.tsv", &[]);
    let before = std::fs::read(&db).unwrap();
    let f = fxs("datasets/sentiment_b.csv");
    let out = ok(
        // scatter: the space in which the tiny fixture encoder separates these tasks (the
        // fixture tests of ingestion check it); fisher, the default, is not tested for
        // quality on a toy encoder.
        run_tiny(
            &db,
            &[
                "recommend",
                "--file",
                &f,
                "--text",
                "sentence",
                "--method",
                "scatter",
                "--json",
            ],
        ),
        "recommend --file",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sentiment_a", "topic"], "{out}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is not written"
    );
    // Without --text the file has no "text" column: the reader's error, naming the file.
    let e = fails(
        run_tiny(&db, &["recommend", "--file", &f]),
        "no text column",
    );
    assert!(e.contains("sentiment_b.csv") && e.contains("text"), "{e}");
    let e = fails(run(&db, &["recommend"]), "no target");
    assert!(e.contains("--file") || e.contains("TARGET"), "{e}");
}

/// `select-prompt` on stand-in prompt models: the model that performs the target's task is
/// FUTE's choice; a prompt that makes the model answer (almost) one label for everything has
/// the lowest output entropy; models outside the prefix are not candidates.
#[test]
fn select_prompt_ranks_stand_in_prompt_models_for_a_dataset() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("p.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    let sent = format!("python3 {}", fxs("models/sentiment_rule.py"));
    let topic = format!("python3 {}", fxs("models/topic_rule.py"));
    // A "poor prompt": positive for everything but every 40th text.
    let lazy = d.path().join("lazy.py");
    std::fs::write(
        &lazy,
        "import json, sys\n\
         for i, line in enumerate(sys.stdin):\n\
         \x20   d = json.loads(line)\n\
         \x20   print(json.dumps({'id': d['id'], 'label': 'negative' if i % 40 == 0 else 'positive'}))\n",
    )
    .unwrap();
    let lazy = format!("python3 {}", lazy.display());
    ingest_model(&db, "p_good", &["--command", &sent]);
    ingest_model(&db, "p_topic", &["--command", &topic]);
    ingest_model(&db, "p_lazy", &["--command", &lazy]);
    ingest_model(&db, "other", &["--command", &sent]);
    let out = ok(
        run(
            &db,
            &["select-prompt", "sentiment_a", "--prefix", "p_", "--json"],
        ),
        "select-prompt",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{out}");
    assert_eq!(names[0], "p_good", "{out}");
    let lazy_row = rows.iter().find(|r| r["name"] == "p_lazy").unwrap();
    assert_eq!(lazy_row["entropy_rank"], 3, "{out}");
    assert!(lazy_row["output_entropy"].as_f64().unwrap() < 0.3, "{out}");
    // A model as the target is refused with a reason.
    let e = fails(run(&db, &["select-prompt", "p_good"]), "model target");
    assert!(e.contains("name a dataset"), "{e}");
}

/// `ingest model --probe-limit N`: the command sees N texts of U (a seeded subset, the same
/// every time), the entry lands in the same spaces as a full run, its provenance and report
/// say it is an estimate, and it still lands nearest the dataset whose rule it reproduces.
#[test]
fn probe_limit_runs_the_model_on_a_seeded_subset_in_the_same_space() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("l.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    ingest_dataset(&db, "topic", "datasets/topic.tsv", &[]);
    let sent = format!("python3 {}", fxs("models/sentiment_rule.py"));
    ingest_model(&db, "full", &["--command", &sent]);
    let o = run_tiny(
        &db,
        &[
            "ingest",
            "model",
            "part",
            "--command",
            &sent,
            "--probe-limit",
            "60",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(o, "probe-limit")).unwrap();
    let w = report["warnings"].to_string();
    assert!(w.contains("seeded subset of 60 of U's 120 texts"), "{w}");
    let show = |n: &str| -> serde_json::Value {
        serde_json::from_str(&ok(run(&db, &["show", n, "--json"]), "show")).unwrap()
    };
    let (full, part) = (show("full"), show("part"));
    assert_eq!(part["provenance"]["rows"]["answered"], 60);
    assert_eq!(part["provenance"]["rows"]["probe"], 120);
    assert_eq!(part["provenance"]["params"]["probe"]["subset"]["limit"], 60);
    assert_eq!(
        full["provenance"]["params"]["probe"]["fingerprint"],
        part["provenance"]["params"]["probe"]["fingerprint"],
        "the same U, so the same spaces"
    );
    assert_eq!(
        full["vectors"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        part["vectors"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    let out = ok(
        run(
            &db,
            &["knn", "part", "-k", "1", "--kind", "dataset", "--json"],
        ),
        "knn",
    );
    assert!(out.contains("sentiment_a"), "{out}");
    // The same subset every time: a second ingestion gives bit-identical vectors.
    ingest_model(&db, "part2", &["--command", &sent, "--probe-limit", "60"]);
    let tdb = TaskDb::open_read_only(&db).unwrap();
    assert_eq!(vectors(&tdb, "part"), vectors(&tdb, "part2"));
    drop(tdb);
    // Only for a command.
    let p = d.path().join("p.jsonl");
    std::fs::write(&p, "").unwrap();
    let e = fails(
        run_tiny(
            &db,
            &[
                "ingest",
                "model",
                "x",
                "--predictions",
                p.to_str().unwrap(),
                "--probe-limit",
                "5",
            ],
        ),
        "probe-limit with predictions",
    );
    assert!(e.contains("--command") || e.contains("command"), "{e}");
}

/// `ingest prompts FILE --command CMD`: one model entry per prompt line, each with its own
/// prompt, verbalizers and tags; `select-prompt` then ranks them. A bad line is refused before
/// any model runs.
#[test]
fn a_prompts_file_ingests_one_model_per_prompt_and_select_prompt_ranks_them() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("pf.taskdb");
    ingest_dataset(&db, "sentiment_a", "datasets/sentiment_a.jsonl", &[]);
    let llm = format!("python3 {}", fxs("models/llm_like.py"));
    let file = d.path().join("prompts.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"name": "p_right", "prompt": "Classify the sentiment. Text: {text}", "verbalizers": ["positive=positive|great", "negative=negative|bad"], "tags": {"llm": "fake"}}"#,
            "\n",
            r#"{"name": "p_swapped", "prompt": "Classify the sentiment. Text: {text}", "verbalizers": ["positive=negative|bad", "negative=positive|great"], "tags": {"llm": "fake"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = ok(
        run_tiny(&db, &["ingest", "prompts", f, "--command", &llm]),
        "ingest prompts",
    );
    assert!(
        out.contains("p_right@1") && out.contains("p_swapped@1"),
        "{out}"
    );
    let tdb = TaskDb::open_read_only(&db).unwrap();
    let e = tdb.get(&taskdb::EntryRef::latest("p_swapped")).unwrap();
    assert_eq!(e.tags["llm"], "fake");
    drop(tdb);
    // Swapped verbalizers label U the other way round; a task embedding is label-order
    // invariant, so both land on the task, and select-prompt lists both with their tag.
    let sel = ok(
        run(
            &db,
            &[
                "select-prompt",
                "sentiment_a",
                "--tag",
                "llm=fake",
                "--json",
            ],
        ),
        "select-prompt",
    );
    let v: serde_json::Value = serde_json::from_str(&sel).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{sel}");
    // A duplicate name: refused before any model runs, naming the line.
    std::fs::write(
        &file,
        "{\"name\": \"q\", \"prompt\": \"{text}\"}\n{\"name\": \"q\", \"prompt\": \"A {text}\"}\n",
    )
    .unwrap();
    let err = fails(
        run_tiny(&db, &["ingest", "prompts", f, "--command", &llm]),
        "duplicate prompt name",
    );
    assert!(
        err.contains("line 2") && err.contains("also on line 1"),
        "{err}"
    );
    let tdb = TaskDb::open_read_only(&db).unwrap();
    assert!(
        tdb.get(&taskdb::EntryRef::latest("q")).is_err(),
        "nothing ran"
    );
}
