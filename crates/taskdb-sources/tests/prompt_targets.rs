use std::collections::BTreeMap;

use taskdb_sources::{
    canonical_label_order, to_targets, Error, ModelOutputs, OutputReport, Prediction, ProbeSet,
    ProbeText, PromptTemplate, ScoreKind, TargetValues, Verbalizers,
};

#[test]
fn template_parse_and_render() {
    let t = PromptTemplate::parse("Q: {text} {{literal}} A:").unwrap();
    assert_eq!(t.render("hi", None), "Q: hi {literal} A:");
    assert!(!t.uses_pair());
    let t = PromptTemplate::parse("{text}|{text_pair}").unwrap();
    assert!(t.uses_pair());
    assert_eq!(t.render("a", Some("b")), "a|b");
    assert_eq!(t.as_str(), "{text}|{text_pair}");
    // unicode around placeholders
    let t = PromptTemplate::parse("é{text}ü").unwrap();
    assert_eq!(t.render("x", None), "éxü");
}

#[test]
fn template_errors() {
    for bad in [
        "no placeholder",
        "{txt}",
        "{text",
        "a } b {text}",
        "{text_pair} only",
    ] {
        assert!(
            matches!(PromptTemplate::parse(bad), Err(Error::Template { .. })),
            "{bad}"
        );
    }
    let u = ProbeSet::from_texts(
        "u",
        vec![ProbeText {
            id: 0,
            text: "x".into(),
            text_pair: None,
        }],
    )
    .unwrap();
    let t = PromptTemplate::parse("{text} {text_pair}").unwrap();
    assert!(matches!(t.check(&u), Err(Error::Template { .. })));
    assert!(PromptTemplate::parse("{text}").unwrap().check(&u).is_ok());
}

fn vb() -> Verbalizers {
    Verbalizers::parse(&["pos=positive|good|very good", "neg=negative|bad|not good"]).unwrap()
}

#[test]
fn verbalizer_matching() {
    let v = vb();
    assert_eq!(v.labels(), vec!["neg", "pos"]);
    // start of the reply, case-insensitive, punctuation skipped
    assert_eq!(v.map_reply("Positive."), Some("pos"));
    assert_eq!(v.map_reply("  \"NEGATIVE\" for sure"), Some("neg"));
    // longest word at the start wins ("not good" over nothing, "very good" over "good")
    assert_eq!(v.map_reply("not good at all"), Some("neg"));
    assert_eq!(v.map_reply("Very good, but bad ending"), Some("pos"));
    // containment when unambiguous
    assert_eq!(v.map_reply("I think it is bad."), Some("neg"));
    // whole words only
    assert_eq!(v.map_reply("goodness me"), None);
    assert_eq!(v.map_reply("badminton"), None);
    // ambiguous -> unmatched
    assert_eq!(v.map_reply("It is good and bad."), None);
    assert_eq!(v.map_reply("no idea"), None);
    assert_eq!(v.map_reply(""), None);
}

#[test]
fn verbalizer_scores_summed() {
    let v = vb();
    let mut s = BTreeMap::new();
    s.insert(" Good".to_string(), 0.5);
    s.insert("positive".to_string(), 0.25);
    s.insert("bad".to_string(), 0.125);
    s.insert("other".to_string(), 9.0);
    let m = v.map_scores(&s).unwrap();
    assert_eq!(m["pos"], 0.75);
    assert_eq!(m["neg"], 0.125);
    let mut s = BTreeMap::new();
    s.insert("zzz".to_string(), 1.0);
    assert!(v.map_scores(&s).is_none());
}

#[test]
fn verbalizer_spec_errors() {
    for bad in [
        &["pos"][..],
        &["=a", "b=c"][..],
        &["a=x|", "b=y"][..],
        &["a=x", "b=X"][..],
        &["a=x|y"][..],
    ] {
        assert!(
            matches!(Verbalizers::parse(bad), Err(Error::Verbalizer { .. })),
            "{bad:?}"
        );
    }
    // repeated label merges
    let v = Verbalizers::parse(&["a=x", "b=y", "a=z"]).unwrap();
    assert_eq!(v.map_reply("z"), Some("a"));
}

fn outputs(preds: Vec<(u32, Prediction)>, declared: &[&str]) -> ModelOutputs {
    ModelOutputs {
        probe_fingerprint: String::new(),
        predictions: preds.into_iter().collect(),
        declared_labels: declared.iter().map(|s| s.to_string()).collect(),
        report: OutputReport::default(),
    }
}

fn sc(v: &[(&str, f64)]) -> Prediction {
    Prediction::Scores(v.iter().map(|(k, x)| (k.to_string(), *x)).collect())
}

#[test]
fn targets_hard_and_label_order_invariance() {
    let o = outputs(
        vec![
            (0, Prediction::Label("b".into())),
            (1, Prediction::Label("a".into())),
            (5, Prediction::Label("b".into())),
        ],
        &[],
    );
    let t = to_targets(&o, ScoreKind::Probabilities).unwrap();
    assert_eq!(t.labels, vec!["a", "b"]);
    assert_eq!(t.ids, vec![0, 1, 5]);
    assert_eq!(t.values, TargetValues::Hard(vec![1, 0, 1]));
    // declared labels join the vocabulary
    let o2 = outputs(o.predictions.clone().into_iter().collect(), &["c"]);
    assert_eq!(
        to_targets(&o2, ScoreKind::Probabilities).unwrap().labels,
        vec!["a", "b", "c"]
    );
    assert_eq!(
        canonical_label_order(vec!["10".into(), "9".into(), "9".into()]),
        vec!["9", "10"]
    );
}

#[test]
fn targets_soft_normalisation() {
    let o = outputs(
        vec![
            (0, sc(&[("a", 2.0), ("b", 6.0)])),
            (1, Prediction::Label("a".into())),
            (2, sc(&[("c", 1.0)])),
        ],
        &[],
    );
    let t = to_targets(&o, ScoreKind::Probabilities).unwrap();
    assert_eq!(t.labels, vec!["a", "b", "c"]);
    let TargetValues::Soft(r) = t.values else {
        panic!()
    };
    assert_eq!(r[0], vec![0.25, 0.75, 0.0]);
    assert_eq!(r[1], vec![1.0, 0.0, 0.0]);
    assert_eq!(r[2], vec![0.0, 0.0, 1.0]);
    // logits: softmax
    let o = outputs(
        vec![
            (0, sc(&[("a", 0.0), ("b", 2f64.ln())])),
            (1, sc(&[("a", 0.0), ("b", 0.0)])),
        ],
        &[],
    );
    let TargetValues::Soft(r) = to_targets(&o, ScoreKind::Logits).unwrap().values else {
        panic!()
    };
    assert!((r[0][0] - 1.0 / 3.0).abs() < 1e-12 && (r[0][1] - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(r[1], vec![0.5, 0.5]);
}

/// Outputs that do not depend on the input (one label, or one distribution, for every
/// probe text) centre to zero: refused with a reason, not stored as a zero vector.
#[test]
fn constant_outputs_are_refused_with_a_reason() {
    let hard = outputs(
        vec![
            (0, Prediction::Label("b".into())),
            (1, Prediction::Label("b".into())),
        ],
        &["a", "b"],
    );
    let soft = outputs(
        vec![
            (0, sc(&[("sports", 2.0), ("politics", 1.0)])),
            (4, sc(&[("sports", 4.0), ("politics", 2.0)])),
        ],
        &[],
    );
    for (o, what) in [
        (hard, "the same label \"b\""),
        (soft, "the same distribution"),
    ] {
        match to_targets(&o, ScoreKind::Probabilities) {
            Err(e @ Error::NoPredictions { .. }) => {
                let m = e.to_string();
                assert!(m.contains(what) && m.contains("all 2 probe texts"), "{m}");
                assert!(m.contains("do not depend on the input"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
    // One text that differs is enough.
    let o = outputs(
        vec![
            (0, sc(&[("sports", 2.0), ("politics", 1.0)])),
            (1, sc(&[("sports", 1.0), ("politics", 2.0)])),
        ],
        &[],
    );
    assert!(to_targets(&o, ScoreKind::Probabilities).is_ok());
}

#[test]
fn targets_errors_name_the_id() {
    let cases = [
        sc(&[("a", -0.1), ("b", 1.0)]),
        sc(&[("a", 0.0), ("b", 0.0)]),
        sc(&[("a", f64::NAN), ("b", 1.0)]),
    ];
    for p in cases {
        let o = outputs(vec![(0, sc(&[("a", 1.0), ("b", 1.0)])), (7, p)], &[]);
        match to_targets(&o, ScoreKind::Probabilities) {
            Err(Error::Scores { id: 7, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // NaN is an error with logits too
    let o = outputs(vec![(3, sc(&[("a", f64::INFINITY), ("b", 1.0)]))], &[]);
    assert!(matches!(
        to_targets(&o, ScoreKind::Logits),
        Err(Error::Scores { id: 3, .. })
    ));
    // no predictions / single label
    assert!(matches!(
        to_targets(&outputs(vec![], &[]), ScoreKind::Probabilities),
        Err(Error::NoPredictions { .. })
    ));
    let o = outputs(vec![(0, Prediction::Label("a".into()))], &[]);
    assert!(matches!(
        to_targets(&o, ScoreKind::Probabilities),
        Err(Error::NoPredictions { .. })
    ));
}
