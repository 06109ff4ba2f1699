//! Ingestion through the library API (`taskdb::ingest::Ingestor`) on fixtures only:
//! determinism, label-permutation invariance, the feature cache (hits, damaged file), bad
//! datasets and refused methods leaving the database unchanged.

mod ingest_common;

use std::path::Path;

use ingest_common::*;
use taskdb::ingest::{IngestOptions, ModelSource};
use taskdb::{Filter, MethodKind, TaskDb};
use taskdb_sources::{CommandOptions, DatasetOptions};

fn ingest_sentiment(db_path: &Path, refs: &Path) -> TaskDb {
    let db = TaskDb::open(db_path).unwrap();
    let ing = ingestor(db_path, refs, 1);
    let r = ing
        .dataset(
            &db,
            "sentiment_a",
            &fx("datasets/sentiment_a.jsonl"),
            &DatasetOptions::default(),
            &IngestOptions::default(),
        )
        .unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(
        r.spaces.len(),
        4,
        "all four methods by default: {:?}",
        r.spaces
    );
    db
}

#[test]
fn same_dataset_twice_gives_bit_identical_vectors_for_every_method() {
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let a = ingest_sentiment(&d.path().join("a.taskdb"), &refs);
    // A second database, and no reference cache: everything is rebuilt from scratch.
    let pb = d.path().join("b.taskdb");
    let b = TaskDb::open(&pb).unwrap();
    let ing = ingest_common::ingestor(&pb, &refs, 1).with_reference_cache(None);
    ing.dataset(
        &b,
        "sentiment_a",
        &fx("datasets/sentiment_a.jsonl"),
        &DatasetOptions::default(),
        &IngestOptions::default(),
    )
    .unwrap();
    let (va, vb) = (vectors(&a, "sentiment_a"), vectors(&b, "sentiment_a"));
    assert_eq!(
        va.keys().collect::<Vec<_>>(),
        ["fisher", "scatter", "textemb", "tuned"]
    );
    for (m, ea) in &va {
        assert_eq!(
            bits(ea),
            bits(&vb[m]),
            "method {m} differs between two ingestions"
        );
    }
    // The spaces (frozen references included) are identical too.
    for (sa, sb) in a.spaces().unwrap().iter().zip(b.spaces().unwrap().iter()) {
        assert_eq!(sa.def, sb.def);
    }
}

/// sentiment_a with labels renamed so that their sorted order flips.
fn renamed_labels(dir: &Path) -> std::path::PathBuf {
    let src = std::fs::read_to_string(fx("datasets/sentiment_a.jsonl")).unwrap();
    let mut out = String::new();
    let mut seen = 0;
    for line in src.lines().filter(|l| !l.trim().is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let new = match v["label"].as_str().unwrap() {
            "positive" => "zz",
            "negative" => "aa",
            other => panic!("unexpected label {other}"),
        };
        v["label"] = new.into();
        seen += 1;
        out.push_str(&v.to_string());
        out.push('\n');
    }
    assert_eq!(seen, 120);
    let p = dir.join("renamed.jsonl");
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn renaming_labels_does_not_move_the_embedding() {
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let db_path = d.path().join("p.taskdb");
    let db = ingest_sentiment(&db_path, &refs);
    let renamed = renamed_labels(d.path());
    let ing = ingestor(&db_path, &refs, 1);
    ing.dataset(
        &db,
        "renamed",
        &renamed,
        &DatasetOptions::default(),
        &IngestOptions::default(),
    )
    .unwrap();
    let (a, b) = (vectors(&db, "sentiment_a"), vectors(&db, "renamed"));
    for m in ["scatter", "fisher", "tuned"] {
        let (fa, fb) = (flat(&a[m]), flat(&b[m]));
        let scale = fa.iter().fold(0.0f64, |s, x| s.max(x.abs()));
        let diff = max_abs_diff(&fa, &fb);
        assert!(
            diff <= 1e-5 * scale.max(1e-3),
            "{m}: max |Δ| {diff:e} (largest value {scale:e}) after renaming labels"
        );
    }
    // The renamed copy is its own nearest neighbour in every method's space (exact score 1).
    for m in ["scatter", "fisher", "tuned"] {
        let hits = db
            .nearest(
                &taskdb::Query::entry("renamed").unwrap(),
                1,
                &Filter::all().method(m),
            )
            .unwrap();
        assert_eq!(hits[0].name, "sentiment_a", "{m}");
        assert!(hits[0].score > 0.9999, "{m}: score {}", hits[0].score);
    }
}

#[test]
fn second_ingestion_hits_the_feature_cache_and_damaged_cache_is_recomputed() {
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let db_path = d.path().join("c.taskdb");
    let db = TaskDb::open(&db_path).unwrap();
    let ds = fx("datasets/topic.tsv");
    let opts = IngestOptions::default();
    let first = {
        let ing = ingestor(&db_path, &refs, 1);
        let r = ing
            .dataset(&db, "topic", &ds, &DatasetOptions::default(), &opts)
            .unwrap();
        assert_eq!((r.cache.hits, r.cache.computed), (0, 105), "{:?}", r.cache);
        let r2 = ing
            .dataset(&db, "topic", &ds, &DatasetOptions::default(), &opts)
            .unwrap();
        assert_eq!(r2.version, 2);
        assert_eq!(
            (r2.cache.hits, r2.cache.computed),
            (105, 0),
            "{:?}",
            r2.cache
        );
        vectors(&db, "topic")
    };
    // Damage the cache file in place (pages after the header), then ingest again.
    let cache = taskdb::files::feature_cache(&db_path);
    let mut bytes = std::fs::read(&cache).unwrap();
    assert!(bytes.len() > 8192, "cache file is {} bytes", bytes.len());
    for b in &mut bytes[4096..4608] {
        *b ^= 0x5A;
    }
    std::fs::write(&cache, &bytes).unwrap();
    let ing = ingestor(&db_path, &refs, 1);
    let r3 = ing
        .dataset(&db, "topic", &ds, &DatasetOptions::default(), &opts)
        .expect("a damaged feature cache is derived state: recomputed, never fatal");
    assert_eq!(r3.version, 3);
    assert_eq!(r3.cache.hits + r3.cache.computed, 105, "{:?}", r3.cache);
    let third = vectors(&db, "topic");
    for (m, e) in &first {
        assert_eq!(bits(e), bits(&third[m]), "{m} changed after cache damage");
    }
    // And the cache works again afterwards.
    let r4 = ing
        .dataset(&db, "topic", &ds, &DatasetOptions::default(), &opts)
        .unwrap();
    assert_eq!(r4.cache.hits, 105, "{:?}", r4.cache);
}

#[test]
fn bad_datasets_fail_with_a_located_message_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let db_path = d.path().join("bad.taskdb");
    let db = ingest_sentiment(&db_path, &refs);
    let ing = ingestor(&db_path, &refs, 1);
    let before = db
        .list(&Filter {
            all_versions: true,
            ..Filter::all()
        })
        .unwrap();
    let spaces_before = db.spaces().unwrap().len();
    // file → what the message must say (besides the file name).
    let cases: &[(&str, &[&str])] = &[
        ("bool_label.jsonl", &["row 2", "boolean"]),
        ("empty.jsonl", &["no rows"]),
        ("empty_text.jsonl", &["row 2", "empty"]),
        ("header_only.csv", &["no rows"]),
        ("inf_label.csv", &["row 2", "inf"]),
        ("invalid_utf8.jsonl", &["line 2", "UTF-8"]),
        ("malformed.jsonl", &["line 3", "JSON"]),
        ("missing_label.csv", &["row 3", "label"]),
        ("missing_text.jsonl", &["row 4", "text"]),
        ("mixed_labels.jsonl", &["row 4", "string"]),
        ("nan_label.csv", &["row 3", "nan"]),
        ("nan_label.jsonl", &["line 2", "NaN"]),
        (
            "no_such_column.csv",
            &["text", "columns found: sentence, target"],
        ),
        ("not_object.jsonl", &["line 2", "array"]),
        ("ragged.csv", &["line 3", "3 fields"]),
        ("single_class.jsonl", &["two classes"]),
        ("unknown_ext.txt", &["txt"]),
    ];
    let listed: Vec<String> = std::fs::read_dir(fx("datasets/bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed.len(),
        cases.len(),
        "every file in fixtures/datasets/bad has a case here: {listed:?}"
    );
    for (file, needles) in cases {
        let p = fx(&format!("datasets/bad/{file}"));
        let err = ing
            .dataset(
                &db,
                "bad",
                &p,
                &DatasetOptions::default(),
                &IngestOptions::default(),
            )
            .expect_err(file)
            .to_string();
        assert!(
            err.contains(*file),
            "{file}: message does not name the file: {err}"
        );
        for n in *needles {
            assert!(err.contains(n), "{file}: message lacks {n:?}: {err}");
        }
    }
    assert_eq!(
        db.list(&Filter {
            all_versions: true,
            ..Filter::all()
        })
        .unwrap(),
        before
    );
    assert_eq!(db.spaces().unwrap().len(), spaces_before);
}

#[test]
fn textemb_is_refused_for_a_model_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let db_path = d.path().join("m.taskdb");
    let db = TaskDb::open(&db_path).unwrap();
    let ing = ingestor(&db_path, &refs, 1);
    let source = ModelSource::Command {
        command: format!("python3 {}", fxs("models/sentiment_rule.py")),
        options: CommandOptions::default(),
    };
    let opts = IngestOptions {
        methods: vec![MethodKind::TextEmb],
        ..IngestOptions::default()
    };
    let err = ing.model(&db, "m", &source, &opts).unwrap_err().to_string();
    assert!(err.contains("textemb"), "{err}");
    assert!(err.contains("identical for every model"), "{err}");
    assert!(db.list(&Filter::all()).unwrap().is_empty());
    // Without --method, a model gets every method that uses targets, and no textemb.
    let r = ing
        .model(&db, "m", &source, &IngestOptions::default())
        .unwrap();
    assert_eq!(
        r.spaces.keys().collect::<Vec<_>>(),
        ["fisher", "scatter", "tuned"]
    );
    // U's features are one stage (timed once, so the provenance keeps its real time).
    let stages: Vec<&str> = r.stages.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        stages.iter().filter(|s| s.starts_with("features")).count(),
        1,
        "{stages:?}"
    );
    // Asking knn for a model's textemb says why there is none.
    let err = db
        .nearest(
            &taskdb::Query::entry("m").unwrap(),
            3,
            &Filter::all().method("textemb"),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("identical for every model"), "{err}");
}

#[test]
fn an_existing_space_keeps_its_parameters_when_defaults_change() {
    // A database whose scatter space predates whitening (scatter_whitening = None: unwhitened,
    // centred by the k-means reference) keeps working with today's defaults: unset parameters
    // mean "the space's". Asking for other parameters explicitly is refused.
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let path = d.path().join("old.taskdb");
    let db = TaskDb::open(&path).unwrap();
    let ing = ingestor(&path, &refs, 1);
    let old = taskdb::MethodParams {
        scatter_whitening: None,
        ..taskdb::MethodParams::default()
    };
    let scatter_only = |params| IngestOptions {
        methods: vec![MethodKind::Scatter],
        params,
        ..IngestOptions::default()
    };
    let ds = |name: &str, o: &IngestOptions| {
        ing.dataset(
            &db,
            name,
            &fx("datasets/sentiment_a.jsonl"),
            &DatasetOptions::default(),
            o,
        )
    };
    ds("a", &scatter_only(Some(old.clone()))).unwrap();
    let space = db.spaces().unwrap().into_iter().next().unwrap();
    assert!(space.def.params.get("reference").is_some());
    assert!(space.def.params.get("whitening").is_none());
    // defaults unset: the stored (old) parameters are used, bit-identically
    let r = ds("b", &scatter_only(None)).unwrap();
    assert_eq!(
        bits(&vectors(&db, "a")["scatter"]),
        bits(&vectors(&db, "b")["scatter"])
    );
    let prov = db.get(&"b".parse().unwrap()).unwrap().provenance;
    assert_eq!(
        prov.details["methods"]["scatter"]["params"]["scatter_whitening"],
        serde_json::Value::Null,
        "{}",
        prov.details
    );
    assert_eq!(r.version, 1);
    // ... and the report says why, naming today's default space
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("earlier default"),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings[0].contains("scatter-kmeans-absdiff:"),
        "{:?}",
        r.warnings
    );
    // explicit other parameters for the same space: a clear error, nothing written
    let before = db.list(&Filter::all()).unwrap();
    let other = taskdb::MethodParams {
        fisher_lambda: 0.2,
        ..old.clone()
    };
    let err = ds("c", &scatter_only(Some(other))).unwrap_err().to_string();
    assert!(err.contains("other scatter parameters"), "{err}");
    assert!(err.contains("leave the parameters unset"), "{err}");
    assert_eq!(db.list(&Filter::all()).unwrap(), before);
    // explicit default parameters: today's default space, beside the old one (unchanged)
    let r = ds("c", &scatter_only(Some(taskdb::MethodParams::default()))).unwrap();
    assert!(
        r.spaces["scatter"].starts_with("scatter-kmeans-absdiff:"),
        "{r:?}"
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let spaces = db.spaces().unwrap();
    assert_eq!(spaces.len(), 2);
    assert_eq!(spaces[0].def, space.def);
    // a fresh database gets today's default: whitened, centred by k-means pseudo-tasks of U
    // in the whitened space, text pairs as |h(a) − h(b)|
    let p2 = d.path().join("new.taskdb");
    let db2 = TaskDb::open(&p2).unwrap();
    ingestor(&p2, &refs, 1)
        .dataset(
            &db2,
            "a",
            &fx("datasets/sentiment_a.jsonl"),
            &DatasetOptions::default(),
            &scatter_only(None),
        )
        .unwrap();
    let s2 = db2.spaces().unwrap().into_iter().next().unwrap();
    assert!(
        s2.def.name.starts_with("scatter-kmeans-absdiff:"),
        "{}",
        s2.def.name
    );
    assert!(s2.def.params["reference"].get("source").is_none());
    assert_eq!(s2.def.params["method_params"]["scatter_pairs"], "absdiff");
    assert_eq!(s2.def.params["whitening"]["shrinkage"], 0.5);
    assert_ne!(space.def, s2.def);
}

#[test]
fn a_reference_library_centres_new_spaces_and_must_match_them() {
    use taskdb::{Kind, Query, ReferenceLibrary};
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let scatter = || IngestOptions {
        methods: vec![MethodKind::Scatter],
        ..IngestOptions::default()
    };
    let files = [
        ("sentiment_a", "datasets/sentiment_a.jsonl", None),
        ("sentiment_b", "datasets/sentiment_b.csv", Some("sentence")),
        ("topic", "datasets/topic.tsv", None),
    ];
    let fill = |db: &TaskDb, ing: &taskdb::ingest::Ingestor| {
        for (name, file, text) in files {
            let mut o = DatasetOptions::default();
            if let Some(t) = text {
                o.text_col = t.to_string();
            }
            ing.dataset(db, name, &fx(file), &o, &scatter()).unwrap();
        }
    };
    // A: no library (the tiny surrogate matches no built-in one anyway); export its datasets.
    let pa = d.path().join("a.taskdb");
    let a = TaskDb::open(&pa).unwrap();
    fill(&a, &ingestor(&pa, &refs, 1).with_reference_library(None));
    // (centred by its k-means reference: the default)
    assert!(a.spaces().unwrap()[0].def.params["reference"]
        .get("source")
        .is_none());
    let lib = ReferenceLibrary::export(
        &a,
        MethodKind::Scatter,
        &Filter::all().kind(Kind::Dataset),
        "lib",
    )
    .unwrap();
    assert_eq!(lib.tasks.len(), 3);
    assert!(lib.tasks.iter().all(|t| t.source.starts_with("sha256:")));
    let json = lib.to_json().unwrap();
    assert_eq!(
        ReferenceLibrary::from_json(&json, "roundtrip").unwrap(),
        lib
    );

    // B: the same datasets, spaces created with the library: centred by its mean.
    let pb = d.path().join("b.taskdb");
    let b = TaskDb::open(&pb).unwrap();
    fill(
        &b,
        &ingestor(&pb, &refs, 1).with_reference_library(Some(lib.clone())),
    );
    let def = &b.spaces().unwrap()[0].def;
    let src = def.params["reference"]["source"].as_str().unwrap();
    assert!(src.contains("\"lib\"") && src.contains("3 tasks"), "{src}");
    let prov = b.get(&"topic".parse().unwrap()).unwrap().provenance;
    assert_eq!(
        prov.details["methods"]["scatter"]["centring"].as_str(),
        Some(src)
    );
    // knn scores equal the dense centred cosine with R = mean of the unit embeddings.
    let unit = |n: &str| {
        let v = flat(&vectors(&b, n)["scatter"]);
        let nr = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / nr).collect::<Vec<f64>>()
    };
    let us: Vec<Vec<f64>> = files.iter().map(|f| unit(f.0)).collect();
    let r: Vec<f64> = (0..us[0].len())
        .map(|i| us.iter().map(|u| u[i]).sum::<f64>() / 3.0)
        .collect();
    let centred = |u: &[f64]| u.iter().zip(&r).map(|(x, y)| x - y).collect::<Vec<f64>>();
    let hits = b
        .nearest(&Query::entry("sentiment_a").unwrap(), 2, &Filter::all())
        .unwrap();
    for h in &hits {
        let j = files.iter().position(|f| f.0 == h.name).unwrap();
        let want = cosine(&centred(&us[0]), &centred(&us[j]));
        assert!(
            (h.score as f64 - want).abs() < 1e-4,
            "{}: {} vs {want}",
            h.name,
            h.score
        );
    }
    // Centring changes the scores (A is centred by k-means pseudo-tasks).
    let ha = a
        .nearest(&Query::entry("sentiment_a").unwrap(), 2, &Filter::all())
        .unwrap();
    assert!((ha[0].score - hits[0].score).abs() > 1e-3);

    // A library made in another space is refused when it would centre a new space.
    let mut other = lib.clone();
    other.probe_fingerprint = "0".repeat(64);
    let pc = d.path().join("c.taskdb");
    let c = TaskDb::open(&pc).unwrap();
    let err = ingestor(&pc, &refs, 1)
        .with_reference_library(Some(other))
        .dataset(
            &c,
            "topic",
            &fx("datasets/topic.tsv"),
            &DatasetOptions::default(),
            &scatter(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("another scatter space"), "{err}");
    assert!(c.list(&Filter::all()).unwrap().is_empty());

    // Damaged files are clear errors naming the task.
    assert!(ReferenceLibrary::from_json(b"{", "x.json")
        .unwrap_err()
        .to_string()
        .contains("not a taskdb reference library"));
    let mut bad = lib.clone();
    bad.tasks[1].s.push(1.0);
    let err = ReferenceLibrary::from_json(&bad.to_json().unwrap(), "bad.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("sentiment_b"),
        "{err}"
    );
}

#[test]
fn a_new_database_reuses_the_machine_cache_of_frozen_statistics() {
    // The scatter space's whitening (like tuned's and textemb's references) is built from U's
    // features once per machine; a second, fresh database gets the same space without encoding
    // U again (its feature cache then holds only the dataset's rows).
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let a = ingest_sentiment(&d.path().join("a.taskdb"), &refs);
    let names: Vec<String> = std::fs::read_dir(&refs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("whitening-")),
        "{names:?}"
    );
    let pb = d.path().join("b.taskdb");
    let b = ingest_sentiment(&pb, &refs);
    for (sa, sb) in a.spaces().unwrap().iter().zip(b.spaces().unwrap().iter()) {
        assert_eq!(sa.def, sb.def);
    }
    let cache = taskdb::testing::FeatureCache::open(&taskdb::files::feature_cache(&pb)).unwrap();
    let dataset_rows = std::fs::read_to_string(fx("datasets/sentiment_a.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(cache.len().unwrap(), dataset_rows, "U was encoded again");
}

#[test]
fn pair_datasets_are_featurised_as_the_absolute_difference_in_the_default_scatter_space() {
    // The default scatter space encodes the two texts of a pair alone and takes
    // |h(a) − h(b)| (normalised); the other methods keep the joint encoding. The stored
    // vector must be exactly that embedding, and a second ingestion must hit the cache.
    use taskdb::{Embedding, TaskSpaceParams};
    use taskdb_methods as m;
    use taskdb_surrogate::TextInput;
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let path = d.path().join("p.taskdb");
    let db = TaskDb::open(&path).unwrap();
    let ing = ingestor(&path, &refs, 1);
    let file = fx("datasets/pair_same.jsonl.gz");
    let r = ing
        .dataset(
            &db,
            "pairs",
            &file,
            &DatasetOptions::default(),
            &IngestOptions::default(),
        )
        .unwrap();
    let stages: Vec<&str> = r.stages.iter().map(|(s, _)| s.as_str()).collect();
    assert!(stages.contains(&"features (pairs: absdiff)"), "{stages:?}");
    assert!(stages.contains(&"features"), "{stages:?}");
    // 80 rows: 80 first texts + 80 second texts alone, 80 joint pairs (+ U for the spaces)
    assert!(r.cache.computed >= 240, "{:?}", r.cache);
    let prov = db.get(&"pairs".parse().unwrap()).unwrap().provenance;
    assert_eq!(prov.details["methods"]["scatter"]["pairs"], "absdiff");
    assert_eq!(prov.details["methods"]["fisher"]["pairs"], "joint");

    // Recompute the scatter embedding by hand from the surrogate's features.
    let ds = taskdb_sources::read_dataset(&file, &DatasetOptions::default()).unwrap();
    let s = ing.surrogate();
    let enc = |texts: Vec<&str>| {
        let ti: Vec<TextInput<'_>> = texts.into_iter().map(TextInput::Single).collect();
        s.embed_inputs(&ti).unwrap().data
    };
    let a = enc(ds.rows.iter().map(|r| r.text.as_str()).collect());
    let b = enc(ds
        .rows
        .iter()
        .map(|r| r.text_pair.as_deref().unwrap())
        .collect());
    let dim = s.dim();
    let x = m::absdiff_features(&a, &b, dim).unwrap();
    let f = m::Features::new(ds.rows.len(), dim, &x).unwrap();
    let y = m::Targets::Classes {
        labels: ds.class_indices().unwrap(),
        n_classes: ds.labels.len(),
    };
    let space = db.space(&r.spaces["scatter"]).unwrap();
    let params = TaskSpaceParams::from_def(&space.def).unwrap();
    let w = params.whitening(&space.def.name).unwrap();
    let want = m::embed_in(
        MethodKind::Scatter,
        &params.method_params,
        w.as_ref(),
        &f,
        &y,
    )
    .unwrap();
    let m::TaskEmbedding::LowRank(want) = want else {
        panic!("scatter is low rank")
    };
    assert_eq!(
        bits(&vectors(&db, "pairs")["scatter"]),
        bits(&Embedding::LowRank(want))
    );

    // Again: every feature from the cache, the same vectors.
    let r2 = ing
        .dataset(
            &db,
            "pairs",
            &file,
            &DatasetOptions::default(),
            &IngestOptions::default(),
        )
        .unwrap();
    assert_eq!(r2.cache.computed, 0, "{:?}", r2.cache);
    assert_eq!(r2.version, 2);
}

/// `recommend --file` in the library: a dataset embedded on the fly (`embed_dataset`) and not
/// stored gets the same values as when it is ingested, and sources are recommended for it.
#[test]
fn an_unstored_dataset_is_embedded_like_an_ingested_one_and_gets_recommendations() {
    use taskdb::{Kind, RecommendOptions, Target};
    let d = tempfile::tempdir().unwrap();
    let refs = d.path().join("refs");
    let p = d.path().join("t.taskdb");
    let db = ingest_sentiment(&p, &refs);
    let ing = ingestor(&p, &refs, 1);
    let opts = IngestOptions::default();
    ing.dataset(
        &db,
        "topic",
        &fx("datasets/topic.tsv"),
        &DatasetOptions::default(),
        &opts,
    )
    .unwrap();
    let before = db.list(&Filter::all()).unwrap().len();
    let prepared = ing
        .prepare_dataset(
            &fx("datasets/sentiment_a.jsonl"),
            &DatasetOptions::default(),
            &opts,
        )
        .unwrap();
    let (target, warnings) = ing.embed_dataset(&db, "new", prepared, &opts).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        db.list(&Filter::all()).unwrap().len(),
        before,
        "nothing is stored"
    );
    // The same file as the stored sentiment_a: the same value in every space, bit for bit.
    let stored = vectors(&db, "sentiment_a");
    assert_eq!(target.vectors.len(), 4);
    for (m, (_, e)) in &target.vectors {
        assert_eq!(bits(e), bits(&stored[m]), "method {m}");
    }
    let recs = db
        .recommend_for(
            &Target::Unstored(target),
            &RecommendOptions {
                from: Some(Kind::Dataset),
                ..RecommendOptions::default()
            },
        )
        .unwrap();
    assert_eq!(recs[0].name, "sentiment_a");
    assert!(
        (recs[0].similarity["fisher"] - 1.0).abs() < 1e-5,
        "{recs:?}"
    );
    assert_eq!(recs.len(), 2);
}
