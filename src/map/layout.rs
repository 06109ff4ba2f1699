//! Two-dimensional layouts of a similarity matrix: pure, deterministic, unit-tested.
//!
//! * [`pca`]: kernel PCA of the space's own similarity (classical MDS): the similarity matrix
//!   is double-centred and its two leading eigenvectors, scaled by the square roots of their
//!   eigenvalues, are the coordinates. Distances in the picture are the best rank-2
//!   approximation of the space's geometry; clusters that differ by little overlap.
//! * [`tsne`]: exact t-SNE (van der Maaten & Hinton 2008) on the cosine distances
//!   `sqrt(2 − 2s)`, started from the PCA layout (no random numbers anywhere), so the same
//!   matrix always gives the same picture. It preserves neighbourhoods, not distances: what
//!   is near on the map is near in the space; far apart means "not among the neighbours".
//! * [`place`]: out-of-sample placement for frozen layouts: a new point goes to the
//!   similarity-weighted mean of its nearest frozen points, and the frozen points stay put.
//!
//! Signs are fixed (each axis points to the side of its largest absolute coordinate), so a
//! layout does not flip between runs or machines.

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

/// Above this many points exact t-SNE (O(n²) per iteration) is refused; use PCA.
pub const TSNE_MAX_POINTS: usize = 3000;

/// Coordinates of `n` points from their `n × n` similarity matrix (row-major, symmetric,
/// values in [-1, 1], diagonal 1): kernel PCA. Fewer than two positive eigenvalues leave the
/// missing axis at zero (one point, or identical points).
pub fn pca(sim: &[f64], n: usize) -> Vec<[f64; 2]> {
    debug_assert_eq!(sim.len(), n * n);
    if n == 0 {
        return Vec::new();
    }
    let k = DMatrix::from_fn(n, n, |i, j| 0.5 * (sim[i * n + j] + sim[j * n + i]));
    // Double centring: H K H with H = I − 11ᵀ/n.
    let row_mean: Vec<f64> = (0..n).map(|i| k.row(i).sum() / n as f64).collect();
    let all_mean = row_mean.iter().sum::<f64>() / n as f64;
    let kc = DMatrix::from_fn(n, n, |i, j| {
        k[(i, j)] - row_mean[i] - row_mean[j] + all_mean
    });
    let mut out = vec![[0.0; 2]; n];
    for (axis, (lambda, v)) in top2(kc).into_iter().enumerate() {
        if lambda <= 1e-12 {
            continue;
        }
        let s = lambda.sqrt();
        let col: Vec<f64> = v.iter().map(|x| x * s).collect();
        let sign = orientation(&col);
        for (i, v) in col.iter().enumerate() {
            out[i][axis] = sign * v;
        }
    }
    out
}

/// Up to this many rows the eigenpairs are computed exactly (a full symmetric eigen
/// decomposition, O(n³)); above, by subspace iteration.
const EXACT_EIGEN_MAX: usize = 400;

/// The two leading eigenpairs (largest eigenvalues first) of a symmetric matrix. Large
/// matrices use subspace iteration on 8 vectors from a fixed start (deterministic) with a
/// Rayleigh–Ritz step each round, until the two leading Ritz values change by less than 1e-12
/// relatively or 300 rounds have run: O(n²) a round instead of O(n³).
fn top2(kc: DMatrix<f64>) -> Vec<(f64, Vec<f64>)> {
    let n = kc.nrows();
    let pairs = |vals: &nalgebra::DVector<f64>, vecs: &DMatrix<f64>| {
        let mut order: Vec<usize> = (0..vals.len()).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(2)
            .map(|c| (vals[c], vecs.column(c).iter().copied().collect()))
            .collect::<Vec<_>>()
    };
    if n <= EXACT_EIGEN_MAX {
        let eig = SymmetricEigen::new(kc);
        return pairs(&eig.eigenvalues, &eig.eigenvectors);
    }
    let b = 8.min(n);
    let mut q = DMatrix::from_fn(n, b, |i, c| {
        ((i + 1) as f64 * (c + 1) as f64 * 0.618_033_988_75).sin()
            + if i % b == c { 1.0 } else { 0.0 }
    })
    .qr()
    .q();
    let mut last = [f64::NAN; 2];
    let mut ritz = None;
    for _ in 0..300 {
        let z = &kc * &q;
        let t = q.transpose() * &z;
        let t = (&t + t.transpose()) * 0.5;
        let eig = SymmetricEigen::new(t);
        let top = pairs(&eig.eigenvalues, &DMatrix::identity(b, b));
        let now = [top[0].0, top.get(1).map_or(0.0, |p| p.0)];
        let settled = (0..2).all(|k| (now[k] - last[k]).abs() <= 1e-12 * now[0].abs().max(1e-300));
        ritz = Some((q.clone() * &eig.eigenvectors, eig.eigenvalues));
        last = now;
        if settled {
            break;
        }
        q = z.qr().q();
    }
    match ritz {
        Some((vecs, vals)) => pairs(&vals, &vecs),
        None => Vec::new(),
    }
}

/// +1 or −1: the sign that makes the coordinate of largest magnitude positive (the first such
/// point on ties), so that eigenvector signs do not depend on the eigen solver.
fn orientation(col: &[f64]) -> f64 {
    let mut best = 0usize;
    for (i, v) in col.iter().enumerate() {
        if v.abs() > col[best].abs() + 1e-12 {
            best = i;
        }
    }
    if col.get(best).copied().unwrap_or(0.0) < 0.0 {
        -1.0
    } else {
        1.0
    }
}

/// Parameters of [`tsne`].
#[derive(Debug, Clone, Copy)]
pub struct TsneParams {
    /// Effective number of neighbours (clamped to `(n − 1) / 3`).
    pub perplexity: f64,
    /// Gradient steps in all.
    pub iterations: usize,
}

impl Default for TsneParams {
    fn default() -> Self {
        TsneParams {
            perplexity: 15.0,
            iterations: 1000,
        }
    }
}

/// Exact t-SNE of `n` points from their similarity matrix, started from [`pca`]. Fewer than 4
/// points are returned as their PCA layout (t-SNE has nothing to preserve there).
pub fn tsne(sim: &[f64], n: usize, p: TsneParams) -> Vec<[f64; 2]> {
    let init = pca(sim, n);
    if n < 4 {
        return init;
    }
    let dist2: Vec<f64> = sim.iter().map(|s| (2.0 - 2.0 * s).max(0.0)).collect();
    let perplexity = p.perplexity.min((n as f64 - 1.0) / 3.0).max(1.0);
    let pmat = affinities(&dist2, n, perplexity);
    // Start from PCA scaled to a standard deviation of 1e-4 (openTSNE's recommendation).
    let sd = (init.iter().map(|c| c[0] * c[0] + c[1] * c[1]).sum::<f64>() / (2 * n) as f64)
        .sqrt()
        .max(1e-12);
    let mut y: Vec<[f64; 2]> = init
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if sd > 1e-9 {
                [c[0] / sd * 1e-4, c[1] / sd * 1e-4]
            } else {
                // All points identical in PCA: a fixed spiral, still deterministic.
                let a = i as f64 * 2.399963;
                [1e-4 * a.cos(), 1e-4 * a.sin()]
            }
        })
        .collect();
    let mut vel = vec![[0.0f64; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let eta = (n as f64 / 12.0).max(50.0);
    let exaggeration_steps = (p.iterations / 4).min(250);
    for it in 0..p.iterations {
        let exag = if it < exaggeration_steps { 12.0 } else { 1.0 };
        let momentum = if it < exaggeration_steps { 0.5 } else { 0.8 };
        // Student-t kernel w_ij = 1 / (1 + |y_i − y_j|²), recomputed where needed rather than
        // stored (n² memory traffic costs more than the arithmetic). Rows run on rayon; each
        // row is summed in a fixed order and the row sums are added in order, so the result
        // does not depend on the number of threads.
        let kernel = |i: usize, j: usize| {
            let dx = y[i][0] - y[j][0];
            let dy = y[i][1] - y[j][1];
            1.0 / (1.0 + dx * dx + dy * dy)
        };
        let row_sums: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| (0..n).filter(|&j| j != i).map(|j| kernel(i, j)).sum())
            .collect();
        let z = row_sums.iter().sum::<f64>().max(1e-300);
        let grads: Vec<[f64; 2]> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut g = [0.0f64; 2];
                for j in 0..n {
                    if i == j {
                        continue;
                    }
                    let w = kernel(i, j);
                    let f = (exag * pmat[i * n + j] - w / z) * w;
                    g[0] += f * (y[i][0] - y[j][0]);
                    g[1] += f * (y[i][1] - y[j][1]);
                }
                g
            })
            .collect();
        for (i, g) in grads.iter().enumerate() {
            for d in 0..2 {
                let grad = 4.0 * g[d];
                // Delta-bar-delta gains, as in the reference implementation.
                gains[i][d] = if (grad > 0.0) != (vel[i][d] > 0.0) {
                    gains[i][d] + 0.2
                } else {
                    (gains[i][d] * 0.8).max(0.01)
                };
                vel[i][d] = momentum * vel[i][d] - eta * gains[i][d] * grad;
            }
        }
        // No point moves more than a tenth of the layout's radius in one step: without this
        // cap a point can be flung far out during early exaggeration and, the Student-t
        // kernel's pull decaying with distance, not come back (seen on real data: the one
        // spam classifier ended 10× farther out than anything else, away from its dataset).
        let radius = (y.iter().map(|c| c[0] * c[0] + c[1] * c[1]).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-3);
        let cap = 0.1 * radius;
        for i in 0..n {
            let step = (vel[i][0] * vel[i][0] + vel[i][1] * vel[i][1]).sqrt();
            if step > cap {
                vel[i][0] *= cap / step;
                vel[i][1] *= cap / step;
            }
            y[i][0] += vel[i][0];
            y[i][1] += vel[i][1];
        }
        // Keep the layout centred (translation is free in t-SNE).
        let (mx, my) = y.iter().fold((0.0, 0.0), |(a, b), c| {
            (a + c[0] / n as f64, b + c[1] / n as f64)
        });
        for c in &mut y {
            c[0] -= mx;
            c[1] -= my;
        }
    }
    orient(&mut y);
    y
}

/// Fixes the signs of both axes of a layout (see [`orientation`]).
fn orient(y: &mut [[f64; 2]]) {
    for d in 0..2 {
        let col: Vec<f64> = y.iter().map(|c| c[d]).collect();
        let s = orientation(&col);
        for c in y.iter_mut() {
            c[d] *= s;
        }
    }
}

/// Symmetric t-SNE affinities: per-point Gaussian bandwidths found by bisection so that each
/// conditional distribution has the given perplexity; `P = (P_{j|i} + P_{i|j}) / 2n`.
fn affinities(dist2: &[f64], n: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let mut cond = vec![0.0f64; n * n];
    for i in 0..n {
        let row = &dist2[i * n..(i + 1) * n];
        let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
        let mut beta = 1.0f64;
        let mut p = vec![0.0f64; n];
        for _ in 0..100 {
            // Shift by the smallest distance for numerical stability.
            let dmin = (0..n)
                .filter(|&j| j != i)
                .map(|j| row[j])
                .fold(f64::INFINITY, f64::min);
            let mut sum = 0.0;
            for j in 0..n {
                p[j] = if j == i {
                    0.0
                } else {
                    (-(row[j] - dmin) * beta).exp()
                };
                sum += p[j];
            }
            let mut h = 0.0;
            for (j, pj) in p.iter_mut().enumerate() {
                *pj /= sum;
                if j != i && *pj > 1e-300 {
                    h -= *pj * pj.ln();
                }
            }
            if (h - target).abs() < 1e-5 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
        cond[i * n..(i + 1) * n].copy_from_slice(&p);
    }
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = ((cond[i * n + j] + cond[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    out
}

/// Where a new point goes on a frozen layout: the mean of the coordinates of its (at most 3)
/// most similar frozen points, weighted by `exp((s − s_best) / 0.05)`. `frozen` pairs each
/// frozen point's similarity to the new one with its coordinates. `None` when there is none.
pub fn place(frozen: &[(f64, [f64; 2])]) -> Option<[f64; 2]> {
    let mut near: Vec<&(f64, [f64; 2])> = frozen.iter().collect();
    near.sort_by(|a, b| b.0.total_cmp(&a.0));
    near.truncate(3);
    let best = near.first()?.0;
    let (mut wx, mut wy, mut ws) = (0.0, 0.0, 0.0);
    for (s, c) in near {
        let w = ((s - best) / 0.05).exp();
        wx += w * c[0];
        wy += w * c[1];
        ws += w;
    }
    Some([wx / ws, wy / ws])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cosine similarities of points on three tight, well-separated clusters in 3-d.
    fn clusters() -> (Vec<f64>, usize, Vec<usize>) {
        let centres = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut pts = Vec::new();
        let mut lab = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for k in 0..6 {
                let e = 0.05 * (k as f64 - 2.5);
                let mut v = *centre;
                v[(c + 1) % 3] += e;
                v[(c + 2) % 3] += 0.03 * k as f64;
                let nrm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                pts.push(v.map(|x| x / nrm));
                lab.push(c);
            }
        }
        let n = pts.len();
        let mut s = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                s[i * n + j] = (0..3).map(|d| pts[i][d] * pts[j][d]).sum();
            }
        }
        (s, n, lab)
    }

    fn d(a: [f64; 2], b: [f64; 2]) -> f64 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    /// Every point's nearest other point on the layout is of its own cluster.
    fn clusters_kept(y: &[[f64; 2]], lab: &[usize]) -> bool {
        (0..y.len()).all(|i| {
            let j = (0..y.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| d(y[i], y[a]).total_cmp(&d(y[i], y[b])))
                .unwrap();
            lab[i] == lab[j]
        })
    }

    #[test]
    fn pca_and_tsne_keep_clusters_and_are_deterministic() {
        let (s, n, lab) = clusters();
        let a = pca(&s, n);
        assert!(clusters_kept(&a, &lab));
        assert_eq!(a, pca(&s, n));
        let t = tsne(&s, n, TsneParams::default());
        assert!(clusters_kept(&t, &lab));
        // No point flung far out (the step cap): the farthest is within 4× the median radius.
        let mut r: Vec<f64> = t.iter().map(|c| c[0].hypot(c[1])).collect();
        r.sort_by(f64::total_cmp);
        assert!(r[n - 1] <= 4.0 * r[n / 2], "{r:?}");
        assert_eq!(t, tsne(&s, n, TsneParams::default()));
        assert!(t.iter().all(|c| c[0].is_finite() && c[1].is_finite()));
    }

    #[test]
    fn tiny_and_degenerate_inputs_give_finite_layouts() {
        assert!(pca(&[], 0).is_empty());
        assert_eq!(pca(&[1.0], 1), vec![[0.0, 0.0]]);
        let two = tsne(&[1.0, 0.2, 0.2, 1.0], 2, TsneParams::default());
        assert!(d(two[0], two[1]) > 0.0);
        // Five identical points: every similarity 1.
        let same = tsne(&[1.0; 25], 5, TsneParams::default());
        assert!(same.iter().all(|c| c[0].is_finite() && c[1].is_finite()));
    }

    #[test]
    fn subspace_iteration_finds_the_exact_leading_eigenpairs() {
        // A Gram matrix of 450 points in 5 dimensions with distinct spreads, double-centred.
        let n = 450;
        let pts: Vec<[f64; 5]> = (0..n)
            .map(|i| {
                let t = i as f64;
                [
                    3.0 * (t * 0.37).sin(),
                    2.0 * (t * 0.11).cos(),
                    (t * 0.73).sin(),
                    0.5 * (t * 1.3).cos(),
                    0.2 * (t * 2.9).sin(),
                ]
            })
            .collect();
        let k = DMatrix::from_fn(n, n, |i, j| {
            (0..5).map(|d| pts[i][d] * pts[j][d]).sum::<f64>()
        });
        let mean: Vec<f64> = (0..n).map(|i| k.row(i).sum() / n as f64).collect();
        let all = mean.iter().sum::<f64>() / n as f64;
        let kc = DMatrix::from_fn(n, n, |i, j| k[(i, j)] - mean[i] - mean[j] + all);
        let fast = top2(kc.clone());
        let exact = SymmetricEigen::new(kc);
        let mut vals: Vec<(f64, usize)> = exact
            .eigenvalues
            .iter()
            .copied()
            .enumerate()
            .map(|(i, v)| (v, i))
            .collect();
        vals.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (k, (lambda, v)) in fast.iter().enumerate() {
            let (want, c) = vals[k];
            assert!((lambda - want).abs() < 1e-8 * want, "{lambda} vs {want}");
            let dot: f64 = (0..n).map(|i| v[i] * exact.eigenvectors[(i, c)]).sum();
            assert!(
                (dot.abs() - 1.0).abs() < 1e-6,
                "eigenvector {k}: |cos| {}",
                dot.abs()
            );
        }
    }

    #[test]
    fn place_goes_to_the_most_similar_frozen_points() {
        let frozen = [(0.9, [1.0, 1.0]), (0.1, [-5.0, -5.0]), (0.88, [1.2, 1.0])];
        let p = place(&frozen).unwrap();
        assert!(d(p, [1.1, 1.0]) < 0.2, "{p:?}");
        assert!(place(&[]).is_none());
    }
}
