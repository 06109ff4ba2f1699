//! Frozen centring references. A reference depends only on the method, its parameters, the
//! surrogate's features of the probe set U and a [`ReferenceSpec`]: it is the mean of the
//! unit-normalised embeddings of pseudo-tasks built from U (k-means clusterings of U's features
//! for several k and seeds). Freezing it into a space's definition means adding entries never
//! changes stored answers. (Measured against the live library mean in docs/METHODS.md.)

use crate::lowrank::dot32;
use crate::rng::SplitMix64;
use crate::{
    embed_in, Features, MethodError, MethodKind, MethodParams, Targets, TaskEmbedding, Whitening,
};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// How a reference is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSpec {
    /// Cluster counts of the k-means pseudo-tasks.
    pub ks: Vec<u32>,
    /// One clustering per (k, seed).
    pub seeds: Vec<u64>,
    /// Lloyd iterations (fixed, from a k-means++ start).
    pub kmeans_iters: u32,
    /// Use at most the first `max_rows` probe rows (0 = all).
    pub max_rows: usize,
}

/// Measured default (docs/METHODS.md): k ∈ {8, 12, 16, 20} × seeds {0, 1, 2} on the first 3,000
/// probe rows (k ≤ 6 measured worse: MAP .70 vs .76 for scatter).
impl Default for ReferenceSpec {
    fn default() -> Self {
        ReferenceSpec {
            ks: vec![8, 12, 16, 20],
            seeds: vec![0, 1, 2],
            kmeans_iters: 30,
            max_rows: 3000,
        }
    }
}

/// A frozen centring reference for one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub method: MethodKind,
    pub dim: usize,
    /// Matrix methods: the symmetric `dim × dim` mean, row-major. Dense methods: the mean vector.
    pub values: Vec<f32>,
    pub spec: ReferenceSpec,
}

impl Reference {
    /// ⟨R, R⟩.
    pub fn norm2(&self) -> f64 {
        dot32(&self.values, &self.values)
    }

    /// ⟨e, R⟩ (Frobenius for matrices: Σ_j s_j u_jᵀ R u_j).
    pub fn dot(&self, e: &TaskEmbedding) -> Result<f64, MethodError> {
        let d = self.dim;
        match e {
            TaskEmbedding::Dense(v) if !self.method.is_matrix() && v.len() == d => {
                Ok(dot32(v, &self.values))
            }
            TaskEmbedding::LowRank(l) if self.method.is_matrix() && l.dim == d => {
                let mut tot = 0.0f64;
                let mut ru = vec![0.0f64; d];
                for j in 0..l.rank() {
                    let u = l.col(j);
                    for (a, r) in ru.iter_mut().enumerate() {
                        let row = &self.values[a * d..(a + 1) * d];
                        *r = dot32(row, u);
                    }
                    let q: f64 = ru.iter().zip(u).map(|(&x, &y)| x * y as f64).sum();
                    tot += l.s[j] as f64 * q;
                }
                Ok(tot)
            }
            _ => Err(MethodError::Incompatible(format!(
                "reference for {} (dim {d}) cannot centre this embedding (dim {})",
                self.method,
                e.dim()
            ))),
        }
    }
}

/// Build the frozen reference of `kind` from the probe features.
///
/// For methods that [`MethodKind::uses_whitening`], use [`build_reference_in`].
pub fn build_reference(
    kind: MethodKind,
    params: &MethodParams,
    probe: &Features,
    spec: &ReferenceSpec,
) -> Result<Reference, MethodError> {
    build_reference_in(kind, params, None, probe, spec)
}

/// [`build_reference`] in a space with a frozen [`Whitening`]: the pseudo-tasks are embedded
/// exactly as the space's entries are ([`crate::embed_in`]).
pub fn build_reference_in(
    kind: MethodKind,
    params: &MethodParams,
    whitening: Option<&Whitening>,
    probe: &Features,
    spec: &ReferenceSpec,
) -> Result<Reference, MethodError> {
    probe.validate()?;
    let n = if spec.max_rows > 0 {
        probe.n.min(spec.max_rows)
    } else {
        probe.n
    };
    let x = Features {
        n,
        d: probe.d,
        data: &probe.data[..n * probe.d],
    };
    let d = x.d;
    if kind == MethodKind::TextEmb {
        // the unit mean probe feature
        let mut m = vec![0.0f64; d];
        for i in 0..n {
            for (a, &v) in m.iter_mut().zip(x.row(i)) {
                *a += v as f64;
            }
        }
        let nr = m.iter().map(|v| v * v).sum::<f64>().sqrt();
        return Ok(Reference {
            method: kind,
            dim: d,
            values: m.iter().map(|v| (v / nr) as f32).collect(),
            spec: spec.clone(),
        });
    }
    if spec.ks.is_empty() || spec.seeds.is_empty() || spec.ks.iter().any(|&k| k < 2) {
        return Err(MethodError::Params(
            "reference spec needs at least one k >= 2 and one seed".into(),
        ));
    }
    let size = if kind.is_matrix() { d * d } else { d };
    let mut acc = vec![0.0f64; size];
    let mut count = 0usize;
    for &k in &spec.ks {
        for &seed in &spec.seeds {
            let labels = kmeans(&x, k as usize, seed, spec.kmeans_iters);
            let y = Targets::Classes {
                labels,
                n_classes: k as usize,
            };
            let e = match embed_in(kind, params, whitening, &x, &y) {
                Ok(e) => e,
                Err(MethodError::SingleClass { .. }) => continue, // degenerate clustering
                Err(e) => return Err(e),
            };
            add_unit(&mut acc, &e, d);
            count += 1;
        }
    }
    if count == 0 {
        return Err(MethodError::Params(
            "every reference pseudo-task was degenerate (probe set too small?)".into(),
        ));
    }
    Ok(Reference {
        method: kind,
        dim: d,
        values: acc.iter().map(|v| (v / count as f64) as f32).collect(),
        spec: spec.clone(),
    })
}

/// Adds `e / ‖e‖` to `acc` (dense: `d` values; matrix: `d × d` row-major).
fn add_unit(acc: &mut [f64], e: &TaskEmbedding, d: usize) {
    match e {
        TaskEmbedding::Dense(v) => {
            let nr = v.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
            for (a, &b) in acc.iter_mut().zip(v) {
                *a += b as f64 / nr;
            }
        }
        TaskEmbedding::LowRank(l) => {
            let nr = crate::inner(l, l).sqrt();
            for j in 0..l.rank() {
                let u = l.col(j);
                let sj = l.s[j] as f64 / nr;
                for a in 0..d {
                    let ua = sj * u[a] as f64;
                    for b in 0..d {
                        acc[a * d + b] += ua * u[b] as f64;
                    }
                }
            }
        }
    }
}

/// The mean of the unit-normalised `embeddings` (all of `kind`, dimension `dim`): the *library*
/// reference, used when a query asks for centring on the live library instead of the space's
/// frozen reference (measured better for scatter: docs/QUALITY.md). Its `spec` is empty (`ks`
/// and `seeds` empty, `max_rows` = the number of embeddings averaged).
pub fn library_reference(
    kind: MethodKind,
    dim: usize,
    embeddings: &[&TaskEmbedding],
) -> Result<Reference, MethodError> {
    if embeddings.is_empty() {
        return Err(MethodError::Empty);
    }
    for e in embeddings {
        let ok = match e {
            TaskEmbedding::Dense(v) => !kind.is_matrix() && v.len() == dim,
            TaskEmbedding::LowRank(l) => kind.is_matrix() && l.dim == dim,
        };
        if !ok {
            return Err(MethodError::Incompatible(format!(
                "a {kind} library reference of dim {dim} cannot average an embedding of dim {}",
                e.dim()
            )));
        }
    }
    let acc = if kind.is_matrix() {
        // Σ_e U_e diag(s_e/‖e‖) U_eᵀ as blocked matrix products (the scalar loop of `add_unit`
        // is ~8× slower at 10k entries).
        let mut acc = DMatrix::<f64>::zeros(dim, dim);
        for_column_blocks(embeddings, dim, |a, b, _| acc += a * b.transpose());
        acc.as_slice().to_vec() // symmetric: column-major = row-major
    } else {
        let mut acc = vec![0.0f64; dim];
        for e in embeddings {
            add_unit(&mut acc, e, dim);
        }
        acc
    };
    let n = embeddings.len() as f64;
    Ok(Reference {
        method: kind,
        dim,
        values: acc.iter().map(|v| (v / n) as f32).collect(),
        spec: ReferenceSpec {
            ks: Vec::new(),
            seeds: Vec::new(),
            kmeans_iters: 0,
            max_rows: embeddings.len(),
        },
    })
}

/// Calls `f(A, B, owners)` on blocks of at most ~4,096 columns gathered from the low-rank
/// `embeddings`: `B` holds eigenvector columns `u`, `A` the same scaled by `s / ‖e‖`, and
/// `owners[k]` the index of the embedding column `k` came from.
fn for_column_blocks(
    embeddings: &[&TaskEmbedding],
    dim: usize,
    mut f: impl FnMut(&DMatrix<f64>, &DMatrix<f64>, &[usize]),
) {
    const BLOCK: usize = 4096;
    let mut cols_a: Vec<f64> = Vec::new();
    let mut cols_b: Vec<f64> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    for (i, e) in embeddings.iter().enumerate() {
        if let TaskEmbedding::LowRank(l) = e {
            let nr = crate::inner(l, l).sqrt();
            for j in 0..l.rank() {
                let w = l.s[j] as f64 / nr;
                cols_a.extend(l.col(j).iter().map(|&x| x as f64 * w));
                cols_b.extend(l.col(j).iter().map(|&x| x as f64));
                owners.push(i);
            }
        }
        let last = i + 1 == embeddings.len();
        if !owners.is_empty() && (owners.len() >= BLOCK || last) {
            let ma = DMatrix::from_column_slice(dim, owners.len(), &cols_a);
            let mb = DMatrix::from_column_slice(dim, owners.len(), &cols_b);
            f(&ma, &mb, &owners);
            cols_a.clear();
            cols_b.clear();
            owners.clear();
        }
    }
}

/// `⟨e / ‖e‖, R⟩` for many embeddings at once (what [`crate::prepare`] computes one by one),
/// with blocked matrix products for matrix methods.
pub fn reference_dots(
    r: &Reference,
    embeddings: &[&TaskEmbedding],
) -> Result<Vec<f64>, MethodError> {
    let d = r.dim;
    for e in embeddings {
        let ok = match e {
            TaskEmbedding::Dense(v) => !r.method.is_matrix() && v.len() == d,
            TaskEmbedding::LowRank(l) => r.method.is_matrix() && l.dim == d,
        };
        if !ok {
            return Err(MethodError::Incompatible(format!(
                "reference for {} (dim {d}) cannot centre an embedding of dim {}",
                r.method,
                e.dim()
            )));
        }
    }
    if !r.method.is_matrix() {
        return embeddings
            .iter()
            .map(|e| Ok(crate::prepare(e, Some(r))?.ref_dot))
            .collect();
    }
    let rm = DMatrix::<f64>::from_fn(d, d, |i, j| r.values[i * d + j] as f64);
    let mut out = vec![0.0f64; embeddings.len()];
    for_column_blocks(embeddings, d, |a, b, owners| {
        let rb = &rm * b;
        for (k, &i) in owners.iter().enumerate() {
            // a's column k is b's scaled by s/‖e‖: Σ_k (s_k/‖e‖) u_kᵀ R u_k
            out[i] += a.column(k).dot(&rb.column(k));
        }
    });
    Ok(out)
}

/// Lloyd's k-means from a k-means++ start (SplitMix64 seeded); fixed iterations; an empty
/// cluster keeps its centre. Deterministic.
pub(crate) fn kmeans(x: &Features, k: usize, seed: u64, iters: u32) -> Vec<u32> {
    let (n, d) = (x.n, x.d);
    let k = k.min(n);
    let mut rng = SplitMix64::new(seed);
    let mut centres: Vec<f64> = Vec::with_capacity(k * d);
    let first = rng.below(n);
    centres.extend(x.row(first).iter().map(|&v| v as f64));
    let dist = |row: &[f32], c: &[f64]| -> f64 {
        row.iter()
            .zip(c)
            .map(|(&a, &b)| (a as f64 - b) * (a as f64 - b))
            .sum()
    };
    let mut d2: Vec<f64> = (0..n).map(|i| dist(x.row(i), &centres[0..d])).collect();
    for c in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let t = rng.next_f64() * total;
            let mut acc = 0.0;
            let mut idx = n - 1;
            for (i, &v) in d2.iter().enumerate() {
                acc += v;
                if acc > t {
                    idx = i;
                    break;
                }
            }
            idx
        } else {
            rng.below(n)
        };
        centres.extend(x.row(pick).iter().map(|&v| v as f64));
        for i in 0..n {
            let nd = dist(x.row(i), &centres[c * d..(c + 1) * d]);
            if nd < d2[i] {
                d2[i] = nd;
            }
        }
    }
    let mut labels = vec![0u32; n];
    for it in 0..=iters {
        for (i, lab) in labels.iter_mut().enumerate() {
            let row = x.row(i);
            let mut best = (f64::INFINITY, 0usize);
            for c in 0..k {
                let v = dist(row, &centres[c * d..(c + 1) * d]);
                if v < best.0 {
                    best = (v, c);
                }
            }
            *lab = best.1 as u32;
        }
        if it == iters {
            break;
        }
        let mut sums = vec![0.0f64; k * d];
        let mut cnt = vec![0usize; k];
        for (i, &lab) in labels.iter().enumerate() {
            let c = lab as usize;
            cnt[c] += 1;
            for (a, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(x.row(i)) {
                *a += v as f64;
            }
        }
        for c in 0..k {
            if cnt[c] > 0 {
                for j in 0..d {
                    centres[c * d + j] = sums[c * d + j] / cnt[c] as f64;
                }
            }
        }
    }
    labels
}
