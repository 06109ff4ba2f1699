//! Exact comparisons. Every entry is normalised to unit Frobenius (or Euclidean) norm, then
//! centred by an optional frozen [`Reference`] R; the score is the cosine of the centred entries:
//!
//! cos = (⟨â,b̂⟩ − ⟨â,R⟩ − ⟨b̂,R⟩ + ⟨R,R⟩) / √((1 − 2⟨â,R⟩ + ⟨R,R⟩)(1 − 2⟨b̂,R⟩ + ⟨R,R⟩))
//!
//! with â = a/‖a‖. For low-rank matrices ⟨A,B⟩_F = Σ_ij s_i t_j (u_iᵀ v_j)², an r_a × r_b product.

use crate::LowRank;
use crate::{MethodError, Reference, TaskEmbedding};

/// Exact Frobenius inner product of `U_a diag(s_a) U_aᵀ` and `U_b diag(s_b) U_bᵀ`, from the
/// `r_a × r_b` matrix `U_aᵀ U_b`. Returns NaN if the dimensions differ.
pub fn inner(a: &LowRank, b: &LowRank) -> f64 {
    inner_body(a, b)
}

#[inline]
fn inner_body(a: &LowRank, b: &LowRank) -> f64 {
    if a.dim != b.dim {
        return f64::NAN;
    }
    let mut total = 0.0f64;
    for i in 0..a.rank() {
        let ui = a.col(i);
        let mut row = 0.0f64;
        for j in 0..b.rank() {
            let g = dot32(ui, b.col(j));
            row += b.s[j] as f64 * g * g;
        }
        total += a.s[i] as f64 * row;
    }
    total
}

#[inline(always)]
pub(crate) fn dot32(a: &[f32], b: &[f32]) -> f64 {
    // 16 independent lanes accumulated in f64 (products of f32 values are exact in f64), then
    // combined in a fixed tree order: deterministic, and enough independent additions in flight
    // to keep vector units busy (4 lanes left each addition waiting for the previous one).
    const L: usize = 16;
    let mut acc = [0.0f64; L];
    let chunks = a.len() / L;
    for k in 0..chunks {
        let (ca, cb) = (&a[L * k..L * k + L], &b[L * k..L * k + L]);
        for l in 0..L {
            acc[l] += ca[l] as f64 * cb[l] as f64;
        }
    }
    let mut h = [0.0f64; 8];
    for l in 0..8 {
        h[l] = acc[l] + acc[l + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    let mut s = (q[0] + q[2]) + (q[1] + q[3]);
    for k in L * chunks..a.len() {
        s += a[k] as f64 * b[k] as f64;
    }
    s
}

fn raw_inner(a: &TaskEmbedding, b: &TaskEmbedding) -> Result<f64, MethodError> {
    match (a, b) {
        (TaskEmbedding::LowRank(x), TaskEmbedding::LowRank(y)) if x.dim == y.dim => Ok(inner(x, y)),
        (TaskEmbedding::Dense(x), TaskEmbedding::Dense(y)) if x.len() == y.len() => Ok(dot32(x, y)),
        _ => Err(MethodError::Incompatible(format!(
            "cannot compare a {} embedding of dim {} with a {} embedding of dim {}",
            kind_name(a),
            a.dim(),
            kind_name(b),
            b.dim()
        ))),
    }
}

fn kind_name(e: &TaskEmbedding) -> &'static str {
    match e {
        TaskEmbedding::Dense(_) => "dense",
        TaskEmbedding::LowRank(_) => "low-rank",
    }
}

/// An entry prepared for fast exact scoring: its norm and its inner product with the
/// reference are computed once (at ingestion); scoring a pair then costs one `inner`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    pub emb: TaskEmbedding,
    /// ‖a‖ (Frobenius or Euclidean).
    pub norm: f64,
    /// ⟨a/‖a‖, R⟩ (0 without a reference).
    pub ref_dot: f64,
    /// ⟨R, R⟩ (0 without a reference).
    pub ref_norm2: f64,
}

/// Prepare an embedding for scoring against others centred by the same reference.
pub fn prepare(e: &TaskEmbedding, r: Option<&Reference>) -> Result<Prepared, MethodError> {
    let n2 = raw_inner(e, e)?;
    if !(n2.is_finite() && n2 > 0.0) {
        return Err(MethodError::NonFinite(format!(
            "embedding has norm² {n2}; a task embedding must be non-zero and finite"
        )));
    }
    let norm = n2.sqrt();
    let (ref_dot, ref_norm2) = match r {
        Some(r) => (r.dot(e)? / norm, r.norm2()),
        None => (0.0, 0.0),
    };
    Ok(Prepared {
        emb: e.clone(),
        norm,
        ref_dot,
        ref_norm2,
    })
}

impl Prepared {
    /// Exact centred cosine with another entry prepared with the same reference.
    pub fn cosine(&self, other: &Prepared) -> Result<f64, MethodError> {
        let ab = raw_inner(&self.emb, &other.emb)? / (self.norm * other.norm);
        let rr = self.ref_norm2;
        let num = ab - self.ref_dot - other.ref_dot + rr;
        let da = 1.0 - 2.0 * self.ref_dot + rr;
        let db = 1.0 - 2.0 * other.ref_dot + rr;
        let den = (da.max(0.0) * db.max(0.0)).sqrt();
        Ok(if den > 0.0 { num / den } else { 0.0 })
    }
}

/// Exact cosine of the unit-normalised, reference-centred embeddings (see module docs).
pub fn cosine_centred(
    a: &TaskEmbedding,
    b: &TaskEmbedding,
    r: Option<&Reference>,
) -> Result<f64, MethodError> {
    prepare(a, r)?.cosine(&prepare(b, r)?)
}
