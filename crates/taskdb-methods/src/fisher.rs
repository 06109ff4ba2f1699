//! Design A: fit a multinomial logistic head p = softmax(W x̃ + b) on x̃ = √d·x (L2 penalty λ
//! on W), by a fixed number of Nesterov steps from zero with step 1/L,
//! L = max(‖X̃‖₂²/(2n) + λ, 1/2) and strongly-convex momentum (√κ−1)/(√κ+1), κ = L/λ.
//! Per-example gradient w.r.t. the representation g_i = Wᵀ(q_i − p_i);
//! F = (1/n) Σ g_i g_iᵀ = Wᵀ Q W with Q = (1/n) Σ (q−p)(q−p)ᵀ (C × C); embedding F^½.

use crate::linalg::{features_matrix, softmax_rows, sqrt_from_factor, sym_eig_desc};
use crate::targets::Canon;
use crate::{Features, LowRank, MethodParams};
use nalgebra::DMatrix;

pub(crate) fn fisher(x: &Features, q: &Canon, p: &MethodParams) -> LowRank {
    let (n, d, c) = (x.n, x.d, q.c);
    let scale = if p.fisher_scale_sqrt_d {
        (d as f64).sqrt()
    } else {
        1.0
    };
    let xs = features_matrix(x, scale);
    let qm = DMatrix::from_fn(n, c, |i, k| q.q[i * c + k]);
    let lam = p.fisher_lambda;
    // spectral norm² of X̃ = largest eigenvalue of X̃ᵀX̃
    let (ev, _) = sym_eig_desc(xs.transpose() * &xs);
    let lmax = ev.first().copied().unwrap_or(0.0).max(0.0);
    let l = (lmax / (2.0 * n as f64) + lam).max(0.5);
    let kappa = (l / lam).sqrt();
    let beta = (kappa - 1.0) / (kappa + 1.0);
    let mut w = DMatrix::<f64>::zeros(c, d);
    let mut b = vec![0.0f64; c];
    let mut wy = w.clone();
    let mut by = b.clone();
    let inv_n = 1.0 / n as f64;
    for _ in 0..p.fisher_iters {
        let mut z = &xs * wy.transpose(); // n × c
        for i in 0..n {
            for k in 0..c {
                z[(i, k)] += by[k];
            }
        }
        softmax_rows(&mut z);
        let r = (z - &qm) * inv_n; // n × c
        let gw = r.transpose() * &xs + &wy * lam; // c × d
        let mut wn = &wy - gw / l;
        let mut bn = by.clone();
        for k in 0..c {
            let gb: f64 = r.column(k).iter().sum();
            bn[k] -= gb / l;
        }
        // momentum
        let wy_new = &wn + (&wn - &w) * beta;
        let by_new: Vec<f64> = (0..c).map(|k| bn[k] + beta * (bn[k] - b[k])).collect();
        std::mem::swap(&mut w, &mut wn);
        std::mem::swap(&mut b, &mut bn);
        wy = wy_new;
        by = by_new;
    }
    let mut pz = &xs * w.transpose();
    for i in 0..n {
        for k in 0..c {
            pz[(i, k)] += b[k];
        }
    }
    softmax_rows(&mut pz);
    let e = qm - pz; // n × c
    let qc = e.transpose() * &e * inv_n; // c × c
    let (vals, vecs) = sym_eig_desc(qc);
    let mut vs = vecs;
    for (j, &v) in vals.iter().enumerate() {
        let sq = v.max(0.0).sqrt();
        vs.column_mut(j).iter_mut().for_each(|x| *x *= sq);
    }
    let a = w.transpose() * vs; // d × c, F = A Aᵀ
    sqrt_from_factor(&a, p.max_rank as usize)
}
