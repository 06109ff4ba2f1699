use std::io::Write;
use std::path::PathBuf;

use taskdb_sources::{read_dataset, DatasetOptions, Error, Format, Label, Task, TaskKind};

fn fx(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/datasets")
        .join(p)
}

fn opts() -> DatasetOptions {
    DatasetOptions::default()
}

fn err(p: &str, o: &DatasetOptions) -> Error {
    read_dataset(&fx(p), o).expect_err("must fail")
}

#[test]
fn reads_jsonl_string_labels() {
    let d = read_dataset(&fx("sentiment_a.jsonl"), &opts()).unwrap();
    assert_eq!(d.task, Task::Classification);
    assert_eq!(d.labels, vec!["negative", "positive"]);
    assert_eq!(d.rows.len(), 120);
    assert_eq!(d.summary.rows_read, 120);
    assert_eq!(d.summary.label_counts["positive"], 60);
    assert_eq!(d.summary.format, Format::Jsonl);
    assert!(!d.summary.compressed);
    assert!(!d.is_pair());
    let b = d.summary.class_balance.as_ref().unwrap();
    assert_eq!(b.classes, 2);
    assert!((b.normalized_entropy - 1.0).abs() < 1e-12);
    // sha256 and size are of the file as stored.
    let bytes = std::fs::read(fx("sentiment_a.jsonl")).unwrap();
    assert_eq!(d.summary.bytes, bytes.len() as u64);
    assert_eq!(d.summary.sha256.len(), 64);
    // first row in input order
    let first = std::fs::read_to_string(fx("sentiment_a.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(d.rows[0].text, v["text"].as_str().unwrap());
    // provenance serialises
    let s = serde_json::to_string(&d.summary).unwrap();
    assert!(s.contains("\"label_counts\""));
}

#[test]
fn reads_csv_integer_labels_and_custom_text_column() {
    let o = DatasetOptions {
        text_col: "sentence".into(),
        ..opts()
    };
    let d = read_dataset(&fx("sentiment_b.csv"), &o).unwrap();
    assert_eq!(d.task, Task::Classification);
    assert_eq!(d.labels, vec!["0", "1"]);
    assert_eq!(d.rows.len(), 90);
    assert_eq!(d.summary.format, Format::Csv);
}

#[test]
fn integer_labels_sort_numerically() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.jsonl");
    let mut f = std::fs::File::create(&p).unwrap();
    for (i, l) in [10, 2, -1, 2].iter().enumerate() {
        writeln!(f, "{{\"text\": \"t {i}\", \"label\": {l}}}").unwrap();
    }
    drop(f);
    let d = read_dataset(&p, &opts()).unwrap();
    assert_eq!(d.labels, vec!["-1", "2", "10"]);
    assert_eq!(d.rows[0].label, Label::Class(2));
}

#[test]
fn reads_tsv_three_classes() {
    let d = read_dataset(&fx("topic.tsv"), &opts()).unwrap();
    assert_eq!(d.labels, vec!["food", "sports", "weather"]);
    assert_eq!(d.rows.len(), 105);
    assert_eq!(d.summary.format, Format::Tsv);
}

#[test]
fn reads_gzip_pair_dataset() {
    let d = read_dataset(&fx("pair_same.jsonl.gz"), &opts()).unwrap();
    assert!(d.summary.compressed);
    assert!(d.summary.sha256_of.contains("compressed"));
    assert_eq!(d.summary.pair_column.as_deref(), Some("text_pair"));
    assert!(d.rows.iter().all(|r| r.text_pair.is_some()));
    assert_eq!(d.rows.len(), 80);
    assert_eq!(d.labels, vec!["different", "same"]);
}

#[test]
fn gzip_detected_by_magic_bytes_even_without_gz_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain_name.jsonl");
    std::fs::copy(fx("pair_same.jsonl.gz"), &p).unwrap();
    let d = read_dataset(&p, &opts()).unwrap();
    assert!(d.summary.compressed);
    assert_eq!(d.rows.len(), 80);
}

#[test]
fn regression_auto_detected_and_forced() {
    let d = read_dataset(&fx("regression.jsonl"), &opts()).unwrap();
    assert_eq!(d.task, Task::Regression);
    assert!(d.labels.is_empty());
    assert_eq!(d.values().unwrap().len(), 60);
    assert!(d.summary.target_stats.is_some());
    // integer labels forced to regression
    let o = DatasetOptions {
        text_col: "sentence".into(),
        task: TaskKind::Regression,
        ..opts()
    };
    let d = read_dataset(&fx("sentiment_b.csv"), &o).unwrap();
    assert_eq!(d.task, Task::Regression);
    // string labels cannot be regression: names the row
    let o = DatasetOptions {
        task: TaskKind::Regression,
        ..opts()
    };
    match err("sentiment_a.jsonl", &o) {
        Error::NotANumber {
            row: 1, line: 1, ..
        } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn csv_and_tsv_quoting() {
    for f in ["quoting.csv", "quoting.tsv"] {
        let d = read_dataset(&fx(f), &opts()).unwrap();
        assert_eq!(d.rows.len(), 4, "{f}");
        let texts: Vec<&str> = d.rows.iter().map(|r| r.text.as_str()).collect();
        assert!(texts.contains(&"bad\nday"), "{f}: {texts:?}");
        assert!(texts.contains(&"he said \"great\" game"), "{f}: {texts:?}");
        assert!(texts.contains(&"plain sad text"), "{f}: {texts:?}");
    }
    let d = read_dataset(&fx("quoting.csv"), &opts()).unwrap();
    assert_eq!(d.rows[0].text, "good, nice day");
    let d = read_dataset(&fx("quoting.tsv"), &opts()).unwrap();
    assert_eq!(d.rows[0].text, "good\tnice day");
}

#[test]
fn sampling_exact_deterministic_and_order_preserving() {
    let o = DatasetOptions {
        limit: Some(25),
        seed: 42,
        ..opts()
    };
    let a = read_dataset(&fx("sentiment_a.jsonl"), &o).unwrap();
    let b = read_dataset(&fx("sentiment_a.jsonl"), &o).unwrap();
    assert_eq!(a.rows.len(), 25);
    assert_eq!(a.summary.rows_read, 120);
    assert_eq!(a.summary.rows_kept, 25);
    assert!(a.summary.sampled);
    assert_eq!(a.rows, b.rows);
    // input order kept: positions in the full file are increasing
    let full = read_dataset(&fx("sentiment_a.jsonl"), &opts()).unwrap();
    let pos: Vec<usize> = a
        .rows
        .iter()
        .map(|r| full.rows.iter().position(|f| f.text == r.text).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    // a different seed gives a different sample
    let c = read_dataset(
        &fx("sentiment_a.jsonl"),
        &DatasetOptions {
            seed: 43,
            ..o.clone()
        },
    )
    .unwrap();
    assert_ne!(a.rows, c.rows);
    // limit above the row count keeps everything
    let all = read_dataset(
        &fx("sentiment_a.jsonl"),
        &DatasetOptions {
            limit: Some(1000),
            ..o
        },
    )
    .unwrap();
    assert_eq!(all.rows, full.rows);
    assert!(!all.summary.sampled);
}

#[test]
fn sampling_is_roughly_uniform() {
    // Each of 120 rows should be kept about 30/120 of the time over many seeds.
    let mut hits = vec![0u32; 120];
    let full = read_dataset(&fx("sentiment_a.jsonl"), &opts()).unwrap();
    for seed in 0..200 {
        let o = DatasetOptions {
            limit: Some(30),
            seed,
            ..opts()
        };
        let d = read_dataset(&fx("sentiment_a.jsonl"), &o).unwrap();
        for r in &d.rows {
            hits[full.rows.iter().position(|f| f == r).unwrap()] += 1;
        }
    }
    // expected 50 per row; binomial sd ~6.1
    let first_half: u32 = hits[..60].iter().sum();
    let second_half: u32 = hits[60..].iter().sum();
    assert!(
        (first_half as i64 - second_half as i64).abs() < 400,
        "{hits:?}"
    );
    assert!(hits.iter().all(|&h| (20..=85).contains(&h)), "{hits:?}");
}

#[test]
fn error_unreadable_file() {
    match err("does_not_exist.jsonl", &opts()) {
        Error::Io { path, .. } => assert!(path.ends_with("does_not_exist.jsonl")),
        e => panic!("{e}"),
    }
}

#[test]
fn error_unknown_extension() {
    assert!(matches!(
        err("bad/unknown_ext.txt", &opts()),
        Error::UnknownFormat { .. }
    ));
}

#[test]
fn error_malformed_json_names_line() {
    let e = err("bad/malformed.jsonl", &opts());
    assert!(matches!(e, Error::Json { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn error_nan_in_json_hints() {
    let e = err("bad/nan_label.jsonl", &opts());
    assert!(matches!(e, Error::Json { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("NaN"), "{e}");
}

#[test]
fn error_not_object() {
    let e = err("bad/not_object.jsonl", &opts());
    assert!(matches!(e, Error::NotAnObject { line: 2, .. }), "{e}");
}

#[test]
fn error_missing_text_names_row() {
    let e = err("bad/missing_text.jsonl", &opts());
    match &e {
        Error::MissingValue {
            row: 4,
            line: 4,
            column,
            ..
        } => assert_eq!(column, "text"),
        _ => panic!("{e}"),
    }
    assert!(e.to_string().contains("row 4"), "{e}");
}

#[test]
fn error_missing_label_names_row() {
    let e = err("bad/missing_label.csv", &opts());
    match &e {
        Error::MissingValue {
            row: 3,
            line: 4,
            column,
            ..
        } => assert_eq!(column, "label"),
        _ => panic!("{e}"),
    }
}

#[test]
fn error_empty_text() {
    let e = err("bad/empty_text.jsonl", &opts());
    assert!(matches!(e, Error::EmptyText { row: 2, .. }), "{e}");
}

#[test]
fn error_empty_dataset() {
    assert!(matches!(
        err("bad/empty.jsonl", &opts()),
        Error::EmptyDataset { .. }
    ));
    assert!(matches!(
        err("bad/header_only.csv", &opts()),
        Error::EmptyDataset { .. }
    ));
}

#[test]
fn error_single_class() {
    let e = err("bad/single_class.jsonl", &opts());
    match &e {
        Error::SingleClass { label, .. } => assert_eq!(label, "positive"),
        _ => panic!("{e}"),
    }
}

#[test]
fn error_nan_and_inf_labels() {
    let e = err("bad/nan_label.csv", &opts());
    assert!(
        matches!(
            e,
            Error::NonFiniteLabel {
                row: 3,
                line: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = err("bad/inf_label.csv", &opts());
    assert!(
        matches!(
            e,
            Error::NonFiniteLabel {
                row: 2,
                line: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn error_no_such_column_lists_columns() {
    let e = err("bad/no_such_column.csv", &opts());
    match &e {
        Error::NoSuchColumn { column, found, .. } => {
            assert_eq!(column, "text");
            assert_eq!(found, &vec!["sentence".to_string(), "target".to_string()]);
        }
        _ => panic!("{e}"),
    }
    assert!(e.to_string().contains("sentence, target"), "{e}");
    // jsonl too, and an explicit --pair column
    let o = DatasetOptions {
        pair_col: Some("hypothesis".into()),
        ..opts()
    };
    match err("sentiment_a.jsonl", &o) {
        Error::NoSuchColumn { column, found, .. } => {
            assert_eq!(column, "hypothesis");
            assert!(found.contains(&"label".to_string()));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn error_mixed_labels_names_first_conflicting_row() {
    let e = err("bad/mixed_labels.jsonl", &opts());
    match &e {
        Error::MixedLabels {
            row: 4,
            line: 4,
            first_row: 1,
            value,
            ..
        } => assert_eq!(value, "negative"),
        _ => panic!("{e}"),
    }
}

#[test]
fn error_ragged_csv() {
    let e = err("bad/ragged.csv", &opts());
    assert!(
        matches!(
            e,
            Error::RaggedRow {
                line: 3,
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn error_invalid_utf8_names_line() {
    let e = err("bad/invalid_utf8.jsonl", &opts());
    assert!(matches!(e, Error::InvalidUtf8 { line: 2, .. }), "{e}");
    // CSV too
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u.csv");
    std::fs::write(&p, b"text,label\ngood,a\nb\xffad,b\n").unwrap();
    let e = read_dataset(&p, &opts()).unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { line: 3, .. }), "{e}");
}

#[test]
fn error_wrong_label_type() {
    let e = err("bad/bool_label.jsonl", &opts());
    assert!(matches!(e, Error::WrongType { row: 2, .. }), "{e}");
}

#[test]
fn errors_in_rows_dropped_by_sampling_still_reported() {
    let o = DatasetOptions {
        limit: Some(1),
        ..opts()
    };
    let e = err("bad/missing_text.jsonl", &o);
    assert!(matches!(e, Error::MissingValue { row: 4, .. }), "{e}");
}
