//! Design B: between-class scatter. μ = mean x; π_c = w_c / n; m_c = (Σ q_ic x_i)/w_c − μ;
//! M = [√π_c m_c] (d × C); with a whitening W, M ← W M; embedding (M Mᵀ)^½ (rank ≤ C − 1).

use crate::linalg::sqrt_from_factor;
use crate::targets::Canon;
use crate::{Features, LowRank, MethodError, Whitening};
use nalgebra::DMatrix;

pub(crate) fn scatter(
    x: &Features,
    q: &Canon,
    whitening: Option<&Whitening>,
    max_rank: usize,
) -> Result<LowRank, MethodError> {
    let (n, d, c) = (x.n, x.d, q.c);
    let mut mu = vec![0.0f64; d];
    let mut w = vec![0.0f64; c];
    let mut sums = vec![0.0f64; c * d];
    for i in 0..n {
        let row = x.row(i);
        for (a, &v) in mu.iter_mut().zip(row) {
            *a += v as f64;
        }
        for k in 0..c {
            let qk = q.q[i * c + k];
            if qk != 0.0 {
                w[k] += qk;
                for (a, &v) in sums[k * d..(k + 1) * d].iter_mut().zip(row) {
                    *a += qk * v as f64;
                }
            }
        }
    }
    mu.iter_mut().for_each(|v| *v /= n as f64);
    let mut m = DMatrix::<f64>::zeros(d, c);
    for k in 0..c {
        let sp = (w[k] / n as f64).sqrt();
        for j in 0..d {
            m[(j, k)] = sp * (sums[k * d + j] / w[k] - mu[j]);
        }
    }
    if let Some(w) = whitening {
        m = w.apply(&m)?;
    }
    Ok(sqrt_from_factor(&m, max_rank))
}
