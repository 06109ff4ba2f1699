//! Spaces: what makes vectors comparable.
//!
//! A space is defined once and never changes. Vectors of different spaces are never compared.
//! Every space knows two functions (see [`Space::index_vector`] and [`Space::score`]):
//! the vector that goes into its HNSW graph (for candidate generation), and the exact scorer
//! (for brute-force search and for re-ranking HNSW candidates). For dense spaces both are
//! cosine similarity on L2-normalised vectors. Matrix-valued spaces (planned) will index a
//! sketch and score exactly on the stored factors.
//!
//! Layout: this file holds what a space *is* (its id, definition and the check a value must
//! pass to live in it); `params.rs` the typed parameters of a task space and their frozen
//! statistics; `score.rs` all scoring (index vectors, exact scores, live centring).

mod params;
mod score;

use serde::{Deserialize, Serialize};

use crate::embedding::Embedding;
use crate::error::{Error, Result};

pub use params::{SketchSpec, StoredReference, StoredWhitening, TaskSpaceParams, SKETCH_DIM};
pub(crate) use score::Prepared;
pub(crate) use score::{LiveCentre, ScoreConsts, ScorerCell, INDEX_SCALE};

/// Identifier of a space in one database.
pub type SpaceId = u32;

/// The kind of value stored in a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingKind {
    /// Dense vectors of the space's dimension, compared by cosine similarity.
    Dense,
    /// Symmetric `dim × dim` matrices stored as low-rank factors, compared by the cosine of the
    /// (unit-normalised, reference-centred) matrices. The graph holds a sketch; hits are
    /// re-ranked exactly.
    LowRank,
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
    /// The task scorer, built from `def.params` on first use (derived, never stored).
    #[serde(skip)]
    pub(crate) scorer: ScorerCell,
}

impl Space {
    /// A space record (the scorer is built on first use).
    pub fn new(id: SpaceId, def: SpaceDef, created_at_ms: u64) -> Space {
        Space {
            id,
            def,
            created_at_ms,
            scorer: ScorerCell::default(),
        }
    }

    /// Whether this space was made by ingestion (a method over a surrogate), as opposed to an
    /// external space of imported vectors.
    pub fn is_task_space(&self) -> bool {
        self.def.params.get("method_params").is_some() && self.def.params.get("sketch").is_some()
    }

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
            (EmbeddingKind::LowRank, Embedding::LowRank(l)) => {
                if l.dim != self.def.dim as usize {
                    return Err(Error::invalid(
                        context,
                        format!(
                            "wrong matrix dimension for space {:?}: expected {}, got {}",
                            self.def.name, self.def.dim, l.dim
                        ),
                    ));
                }
                e.validate(context)
            }
            (want, _) => Err(Error::invalid(
                context,
                format!(
                    "space {:?} holds {want:?} embeddings; this value is of another kind",
                    self.def.name
                ),
            )),
        }
    }
}
