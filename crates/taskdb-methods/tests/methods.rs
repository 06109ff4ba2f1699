mod common;

use common::*;
use taskdb_methods::*;

const KINDS: [MethodKind; 3] = [MethodKind::Scatter, MethodKind::Fisher, MethodKind::Tuned];

/// `taskdb_methods::embed` with the whitening a space would freeze, built here from the task's
/// own features (the tests have no separate probe set); shadows the glob import.
fn embed(
    kind: MethodKind,
    p: &MethodParams,
    f: &Features,
    y: &Targets,
) -> Result<TaskEmbedding, MethodError> {
    let w = match p.scatter_whitening {
        Some(a) if kind.uses_whitening(p) => Some(build_whitening(f, a, 0)?),
        _ => None,
    };
    embed_in(kind, p, w.as_ref(), f, y)
}

fn fast() -> MethodParams {
    MethodParams {
        fisher_iters: 150,
        tuned_iters: 100,
        ..MethodParams::default()
    }
}

/// [`fast`] with unwhitened scatter, the configuration that is centred by a k-means reference.
fn plain() -> MethodParams {
    MethodParams {
        scatter_whitening: None,
        ..fast()
    }
}

#[test]
fn permutation_of_labels_gives_the_same_embedding() {
    let (n, d, c) = (240, 16, 4);
    let (x, y) = clustered(n, d, c, 0.7, 1);
    let f = Features::new(n, d, &x).unwrap();
    let perm = [2u32, 0, 3, 1];
    let yp: Vec<u32> = y.iter().map(|&l| perm[l as usize]).collect();
    for kind in KINDS {
        let a = embed(
            kind,
            &fast(),
            &f,
            &Targets::Classes {
                labels: y.clone(),
                n_classes: c,
            },
        )
        .unwrap();
        let b = embed(
            kind,
            &fast(),
            &f,
            &Targets::Classes {
                labels: yp.clone(),
                n_classes: c,
            },
        )
        .unwrap();
        let diff = max_abs_diff(&dense_of(&a), &dense_of(&b));
        assert!(
            diff <= 1e-6,
            "{kind}: permuted labels moved the embedding by {diff}"
        );
    }
}

#[test]
fn soft_permutation_invariance_and_unused_classes() {
    let (n, d, c) = (120, 12, 3);
    let (x, y) = clustered(n, d, c, 0.8, 2);
    let f = Features::new(n, d, &x).unwrap();
    let mut r = Rng::new(9);
    let probs: Vec<f32> = (0..n * c).map(|_| r.uniform() as f32 + 0.01).collect();
    // permute columns, and add an all-zero 4th class that must be ignored
    let perm = [1usize, 2, 0];
    let mut pp = vec![0f32; n * (c + 1)];
    for i in 0..n {
        for k in 0..c {
            pp[i * (c + 1) + perm[k]] = probs[i * c + k];
        }
    }
    for kind in KINDS {
        let a = embed(
            kind,
            &fast(),
            &f,
            &Targets::Soft {
                probs: probs.clone(),
                n_classes: c,
            },
        )
        .unwrap();
        let b = embed(
            kind,
            &fast(),
            &f,
            &Targets::Soft {
                probs: pp.clone(),
                n_classes: c + 1,
            },
        )
        .unwrap();
        let diff = max_abs_diff(&dense_of(&a), &dense_of(&b));
        assert!(diff <= 1e-6, "{kind}: {diff}");
    }
    let _ = y;
}

#[test]
fn deterministic_bit_identical() {
    let (n, d, c) = (200, 16, 3);
    let (x, y) = clustered(n, d, c, 0.7, 3);
    let f = Features::new(n, d, &x).unwrap();
    let t = Targets::Classes {
        labels: y,
        n_classes: c,
    };
    for kind in MethodKind::ALL {
        let a = embed(kind, &fast(), &f, &t).unwrap();
        let b = embed(kind, &fast(), &f, &t).unwrap();
        assert_eq!(a, b, "{kind} not bit-identical");
    }
}

#[test]
fn soft_one_hot_equals_hard() {
    let (n, d, c) = (150, 10, 3);
    let (x, y) = clustered(n, d, c, 0.7, 4);
    let f = Features::new(n, d, &x).unwrap();
    let mut probs = vec![0f32; n * c];
    for (i, &l) in y.iter().enumerate() {
        probs[i * c + l as usize] = 1.0;
    }
    for kind in KINDS {
        let a = embed(
            kind,
            &fast(),
            &f,
            &Targets::Classes {
                labels: y.clone(),
                n_classes: c,
            },
        )
        .unwrap();
        let b = embed(
            kind,
            &fast(),
            &f,
            &Targets::Soft {
                probs: probs.clone(),
                n_classes: c,
            },
        )
        .unwrap();
        assert_eq!(a, b, "{kind}: one-hot soft targets differ from hard labels");
    }
}

#[test]
fn factored_inner_product_equals_dense_frobenius() {
    let (n, d) = (200, 12);
    let (x, y3) = clustered(n, d, 3, 0.8, 5);
    let (x2, y5) = clustered(n, d, 5, 0.8, 6);
    let f = Features::new(n, d, &x).unwrap();
    let f2 = Features::new(n, d, &x2).unwrap();
    for kind in [MethodKind::Scatter, MethodKind::Fisher] {
        let a = embed(
            kind,
            &fast(),
            &f,
            &Targets::Classes {
                labels: y3.clone(),
                n_classes: 3,
            },
        )
        .unwrap();
        let b = embed(
            kind,
            &fast(),
            &f2,
            &Targets::Classes {
                labels: y5.clone(),
                n_classes: 5,
            },
        )
        .unwrap();
        let (TaskEmbedding::LowRank(la), TaskEmbedding::LowRank(lb)) = (&a, &b) else {
            panic!("{kind} should be low rank")
        };
        assert!(la.rank() <= 2 && lb.rank() <= 4, "rank must be <= C-1");
        // orthonormal columns
        for i in 0..la.rank() {
            for j in 0..la.rank() {
                let g: f64 = la
                    .col(i)
                    .iter()
                    .zip(la.col(j))
                    .map(|(&p, &q)| p as f64 * q as f64)
                    .sum();
                assert!((g - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
        let (da, db) = (la.to_dense(), lb.to_dense());
        let dense: f64 = da.iter().zip(&db).map(|(p, q)| p * q).sum();
        let fact = inner(la, lb);
        assert!(
            (dense - fact).abs() <= 1e-9 * dense.abs().max(1e-12) + 1e-12,
            "{kind}: {dense} vs {fact}"
        );
        // centred cosine against its dense definition with a reference
        let probe = Features::new(n, d, &x2).unwrap();
        let spec = ReferenceSpec {
            ks: vec![2, 3],
            seeds: vec![0],
            kmeans_iters: 10,
            max_rows: 0,
        };
        let r = build_reference(kind, &plain(), &probe, &spec).unwrap();
        let c = cosine_centred(&a, &b, Some(&r)).unwrap();
        let rv: Vec<f64> = r.values.iter().map(|&v| v as f64).collect();
        let na = da.iter().map(|v| v * v).sum::<f64>().sqrt();
        let nb = db.iter().map(|v| v * v).sum::<f64>().sqrt();
        let ca: Vec<f64> = da.iter().zip(&rv).map(|(v, r)| v / na - r).collect();
        let cb: Vec<f64> = db.iter().zip(&rv).map(|(v, r)| v / nb - r).collect();
        let want = ca.iter().zip(&cb).map(|(p, q)| p * q).sum::<f64>()
            / (ca.iter().map(|v| v * v).sum::<f64>().sqrt()
                * cb.iter().map(|v| v * v).sum::<f64>().sqrt());
        assert!(
            (c - want).abs() < 1e-6,
            "{kind}: centred cosine {c} vs dense {want}"
        );
    }
}

#[test]
fn rule_follower_is_nearer_than_a_different_rule() {
    // The same inputs labelled by rule A, by rule A again on other inputs, and by rule B:
    // A and A' must be nearer each other than either is to B.
    let (n, d) = (400, 16);
    let (x1, _) = clustered(n, d, 8, 1.5, 7);
    let (x2, _) = clustered(n, d, 8, 1.5, 8);
    let fa = Features::new(n, d, &x1).unwrap();
    let fb = Features::new(n, d, &x2).unwrap();
    let ya = rule_labels(&x1, d, &[0, 1]);
    let ya2 = rule_labels(&x2, d, &[0, 1]);
    let yb = rule_labels(&x1, d, &[5, 9]);
    for kind in KINDS {
        let e = |f: &Features, y: &Vec<u32>| {
            embed(
                kind,
                &fast(),
                f,
                &Targets::Classes {
                    labels: y.clone(),
                    n_classes: 4,
                },
            )
            .unwrap()
        };
        let (a, a2, b) = (e(&fa, &ya), e(&fb, &ya2), e(&fa, &yb));
        let same = cosine_centred(&a, &a2, None).unwrap();
        let diff1 = cosine_centred(&a, &b, None).unwrap();
        let diff2 = cosine_centred(&a2, &b, None).unwrap();
        assert!(
            same > diff1 + 0.1 && same > diff2 + 0.1,
            "{kind}: same-rule {same}, different-rule {diff1} {diff2}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let (x, y) = clustered(20, 4, 2, 0.5, 9);
    let f = Features::new(20, 4, &x).unwrap();
    let p = MethodParams::default();
    for kind in KINDS {
        let single = embed(
            kind,
            &p,
            &f,
            &Targets::Classes {
                labels: vec![1; 20],
                n_classes: 3,
            },
        );
        assert!(
            matches!(single, Err(MethodError::SingleClass { found: 1, .. })),
            "{kind}: {single:?}"
        );
        let short = embed(
            kind,
            &p,
            &f,
            &Targets::Classes {
                labels: y[..10].to_vec(),
                n_classes: 2,
            },
        );
        assert!(matches!(short, Err(MethodError::Shape(_))));
        let out = embed(
            kind,
            &p,
            &f,
            &Targets::Classes {
                labels: vec![5; 20],
                n_classes: 2,
            },
        );
        assert!(matches!(out, Err(MethodError::Target(_))));
        let mut vals: Vec<f32> = (0..20).map(|i| i as f32).collect();
        vals[3] = f32::NAN;
        let nan = embed(kind, &p, &f, &Targets::Regression { values: vals });
        assert!(
            // vals[3] is the fourth row: errors count rows from 1 (issue 10, defect 11)
            matches!(nan, Err(MethodError::NonFinite(ref m)) if m.contains("row 4 (1-based")),
            "{nan:?}"
        );
        let neg = embed(
            kind,
            &p,
            &f,
            &Targets::Soft {
                probs: vec![-1.0; 40],
                n_classes: 2,
            },
        );
        assert!(matches!(neg, Err(MethodError::Target(_))));
        let constant = embed(
            kind,
            &p,
            &f,
            &Targets::Regression {
                values: vec![2.0; 20],
            },
        );
        assert!(matches!(constant, Err(MethodError::SingleClass { .. })));
    }
    assert!(matches!(Features::new(0, 4, &[]), Err(MethodError::Empty)));
    let mut bad = x.clone();
    bad[6] = f32::NAN;
    assert!(
        matches!(Features::new(20, 4, &bad), Err(MethodError::NonFinite(ref m)) if m.contains("row 1"))
    );
    assert!(matches!(
        Features::new(3, 4, &x),
        Err(MethodError::Shape(_))
    ));
    let bad_p = MethodParams {
        fisher_lambda: 0.0,
        ..MethodParams::default()
    };
    assert!(matches!(
        embed(
            MethodKind::Fisher,
            &bad_p,
            &f,
            &Targets::Classes {
                labels: y,
                n_classes: 2
            }
        ),
        Err(MethodError::Params(_))
    ));
    assert!("nope".parse::<MethodKind>().is_err());
    assert_eq!(
        "scatter".parse::<MethodKind>().unwrap(),
        MethodKind::DEFAULT
    );
    // the default (whitened scatter) is centred by its k-means reference and needs the
    // space's whitening; the library-centred configuration has no k-means reference
    assert!(MethodKind::DEFAULT.uses_reference(&MethodParams::default()));
    assert!(MethodKind::DEFAULT.uses_whitening(&MethodParams::default()));
    assert!(!MethodKind::DEFAULT.uses_reference(&MethodParams::library_centred()));
    let plain = MethodParams {
        scatter_whitening: None,
        ..MethodParams::default()
    };
    assert!(MethodKind::Scatter.uses_reference(&plain));
    for k in MethodKind::ALL {
        assert_eq!(k.name().parse::<MethodKind>().unwrap(), k);
    }
}

#[test]
fn quantile_bins_balanced_and_tie_safe() {
    let v: Vec<f32> = (0..100).map(|i| i as f32).collect();
    let (l, c) = quantile_bins(&v, 5).unwrap();
    assert_eq!(c, 5);
    for b in 0..5u32 {
        assert_eq!(l.iter().filter(|&&x| x == b).count(), 20);
    }
    let ties = vec![0.0f32, 0.0, 0.0, 0.0, 1.0, 1.0];
    let (l, c) = quantile_bins(&ties, 5).unwrap();
    assert_eq!(c, 2);
    assert_eq!(l, vec![0, 0, 0, 0, 1, 1]);
}

#[test]
fn sketch_tracks_exact_cosine() {
    let (n, d) = (200, 16);
    let probe = clustered(600, d, 6, 1.0, 10).0;
    let pf = Features::new(600, d, &probe).unwrap();
    let spec = ReferenceSpec {
        ks: vec![4, 8],
        seeds: vec![0],
        kmeans_iters: 10,
        max_rows: 0,
    };
    let r = build_reference(MethodKind::Scatter, &plain(), &pf, &spec).unwrap();
    let basis = SketchBasis::new(d, 2048, 1);
    let mut embs = vec![];
    for s in 0..6u64 {
        let (x, y) = clustered(n, d, 2 + (s as usize % 3), 0.9, 20 + s);
        let f = Features::new(n, d, &x).unwrap();
        embs.push(
            embed(
                MethodKind::Scatter,
                &plain(),
                &f,
                &Targets::Classes {
                    labels: y,
                    n_classes: 2 + (s as usize % 3),
                },
            )
            .unwrap(),
        );
    }
    let sk: Vec<Vec<f32>> = embs
        .iter()
        .map(|e| sketch(e, Some(&r), &basis).unwrap())
        .collect();
    let mut worst = 0.0f64;
    for i in 0..embs.len() {
        for j in 0..i {
            let exact = cosine_centred(&embs[i], &embs[j], Some(&r)).unwrap();
            let approx: f64 = sk[i]
                .iter()
                .zip(&sk[j])
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            worst = worst.max((exact - approx).abs());
        }
    }
    assert!(worst < 0.15, "sketch cosine off by {worst}");
    // a rebuilt basis (after serde) sketches identically
    assert_eq!(sketch(&embs[0], Some(&r), &basis.rebuilt()).unwrap(), sk[0]);
}

#[test]
fn textemb_is_the_mean_and_reference_is_frozen() {
    let (x, y) = clustered(50, 6, 2, 0.5, 11);
    let f = Features::new(50, 6, &x).unwrap();
    let TaskEmbedding::Dense(m) = embed(
        MethodKind::TextEmb,
        &fast(),
        &f,
        &Targets::Classes {
            labels: y,
            n_classes: 2,
        },
    )
    .unwrap() else {
        panic!()
    };
    for j in 0..6 {
        let want: f64 = (0..50).map(|i| x[i * 6 + j] as f64).sum::<f64>() / 50.0;
        assert!((m[j] as f64 - want).abs() < 1e-6);
    }
    assert!(!MethodKind::TextEmb.uses_targets());
    let spec = ReferenceSpec {
        ks: vec![2, 3],
        seeds: vec![0, 1],
        kmeans_iters: 5,
        max_rows: 0,
    };
    let r1 = build_reference(MethodKind::Scatter, &plain(), &f, &spec).unwrap();
    let r2 = build_reference(MethodKind::Scatter, &plain(), &f, &spec).unwrap();
    assert_eq!(r1, r2, "reference must be deterministic");
}

#[test]
fn whitening_is_the_inverse_square_root_of_the_shrunk_covariance() {
    let (n, d) = (300, 12);
    let (x, y) = clustered(n, d, 3, 0.8, 5);
    let f = Features::new(n, d, &x).unwrap();
    let alpha = 0.5;
    let w = build_whitening(&f, alpha, 0).unwrap();
    assert_eq!((w.dim, w.rows, w.values.len()), (d, n, d * d));
    // sample covariance, shrunk, in f64
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j] as f64).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![0.0f64; d * d];
    for i in 0..n {
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] += (x[i * d + a] as f64 - mean[a]) * (x[i * d + b] as f64 - mean[b])
                    / (n - 1) as f64;
            }
        }
    }
    let iso = (0..d).map(|a| cov[a * d + a]).sum::<f64>() / d as f64;
    for a in 0..d {
        for b in 0..d {
            cov[a * d + b] *= 1.0 - alpha;
        }
        cov[a * d + a] += alpha * iso;
    }
    // W Σ' W = I
    let wv: Vec<f64> = w.values.iter().map(|&v| v as f64).collect();
    let mul = |p: &[f64], q: &[f64]| -> Vec<f64> {
        let mut r = vec![0.0; d * d];
        for a in 0..d {
            for k in 0..d {
                for b in 0..d {
                    r[a * d + b] += p[a * d + k] * q[k * d + b];
                }
            }
        }
        r
    };
    let id = mul(&mul(&wv, &cov), &wv);
    for a in 0..d {
        for b in 0..d {
            let want = if a == b { 1.0 } else { 0.0 };
            assert!(
                (id[a * d + b] - want).abs() < 1e-4,
                "({a},{b}) = {}",
                id[a * d + b]
            );
        }
    }
    // alpha = 1 whitens by a multiple of I: the same task embedding as plain scatter, up to scale
    let t = Targets::Classes {
        labels: y,
        n_classes: 3,
    };
    let w1 = build_whitening(&f, 1.0, 0).unwrap();
    let iso1 = MethodParams {
        scatter_whitening: Some(1.0),
        ..MethodParams::default()
    };
    let a = embed_in(MethodKind::Scatter, &iso1, Some(&w1), &f, &t).unwrap();
    let b = embed_in(MethodKind::Scatter, &plain(), None, &f, &t).unwrap();
    let c = cosine_centred(&a, &b, None).unwrap();
    assert!((c - 1.0).abs() < 1e-6, "cosine {c}");
    // bad shrinkage and mismatched dimensions are errors, not panics
    assert!(build_whitening(&f, 0.0, 0).is_err());
    assert!(build_whitening(&f, 1.5, 0).is_err());
    let other = Features::new(n / 2, 2 * d, &x).unwrap();
    assert!(embed_in(
        MethodKind::Scatter,
        &MethodParams::default(),
        Some(&w),
        &other,
        &Targets::Classes {
            labels: (0..n as u32 / 2).map(|i| i % 2).collect(),
            n_classes: 2,
        }
    )
    .is_err());
}

#[test]
fn library_reference_and_batched_dots_match_their_definitions() {
    // Low-rank embeddings of a few tasks; enough columns to cross a block boundary is not
    // needed for correctness (blocks only group columns), so keep it small.
    let d = 10;
    let mut embs = Vec::new();
    for s in 0..7u64 {
        let c = 2 + (s as usize % 4);
        let (x, y) = clustered(120, d, c, 0.8, 40 + s);
        let f = Features::new(120, d, &x).unwrap();
        embs.push(
            embed(
                MethodKind::Scatter,
                &plain(),
                &f,
                &Targets::Classes {
                    labels: y,
                    n_classes: c,
                },
            )
            .unwrap(),
        );
    }
    let refs: Vec<&TaskEmbedding> = embs.iter().collect();
    let r = library_reference(MethodKind::Scatter, d, &refs).unwrap();
    // dense mean of the unit-normalised matrices
    let mut want = vec![0.0f64; d * d];
    for e in &embs {
        let TaskEmbedding::LowRank(l) = e else {
            panic!()
        };
        let m = l.to_dense();
        let n = m.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (w, v) in want.iter_mut().zip(&m) {
            *w += v / n / embs.len() as f64;
        }
    }
    let got: Vec<f64> = r.values.iter().map(|&v| v as f64).collect();
    assert!(max_abs_diff(&got, &want) < 1e-6);
    assert_eq!(r.spec.max_rows, 7);
    // batched ⟨e/‖e‖, R⟩ = prepare's one-by-one value
    let dots = reference_dots(&r, &refs).unwrap();
    for (e, dot) in embs.iter().zip(&dots) {
        let one = prepare(e, Some(&r)).unwrap().ref_dot;
        assert!((one - dot).abs() < 1e-9, "{one} vs {dot}");
    }
    // mismatched kinds are errors
    assert!(library_reference(MethodKind::Tuned, d, &refs).is_err());
    assert!(library_reference(MethodKind::Scatter, d + 1, &refs).is_err());
    assert!(library_reference(MethodKind::Scatter, d, &[]).is_err());
}

#[test]
fn inner_agrees_with_the_four_lane_sum() {
    // Another summation order: equal to rounding (scores and cached constants stored by the
    // 4-lane version stay within `check`'s 1e-9 tolerance).
    for d in [13usize, 16, 17, 384] {
        let mut embs = Vec::new();
        for s in 0..4u64 {
            let c = 2 + (s as usize % 4);
            let (x, y) = clustered(90, d, c, 0.8, 70 + s);
            let f = Features::new(90, d, &x).unwrap();
            let TaskEmbedding::LowRank(l) = embed(
                MethodKind::Fisher,
                &fast(),
                &f,
                &Targets::Classes {
                    labels: y,
                    n_classes: c,
                },
            )
            .unwrap() else {
                panic!()
            };
            embs.push(l);
        }
        for a in &embs {
            for b in &embs {
                let (x, y) = (inner(a, b), inner_4_lanes(a, b));
                assert!(
                    (x - y).abs() <= 1e-13 * y.abs().max(1e-300),
                    "d {d}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn spaces_stored_before_the_kmeans_and_pair_fields_read_as_library_centred_joint() {
    // The method parameters of a scatter space as taskdb 0.1 stored them: no
    // scatter_kmeans_reference, no scatter_pairs.
    let old = r#"{"fisher_lambda":0.1,"fisher_iters":300,"fisher_scale_sqrt_d":true,
        "regression_bins":5,"tuned_lambda":1.0,"tuned_tau":10.0,"tuned_iters":200,
        "max_rank":0,"scatter_whitening":0.5}"#;
    let p: MethodParams = serde_json::from_str(old).unwrap();
    assert_eq!(p, MethodParams::library_centred());
    assert!(!MethodKind::Scatter.uses_reference(&p));
    assert_eq!(p.pair_features(MethodKind::Scatter), PairFeatures::Joint);
    assert_eq!(p.design_tag(MethodKind::Scatter), None);
    let d = MethodParams::default();
    assert_eq!(d.pair_features(MethodKind::Scatter), PairFeatures::AbsDiff);
    // only scatter pairs texts apart; the other methods keep the joint encoding
    assert_eq!(d.pair_features(MethodKind::Fisher), PairFeatures::Joint);
    assert_eq!(
        d.design_tag(MethodKind::Scatter).as_deref(),
        Some("kmeans-absdiff")
    );
    assert_eq!(d.design_tag(MethodKind::Fisher), None);
    // serialised and read back, the new fields survive
    let back: MethodParams = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
}

#[test]
fn absdiff_features_are_the_normalised_absolute_difference() {
    let a = [1.0f32, 0.0, 0.0, 0.6, 0.8, 0.0];
    let b = [0.0f32, 1.0, 0.0, 0.6, 0.8, 0.0];
    let z = absdiff_features(&a, &b, 3).unwrap();
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!(
        (z[0] - h).abs() < 1e-6 && (z[1] - h).abs() < 1e-6 && z[2] == 0.0,
        "{z:?}"
    );
    // identical sides: a zero row, not NaN
    assert_eq!(&z[3..], &[0.0, 0.0, 0.0]);
    // symmetric in the two sides
    assert_eq!(absdiff_features(&b, &a, 3).unwrap(), z);
    assert!(absdiff_features(&a, &b[..3], 3).is_err());
    assert!(absdiff_features(&a, &b, 4).is_err());
}

#[test]
fn a_reference_in_the_whitened_space_is_deterministic_and_differs_from_the_raw_one() {
    let (n, d) = (400, 12);
    let (x, _) = clustered(n, d, 4, 0.5, 5);
    let f = Features::new(n, d, &x).unwrap();
    let params = MethodParams::default();
    let w = build_whitening(&f, 0.5, 3000).unwrap();
    let spec = ReferenceSpec {
        ks: vec![4, 6],
        seeds: vec![0, 1],
        kmeans_iters: 10,
        max_rows: 0,
    };
    let r1 = build_reference_in(MethodKind::Scatter, &params, Some(&w), &f, &spec).unwrap();
    let r2 = build_reference_in(MethodKind::Scatter, &params, Some(&w), &f, &spec).unwrap();
    assert_eq!(r1, r2);
    assert_eq!(r1.values.len(), d * d);
    assert!(r1.values.iter().all(|v| v.is_finite()));
    // the whitened pseudo-tasks are embedded like the space's entries: a whitened space
    // refuses to build its reference without its whitening
    assert!(build_reference(MethodKind::Scatter, &params, &f, &spec).is_err());
    let raw = MethodParams {
        scatter_whitening: None,
        ..params.clone()
    };
    let r0 = build_reference(MethodKind::Scatter, &raw, &f, &spec).unwrap();
    assert_ne!(r0.values, r1.values);
    // centring an entry by it gives a finite, label-order invariant score
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    let swapped: Vec<u32> = labels.iter().map(|&l| (l + 1) % 3).collect();
    let e = |l: &[u32]| {
        embed_in(
            MethodKind::Scatter,
            &params,
            Some(&w),
            &f,
            &Targets::Classes {
                labels: l.to_vec(),
                n_classes: 3,
            },
        )
        .unwrap()
    };
    let (ea, eb) = (e(&labels), e(&swapped));
    let c = cosine_centred(&ea, &eb, Some(&r1)).unwrap();
    assert!((c - 1.0).abs() < 1e-5, "{c}");
}

#[test]
fn target_errors_count_rows_from_one() {
    // issue 10, defect 11: the row numbers of target errors were 0-based
    let err = quantile_bins(&[1.0, f32::NAN, 2.0], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2 (1-based"), "{err}");
    let (x, _) = clustered(3, 4, 1, 0.1, 1);
    let f = Features::new(3, 4, &x).unwrap();
    let soft = Targets::Soft {
        probs: vec![0.5, 0.5, 1.0, 0.0, 0.0, 0.0],
        n_classes: 2,
    };
    let err = embed(MethodKind::Fisher, &MethodParams::default(), &f, &soft)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 3 (1-based) sum to 0"), "{err}");
}
