//! Reference libraries: a frozen set of real tasks' embeddings whose mean centres a new space.
//!
//! Centring on the live library measured far better than no centring (docs/QUALITY.md), but a
//! live mean moves every answer whenever an entry is added. A *reference library* keeps most of
//! the gain with answers that never move: the embeddings of a fixed set of real, public tasks,
//! computed once with a given surrogate, probe set and method parameters. When a space is created
//! and a reference library matches it (same method, parameters, surrogate fingerprint and probe
//! fingerprint), the mean of the library's unit-normalised embeddings becomes the space's frozen
//! reference. taskdb ships one for its defaults ([`ReferenceLibrary::builtin`], built by
//! `scripts/build_reference_library.sh` from 17 public datasets); users can build their own
//! from any database (`taskdb reference-library export`, [`ReferenceLibrary::export`]) and pass
//! it to ingestion (`--reference-library FILE`).
//!
//! A library that does not match is never used: the space is then compared uncentred (or by its
//! method's k-means reference), and the ingestion report says so.

use serde::{Deserialize, Serialize};
use taskdb_methods::{
    self as methods, LowRank, MethodKind, MethodParams, Reference, TaskEmbedding,
};

use crate::bytes;
use crate::error::{Error, Result};
use crate::model::{Embedding, EntryRef, Kind};
use crate::search::Filter;
use crate::space::TaskSpaceParams;
use crate::TaskDb;

/// Current file format of a reference library.
pub const FORMAT: u32 = 1;

/// The reference library shipped for taskdb's default surrogate, probe set and scatter
/// parameters (JSON, see [`ReferenceLibrary`]).
static BUILTIN: &[u8] = include_bytes!("data/reference-library-scatter.json");

/// A frozen set of task embeddings (one method, one surrogate, one probe set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLibrary {
    /// File format ([`FORMAT`]).
    pub format: u32,
    /// A name for provenance (e.g. `taskdb-default-scatter-v1`).
    pub name: String,
    /// The method of every embedding.
    pub method: MethodKind,
    /// The method parameters the embeddings were computed with.
    pub method_params: MethodParams,
    /// The surrogate fingerprint the embeddings were computed with.
    pub surrogate_fingerprint: String,
    /// The probe-set fingerprint of the space they came from.
    pub probe_fingerprint: String,
    /// The tasks.
    pub tasks: Vec<ReferenceTask>,
}

/// One task of a reference library: a low-rank embedding `U diag(s) Uᵀ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceTask {
    /// Entry name in the database it was exported from.
    pub name: String,
    /// Dataset or model.
    pub kind: Kind,
    /// Where it came from (e.g. the input file's sha256), for audits.
    #[serde(default)]
    pub source: String,
    /// Matrix side.
    pub dim: usize,
    /// Eigenvalues (descending).
    pub s: Vec<f32>,
    /// `U` (`dim × r`, column-major), little-endian f32, base64.
    pub u_b64: String,
}

impl ReferenceTask {
    fn low_rank(&self, what: &str) -> Result<LowRank> {
        let bad = |m: String| Error::invalid(what, m);
        let bytes = bytes::b64_decode(&self.u_b64)
            .map_err(|e| bad(format!("task {:?}: u_b64 is not base64: {e}", self.name)))?;
        if bytes.len() != self.dim * self.s.len() * 4 {
            return Err(bad(format!(
                "task {:?}: u_b64 holds {} bytes, expected dim {} × rank {} × 4",
                self.name,
                bytes.len(),
                self.dim,
                self.s.len()
            )));
        }
        let u = bytes::f32_from_le(&bytes).unwrap_or_default();
        if self.s.is_empty() || u.iter().chain(&self.s).any(|v| !v.is_finite()) {
            return Err(bad(format!(
                "task {:?}: empty or non-finite embedding",
                self.name
            )));
        }
        Ok(LowRank {
            dim: self.dim,
            u,
            s: self.s.clone(),
        })
    }
}

impl ReferenceLibrary {
    /// The library shipped with taskdb (for its default surrogate, probe set and parameters).
    pub fn builtin() -> Result<ReferenceLibrary> {
        ReferenceLibrary::from_json(BUILTIN, "the built-in reference library")
    }

    /// Reads and validates a library. `what` names the source in errors (e.g. a file path).
    pub fn from_json(bytes: &[u8], what: &str) -> Result<ReferenceLibrary> {
        let lib: ReferenceLibrary = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(
                what,
                format!("not a taskdb reference library (JSON: {e}); make one with `taskdb reference-library export`"),
            )
        })?;
        if lib.format != FORMAT {
            return Err(Error::invalid(
                what,
                format!(
                    "reference library format {} (this taskdb reads format {FORMAT})",
                    lib.format
                ),
            ));
        }
        if !lib.method.is_matrix() {
            return Err(Error::invalid(
                what,
                format!(
                    "reference libraries hold matrix methods (scatter, fisher); this one is {}",
                    lib.method
                ),
            ));
        }
        if lib.tasks.is_empty() {
            return Err(Error::invalid(what, "the reference library has no tasks"));
        }
        let dim = lib.tasks[0].dim;
        for t in &lib.tasks {
            if t.dim != dim {
                return Err(Error::invalid(
                    what,
                    format!(
                        "task {:?} has dim {} but the first has {dim}",
                        t.name, t.dim
                    ),
                ));
            }
            t.low_rank(what)?;
        }
        Ok(lib)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::Internal(e.to_string()))
    }

    /// sha256 (hex) of [`to_json`](Self::to_json), for provenance.
    pub fn sha256(&self) -> String {
        bytes::sha256_hex(&self.to_json().unwrap_or_default())
    }

    /// Whether this library was computed in exactly the space a new space would be.
    pub fn matches(
        &self,
        method: MethodKind,
        params: &MethodParams,
        surrogate_fingerprint: &str,
        probe_fingerprint: &str,
    ) -> bool {
        // Whether a new space would centre by k-means instead is the user's choice at
        // ingestion, not a property of the tasks: a library fits spaces either way.
        let centring_free = |p: &MethodParams| MethodParams {
            scatter_kmeans_reference: false,
            ..p.clone()
        };
        self.method == method
            && centring_free(&self.method_params) == centring_free(params)
            && self.surrogate_fingerprint == surrogate_fingerprint
            && self.probe_fingerprint == probe_fingerprint
    }

    /// The mean of the unit-normalised task embeddings: the reference it freezes into a space.
    pub fn reference(&self) -> Result<Reference> {
        let what = format!("reference library {:?}", self.name);
        let embs = self
            .tasks
            .iter()
            .map(|t| t.low_rank(&what).map(TaskEmbedding::LowRank))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&TaskEmbedding> = embs.iter().collect();
        methods::library_reference(self.method, self.tasks[0].dim, &refs)
            .map_err(|e| Error::invalid(what, e.to_string()))
    }

    /// A one-line description for provenance and space definitions.
    pub fn describe(&self) -> String {
        format!(
            "reference library {:?} ({} tasks, sha256 {})",
            self.name,
            self.tasks.len(),
            &self.sha256()[..16]
        )
    }

    /// Exports the `method` embeddings of the live entries of `db` that pass `filter` (e.g.
    /// datasets only) as a reference library named `name`. Every exported entry must be in one
    /// task space (one surrogate and probe set); the library records that space's parameters.
    pub fn export(
        db: &TaskDb,
        method: MethodKind,
        filter: &Filter,
        name: &str,
    ) -> Result<ReferenceLibrary> {
        if !method.is_matrix() {
            return Err(Error::invalid(
                "reference-library export",
                format!("reference libraries hold matrix methods (scatter, fisher), not {method}"),
            ));
        }
        let mut f = filter.clone();
        f.method = Some(method.name().to_string());
        f.all_versions = false;
        let mut space: Option<crate::space::Space> = None;
        let mut tasks = Vec::new();
        for s in db.list(&f)? {
            let e = db.get(&EntryRef {
                name: s.name.clone(),
                version: Some(s.version),
            })?;
            let Some((sid, Embedding::LowRank(l))) = e.vectors.get(method.name()) else {
                continue;
            };
            let sp = match &space {
                Some(sp) if sp.id == *sid => sp.clone(),
                Some(sp) => {
                    return Err(Error::SpaceMismatch(format!(
                        "entries {:?} and {:?} are in different {method} spaces ({:?}, space id \
                         {sid}): a reference library comes from one space; narrow the export \
                         with --prefix or --tag",
                        tasks
                            .first()
                            .map(|t: &ReferenceTask| t.name.clone())
                            .unwrap_or_default(),
                        s.name,
                        sp.def.name
                    )))
                }
                None => {
                    let sp = db
                        .spaces()?
                        .into_iter()
                        .find(|x| x.id == *sid)
                        .ok_or_else(|| Error::Internal(format!("space {sid} missing")))?;
                    space = Some(sp.clone());
                    sp
                }
            };
            if !sp.is_task_space() {
                return Err(Error::invalid(
                    format!("entry {}", s.name),
                    "its vector is in an imported space; reference libraries come from ingestion",
                ));
            }
            let bytes: Vec<u8> = l.u.iter().flat_map(|x| x.to_le_bytes()).collect();
            tasks.push(ReferenceTask {
                name: e.name.clone(),
                kind: e.kind,
                source: e
                    .provenance
                    .input_sha256
                    .as_ref()
                    .map(|h| format!("sha256:{h}"))
                    .unwrap_or_default(),
                dim: l.dim,
                s: l.s.clone(),
                u_b64: bytes::b64_encode(&bytes),
            });
        }
        let Some(sp) = space else {
            return Err(Error::NotFound {
                what: format!("live entries with a {method} vector matching the filter"),
            });
        };
        let p = TaskSpaceParams::from_def(&sp.def)?;
        Ok(ReferenceLibrary {
            format: FORMAT,
            name: name.to_string(),
            method,
            method_params: p.method_params,
            surrogate_fingerprint: sp.def.surrogate_fingerprint.clone().unwrap_or_default(),
            probe_fingerprint: sp.def.probe_fingerprint.clone().unwrap_or_default(),
            tasks,
        })
    }
}
