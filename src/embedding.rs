//! Embedding values: what a stored vector is (dense or low-rank factors) and the checks
//! every value passes before it is written. The bottom of the crate: it knows nothing of
//! entries, spaces or the store.

use crate::error::{Error, Result};

/// Identifier of one stored entry (one version of one name). Never reused. It lives here, at
/// the bottom, because spaces and graphs key vectors by it without knowing what an entry is.
pub type EntryId = u64;

/// The factors of a symmetric matrix `U diag(s) Uᵀ` (a matrix-valued task embedding).
pub use taskdb_methods::LowRank;

/// One embedding value. Stored exactly (little-endian f32 with a checksum).
///
/// Matrix-valued task embeddings (`scatter`, `fisher`) are stored exactly as low-rank factors;
/// their spaces index a compact sketch and re-rank candidates exactly (see ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Embedding {
    /// A dense vector; compared by cosine similarity.
    Dense(Vec<f32>),
    /// A symmetric `dim × dim` matrix stored as its factors; compared by the cosine of
    /// (optionally centred) matrices in the Frobenius inner product.
    LowRank(LowRank),
}

impl Embedding {
    /// The dimension of the embedding (length of a dense vector).
    pub fn dim(&self) -> usize {
        match self {
            Embedding::Dense(v) => v.len(),
            Embedding::LowRank(l) => l.dim,
        }
    }

    /// The dense components, if this is a dense vector.
    pub fn as_dense(&self) -> Option<&[f32]> {
        match self {
            Embedding::Dense(v) => Some(v),
            Embedding::LowRank(_) => None,
        }
    }

    /// The factors, if this is a matrix-valued embedding.
    pub fn as_low_rank(&self) -> Option<&LowRank> {
        match self {
            Embedding::LowRank(l) => Some(l),
            Embedding::Dense(_) => None,
        }
    }

    /// The methods crate's view of this value.
    pub(crate) fn to_task(&self) -> taskdb_methods::TaskEmbedding {
        match self {
            Embedding::Dense(v) => taskdb_methods::TaskEmbedding::Dense(v.clone()),
            Embedding::LowRank(l) => taskdb_methods::TaskEmbedding::LowRank(l.clone()),
        }
    }

    /// Checks the value is finite and non-zero and, for dense vectors, that it has a unit
    /// vector in f32 and is not made only of subnormal values (whose direction is rounding
    /// noise). `context` names the entry for the error.
    pub fn validate(&self, context: &str) -> Result<()> {
        match self {
            Embedding::Dense(v) => {
                if v.is_empty() {
                    return Err(Error::invalid(context, "empty vector"));
                }
                if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    return Err(Error::invalid(
                        context,
                        format!("vector component {i} is {x}; only finite numbers are allowed"),
                    ));
                }
                if v.iter().all(|&x| x == 0.0) {
                    return Err(Error::invalid(
                        context,
                        "zero vector: cosine similarity is undefined for it",
                    ));
                }
                if crate::testing::unvalidated() {
                    return Ok(());
                }
                if v.iter().all(|x| x.abs() < f32::MIN_POSITIVE) {
                    return Err(Error::invalid(
                        context,
                        format!(
                            "every component is below {:e} in magnitude (subnormal f32 values, \
                             which keep too few significant bits for the vector's direction to \
                             mean anything); scale the vector up (cosine similarity does not \
                             depend on its length) or check how it was computed",
                            f32::MIN_POSITIVE
                        ),
                    ));
                }
                if crate::unit::unit(v).is_none() {
                    return Err(Error::invalid(
                        context,
                        "the vector cannot be normalised to a unit f32 vector",
                    ));
                }
                Ok(())
            }
            Embedding::LowRank(l) => {
                let r = l.s.len();
                if l.dim == 0 || r == 0 {
                    return Err(Error::invalid(context, "empty low-rank embedding"));
                }
                if l.u.len() != l.dim * r {
                    return Err(Error::invalid(
                        context,
                        format!(
                            "low-rank factors of dimension {} and rank {r} need {} values, got {}",
                            l.dim,
                            l.dim * r,
                            l.u.len()
                        ),
                    ));
                }
                if let Some(i) = l.u.iter().chain(&l.s).position(|x| !x.is_finite()) {
                    return Err(Error::invalid(
                        context,
                        format!("low-rank factor value {i} is not finite"),
                    ));
                }
                if l.s.iter().all(|&x| x == 0.0) {
                    return Err(Error::invalid(
                        context,
                        "zero matrix: cosine similarity is undefined for it",
                    ));
                }
                Ok(())
            }
        }
    }
}
