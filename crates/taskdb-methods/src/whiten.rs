//! Frozen whitening of the surrogate's feature space, for scatter.
//!
//! Sentence-embedding spaces are strongly anisotropic: a few directions carry most of the
//! variance of any text collection, so raw between-class scatters of very different tasks
//! share those directions and look alike. Whitening by the probe set's covariance (shrunk
//! towards isotropy) puts every direction on the same footing before the scatter is taken:
//! `W = ((1 − α) Σ_U + α (tr Σ_U / d) I)^(−½)`, and scatter's factor `M` becomes `W M`, so
//! the embedding is `(W S_B W)^½` (an LDA-like between-class structure). `W` depends only on
//! U's features and α, so it is frozen into the space's definition like a reference: adding
//! entries never changes stored answers. Measured in docs/QUALITY-experiment.md.

use crate::linalg::sym_eig_desc;
use crate::{Features, MethodError};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// A symmetric `dim × dim` whitening matrix (row-major) built from the probe set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whitening {
    pub dim: usize,
    /// Shrinkage α towards the isotropic covariance (0 < α ≤ 1).
    pub shrinkage: f64,
    /// Probe rows used.
    pub rows: usize,
    /// `W`, row-major.
    pub values: Vec<f32>,
}

impl Whitening {
    /// `W · m` for a `dim × c` matrix `m`.
    pub(crate) fn apply(&self, m: &DMatrix<f64>) -> Result<DMatrix<f64>, MethodError> {
        if m.nrows() != self.dim || self.values.len() != self.dim * self.dim {
            return Err(MethodError::Incompatible(format!(
                "whitening of dim {} cannot apply to features of dim {}",
                self.dim,
                m.nrows()
            )));
        }
        let d = self.dim;
        let w = DMatrix::<f64>::from_fn(d, d, |i, j| self.values[i * d + j] as f64);
        Ok(w * m)
    }
}

/// Builds the whitening of the probe features `probe` (first `max_rows` rows; 0 = all) with
/// shrinkage `alpha` ∈ (0, 1]. Deterministic.
pub fn build_whitening(
    probe: &Features,
    alpha: f64,
    max_rows: usize,
) -> Result<Whitening, MethodError> {
    probe.validate()?;
    if !(alpha.is_finite() && alpha > 0.0 && alpha <= 1.0) {
        return Err(MethodError::Params(format!(
            "scatter_whitening (shrinkage) must be in (0, 1], got {alpha}"
        )));
    }
    let n = if max_rows > 0 {
        probe.n.min(max_rows)
    } else {
        probe.n
    };
    if n < 2 {
        return Err(MethodError::Params(
            "whitening needs at least 2 probe rows".into(),
        ));
    }
    let d = probe.d;
    let mut mu = vec![0.0f64; d];
    for i in 0..n {
        for (a, &v) in mu.iter_mut().zip(probe.row(i)) {
            *a += v as f64;
        }
    }
    mu.iter_mut().for_each(|v| *v /= n as f64);
    let mut cov = DMatrix::<f64>::zeros(d, d);
    let mut c = vec![0.0f64; d];
    for i in 0..n {
        for ((a, &v), m) in c.iter_mut().zip(probe.row(i)).zip(&mu) {
            *a = v as f64 - m;
        }
        for a in 0..d {
            let ca = c[a];
            for b in a..d {
                cov[(a, b)] += ca * c[b];
            }
        }
    }
    let scale = 1.0 / (n as f64 - 1.0);
    for a in 0..d {
        for b in a..d {
            let v = cov[(a, b)] * scale;
            cov[(a, b)] = v;
            cov[(b, a)] = v;
        }
    }
    let iso = (0..d).map(|a| cov[(a, a)]).sum::<f64>() / d as f64;
    if iso.is_nan() || iso <= 0.0 {
        return Err(MethodError::Params(
            "the probe features have zero variance; cannot whiten".into(),
        ));
    }
    for a in 0..d {
        for b in 0..d {
            cov[(a, b)] *= 1.0 - alpha;
        }
        cov[(a, a)] += alpha * iso;
    }
    let (vals, vecs) = sym_eig_desc(cov);
    // eigenvalues are >= alpha * iso > 0 in exact arithmetic; clamp rounding
    let inv: Vec<f64> = vals
        .iter()
        .map(|&l| 1.0 / l.max(alpha * iso * 1e-6).sqrt())
        .collect();
    let mut values = vec![0f32; d * d];
    for a in 0..d {
        for b in a..d {
            let v: f64 = (0..d).map(|k| vecs[(a, k)] * inv[k] * vecs[(b, k)]).sum();
            values[a * d + b] = v as f32;
            values[b * d + a] = v as f32;
        }
    }
    Ok(Whitening {
        dim: d,
        shrinkage: alpha,
        rows: n,
        values,
    })
}
