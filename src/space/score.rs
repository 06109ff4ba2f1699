//! All scoring, in one place: the vector a space puts into its graph, the exact score of a
//! query against a stored value, the per-vector constants that make it cheap, and live
//! centring (scoring against the mean of the live library instead of the frozen reference).
//! knn, `check` and (next) comparison and recommendation all score through here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use taskdb_methods::{self as methods, Reference, SketchBasis, Sketcher};

use super::{Space, TaskSpaceParams};
use crate::embedding::{Embedding, EntryId};
use crate::error::{Error, Result};
use crate::unit;

/// The constants of exact task-space scoring for one stored value: its norm and its inner
/// product with the space's reference. Stored beside the vector in its entry record (so knn
/// never recomputes them), recomputed and compared by `check`. Serialised as two f64 in order
/// (the same bytes as the `(f64, f64)` records written before this type had a name).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScoreConsts {
    /// The norm of the value (Frobenius for matrices).
    pub norm: f64,
    /// Its inner product with the space's reference (0 without one).
    pub ref_dot: f64,
}

impl ScoreConsts {
    /// Whether recomputed constants equal stored ones, to rounding.
    pub(crate) fn agree(a: Option<ScoreConsts>, b: Option<ScoreConsts>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                (a.norm - b.norm).abs() <= 1e-9 * a.norm.abs().max(1.0)
                    && (a.ref_dot - b.ref_dot).abs() <= 1e-9
            }
            _ => false,
        }
    }
}

/// Live centring of a task space: the mean of its live library as the reference, and every
/// live entry's scoring constants against it. Derived (in memory), keyed by the live entry set.
pub(crate) struct LiveCentre {
    /// Hash of the sorted live entry ids it was computed from.
    pub key: u64,
    /// The live library mean.
    pub reference: Reference,
    /// Each live entry's constants against [`LiveCentre::reference`].
    pub consts: HashMap<EntryId, ScoreConsts>,
}

impl LiveCentre {
    /// The cache key of a live entry set (ids sorted ascending).
    pub(crate) fn key_of(live: &[EntryId]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        live.hash(&mut h);
        h.finish()
    }

    /// An error unless `space` is a task space (the only kind live centring applies to).
    pub(crate) fn applies(space: &Space) -> Result<()> {
        if space.is_task_space() {
            return Ok(());
        }
        Err(Error::invalid(
            format!("space {:?}", space.def.name),
            "live centring applies to task spaces (made by ingestion); this space holds \
             imported vectors: search it without centring",
        ))
    }

    /// Builds the live centre of `space` from its live entries' values (`live[i]` is the id of
    /// `values[i]`).
    pub(crate) fn build(
        space: &Space,
        live: &[EntryId],
        values: &[methods::TaskEmbedding],
    ) -> Result<LiveCentre> {
        LiveCentre::applies(space)?;
        let method = TaskSpaceParams::from_def(&space.def)?.method;
        let refs: Vec<&methods::TaskEmbedding> = values.iter().collect();
        let bad = method_err(&space.def.name);
        let reference =
            methods::library_reference(method, space.def.dim as usize, &refs).map_err(&bad)?;
        let dots = methods::reference_dots(&reference, &refs).map_err(&bad)?;
        let mut consts = HashMap::with_capacity(live.len());
        for ((&id, e), ref_dot) in live.iter().zip(values).zip(dots) {
            let norm = methods::prepare(e, None).map_err(&bad)?.norm;
            consts.insert(id, ScoreConsts { norm, ref_dot });
        }
        Ok(LiveCentre {
            key: LiveCentre::key_of(live),
            reference,
            consts,
        })
    }
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
    pub(crate) fn prep(&self, e: &Embedding) -> Result<Option<ScoreConsts>> {
        Ok(match self.scorer()? {
            Some(t) => {
                let p = methods::prepare(&e.to_task(), t.reference.as_ref())
                    .map_err(method_err(&self.def.name))?;
                Some(ScoreConsts {
                    norm: p.norm,
                    ref_dot: p.ref_dot,
                })
            }
            None => None,
        })
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
            Embedding::Dense(v) => {
                Space::dense_graph_vector(v).ok_or_else(|| self.not_normalisable())
            }
            Embedding::LowRank(_) => Err(Error::Internal(format!(
                "low-rank value in non-task space {:?}",
                self.def.name
            ))),
        }
    }

    /// A stored dense vector's graph vector (its unit vector scaled), `None` where it has no
    /// direction: the one arithmetic of [`Space::index_vector`], also used where a dense graph
    /// is made again from its stored vectors (`index::graph::FlatGraph::to_graph`,
    /// `SpaceIndex::from_loaded`), so those graphs hold exactly the vectors the builder inserted.
    pub(crate) fn dense_graph_vector(v: &[f32]) -> Option<Vec<f32>> {
        Some(Space::index_of_unit(&unit::unit(v)?))
    }

    /// A dense vector's graph vector from its unit vector (as [`Space::prepare`] gives it):
    /// the same arithmetic as [`Space::index_vector`], so a query normalises once.
    pub(crate) fn index_of_unit(u: &[f32]) -> Vec<f32> {
        u.iter().map(|x| x * INDEX_SCALE).collect()
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
    pub(crate) fn score(
        &self,
        q: &Prepared,
        x: &Embedding,
        prep: Option<ScoreConsts>,
    ) -> Result<f32> {
        match (q, x) {
            (Prepared::Task(q), _) => {
                let ScoreConsts { norm, ref_dot } = match prep {
                    Some(p) => p,
                    None => {
                        let t = self.scorer()?.ok_or_else(|| {
                            Error::Internal("task query in non-task space".into())
                        })?;
                        let p = methods::prepare(&x.to_task(), t.reference.as_ref())
                            .map_err(method_err(&self.def.name))?;
                        ScoreConsts {
                            norm: p.norm,
                            ref_dot: p.ref_dot,
                        }
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
            (Prepared::Dense(q), Embedding::Dense(x)) => self.score_dense(q, x),
            (Prepared::Dense(_), Embedding::LowRank(_)) => Err(Error::Internal(format!(
                "low-rank value in dense space {:?}",
                self.def.name
            ))),
        }
    }
}

impl Space {
    /// The exact score of a stored dense vector `x` against a prepared (unit) dense query:
    /// [`Space::score`]'s dense case, for callers that hold the vector as a slice.
    pub(crate) fn score_dense(&self, q: &[f32], x: &[f32]) -> Result<f32> {
        match unit::norm64(x) {
            Some(n) => Ok(Self::score_dense_normed(q, x, n)),
            None => Err(self.not_normalisable()),
        }
    }

    /// [`Space::score_dense`] of a vector whose norm (`unit::norm64`) was computed before:
    /// the same score, bit for bit, without the two passes that compute the norm.
    pub(crate) fn score_dense_normed(q: &[f32], x: &[f32], norm: f64) -> f32 {
        (unit::cosine_with_norm(q, x, norm) as f32).clamp(-1.0, 1.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::SpaceDef;
    use taskdb_methods::{LowRank, MethodKind, MethodParams};

    fn dense_space() -> Space {
        Space::new(1, SpaceDef::external("ext", 3), 0)
    }

    /// An uncentred scatter space of dimension 3 (no whitening, no reference).
    fn task_space() -> Space {
        let params = MethodParams {
            scatter_whitening: None,
            ..MethodParams::default()
        };
        let p = TaskSpaceParams::new(MethodKind::Scatter, params, None);
        Space::new(2, p.into_def("task".into(), 3, "sfp", "pfp"), 0)
    }

    /// Rank-1 `s·uuᵀ` with unit `u`.
    fn rank1(u: [f32; 3], s: f32) -> Embedding {
        let n = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        Embedding::LowRank(LowRank {
            dim: 3,
            u: u.iter().map(|x| x / n).collect(),
            s: vec![s],
        })
    }

    fn frobenius_cosine(a: &Embedding, b: &Embedding) -> f64 {
        let (Embedding::LowRank(a), Embedding::LowRank(b)) = (a, b) else {
            unreachable!()
        };
        let (a, b) = (a.to_dense(), b.to_dense());
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (n(&a) * n(&b))
    }

    #[test]
    fn dense_scores_are_true_cosines_at_every_scale() {
        let s = dense_space();
        let q = s.prepare(&Embedding::Dense(vec![1.0, 2.0, 0.0])).unwrap();
        for scale in [1e-30f32, 1.0, 3e37] {
            let x = Embedding::Dense(vec![2.0 * scale, 1.0 * scale, 2.0 * scale]);
            let got = s.score(&q, &x, s.prep(&x).unwrap()).unwrap() as f64;
            // cos = (2 + 2) / (√5 · 3)
            assert!(
                (got - 4.0 / (5f64.sqrt() * 3.0)).abs() < 1e-6,
                "{scale}: {got}"
            );
        }
        let v = s
            .index_vector(&Embedding::Dense(vec![3.0, 4.0, 0.0]))
            .unwrap();
        let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (n - 1.0).abs() < 1e-3,
            "index vectors are unit length (×0.9999): {n}"
        );
        // A low-rank value never scores in a dense space.
        assert!(s.score(&q, &rank1([1.0, 0.0, 0.0], 1.0), None).is_err());
    }

    #[test]
    fn task_scores_are_frobenius_cosines_with_or_without_stored_constants() {
        let s = task_space();
        let a = rank1([1.0, 1.0, 0.0], 2.0);
        let b = rank1([1.0, 0.0, 1.0], 0.5);
        let q = s.prepare(&a).unwrap();
        let want = frobenius_cosine(&a, &b);
        let stored = s.prep(&b).unwrap();
        assert!(stored.is_some(), "task spaces store scoring constants");
        let with = s.score(&q, &b, stored).unwrap() as f64;
        let without = s.score(&q, &b, None).unwrap() as f64;
        assert!((with - want).abs() < 1e-6, "{with} vs {want}");
        assert_eq!(with, without, "stored constants change nothing but speed");
        let own = s.score(&q, &a, s.prep(&a).unwrap()).unwrap();
        assert!(
            (own - 1.0).abs() < 1e-6,
            "a value is its own nearest: {own}"
        );
    }

    #[test]
    fn score_constants_agree_to_rounding_only() {
        let c = |norm, ref_dot| Some(ScoreConsts { norm, ref_dot });
        assert!(ScoreConsts::agree(c(2.0, 0.5), c(2.0 + 1e-12, 0.5)));
        assert!(!ScoreConsts::agree(c(2.0, 0.5), c(2.001, 0.5)));
        assert!(!ScoreConsts::agree(c(2.0, 0.5), c(2.0, 0.501)));
        assert!(!ScoreConsts::agree(c(2.0, 0.5), None));
        assert!(ScoreConsts::agree(None, None));
    }

    #[test]
    fn live_centring_applies_to_task_spaces_only_and_is_keyed_by_the_live_set() {
        assert!(LiveCentre::applies(&task_space()).is_ok());
        let err = LiveCentre::applies(&dense_space()).unwrap_err().to_string();
        assert!(err.contains("imported vectors"), "{err}");
        assert_eq!(
            LiveCentre::key_of(&[1, 2, 3]),
            LiveCentre::key_of(&[1, 2, 3])
        );
        assert_ne!(LiveCentre::key_of(&[1, 2, 3]), LiveCentre::key_of(&[1, 2]));
        // Centred on the mean of the library {a, b} (of unit-normalised values), a − m and
        // b − m point in opposite directions: the centred cosine is −1.
        let s = task_space();
        let (a, b) = (rank1([1.0, 1.0, 0.0], 2.0), rank1([1.0, 0.0, 1.0], 0.5));
        let lc = LiveCentre::build(&s, &[7, 8], &[a.to_task(), b.to_task()]).unwrap();
        assert_eq!(lc.consts.len(), 2);
        let q = s.prepare_centred(&a, &lc.reference).unwrap();
        let got = s.score(&q, &b, Some(lc.consts[&8])).unwrap();
        assert!((got + 1.0).abs() < 1e-5, "{got}");
    }
}
