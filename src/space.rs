//! Spaces: what makes vectors comparable.
//!
//! A space is defined once and never changes. Vectors of different spaces are never compared.
//! Every space knows two functions (see [`Space::index_vector`] and [`Space::score`]):
//! the vector that goes into its HNSW graph (for candidate generation), and the exact scorer
//! (for brute-force search and for re-ranking HNSW candidates). For dense spaces both are
//! cosine similarity on L2-normalised vectors. Matrix-valued spaces (planned) will index a
//! sketch and score exactly on the stored factors.

use serde::{Deserialize, Serialize};

use crate::entry::Embedding;
use crate::error::{Error, Result};

/// Identifier of a space in one database.
pub type SpaceId = u32;

/// The kind of value stored in a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingKind {
    /// Dense vectors of the space's dimension, compared by cosine similarity.
    Dense,
}

/// The definition of a space. Stored as JSON (inside the record codec), so fields can be added
/// without a format change. Two definitions with the same name must be equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceDef {
    /// Unique name of the space in this database.
    pub name: String,
    /// The kind of embedding stored.
    pub embedding: EmbeddingKind,
    /// Dimension of dense vectors (for matrix-valued spaces: the matrix side).
    pub dim: u32,
    /// The method that produced the vectors; `None` for external (imported) spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Surrogate fingerprint (sha256 of model, tokenizer and pooling config); `None` if external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surrogate_fingerprint: Option<String>,
    /// Probe-set fingerprint; `None` if external or not applicable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_fingerprint: Option<String>,
    /// Method parameters and any frozen reference statistics (extensible JSON).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub params: serde_json::Value,
}

impl SpaceDef {
    /// The definition of an external space (vectors computed elsewhere, imported).
    pub fn external(name: impl Into<String>, dim: u32) -> SpaceDef {
        SpaceDef {
            name: name.into(),
            embedding: EmbeddingKind::Dense,
            dim,
            method: None,
            surrogate_fingerprint: None,
            probe_fingerprint: None,
            params: serde_json::Value::Null,
        }
    }

    /// Whether this is an external (imported) space.
    pub fn is_external(&self) -> bool {
        self.method.is_none() && self.surrogate_fingerprint.is_none()
    }
}

/// How a new vector names its space.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceRef {
    /// An existing space by id.
    Id(SpaceId),
    /// A full definition: used if a space of that name exists with an equal definition,
    /// created otherwise; a different definition under the same name is an error.
    Def(SpaceDef),
    /// An external space by name, created on first use with the dimension of its first vector.
    External(String),
}

/// A space as stored: id, definition, creation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// Id in this database.
    pub id: SpaceId,
    /// The immutable definition.
    pub def: SpaceDef,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// Vectors put into HNSW graphs are scaled by this factor after L2 normalisation, so that the
/// dot product of a vector with itself stays safely below 1 despite rounding (hnsw_rs's
/// `DistDot` asserts `dot <= 1.000002`). Ranking is unaffected; scores are computed exactly.
pub(crate) const INDEX_SCALE: f32 = 0.9999;

impl Space {
    /// Checks that `e` can live in this space. `context` names the entry for the error.
    pub fn check(&self, e: &Embedding, context: &str) -> Result<()> {
        match (&self.def.embedding, e) {
            (EmbeddingKind::Dense, Embedding::Dense(v)) => {
                if v.len() != self.def.dim as usize {
                    return Err(Error::invalid(
                        context,
                        format!(
                            "wrong dimension for space {:?}: expected {}, got {}",
                            self.def.name,
                            self.def.dim,
                            v.len()
                        ),
                    ));
                }
                e.validate(context)
            }
        }
    }

    /// The vector inserted into the HNSW graph for `e` (dense: L2-normalised, scaled by
    /// [`INDEX_SCALE`]). `e` must have passed [`Space::check`].
    pub fn index_vector(&self, e: &Embedding) -> Vec<f32> {
        match e {
            Embedding::Dense(v) => {
                let n = norm(v);
                let s = INDEX_SCALE / n;
                v.iter().map(|x| x * s).collect()
            }
        }
    }

    /// Prepares a query for repeated exact scoring.
    pub fn prepare(&self, q: &Embedding) -> Prepared {
        match q {
            Embedding::Dense(v) => {
                let n = norm(v);
                Prepared::Dense(v.iter().map(|x| x / n).collect())
            }
        }
    }

    /// The exact similarity of a prepared query and a stored embedding (dense: cosine,
    /// in [-1, 1], higher is nearer).
    pub fn score(&self, q: &Prepared, x: &Embedding) -> f32 {
        match (q, x) {
            (Prepared::Dense(q), Embedding::Dense(x)) => {
                let n = norm(x);
                (dot(q, x) / n).clamp(-1.0, 1.0)
            }
        }
    }
}

/// A query embedding prepared for exact scoring.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// An L2-normalised dense vector.
    Dense(Vec<f32>),
}

/// Dot product in f32 with eight independent accumulators (auto-vectorises).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

pub(crate) fn norm(v: &[f32]) -> f32 {
    let n = dot(v, v).sqrt();
    if n > 0.0 && n.is_finite() {
        n
    } else {
        // Only reachable for vectors that failed validation; keep the maths finite.
        let n64: f64 = v
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        if n64 > 0.0 {
            n64 as f32
        } else {
            1.0
        }
    }
}
