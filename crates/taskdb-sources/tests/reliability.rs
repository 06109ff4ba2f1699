//! Issue 10 regression tests for the input parsers (defect 11 and the fuzz findings):
//! each bad input is a clear error naming the place, and memory stays bounded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use taskdb_sources::{
    read_dataset, read_predictions, run_command, to_targets, CommandOptions, DatasetOptions, Error,
    PredictionOptions, ProbeSet, ProbeText, ScoreKind, TargetValues, MAX_LABEL_BYTES,
    MAX_REPLY_LINE, MAX_TEXT_CHARS,
};

fn probe(n: u32) -> ProbeSet {
    ProbeSet::from_texts(
        "t",
        (0..n)
            .map(|i| ProbeText {
                id: i,
                text: format!("text {i}"),
                text_pair: None,
            })
            .collect(),
    )
    .unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn predictions(
    body: &str,
    opts: &PredictionOptions,
) -> Result<taskdb_sources::ModelOutputs, Error> {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.jsonl", body.as_bytes());
    read_predictions(&p, &probe(4), opts)
}

#[test]
fn model_labels_must_not_mix_strings_and_integers_like_dataset_labels() {
    let body = "{\"id\":0,\"label\":\"1\"}\n{\"id\":1,\"label\":1}\n{\"id\":2,\"label\":\"0\"}\n{\"id\":3,\"label\":\"0\"}\n";
    let e = predictions(body, &PredictionOptions::default()).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::BadPrediction { line: 2, .. }), "{m}");
    assert!(
        m.contains("is an integer, but line 1 has a string label"),
        "{m}"
    );
    // All integers or all strings are fine.
    let ints = "{\"id\":0,\"label\":1}\n{\"id\":1,\"label\":0}\n{\"id\":2,\"label\":1}\n{\"id\":3,\"label\":0}\n";
    predictions(ints, &PredictionOptions::default()).unwrap();
}

#[test]
fn overlong_labels_and_reply_lines_are_errors_with_the_line() {
    let long = "x".repeat(MAX_LABEL_BYTES + 1);
    let body = format!("{{\"id\":0,\"label\":\"a\"}}\n{{\"id\":1,\"label\":\"{long}\"}}\n");
    let e = predictions(&body, &PredictionOptions::default()).unwrap_err();
    assert!(matches!(e, Error::BadPrediction { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("bytes long"), "{e}");
    let body = format!(
        "{{\"id\":0,\"label\":\"{}\"}}\n",
        "y".repeat(MAX_REPLY_LINE + 10)
    );
    let e = predictions(&body, &PredictionOptions::default()).unwrap_err();
    assert!(matches!(e, Error::BadPrediction { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("line longer than"), "{e}");
}

#[test]
fn command_printing_an_endless_line_is_stopped_with_an_error() {
    // 8 MiB without a newline: an error at line 1, not gigabytes of memory.
    let o = CommandOptions {
        timeout: Duration::from_secs(30),
        ..CommandOptions::default()
    };
    let e = run_command(
        "cat >/dev/null; head -c 8000000 /dev/zero | tr '\\0' a; echo 'oops' >&2",
        &probe(4),
        &o,
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::BadPrediction { line: 1, .. }), "{m}");
    assert!(m.contains("line longer than"), "{m}");
}

#[test]
fn logits_are_a_documented_mode_and_the_negative_score_hint_names_it() {
    let body = "{\"id\":0,\"scores\":{\"a\":2.5,\"b\":-1}}\n{\"id\":1,\"scores\":{\"a\":-3,\"b\":1000}}\n{\"id\":2,\"label\":\"a\"}\n{\"id\":3,\"scores\":{\"b\":0}}\n";
    let out = predictions(body, &PredictionOptions::default()).unwrap();
    let e = to_targets(&out, ScoreKind::Probabilities).unwrap_err();
    assert!(e.to_string().contains("--scores-are logits"), "{e}");
    let logits = PredictionOptions {
        scores_are: ScoreKind::Logits,
        ..PredictionOptions::default()
    };
    let out = predictions(body, &logits).unwrap();
    let t = to_targets(&out, ScoreKind::Probabilities).unwrap();
    let TargetValues::Soft(rows) = &t.values else {
        panic!("soft expected")
    };
    for r in rows {
        let s: f64 = r.iter().sum();
        assert!(
            (s - 1.0).abs() < 1e-12 && r.iter().all(|x| x.is_finite()),
            "{r:?}"
        );
    }
}

#[test]
fn truncated_gzip_says_truncated_not_check_the_path() {
    let d = tempfile::tempdir().unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..500 {
        writeln!(
            enc,
            "{{\"text\": \"row {i} is good\", \"label\": \"{}\"}}",
            i % 2
        )
        .unwrap();
    }
    let gz = enc.finish().unwrap();
    let p = write(d.path(), "cut.jsonl.gz", &gz[..gz.len() / 2]);
    let e = read_dataset(&p, &DatasetOptions::default()).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("cut.jsonl.gz"), "{m}");
    assert!(!m.contains("Check that the path exists"), "{m}");
    assert!(m.contains("truncated") || m.contains("damaged"), "{m}");
    let e = read_dataset(&d.path().join("nope.jsonl"), &DatasetOptions::default()).unwrap_err();
    assert!(e.to_string().contains("Check that the path exists"), "{e}");
}

#[test]
fn very_long_texts_are_cut_to_the_documented_cap() {
    let d = tempfile::tempdir().unwrap();
    let long = "é".repeat(MAX_TEXT_CHARS + 5000); // multi-byte: the cut is on a char boundary
    let body = format!(
        "{{\"text\": \"{long}\", \"label\": \"a\"}}\n{{\"text\": \"short\", \"label\": \"b\"}}\n"
    );
    let p = write(d.path(), "long.jsonl", body.as_bytes());
    let ds = read_dataset(&p, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.rows[0].text.chars().count(), MAX_TEXT_CHARS);
    assert_eq!(ds.rows[1].text, "short");
    assert_eq!(ds.summary.texts_cut, 1);
}
