//! Spaces: what makes vectors comparable.
//!
//! A space is defined once and never changes. Vectors of different spaces are never compared.
//! Every space knows two functions (see [`Space::index_vector`] and [`Space::score`]):
//! the vector that goes into its HNSW graph (for candidate generation), and the exact scorer
//! (for brute-force search and for re-ranking HNSW candidates). For dense spaces both are
//! cosine similarity on L2-normalised vectors. Matrix-valued spaces (planned) will index a
//! sketch and score exactly on the stored factors.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use taskdb_methods::{
    self as methods, MethodKind, MethodParams, Reference, SketchBasis, Sketcher, Whitening,
};

use crate::entry::Embedding;
use crate::error::{Error, Result};
use crate::unit;

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

/// The parameters of a task space (a space made by ingestion): stored as `SpaceDef::params`.
/// Everything that defines the function from a task to its comparable vector is here, so two
/// spaces with equal parameters are interchangeable and a space never changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpaceParams {
    /// The method.
    pub method: MethodKind,
    /// Its parameters.
    pub method_params: MethodParams,
    /// The frozen centring reference, for methods that centre (see `MethodKind::uses_reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<StoredReference>,
    /// The frozen whitening of the feature space, for methods that whiten (see
    /// `MethodKind::uses_whitening`): built from U's features when the space is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitening: Option<StoredWhitening>,
    /// The sketch indexed in the graph for candidate generation.
    pub sketch: SketchSpec,
}

/// A frozen whitening matrix as stored inside a space definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWhitening {
    /// Shrinkage α towards isotropy.
    pub shrinkage: f64,
    /// Probe rows it was built from.
    pub rows: usize,
    /// Matrix side.
    pub dim: usize,
    /// sha256 (hex) of the little-endian f32 values.
    pub sha256: String,
    /// The values (row-major), little-endian f32, base64.
    pub values_b64: String,
}

/// A frozen reference as stored inside a space definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReference {
    /// Where it came from when not from `spec`'s k-means pseudo-tasks on U: e.g. the reference
    /// library it is the mean of (see `crate::reflib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How it was built (cluster counts, seeds, rows of U).
    pub spec: methods::ReferenceSpec,
    /// Matrix side (matrix methods) or vector length.
    pub dim: usize,
    /// sha256 (hex) of the little-endian f32 values.
    pub sha256: String,
    /// The values (row-major for matrices), little-endian f32, base64.
    pub values_b64: String,
}

/// The sketch of a task space: `m` seeded Gaussian quadratic forms (matrices) or the centred
/// vector itself (dense methods; `m` is then the dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SketchSpec {
    /// Sketch dimension.
    pub m: usize,
    /// Seed of the Gaussian vectors.
    pub seed: u64,
}

/// Default sketch size for matrix spaces (measured: Pearson .92 with exact cosines at 512).
pub const SKETCH_DIM: usize = 512;

impl TaskSpaceParams {
    /// Parameters of a new task space. `reference` is used only when the method centres.
    pub fn new(
        method: MethodKind,
        method_params: MethodParams,
        reference: Option<Reference>,
    ) -> Self {
        let reference = reference
            .filter(|_| method.uses_reference(&method_params))
            .map(|r| {
                let (sha256, values_b64) = encode_f32(&r.values);
                StoredReference {
                    source: None,
                    spec: r.spec.clone(),
                    dim: r.dim,
                    sha256,
                    values_b64,
                }
            });
        TaskSpaceParams {
            method,
            method_params,
            reference,
            whitening: None,
            sketch: SketchSpec {
                m: SKETCH_DIM,
                seed: 0x7461_736b,
            },
        }
    }

    /// The space definition for these parameters.
    pub fn into_def(self, name: String, dim: u32, surrogate_fp: &str, probe_fp: &str) -> SpaceDef {
        let embedding = if self.method.is_matrix() {
            EmbeddingKind::LowRank
        } else {
            EmbeddingKind::Dense
        };
        SpaceDef {
            name,
            embedding,
            dim,
            method: Some(self.method.name().to_string()),
            surrogate_fingerprint: Some(surrogate_fp.to_string()),
            probe_fingerprint: Some(probe_fp.to_string()),
            params: serde_json::to_value(&self).unwrap_or_default(),
        }
    }

    /// Reads the parameters of a task space.
    pub fn from_def(def: &SpaceDef) -> Result<TaskSpaceParams> {
        serde_json::from_value(def.params.clone()).map_err(|e| Error::Corrupt {
            what: format!("space {:?}", def.name),
            detail: format!("task-space parameters unreadable: {e}"),
        })
    }

    /// Freezes `r` (the mean of a reference library, described by `source`) as the reference,
    /// for a method that has no k-means reference of its own.
    pub fn with_library_reference(mut self, r: &Reference, source: String) -> Self {
        let (sha256, values_b64) = encode_f32(&r.values);
        self.reference = Some(StoredReference {
            source: Some(source),
            spec: r.spec.clone(),
            dim: r.dim,
            sha256,
            values_b64,
        });
        self
    }

    /// How this space centres its entries, in words (provenance, `stats`): the reference
    /// library its reference is the mean of, k-means pseudo-tasks on U, or none.
    pub fn centring(&self) -> String {
        match &self.reference {
            Some(r) => r.source.clone().unwrap_or_else(|| {
                if self.method == MethodKind::TextEmb {
                    "the unit mean feature of the probe set".to_string()
                } else if self.method.uses_whitening(&self.method_params) {
                    "k-means pseudo-tasks on the probe set, in the whitened space".to_string()
                } else {
                    "k-means pseudo-tasks on the probe set".to_string()
                }
            }),
            None => "none".to_string(),
        }
    }

    /// Sets the frozen whitening (for methods that whiten; ignored otherwise).
    pub fn with_whitening(mut self, w: Option<&Whitening>) -> Self {
        self.whitening = w
            .filter(|_| self.method.uses_whitening(&self.method_params))
            .map(|w| {
                let (sha256, values_b64) = encode_f32(&w.values);
                StoredWhitening {
                    shrinkage: w.shrinkage,
                    rows: w.rows,
                    dim: w.dim,
                    sha256,
                    values_b64,
                }
            });
        self
    }

    /// The whitening, decoded and verified; an error if the method needs one and it is missing.
    pub fn whitening(&self, space: &str) -> Result<Option<Whitening>> {
        let Some(w) = &self.whitening else {
            if self.method.uses_whitening(&self.method_params) {
                return Err(Error::Corrupt {
                    what: format!("space {space:?}"),
                    detail: format!("{} space without its whitening matrix", self.method),
                });
            }
            return Ok(None);
        };
        let values = decode_f32(&w.values_b64, &w.sha256, w.dim * w.dim, || {
            format!("space {space:?} whitening")
        })?;
        Ok(Some(Whitening {
            dim: w.dim,
            shrinkage: w.shrinkage,
            rows: w.rows,
            values,
        }))
    }

    /// The reference, decoded and verified.
    pub fn reference(&self, space: &str) -> Result<Option<Reference>> {
        let Some(r) = &self.reference else {
            return Ok(None);
        };
        let len = if self.method.is_matrix() {
            r.dim * r.dim
        } else {
            r.dim
        };
        let values = decode_f32(&r.values_b64, &r.sha256, len, || {
            format!("space {space:?} reference")
        })?;
        Ok(Some(Reference {
            method: self.method,
            dim: r.dim,
            values,
            spec: r.spec.clone(),
        }))
    }
}

/// Little-endian f32 values as (sha256 hex, base64).
fn encode_f32(values: &[f32]) -> (String, String) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    (sha256_hex(&bytes), b64().encode(&bytes))
}

/// Decodes [`encode_f32`]'s output, verifying the checksum and the length (`len` values).
fn decode_f32(b64s: &str, sha: &str, len: usize, what: impl Fn() -> String) -> Result<Vec<f32>> {
    let corrupt = |detail: String| Error::Corrupt {
        what: what(),
        detail,
    };
    let bytes = b64()
        .decode(b64s)
        .map_err(|e| corrupt(format!("undecodable: {e}")))?;
    if sha256_hex(&bytes) != sha {
        return Err(corrupt("sha256 mismatch".into()));
    }
    if bytes.len() != len * 4 {
        return Err(corrupt(format!(
            "{} bytes for {len} f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

use base64::Engine as _;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Exact scoring and sketching for a task space.
#[derive(Debug)]
pub(crate) struct TaskScorer {
    reference: Option<Reference>,
    sketcher: Sketcher,
}

/// Lazily built [`TaskScorer`]; never compared, never serialised. Clones share the cell, so a
/// space's scorer (Gaussian basis, reference sketch) is built once however often the `Space`
/// is copied.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScorerCell(Arc<OnceLock<Option<Arc<TaskScorer>>>>);

impl PartialEq for ScorerCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn method_err(space: &str) -> impl Fn(methods::MethodError) -> Error + '_ {
    move |e| Error::invalid(format!("space {space:?}"), e.to_string())
}

/// Vectors put into HNSW graphs are scaled by this factor after L2 normalisation, so that the
/// dot product of a vector with itself stays safely below 1 despite rounding (hnsw_rs's
/// `DistDot` asserts `dot <= 1.000002`). Ranking is unaffected; scores are computed exactly.
pub(crate) const INDEX_SCALE: f32 = 0.9999;

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

    /// The task scorer of a task space (`None` for external spaces).
    pub(crate) fn scorer(&self) -> Result<Option<Arc<TaskScorer>>> {
        if let Some(s) = self.scorer.0.get() {
            return Ok(s.clone());
        }
        let built = if self.is_task_space() {
            let p = TaskSpaceParams::from_def(&self.def)?;
            let reference = p.reference(&self.def.name)?;
            let basis = SketchBasis::new(self.def.dim as usize, p.sketch.m, p.sketch.seed);
            let sketcher =
                Sketcher::new(&basis, reference.as_ref()).map_err(method_err(&self.def.name))?;
            Some(Arc::new(TaskScorer {
                reference,
                sketcher,
            }))
        } else {
            None
        };
        Ok(self.scorer.0.get_or_init(|| built).clone())
    }

    /// The exact-scoring constants of a vector of this space (task spaces only).
    pub(crate) fn prep(&self, e: &Embedding) -> Result<Option<(f64, f64)>> {
        Ok(match self.scorer()? {
            Some(t) => {
                let p = methods::prepare(&e.to_task(), t.reference.as_ref())
                    .map_err(method_err(&self.def.name))?;
                Some((p.norm, p.ref_dot))
            }
            None => None,
        })
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

    /// The unit vector of a dense value of this space (see [`crate::unit`]).
    fn unit_of(&self, v: &[f32]) -> Result<Vec<f32>> {
        unit::unit(v).ok_or_else(|| self.not_normalisable())
    }

    /// The error for a stored dense vector without a unit vector (zero or not finite: only a
    /// damaged or foreign database holds one; `check` names it, `rm` removes it).
    fn not_normalisable(&self) -> Error {
        Error::Corrupt {
            what: format!("a vector of space {:?}", self.def.name),
            detail: "it is zero or not finite, so it has no direction; `taskdb check` names \
                     the entry, `taskdb rm` removes it"
                .into(),
        }
    }

    /// The vector inserted into the HNSW graph for `e` (dense: L2-normalised, scaled by
    /// [`INDEX_SCALE`]). `e` must have passed [`Space::check`].
    ///
    /// Task spaces index the unit-length sketch of the centred embedding (exact for dense
    /// methods, an unbiased estimate of the centred cosine for matrix methods).
    pub fn index_vector(&self, e: &Embedding) -> Result<Vec<f32>> {
        if let Some(t) = self.scorer()? {
            let z = t
                .sketcher
                .sketch(&e.to_task())
                .map_err(method_err(&self.def.name))?;
            return Ok(z.iter().map(|x| x * INDEX_SCALE).collect());
        }
        match e {
            Embedding::Dense(v) => Ok(self
                .unit_of(v)?
                .into_iter()
                .map(|x| x * INDEX_SCALE)
                .collect()),
            Embedding::LowRank(_) => Err(Error::Internal(format!(
                "low-rank value in non-task space {:?}",
                self.def.name
            ))),
        }
    }

    /// Prepares a query for repeated exact scoring.
    pub fn prepare(&self, q: &Embedding) -> Result<Prepared> {
        if let Some(t) = self.scorer()? {
            let p = methods::prepare(&q.to_task(), t.reference.as_ref())
                .map_err(method_err(&self.def.name))?;
            return Ok(Prepared::Task(Box::new(p)));
        }
        match q {
            Embedding::Dense(v) => Ok(Prepared::Dense(self.unit_of(v)?)),
            Embedding::LowRank(_) => Err(Error::Internal(format!(
                "low-rank value in non-task space {:?}",
                self.def.name
            ))),
        }
    }

    /// Prepares a query of a task space for scoring against entries centred by `r` (a library
    /// reference) instead of the space's own reference.
    pub(crate) fn prepare_centred(&self, q: &Embedding, r: &Reference) -> Result<Prepared> {
        let p = methods::prepare(&q.to_task(), Some(r)).map_err(method_err(&self.def.name))?;
        Ok(Prepared::Task(Box::new(p)))
    }

    /// The exact similarity of a prepared query and a stored embedding (dense: cosine; task
    /// spaces: cosine of the unit-normalised, reference-centred embeddings), in [-1, 1],
    /// higher is nearer. `prep` are the stored vector's constants (see [`Space::prep`]).
    pub fn score(&self, q: &Prepared, x: &Embedding, prep: Option<(f64, f64)>) -> Result<f32> {
        match (q, x) {
            (Prepared::Task(q), _) => {
                let (norm, ref_dot) = match prep {
                    Some(p) => p,
                    None => {
                        let t = self.scorer()?.ok_or_else(|| {
                            Error::Internal("task query in non-task space".into())
                        })?;
                        let p = methods::prepare(&x.to_task(), t.reference.as_ref())
                            .map_err(method_err(&self.def.name))?;
                        (p.norm, p.ref_dot)
                    }
                };
                let other = methods::Prepared {
                    emb: x.to_task(),
                    norm,
                    ref_dot,
                    ref_norm2: q.ref_norm2,
                };
                let c = q.cosine(&other).map_err(method_err(&self.def.name))?;
                Ok((c as f32).clamp(-1.0, 1.0))
            }
            (Prepared::Dense(q), Embedding::Dense(x)) => match unit::cosine_unit(q, x) {
                Some(c) => Ok((c as f32).clamp(-1.0, 1.0)),
                None => Err(self.not_normalisable()),
            },
            (Prepared::Dense(_), Embedding::LowRank(_)) => Err(Error::Internal(format!(
                "low-rank value in dense space {:?}",
                self.def.name
            ))),
        }
    }
}

/// A query embedding prepared for exact scoring.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// An L2-normalised dense vector.
    Dense(Vec<f32>),
    /// A task-space query with its exact-scoring constants.
    Task(Box<methods::Prepared>),
}
