//! TuPaTE-like: a per-dimension scale s on the frozen features, scoring classes against
//! data-derived prototypes (centred class means P_c): logits_ic = τ Σ_j s_j (x_ij − μ_j) P_cj.
//! Minimise mean cross-entropy + (λ/2)‖s − 1‖² by a fixed number of gradient steps from s = 1
//! with step 1/(τ²/n Σ_j (Σ_i x̄_ij²)(Σ_c P_cj²) + λ). Embedding: s − 1. Prototypes come from the
//! data, so the module's parameters are identifiable and independent of label order.

use crate::linalg::softmax_rows;
use crate::targets::Canon;
use crate::{Features, MethodParams};
use nalgebra::DMatrix;

pub(crate) fn tuned(x: &Features, q: &Canon, p: &MethodParams) -> Vec<f32> {
    let (n, d, c) = (x.n, x.d, q.c);
    let qm = DMatrix::from_fn(n, c, |i, k| q.q[i * c + k]);
    let xm = crate::linalg::features_matrix(x, 1.0);
    let mu = xm.row_mean();
    let mut xc = xm;
    for i in 0..n {
        for j in 0..d {
            xc[(i, j)] -= mu[j];
        }
    }
    let w = qm.row_sum(); // 1 × c
    let mut pm = qm.transpose() * &xc; // c × d (class sums of centred x = class mean − μ times w)
    for k in 0..c {
        let wk = w[k];
        pm.row_mut(k).iter_mut().for_each(|v| *v /= wk);
    }
    let tau = p.tuned_tau;
    let lam = p.tuned_lambda;
    let sx: Vec<f64> = (0..d).map(|j| xc.column(j).norm_squared()).collect();
    let sp: Vec<f64> = (0..d).map(|j| pm.column(j).norm_squared()).collect();
    let lb = tau * tau / n as f64 * sx.iter().zip(&sp).map(|(a, b)| a * b).sum::<f64>() + lam;
    let step = 1.0 / lb;
    let mut s = vec![1.0f64; d];
    let inv_n = 1.0 / n as f64;
    for _ in 0..p.tuned_iters {
        let mut xs = xc.clone();
        for j in 0..d {
            let sj = s[j] * tau;
            xs.column_mut(j).iter_mut().for_each(|v| *v *= sj);
        }
        let mut z = xs * pm.transpose(); // n × c
        softmax_rows(&mut z);
        let r = (z - &qm) * inv_n;
        let rp = r * &pm; // n × d
        for j in 0..d {
            let g = tau * xc.column(j).dot(&rp.column(j)) + lam * (s[j] - 1.0);
            s[j] -= step * g;
        }
    }
    s.iter().map(|v| (v - 1.0) as f32).collect()
}
