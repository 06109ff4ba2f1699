//! The model reply protocol (the same `ReplyCollector` parses `--command` stdout and
//! `--predictions` files) and target construction, over arbitrary bytes.
//! First byte: bit 0 verbalizers on, bit 1 logits. The rest is the predictions file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb_sources::{
    read_predictions, to_targets, PredictionOptions, ProbeSet, ProbeText, ScoreKind, Verbalizers,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let probe = ProbeSet::from_texts(
        "fuzz",
        (0..4)
            .map(|i| ProbeText {
                id: i,
                text: format!("text {i}"),
                text_pair: None,
            })
            .collect(),
    )
    .unwrap();
    let verbalizers = if sel & 1 != 0 {
        Some(Verbalizers::parse(&["pos=good|great", "neg=bad"]).unwrap())
    } else {
        None
    };
    let opts = PredictionOptions {
        verbalizers,
        ..PredictionOptions::default()
    };
    let dir = std::env::temp_dir().join(format!("taskdb-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("p.jsonl");
    std::fs::write(&path, body).unwrap();
    if let Ok(out) = read_predictions(&path, &probe, &opts) {
        let kind = if sel & 2 != 0 {
            ScoreKind::Logits
        } else {
            ScoreKind::Probabilities
        };
        if let Ok(t) = to_targets(&out, kind) {
            if let taskdb_sources::TargetValues::Soft(rows) = &t.values {
                for r in rows {
                    let s: f64 = r.iter().sum();
                    assert!(
                        s.is_finite() && (s - 1.0).abs() < 1e-6,
                        "row sums to {s}: {r:?}"
                    );
                    assert!(r.iter().all(|x| x.is_finite() && *x >= 0.0), "{r:?}");
                }
            }
        }
    }
});
