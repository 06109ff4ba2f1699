//! The ONNX text classifier (fixtures/models/tiny_classifier, built by
//! scripts/build_tiny_classifier.py) against its Python onnxruntime reference, plus batching,
//! the sentiment rule it reproduces, and bad inputs.
//!
//! Needs ONNX Runtime 1.31.x, found like the library finds it (run scripts/provision.sh).

use std::path::{Path, PathBuf};

use serde_json::Value;
use taskdb_surrogate::{
    parse_labels, Classifier, ClassifierOptions, Error, Options, OutputKind, TextInput,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny_classifier")
}

fn model() -> PathBuf {
    fixture_dir().join("model.onnx")
}

fn tokenizer() -> PathBuf {
    fixture_dir().join("tokenizer.json")
}

fn labels() -> Vec<String> {
    std::fs::read_to_string(fixture_dir().join("labels.txt"))
        .expect("labels.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

fn reference() -> Value {
    let s = std::fs::read_to_string(fixture_dir().join("reference.json")).expect("reference.json");
    serde_json::from_str(&s).expect("reference.json parses")
}

fn opts(batch_size: usize, workers: usize) -> ClassifierOptions {
    ClassifierOptions {
        runtime: Options {
            batch_size,
            workers,
            intra_threads: 1,
            ..Options::default()
        },
        ..ClassifierOptions::new(labels())
    }
}

fn load(o: &ClassifierOptions) -> Classifier {
    Classifier::load(&model(), &tokenizer(), o).unwrap_or_else(|e| panic!("loading: {e}"))
}

fn load_err(model: &Path, tokenizer: &Path, o: &ClassifierOptions) -> Error {
    match Classifier::load(model, tokenizer, o) {
        Ok(_) => panic!("loading {} should fail", model.display()),
        Err(e) => e,
    }
}

/// (inputs as owned strings, expected probabilities) for texts then pairs.
fn reference_cases() -> Vec<(String, Option<String>, Vec<f32>)> {
    let r = reference();
    let probs = |v: &Value| -> Vec<f32> {
        v["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let mut out = Vec::new();
    for t in r["texts"].as_array().unwrap() {
        out.push((t["text"].as_str().unwrap().to_string(), None, probs(t)));
    }
    for p in r["pairs"].as_array().unwrap() {
        out.push((
            p["text"].as_str().unwrap().to_string(),
            Some(p["text_pair"].as_str().unwrap().to_string()),
            probs(p),
        ));
    }
    out
}

fn as_inputs(cases: &[(String, Option<String>, Vec<f32>)]) -> Vec<TextInput<'_>> {
    cases
        .iter()
        .map(|(a, b, _)| match b {
            None => TextInput::Single(a),
            Some(b) => TextInput::Pair(a, b),
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn parity_with_python_reference() {
    let cases = reference_cases();
    let inputs = as_inputs(&cases);
    // batch 4: several padded batches sorted by length, texts and pairs mixed
    let c = load(&opts(4, 1));
    let out = c.classify_with_stats(&inputs).unwrap();
    assert_eq!(out.probabilities.len(), cases.len());
    for (i, ((a, b, want), got)) in cases.iter().zip(&out.probabilities).enumerate() {
        let d = max_abs_diff(got, want);
        assert!(d <= 1e-5, "input {i} {a:?} {b:?}: max abs diff {d}");
    }
    let r = reference();
    let truncated = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["truncated"].as_bool().unwrap())
        .count();
    assert_eq!(truncated, 1, "the fixture has one over-long text");
    assert_eq!(out.stats.truncated, truncated);
    assert_eq!(out.stats.empty, 2, "\"\" and \"   \"");
    assert_eq!(out.stats.count, cases.len());
    assert_eq!(out.stats.batches, cases.len().div_ceil(4));
    assert!(out.stats.padded_tokens >= out.stats.tokens);
}

#[test]
fn rows_are_distributions_and_info_describes_the_model() {
    let c = load(&opts(8, 1));
    assert_eq!(c.labels(), ["negative", "positive"]);
    let texts = [
        "good",
        "bad",
        "",
        "the team will win the match today",
        "happy happy sad",
    ];
    let inputs: Vec<TextInput<'_>> = texts.iter().map(|t| TextInput::Single(t)).collect();
    let p = c.classify(&inputs).unwrap();
    assert_eq!(p.len(), texts.len());
    for (t, row) in texts.iter().zip(&p) {
        assert_eq!(row.len(), 2, "{t:?}");
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{t:?}: sums to {sum}");
        assert!(
            row.iter().all(|&x| (0.0..=1.0).contains(&x)),
            "{t:?}: {row:?}"
        );
    }
    assert!(p[0][1] > 0.9 && p[1][0] > 0.9, "{p:?}");
    assert!(c.classify(&[]).unwrap().is_empty());

    let info = c.info();
    assert_eq!(
        info.inputs,
        ["input_ids", "attention_mask", "token_type_ids"]
    );
    assert_eq!(info.output, "logits");
    assert_eq!(info.outputs_are, OutputKind::Logits);
    assert_eq!(info.max_length, 64, "capped by the tokenizer's truncation");
    assert_eq!(info.execution_provider, "CPUExecutionProvider");
    assert!(info.ort_version.starts_with("1.31."));
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    let bytes = std::fs::read(model()).unwrap();
    use sha2::Digest;
    assert_eq!(info.model_sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(info.fingerprint.len(), 64);
    let json = serde_json::to_value(info).unwrap();
    assert_eq!(json["outputs_are"], "logits");
    assert_eq!(json["labels"][1], "positive");
    // the fingerprint follows the labels (a different reading of the same model)
    let other = load(&ClassifierOptions {
        labels: vec!["neg".into(), "pos".into()],
        ..opts(8, 1)
    });
    assert_ne!(other.fingerprint(), c.fingerprint());
    assert_eq!(load(&opts(3, 2)).fingerprint(), c.fingerprint());
}

#[test]
fn invariant_to_batch_size_order_and_workers() {
    let cases = reference_cases();
    let inputs = as_inputs(&cases);
    let alone: Vec<Vec<f32>> = {
        let c = load(&opts(1, 1));
        inputs
            .iter()
            .map(|i| c.classify(&[*i]).unwrap().remove(0))
            .collect()
    };
    for (bs, workers) in [(2, 1), (3, 2), (64, 1), (5, 3)] {
        let c = load(&opts(bs, workers));
        let mut order: Vec<usize> = (0..inputs.len()).rev().collect();
        order.rotate_left(bs % inputs.len());
        let shuffled: Vec<TextInput<'_>> = order.iter().map(|&i| inputs[i]).collect();
        let p = c.classify(&shuffled).unwrap();
        for (k, &i) in order.iter().enumerate() {
            let d = max_abs_diff(&p[k], &alone[i]);
            assert!(
                d <= 1e-6,
                "batch {bs}, workers {workers}: input {i}: diff {d}"
            );
        }
    }
}

#[test]
fn reproduces_the_sentiment_a_rule() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/datasets/sentiment_a.jsonl");
    let rows: Vec<(String, String)> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["text"].as_str().unwrap().to_string(),
                v["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 120);
    let c = load(&opts(16, 2));
    let inputs: Vec<TextInput<'_>> = rows.iter().map(|(t, _)| TextInput::Single(t)).collect();
    let p = c.classify(&inputs).unwrap();
    let correct = rows
        .iter()
        .zip(&p)
        .filter(|((_, label), row)| {
            let best = if row[1] > row[0] { 1 } else { 0 };
            c.labels()[best] == *label
        })
        .count();
    let acc = correct as f64 / rows.len() as f64;
    assert!(acc >= 0.9, "accuracy {acc} ({correct}/{})", rows.len());
}

#[test]
fn label_count_must_match_the_output() {
    let o = ClassifierOptions {
        labels: vec!["a".into(), "b".into(), "c".into()],
        ..opts(4, 1)
    };
    let e = load_err(&model(), &tokenizer(), &o).to_string();
    assert!(
        e.contains("2 classes") && e.contains("3 labels") && e.contains("a,b,c"),
        "{e}"
    );
    // too few, empty, duplicate labels
    for bad in [vec!["only"], vec!["a", " "], vec!["x", "y", "x"]] {
        let o = ClassifierOptions {
            labels: bad.iter().map(|s| s.to_string()).collect(),
            ..opts(4, 1)
        };
        match load_err(&model(), &tokenizer(), &o) {
            Error::Options { option, .. } => assert_eq!(option, "labels"),
            other => panic!("{bad:?}: expected a labels error, got {other}"),
        }
    }
    assert_eq!(parse_labels(" neg, pos ").unwrap(), ["neg", "pos"]);
    let e = parse_labels("neg,neg").unwrap_err().to_string();
    assert!(e.contains("`neg` appears twice"), "{e}");
    assert!(parse_labels("neg").is_err());
}

#[test]
fn missing_files_are_clear_errors() {
    let missing = Path::new("/nonexistent/dir/model.onnx");
    let e = load_err(missing, &tokenizer(), &opts(4, 1)).to_string();
    assert!(
        e.contains("/nonexistent/dir/model.onnx") && e.contains("--onnx"),
        "{e}"
    );
    let e = load_err(&model(), Path::new("/nonexistent/tok.json"), &opts(4, 1)).to_string();
    assert!(
        e.contains("/nonexistent/tok.json") && e.contains("--tokenizer"),
        "{e}"
    );
    // not an ONNX model: ONNX Runtime's error, naming the file
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let e = load_err(&junk, &tokenizer(), &opts(4, 1)).to_string();
    assert!(e.contains("junk.onnx"), "{e}");
    // not a tokenizer
    let e = load_err(&model(), &junk, &opts(4, 1)).to_string();
    assert!(e.contains("not a valid tokenizer.json"), "{e}");
}

#[test]
fn output_options_and_max_length() {
    // an output that does not exist: the error lists the model's outputs
    let o = ClassifierOptions {
        output: Some("probs".into()),
        ..opts(4, 1)
    };
    let e = load_err(&model(), &tokenizer(), &o).to_string();
    assert!(
        e.contains("no output named `probs`") && e.contains("logits"),
        "{e}"
    );
    // logits declared as probabilities: negative scores are reported with the input's position
    let c = load(&ClassifierOptions {
        output: Some("logits".into()),
        outputs_are: OutputKind::Probabilities,
        ..opts(4, 1)
    });
    match c.classify(&[TextInput::Single("good"), TextInput::Single("bad")]) {
        Err(Error::Input { line, message, .. }) => {
            assert!((1..=2).contains(&line));
            assert!(message.contains("negative score"), "{message}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    // a smaller max_length truncates
    let c = load(&ClassifierOptions {
        max_length: 8,
        ..opts(4, 1)
    });
    assert_eq!(c.info().max_length, 8);
    let long = "good ".repeat(20);
    let out = c.classify_with_stats(&[TextInput::Single(&long)]).unwrap();
    assert_eq!(out.stats.truncated, 1);
    assert_eq!(out.stats.tokens, 8);
    // a larger one is capped by the tokenizer's own truncation, with a warning
    let c = load(&ClassifierOptions {
        max_length: 100,
        ..opts(4, 1)
    });
    assert_eq!(c.info().max_length, 64);
    assert!(
        c.info().warnings[0].contains("capped"),
        "{:?}",
        c.info().warnings
    );
    // a tokenizer without truncation and max_length beyond the model's positions: rejected at load
    let dir = tempfile::tempdir().unwrap();
    let mut tok: Value =
        serde_json::from_str(&std::fs::read_to_string(tokenizer()).unwrap()).unwrap();
    tok["truncation"] = Value::Null;
    let tp = dir.path().join("tokenizer.json");
    std::fs::write(&tp, tok.to_string()).unwrap();
    match load_err(&model(), &tp, &opts(4, 1)) {
        Error::Options { option, message } => {
            assert_eq!(option, "max_length");
            assert!(message.contains("512 tokens"), "{message}");
        }
        other => panic!("expected a max_length error, got {other}"),
    }
}

#[test]
fn classifier_is_send_and_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
    let c = load(&opts(2, 2));
    let texts = ["good day", "bad day", "love it", "hate it", "the rain"];
    let inputs: Vec<TextInput<'_>> = texts.iter().map(|t| TextInput::Single(t)).collect();
    let want = c.classify(&inputs).unwrap();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| c.classify(&inputs).unwrap()))
            .collect();
        for h in hs {
            let got = h.join().unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!(max_abs_diff(a, b) <= 1e-6);
            }
        }
    });
}
