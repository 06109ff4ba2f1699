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
    // the numpy reference's scatter is unwhitened unless given W (checked below)
    let p = MethodParams {
        scatter_whitening: None,
        ..MethodParams::default()
    };
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

    // whitened scatter (the default): the whitening of the same features, alpha 0.5, all rows
    let w = build_whitening(&f, 0.5, 0).unwrap();
    let want_w: Vec<f64> = f32s(&doc["whitening"]).iter().map(|&v| v as f64).collect();
    let got_w: Vec<f64> = w.values.iter().map(|&v| v as f64).collect();
    let diff = max_abs_diff(&got_w, &want_w);
    assert!(diff <= 1e-4, "whitening: max |rust - numpy| = {diff}");
    let want: Vec<f64> = f32s(&doc["expected"]["scatter_whitened/classes"])
        .iter()
        .map(|&v| v as f64)
        .collect();
    let dp = MethodParams::default();
    assert_eq!(dp.scatter_whitening, Some(0.5));
    let got = dense_of(&embed_in(MethodKind::Scatter, &dp, Some(&w), &f, &targets[0].1).unwrap());
    let diff = max_abs_diff(&got, &want);
    assert!(
        diff <= 1e-4,
        "scatter whitened: max |rust - numpy| = {diff}"
    );
    // without its whitening, the default scatter is refused, not silently computed unwhitened
    assert!(embed(MethodKind::Scatter, &dp, &f, &targets[0].1).is_err());
}
