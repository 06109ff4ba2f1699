//! The typed parameters of a task space (a space made by ingestion) and their frozen
//! statistics (whitening, centring reference), stored inside `SpaceDef::params` as JSON with
//! checksummed base64 values.

use serde::{Deserialize, Serialize};
use taskdb_methods::{MethodKind, MethodParams, Reference, Whitening};

use super::{EmbeddingKind, SpaceDef};
use crate::bytes;
use crate::error::{Error, Result};

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
    pub spec: taskdb_methods::ReferenceSpec,
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
    let bytes = bytes::f32_to_le(values);
    (bytes::sha256_hex(&bytes), bytes::b64_encode(&bytes))
}

/// Decodes [`encode_f32`]'s output, verifying the checksum and the length (`len` values).
fn decode_f32(b64s: &str, sha: &str, len: usize, what: impl Fn() -> String) -> Result<Vec<f32>> {
    let corrupt = |detail: String| Error::Corrupt {
        what: what(),
        detail,
    };
    let bytes = bytes::b64_decode(b64s).map_err(|e| corrupt(format!("undecodable: {e}")))?;
    if bytes::sha256_hex(&bytes) != sha {
        return Err(corrupt("sha256 mismatch".into()));
    }
    if bytes.len() != len * 4 {
        return Err(corrupt(format!(
            "{} bytes for {len} f32 values",
            bytes.len()
        )));
    }
    bytes::f32_from_le(&bytes).ok_or_else(|| corrupt("not whole f32 values".into()))
}
