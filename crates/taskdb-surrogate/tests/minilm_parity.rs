//! Real-model parity: the provisioned default surrogate (all-MiniLM-L6-v2 int8) on 200 shipped
//! sentences against vectors recorded with Python onnxruntime + tokenizers
//! (fixtures/surrogate/minilm_parity, built by scripts/surrogate_minilm_reference.py).
//!
//! Needs `scripts/provision.sh` to have run (model in $TASKDB_HOME or ~/.cache/taskdb). Without
//! it this test FAILS, on purpose: it is not skipped.

use std::path::Path;

use taskdb_surrogate::{default_surrogate_dir, Options, Surrogate};

#[test]
fn minilm_int8_matches_python_onnxruntime() {
    let dir = default_surrogate_dir();
    assert!(
        dir.join("surrogate.json").is_file(),
        "the default surrogate is not provisioned at {}: run scripts/provision.sh (or set TASKDB_HOME to where it ran)",
        dir.display()
    );
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/surrogate/minilm_parity");
    let texts: Vec<String> = std::fs::read_to_string(fx.join("sentences.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), 200);
    let raw = std::fs::read(fx.join("reference.f32")).unwrap();
    let reference: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(reference.len(), 200 * 384);

    let opts = Options {
        batch_size: 32,
        workers: 1,
        intra_threads: 2,
        ..Options::default()
    };
    let s = Surrogate::load(&dir, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.dim(), 384);
    assert_eq!(
        s.info().model_sha256,
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    );
    let e = s.embed(&texts).unwrap();
    let mut worst = (1.0f64, 0usize);
    for (i, v) in e.rows().enumerate() {
        let r = &reference[i * 384..(i + 1) * 384];
        let dot: f64 = v.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
        let na: f64 = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = r.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        if cos < worst.0 {
            worst = (cos, i);
        }
    }
    println!(
        "worst cosine vs Python reference: {:.7} (sentence {})",
        worst.0, worst.1
    );
    assert!(
        worst.0 >= 0.9999,
        "sentence {} has cosine {} with the Python reference",
        worst.1,
        worst.0
    );
}
