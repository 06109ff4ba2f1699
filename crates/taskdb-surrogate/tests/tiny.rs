//! The tiny fixture encoder (fixtures/surrogate/tiny, built by scripts/build_tiny_encoder.py)
//! against its Python onnxruntime reference, plus batching, pairs, devices and bad inputs.
//!
//! Needs ONNX Runtime 1.31.x, found like the library finds it (run scripts/provision.sh).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use taskdb_surrogate::{Device, Error, Options, Surrogate, TextInput};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/surrogate/tiny")
}

fn reference() -> Value {
    let s = std::fs::read_to_string(fixture_dir().join("reference.json")).expect("reference.json");
    serde_json::from_str(&s).expect("reference.json parses")
}

fn opts(batch_size: usize, workers: usize) -> Options {
    Options {
        batch_size,
        workers,
        intra_threads: 1,
        ..Options::default()
    }
}

fn load(path: &Path, o: &Options) -> Surrogate {
    Surrogate::load(path, o).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// A manifest variant in a temp dir pointing at the fixture's files by absolute path.
fn variant(edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut m: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("surrogate.json")).unwrap(),
    )
    .unwrap();
    let fx = fixture_dir().canonicalize().unwrap();
    m["model"] = json!(fx.join("model.onnx"));
    m["tokenizer"] = json!(fx.join("tokenizer.json"));
    m["sha256"] = json!({});
    edit(&mut m);
    let p = dir.path().join("surrogate.json");
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    (dir, p)
}

fn ref_vec(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn texts_of(r: &Value) -> Vec<String> {
    r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect()
}

fn pairs_of(r: &Value) -> Vec<(String, String)> {
    r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["text"].as_str().unwrap().to_string(),
                p["text_pair"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn check_parity(s: &Surrogate, config: &str) {
    let r = reference();
    let texts = texts_of(&r);
    let e = s.embed(&texts).unwrap();
    assert_eq!(e.len(), texts.len());
    for (i, t) in r["texts"].as_array().unwrap().iter().enumerate() {
        let d = max_abs_diff(e.row(i), &ref_vec(&t["vectors"][config]));
        assert!(
            d <= 1e-5,
            "{config}: text {i} {:?}: max abs diff {d}",
            t["text"]
        );
    }
    let pairs = pairs_of(&r);
    let e = s.embed_pairs(&pairs).unwrap();
    for (i, p) in r["pairs"].as_array().unwrap().iter().enumerate() {
        let d = max_abs_diff(e.row(i), &ref_vec(&p["vectors"][config]));
        assert!(d <= 1e-5, "{config}: pair {i}: max abs diff {d}");
    }
}

#[test]
fn parity_with_python_reference_default_manifest() {
    // batch 4: several batches, padded, sorted by length
    let s = load(&fixture_dir(), &opts(4, 1));
    check_parity(&s, "mean_last_norm");
    let norm: f32 = s
        .embed(&["the dog"])
        .unwrap()
        .row(0)
        .iter()
        .map(|x| x * x)
        .sum();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn parity_cls_and_concatenated_layers() {
    let (_d, p) = variant(|m| {
        m["pooling"] = json!("cls");
        m["normalize"] = json!(false);
    });
    check_parity(&load(&p, &opts(3, 1)), "cls_last_raw");
    let (_d, p) = variant(|m| {
        m["outputs"] = json!(["hidden_1", "last_hidden_state"]);
        m["dim"] = json!(64);
        m["normalize"] = json!(false);
    });
    let s = load(&p, &opts(5, 2));
    assert_eq!(s.dim(), 64);
    check_parity(&s, "mean_concat_raw");
}

#[test]
fn truncation_and_empty_inputs_are_counted() {
    let r = reference();
    let s = load(&fixture_dir(), &opts(8, 1));
    let texts = texts_of(&r);
    let e = s.embed(&texts).unwrap();
    let want_trunc = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["truncated"].as_bool().unwrap())
        .count();
    assert_eq!(want_trunc, 1, "fixture has one over-long text");
    assert_eq!(e.stats.truncated, want_trunc);
    assert_eq!(e.stats.empty, 2, "\"\" and \"   \"");
    let want_tokens: u64 = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(e.stats.tokens as u64, want_tokens);
    assert!(e.stats.padded_tokens >= e.stats.tokens);
    assert_eq!(e.stats.count, texts.len());
    // a very long text (far beyond max_length) is truncated, not an error
    let long = "data ".repeat(5000);
    let e = s.embed(&[long.as_str(), "short"]).unwrap();
    assert_eq!(e.stats.truncated, 1);
    assert!(e.row(0).iter().all(|x| x.is_finite()));
    let pairs = pairs_of(&r);
    let e = s.embed_pairs(&pairs).unwrap();
    assert_eq!(e.stats.truncated, 1);
    // nothing in, nothing out
    let e = s.embed::<&str>(&[]).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.rows().count(), 0);
}

#[test]
fn invariant_to_batch_size_order_and_workers() {
    let r = reference();
    let mut texts = texts_of(&r);
    texts.extend(pairs_of(&r).into_iter().map(|(a, b)| format!("{a} {b}")));
    let alone: Vec<Vec<f32>> = {
        let s = load(&fixture_dir(), &opts(1, 1));
        texts
            .iter()
            .map(|t| s.embed(&[t.as_str()]).unwrap().row(0).to_vec())
            .collect()
    };
    for (bs, workers) in [(2, 1), (3, 2), (64, 1), (5, 3)] {
        let s = load(&fixture_dir(), &opts(bs, workers));
        // reversed and rotated order
        let mut order: Vec<usize> = (0..texts.len()).rev().collect();
        order.rotate_left(bs % texts.len());
        let shuffled: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
        let e = s.embed(&shuffled).unwrap();
        for (k, &i) in order.iter().enumerate() {
            let d = max_abs_diff(e.row(k), &alone[i]);
            assert!(
                d <= 1e-5,
                "batch {bs} workers {workers}: text {i} differs from alone by {d}"
            );
        }
    }
}

#[test]
fn pairs_are_encoded_as_pairs() {
    let s = load(&fixture_dir(), &opts(4, 1));
    let p = s
        .embed_pairs(&[("the cat is small", "the dog is large")])
        .unwrap();
    let joined = s.embed(&["the cat is small the dog is large"]).unwrap();
    assert!(
        max_abs_diff(p.row(0), joined.row(0)) > 1e-3,
        "pair encoding must differ from a joined text"
    );
    // mixed singles and pairs keep their order
    let mixed = s
        .embed_inputs(&[
            TextInput::Single("the cat is small the dog is large"),
            TextInput::Pair("the cat is small", "the dog is large"),
        ])
        .unwrap();
    assert!(max_abs_diff(mixed.row(0), joined.row(0)) <= 1e-5);
    assert!(max_abs_diff(mixed.row(1), p.row(0)) <= 1e-5);
}

#[test]
fn info_and_fingerprint() {
    let s = load(&fixture_dir(), &opts(4, 1));
    let i = s.info();
    assert_eq!(i.name, "tiny-test-encoder");
    assert_eq!(i.dim, 32);
    assert_eq!(i.vocab_size, 101);
    assert!(i.token_type_ids);
    assert_eq!(i.execution_provider, "CPUExecutionProvider");
    assert!(i.ort_version.starts_with("1.31."), "{}", i.ort_version);
    assert!(i.ort_library.is_file());
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    assert_eq!(i.fingerprint.len(), 64);
    // same files and config → same fingerprint; the manifest's name is not part of it
    let (_d, p) = variant(|m| m["name"] = json!("renamed"));
    assert_eq!(load(&p, &opts(4, 1)).fingerprint(), s.fingerprint());
    // pooling is part of it
    let (_d, p) = variant(|m| m["pooling"] = json!("cls"));
    assert_ne!(load(&p, &opts(4, 1)).fingerprint(), s.fingerprint());
}

#[test]
fn cuda_on_a_machine_without_it_falls_back_or_fails_in_strict_mode() {
    let o = Options {
        device: Device::Cuda(0),
        ..opts(4, 1)
    };
    let s = load(&fixture_dir(), &o);
    assert_eq!(s.info().execution_provider, "CPUExecutionProvider");
    assert_eq!(s.info().device_requested, "cuda:0");
    let w = s.info().warnings.join("\n");
    assert!(w.contains("fell back to CPU"), "{w}");
    // the reason names what is missing: the CPU build has no CUDA EP, or there is no driver
    assert!(
        w.contains("CUDAExecutionProvider") || w.contains("libcuda"),
        "{w}"
    );
    check_parity(&s, "mean_last_norm");

    let strict = Options { strict: true, ..o };
    match Surrogate::load(fixture_dir(), &strict) {
        Err(Error::Device { provider, reason }) => {
            assert_eq!(provider, "CUDA:0");
            assert!(!reason.is_empty());
        }
        other => panic!("strict CUDA must fail here, got {other:?}"),
    }
    assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
    assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
    assert!("tpu".parse::<Device>().is_err());
}

fn load_err(p: &Path) -> String {
    match Surrogate::load(p, &opts(4, 1)) {
        Ok(_) => panic!("{} should not load", p.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_and_corrupt_model_files() {
    let (_d, p) = variant(|m| m["model"] = json!("does-not-exist.onnx"));
    let e = load_err(&p);
    assert!(
        e.contains("does-not-exist.onnx") && e.contains("cannot read"),
        "{e}"
    );

    // corrupt model: garbage bytes, no checksum in the manifest → ONNX Runtime refuses it
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("model.onnx");
    std::fs::write(&bad, b"this is not an onnx model").unwrap();
    let (_d, p) = variant(|m| m["model"] = json!(bad));
    let e = load_err(&p);
    assert!(e.starts_with("model ") && e.contains("model.onnx"), "{e}");

    // truncated model with the manifest's checksum → checksum error before ORT sees it
    let full = std::fs::read(fixture_dir().join("model.onnx")).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    for f in ["surrogate.json", "tokenizer.json"] {
        std::fs::copy(fixture_dir().join(f), dir2.path().join(f)).unwrap();
    }
    std::fs::write(dir2.path().join("model.onnx"), &full[..full.len() / 2]).unwrap();
    match Surrogate::load(dir2.path(), &opts(4, 1)) {
        Err(Error::Checksum { path, .. }) => assert!(path.ends_with("model.onnx")),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // and without the checksum, ORT's own error
    let m = std::fs::read_to_string(dir2.path().join("surrogate.json")).unwrap();
    let mut m: Value = serde_json::from_str(&m).unwrap();
    m["sha256"] = json!({});
    std::fs::write(dir2.path().join("surrogate.json"), m.to_string()).unwrap();
    assert!(matches!(
        Surrogate::load(dir2.path(), &opts(4, 1)),
        Err(Error::Model { .. })
    ));
}

#[test]
fn manifest_that_does_not_match_the_model() {
    let (_d, p) = variant(|m| m["outputs"] = json!(["pooler_output"]));
    let e = load_err(&p);
    assert!(
        e.contains("`pooler_output`") && e.contains("last_hidden_state"),
        "{e}"
    );

    let (_d, p) = variant(|m| m["inputs"]["input_ids"] = json!("ids"));
    let e = load_err(&p);
    assert!(e.contains("inputs.input_ids") && e.contains("`ids`"), "{e}");

    let (_d, p) = variant(|m| {
        m["inputs"]
            .as_object_mut()
            .unwrap()
            .remove("token_type_ids");
    });
    let e = load_err(&p);
    assert!(e.contains("takes input `token_type_ids`"), "{e}");

    let (_d, p) = variant(|m| m["dim"] = json!(48));
    let e = load_err(&p);
    assert!(e.contains("`dim` is 48") && e.contains("32"), "{e}");

    let (_d, p) = variant(|m| m["pooling"] = json!("max"));
    let e = load_err(&p);
    assert!(e.contains("surrogate manifest") && e.contains("max"), "{e}");

    let (_d, p) = variant(|m| m["bogus"] = json!(1));
    let e = load_err(&p);
    assert!(e.contains("bogus"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("surrogate.json"), "{ not json").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("surrogate.json"), "{e}");

    let e = load_err(Path::new("/nonexistent/surrogate-dir"));
    assert!(e.contains("/nonexistent/surrogate-dir"), "{e}");
}

#[test]
fn tokenizer_vocabulary_larger_than_the_embedding_table() {
    let mut tok: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let n = vocab.len();
    for k in 0..40 {
        vocab.insert(format!("extra{k}"), json!(n + k));
    }
    let dir = tempfile::tempdir().unwrap();
    let tp = dir.path().join("tokenizer.json");
    std::fs::write(&tp, tok.to_string()).unwrap();
    let (_d, p) = variant(|m| m["tokenizer"] = json!(tp));
    let e = load_err(&p);
    assert!(
        e.contains("does not fit the model") && e.contains("140"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let tp = dir.path().join("tokenizer.json");
    std::fs::write(&tp, "{\"version\": \"1.0\"}").unwrap();
    let (_d, p) = variant(|m| m["tokenizer"] = json!(tp));
    let e = load_err(&p);
    assert!(e.contains("not a valid tokenizer.json"), "{e}");
}

#[test]
fn embed_jsonl_file_and_invalid_utf8() {
    let s = load(&fixture_dir(), &opts(4, 1));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.jsonl");
    std::fs::write(
        &f,
        "{\"id\":\"a\",\"text\":\"the cat\"}\n\n{\"text\":\"the cat is small\",\"text_pair\":\"the dog is large\"}\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let st = taskdb_surrogate::embed_jsonl(&s, &f, &mut out).unwrap();
    assert_eq!(st.count, 2);
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], json!("a"));
    assert_eq!(lines[1]["id"], json!(3), "default id is the line number");
    let v: Vec<f32> = ref_vec(&lines[1]["vector"]);
    let p = s
        .embed_pairs(&[("the cat is small", "the dog is large")])
        .unwrap();
    assert!(max_abs_diff(&v, p.row(0)) <= 1e-6);

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        b"{\"text\":\"fine\"}\n{\"text\":\"caf\xe9\"}\n".as_slice(),
    )
    .unwrap();
    let e = taskdb_surrogate::embed_jsonl(&s, &bad, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.jsonl: line 2") && e.contains("invalid UTF-8"),
        "{e}"
    );
}

#[test]
fn bad_options() {
    let mut o = opts(0, 1);
    assert!(matches!(
        Surrogate::load(fixture_dir(), &o),
        Err(Error::Options {
            option: "batch_size",
            ..
        })
    ));
    o.batch_size = 1;
    o.workers = 0;
    assert!(matches!(
        Surrogate::load(fixture_dir(), &o),
        Err(Error::Options {
            option: "workers",
            ..
        })
    ));
}

#[test]
fn surrogate_is_send_and_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Surrogate>();
    let s = load(&fixture_dir(), &opts(2, 2));
    let want = s.embed(&["the dog runs", "a red bird"]).unwrap();
    std::thread::scope(|sc| {
        for _ in 0..3 {
            sc.spawn(|| {
                let got = s.embed(&["the dog runs", "a red bird"]).unwrap();
                assert!(max_abs_diff(&got.data, &want.data) <= 1e-5);
            });
        }
    });
}
