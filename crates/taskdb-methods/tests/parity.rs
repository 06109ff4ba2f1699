//! Parity with the numpy reference implementation (scripts/quality/methods.py), on a small
//! synthetic case exported by scripts/quality/export_parity.py.
mod common;

use common::{dense_of, max_abs_diff};
use serde_json::Value;
use taskdb_methods::*;

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn matches_numpy_reference() {
    let doc: Value = serde_json::from_str(include_str!("data/parity.json")).unwrap();
    let (n, d, c) = (
        doc["n"].as_u64().unwrap() as usize,
        doc["d"].as_u64().unwrap() as usize,
        doc["n_classes"].as_u64().unwrap() as usize,
    );
    let x = f32s(&doc["features"]);
    let f = Features::new(n, d, &x).unwrap();
    let labels: Vec<u32> = doc["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let p = MethodParams::default();
    let targets = [
        (
            "classes",
            Targets::Classes {
                labels,
                n_classes: c,
            },
        ),
        (
            "soft",
            Targets::Soft {
                probs: f32s(&doc["soft"]),
                n_classes: c,
            },
        ),
        (
            "regression",
            Targets::Regression {
                values: f32s(&doc["regression"]),
            },
        ),
    ];
    for (tname, t) in &targets {
        for kind in [MethodKind::Scatter, MethodKind::Fisher, MethodKind::Tuned] {
            let want: Vec<f64> = f32s(&doc["expected"][format!("{kind}/{tname}")])
                .iter()
                .map(|&v| v as f64)
                .collect();
            let got = dense_of(&embed(kind, &p, &f, t).unwrap());
            let diff = max_abs_diff(&got, &want);
            assert!(diff <= 1e-4, "{kind}/{tname}: max |rust - numpy| = {diff}");
        }
    }
    let want: Vec<f64> = f32s(&doc["expected"]["textemb"])
        .iter()
        .map(|&v| v as f64)
        .collect();
    let got = dense_of(&embed(MethodKind::TextEmb, &p, &f, &targets[0].1).unwrap());
    assert!(max_abs_diff(&got, &want) <= 1e-6);
}
