//! Small dense linear algebra on top of nalgebra (column-major `DMatrix<f64>`).

use crate::LowRank;
use nalgebra::{DMatrix, SymmetricEigen};

/// Eigenpairs of a symmetric matrix, sorted by eigenvalue descending (stable), each eigenvector
/// sign-canonicalised (its largest-magnitude entry, first on ties, is positive).
pub(crate) fn sym_eig_desc(m: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let k = m.nrows();
    let e = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| e.eigenvalues[b].total_cmp(&e.eigenvalues[a]));
    let vals: Vec<f64> = order.iter().map(|&i| e.eigenvalues[i]).collect();
    let mut vecs = DMatrix::<f64>::zeros(k, k);
    for (j, &i) in order.iter().enumerate() {
        let mut col = e.eigenvectors.column(i).clone_owned();
        canon_sign(col.as_mut_slice());
        vecs.set_column(j, &col);
    }
    (vals, vecs)
}

pub(crate) fn canon_sign(v: &mut [f64]) {
    let mut best = 0usize;
    for (i, x) in v.iter().enumerate() {
        if x.abs() > v[best].abs() {
            best = i;
        }
    }
    if v[best] < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
}

/// Given `a` (d × k), the low-rank `(A Aᵀ)^½ = U Σ Uᵀ`, from the k × k Gram `AᵀA = V Σ² Vᵀ`
/// (`U = A V Σ⁻¹`). Eigenvalues below `1e-12 ×` the largest are dropped; at most `max_rank`
/// pairs are kept (0 = all).
pub(crate) fn sqrt_from_factor(a: &DMatrix<f64>, max_rank: usize) -> LowRank {
    let d = a.nrows();
    let g = a.transpose() * a;
    let (w, v) = sym_eig_desc(g);
    let top = w.first().copied().unwrap_or(0.0).max(0.0);
    let mut keep: Vec<usize> = (0..w.len())
        .filter(|&j| w[j] > 0.0 && w[j] > top * 1e-12)
        .collect();
    if max_rank > 0 {
        keep.truncate(max_rank);
    }
    let mut u = Vec::with_capacity(d * keep.len());
    let mut s = Vec::with_capacity(keep.len());
    for &j in &keep {
        let sv = w[j].sqrt();
        let mut col: Vec<f64> = (a * v.column(j)).iter().map(|x| x / sv).collect();
        // re-normalise (removes rounding drift) and fix the sign
        let nrm = col.iter().map(|x| x * x).sum::<f64>().sqrt();
        col.iter_mut().for_each(|x| *x /= nrm);
        canon_sign(&mut col);
        u.extend(col.iter().map(|&x| x as f32));
        s.push(sv as f32);
    }
    LowRank { dim: d, u, s }
}

/// Features as an n × d matrix, times `scale`.
pub(crate) fn features_matrix(x: &crate::Features, scale: f64) -> DMatrix<f64> {
    DMatrix::from_fn(x.n, x.d, |i, j| x.data[i * x.d + j] as f64 * scale)
}

/// Row-wise softmax in place (n × c).
pub(crate) fn softmax_rows(z: &mut DMatrix<f64>) {
    for i in 0..z.nrows() {
        let mut mx = f64::NEG_INFINITY;
        for k in 0..z.ncols() {
            mx = mx.max(z[(i, k)]);
        }
        let mut sum = 0.0;
        for k in 0..z.ncols() {
            let e = (z[(i, k)] - mx).exp();
            z[(i, k)] = e;
            sum += e;
        }
        for k in 0..z.ncols() {
            z[(i, k)] /= sum;
        }
    }
}
