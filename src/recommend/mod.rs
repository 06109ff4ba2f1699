//! Transfer-source recommendation: which stored task to train on before a target, with the
//! evidence for each answer; and its leave-one-target-out evaluation on a team's own outcomes.
//!
//! The rule (documented in docs/METHODS.md, "Recommending a source"):
//! 1. **A measurement outranks any estimate.** A source with a recorded outcome for this
//!    target (mean gain over its records) comes first when its gain is positive, ordered by
//!    gain; one measured not to help (gain ≤ 0) comes after every unmeasured source.
//! 2. **Unmeasured sources are estimated** from two pieces of evidence:
//!    * *direct*: the source's similarity to the target in the recommending space;
//!    * *pivot* (TaskShop, Kim et al. 2023): the source's recorded gains on other targets
//!      ("pivots"), weighted by how much more similar each pivot is to this target than the
//!      target's average neighbour (`w = max(0, sim(pivot, target) − mean sim)`), averaged.
//!
//!    Without any pivot evidence the score is the similarity itself. With some, each is
//!    standardised against its own population — the similarity against the target's
//!    similarities to every entry of the space, the pivot estimate against every recorded
//!    gain (a source without pivot evidence gets 0: an average gain) — and they are combined
//!    as `(1 − λ)·z(direct) + λ·z(pivot)`, λ = [`RecommendOptions::lambda`]. Standardising
//!    against populations, not against the few candidates, keeps a tiny similarity
//!    difference between two candidates from counting as a whole standard deviation.
//!
//! Everything here but [`TaskDb::recommend`]'s reads is pure ([`rank`]), so the evaluation
//! runs the same code with the target's own outcomes hidden.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::embedding::Embedding;
use crate::error::{Error, Result};
use crate::model::{EntryRef, Kind};
use crate::outcome::NewOutcome;
use crate::search::{Filter, Query, SpaceSel};
use crate::TaskDb;

mod compare;
mod eval;
mod prompt;

pub use compare::{Comparison, SharedSpace, Side};
pub use eval::{EvalReport, EvalRow};
pub use prompt::PromptChoice;

/// The method whose space recommends by default: `fisher`, which ranked measured transfer best
/// of taskdb's methods (docs/QUALITY-recommend.md: NDCG@3 0.729 against
/// scatter's 0.649 and textemb's 0.675 on TaskWeb's six targets; the same order held out by
/// family in docs/QUALITY-experiment.md). Six targets are few: this is the best evidence there
/// is, not a settled result. A target without a fisher vector is recommended for in its only
/// space, or in the one `--method` names.
pub const RECOMMEND_METHOD: &str = "fisher";

/// The default weight of pivot evidence: 0.75, measured by leave-one-target-out on TaskWeb's
/// six targets (fisher space: NDCG@3 0.791 / 0.831 / 0.868 / 0.892 at λ 0.25 / 0.5 / 0.75 / 1;
/// docs/QUALITY-recommend.md). λ = 1 scored a little higher there, but it drops the
/// similarity wherever pivot evidence exists and leaves sources without pivots tied; 0.75
/// keeps it as the tie-breaker. Chosen on the data it was measured on: in-sample.
pub const DEFAULT_LAMBDA: f64 = 0.75;

/// A target that is not stored: its value per method, each in a space of the database (made by
/// [`crate::ingest::Ingestor::embed_dataset`] for `taskdb recommend --file`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnstoredTarget {
    /// What to call it in answers (a stored entry of the same name is left out of them).
    pub name: String,
    /// Method → (space name, value).
    pub vectors: BTreeMap<String, (String, Embedding)>,
}

/// Method → (entry name → similarity to the target).
pub(crate) type Similarities = BTreeMap<String, BTreeMap<String, f64>>;

/// What to recommend sources for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A stored entry.
    Stored(EntryRef),
    /// A task embedded on the fly and not stored.
    Unstored(UnstoredTarget),
}

/// How to recommend.
#[derive(Debug, Clone)]
pub struct RecommendOptions {
    /// How many sources to return.
    pub k: usize,
    /// Only sources of this kind (`None`: datasets and models).
    pub from: Option<Kind>,
    /// The method whose space gives the similarities (`None`: [`RECOMMEND_METHOD`] if the
    /// target has it, else the target's only method).
    pub method: Option<String>,
    /// Use the stored outcomes (measured gains and pivots).
    pub use_outcomes: bool,
    /// The weight of pivot evidence against direct similarity, in [0, 1].
    pub lambda: f64,
}

impl Default for RecommendOptions {
    fn default() -> Self {
        RecommendOptions {
            k: 10,
            from: None,
            method: None,
            use_outcomes: true,
            lambda: DEFAULT_LAMBDA,
        }
    }
}

/// Why a source is where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// A recorded outcome says it helps this target.
    Measured,
    /// No outcome for this target: estimated from similarity (and pivots).
    Estimated,
    /// A recorded outcome says it does not help this target.
    MeasuredNoGain,
}

/// A recorded gain of the source on another target, and how much it weighed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pivot {
    /// The other target.
    pub target: String,
    /// Its similarity to this target.
    pub similarity: f64,
    /// Its weight in the pivot estimate (0: no more similar than the average neighbour).
    pub weight: f64,
    /// The source's recorded gain on it.
    pub gain: f64,
}

/// One recommended source with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The source's name.
    pub name: String,
    /// Its latest version.
    pub version: u32,
    /// Dataset or model.
    pub kind: Kind,
    /// Measured, estimated, or measured not to help.
    pub basis: Basis,
    /// The ranking score: the measured gain for measured sources; for estimated ones the
    /// similarity (no pivot evidence in this answer) or the combined z-score.
    pub score: f64,
    /// The similarity to the target in every space they share, by method.
    pub similarity: BTreeMap<String, f64>,
    /// The mean recorded gain on this target, when measured.
    pub measured_gain: Option<f64>,
    /// How many outcome records that mean is of.
    pub measured_records: usize,
    /// The pivot estimate (weighted mean gain on similar targets), when there is one.
    pub pivot_estimate: Option<f64>,
    /// The pivots behind it.
    pub pivots: Vec<Pivot>,
    /// The source's size: rows used (datasets) or probe texts answered (models).
    pub rows: Option<u64>,
}

/// A candidate of [`rank`]: its name and its similarity to the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The source's name.
    pub name: String,
    /// Its similarity to the target in the recommending space.
    pub similarity: f64,
}

/// The ranking of [`rank`]: names, scores and evidence, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The source's name.
    pub name: String,
    /// Measured, estimated, or measured not to help.
    pub basis: Basis,
    /// See [`Recommendation::score`].
    pub score: f64,
    /// See [`Recommendation::measured_gain`].
    pub measured_gain: Option<f64>,
    /// See [`Recommendation::measured_records`].
    pub measured_records: usize,
    /// See [`Recommendation::pivot_estimate`].
    pub pivot_estimate: Option<f64>,
    /// See [`Recommendation::pivots`].
    pub pivots: Vec<Pivot>,
}

/// Ranks `candidates` as sources for `target` (pure; the rule of the module docs).
/// `target_sims` holds the similarity of every entry of the space to the target (pivots are
/// looked up there); `outcomes` are the recorded outcomes to use.
pub fn rank(
    target: &str,
    candidates: &[Candidate],
    target_sims: &BTreeMap<String, f64>,
    outcomes: &[NewOutcome],
    lambda: f64,
) -> Vec<Ranked> {
    let mean_sim = if target_sims.is_empty() {
        0.0
    } else {
        target_sims.values().sum::<f64>() / target_sims.len() as f64
    };
    // Mean gain per (source, target) over its records.
    let mut gains: BTreeMap<(&str, &str), (f64, usize)> = BTreeMap::new();
    for o in outcomes {
        let g = gains.entry((&o.source, &o.target)).or_insert((0.0, 0));
        g.0 += o.gain();
        g.1 += 1;
    }
    let mut ranked: Vec<Ranked> = candidates
        .iter()
        .map(|c| {
            let measured = gains
                .get(&(c.name.as_str(), target))
                .map(|&(sum, n)| (sum / n as f64, n));
            let pivots: Vec<Pivot> = gains
                .iter()
                .filter(|((s, t), _)| *s == c.name && *t != target)
                .filter_map(|((_, t), &(sum, n))| {
                    let similarity = *target_sims.get(*t)?;
                    Some(Pivot {
                        target: t.to_string(),
                        similarity,
                        weight: (similarity - mean_sim).max(0.0),
                        gain: sum / n as f64,
                    })
                })
                .collect();
            let wsum: f64 = pivots.iter().map(|p| p.weight).sum();
            let pivot_estimate =
                (wsum > 0.0).then(|| pivots.iter().map(|p| p.weight * p.gain).sum::<f64>() / wsum);
            Ranked {
                name: c.name.clone(),
                basis: match measured {
                    Some((g, _)) if g > 0.0 => Basis::Measured,
                    Some(_) => Basis::MeasuredNoGain,
                    None => Basis::Estimated,
                },
                score: c.similarity,
                measured_gain: measured.map(|m| m.0),
                measured_records: measured.map(|m| m.1).unwrap_or(0),
                pivot_estimate,
                pivots,
            }
        })
        .collect();
    // Estimated sources: similarity alone, or the z-combination when pivot evidence exists.
    let est: Vec<usize> = (0..ranked.len())
        .filter(|&i| ranked[i].basis == Basis::Estimated)
        .collect();
    if est.iter().any(|&i| ranked[i].pivot_estimate.is_some()) {
        let sims = Population::of(target_sims.values().copied());
        let all_gains = Population::of(outcomes.iter().map(NewOutcome::gain));
        for &i in &est {
            let z_direct = sims.z(ranked[i].score);
            let z_pivot = ranked[i]
                .pivot_estimate
                .map(|p| all_gains.z(p))
                .unwrap_or(0.0);
            ranked[i].score = (1.0 - lambda) * z_direct + lambda * z_pivot;
        }
    }
    for r in ranked.iter_mut() {
        if let Some(g) = r.measured_gain {
            r.score = g;
        }
    }
    ranked.sort_by(|a, b| {
        a.basis
            .cmp(&b.basis)
            .then(b.score.total_cmp(&a.score))
            .then(a.name.cmp(&b.name))
    });
    ranked
}

/// The mean and spread of a population, for z-scores.
struct Population {
    mean: f64,
    sd: f64,
}

impl Population {
    fn of(xs: impl Iterator<Item = f64>) -> Population {
        let xs: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
        if xs.is_empty() {
            return Population { mean: 0.0, sd: 0.0 };
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        Population { mean, sd }
    }

    /// `(x − mean) / sd`; 0 when the population does not vary.
    fn z(&self, x: f64) -> f64 {
        if self.sd > 1e-12 {
            (x - self.mean) / self.sd
        } else {
            0.0
        }
    }
}

impl TaskDb {
    /// The similarity of every live entry to `target` in each space they share, by method
    /// (the target itself left out).
    pub(crate) fn similarities(&self, target: &EntryRef) -> Result<Similarities> {
        Ok(self.similarities_of(&Target::Stored(target.clone()))?.1)
    }

    /// [`TaskDb::similarities`] for any target; also returns the target's name.
    fn similarities_of(&self, target: &Target) -> Result<(String, Similarities)> {
        // Every live entry (knn returns at most this many).
        let n = self.live_names()?.max(1);
        let mut out = BTreeMap::new();
        let (name, queries): (String, Vec<(String, Query)>) = match target {
            Target::Stored(r) => {
                let entry = self.get(r)?;
                let q = Query::Entry(EntryRef {
                    name: entry.name.clone(),
                    version: Some(entry.version),
                });
                let qs = entry
                    .vectors
                    .keys()
                    .map(|m| (m.clone(), q.clone()))
                    .collect();
                (entry.name, qs)
            }
            Target::Unstored(u) => {
                let qs = u
                    .vectors
                    .iter()
                    .map(|(m, (space, e))| {
                        let q = Query::Vector {
                            space: SpaceSel::Name(space.clone()),
                            embedding: e.clone(),
                        };
                        (m.clone(), q)
                    })
                    .collect();
                (u.name.clone(), qs)
            }
        };
        for (method, q) in queries {
            let hits = self.nearest(&q, n, &Filter::all().method(method.clone()))?;
            out.insert(
                method,
                hits.into_iter()
                    .filter(|h| h.name != name)
                    .map(|h| (h.name, h.score as f64))
                    .collect(),
            );
        }
        Ok((name, out))
    }

    /// The method whose space answers a question about `target`: the one `asked` for, else
    /// `default` if the target has it, else the target's only method (see
    /// [`RecommendOptions::method`]; `select-prompt` passes the default knn method).
    pub(crate) fn pick_method(
        sims: &Similarities,
        asked: Option<&str>,
        default: &str,
        target: &str,
    ) -> Result<String> {
        match asked {
            Some(m) if sims.contains_key(m) => Ok(m.to_string()),
            Some(m) => Err(Error::invalid(
                format!("entry {target:?}"),
                format!(
                    "it has no {m} vector (it has: {}); pick one of those with --method",
                    sims.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            None if sims.contains_key(default) => Ok(default.to_string()),
            None if sims.len() == 1 => Ok(sims.keys().next().cloned().unwrap_or_default()),
            None => Err(Error::invalid(
                format!("entry {target:?}"),
                format!(
                    "it has several vectors and no {default} one; name the method with \
                     --method ({})",
                    sims.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// The `k` best sources to train on before `target`, best first, with their evidence
    /// (see the [module docs](crate::recommend) for the rule).
    ///
    /// ```
    /// use taskdb::{Kind, NewEntry, NewOutcome, RecommendOptions, TaskDb, EntryRef};
    /// # fn main() -> taskdb::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = TaskDb::open(dir.path().join("tasks.taskdb"))?;
    /// db.put(vec![
    ///     NewEntry::external("target", Kind::Dataset, "s", vec![1.0, 0.0, 0.0]),
    ///     NewEntry::external("near", Kind::Dataset, "s", vec![0.9, 0.1, 0.0]),
    ///     NewEntry::external("far", Kind::Dataset, "s", vec![0.0, 0.2, 1.0]),
    /// ])?;
    /// let recs = db.recommend(&EntryRef::latest("target"), &RecommendOptions::default())?;
    /// assert_eq!(recs[0].name, "near");
    /// // A measurement outranks any estimate.
    /// db.add_outcomes(vec![NewOutcome::new("far", "target", 0.05)], &|_| "example".into())?;
    /// let recs = db.recommend(&EntryRef::latest("target"), &RecommendOptions::default())?;
    /// assert_eq!((recs[0].name.as_str(), recs[0].measured_gain), ("far", Some(0.05)));
    /// # Ok(()) }
    /// ```
    pub fn recommend(
        &self,
        target: &EntryRef,
        opts: &RecommendOptions,
    ) -> Result<Vec<Recommendation>> {
        self.recommend_for(&Target::Stored(target.clone()), opts)
    }

    /// [`TaskDb::recommend`] for a stored or an unstored target (an unstored one has no
    /// outcomes of its own; pivots still apply).
    pub fn recommend_for(
        &self,
        target: &Target,
        opts: &RecommendOptions,
    ) -> Result<Vec<Recommendation>> {
        if !(0.0..=1.0).contains(&opts.lambda) {
            return Err(Error::invalid(
                "lambda",
                format!("{} is not in [0, 1]", opts.lambda),
            ));
        }
        let (target_name, sims) = self.similarities_of(target)?;
        if sims.is_empty() {
            return Err(Error::invalid(
                format!("target {target_name:?}"),
                "it has no vector in any space of this database, so nothing can be compared \
                 with it",
            ));
        }
        let method = Self::pick_method(
            &sims,
            opts.method.as_deref(),
            RECOMMEND_METHOD,
            &target_name,
        )?;
        let primary = &sims[&method];
        let summaries: BTreeMap<String, (u32, Kind)> = self
            .list(&Filter::all())?
            .into_iter()
            .map(|s| (s.name, (s.version, s.kind)))
            .collect();
        let candidates: Vec<Candidate> = primary
            .iter()
            .filter(|(name, _)| match (opts.from, summaries.get(*name)) {
                (Some(k), Some((_, kind))) => *kind == k,
                (None, Some(_)) => true,
                (_, None) => false,
            })
            .map(|(name, &similarity)| Candidate {
                name: name.clone(),
                similarity,
            })
            .collect();
        let outcomes: Vec<NewOutcome> = if opts.use_outcomes {
            self.outcomes()?.into_iter().map(|o| o.outcome).collect()
        } else {
            Vec::new()
        };
        let ranked = rank(&target_name, &candidates, primary, &outcomes, opts.lambda);
        ranked
            .into_iter()
            .take(opts.k)
            .map(|r| {
                let (version, kind) = summaries[&r.name];
                let similarity = sims
                    .iter()
                    .filter_map(|(m, s)| s.get(&r.name).map(|v| (m.clone(), *v)))
                    .collect();
                let rows = self
                    .get(&EntryRef::latest(r.name.as_str()))
                    .ok()
                    .and_then(|e| {
                        let rows = &e.provenance.rows;
                        rows.get("used").or_else(|| rows.get("answered")).copied()
                    });
                Ok(Recommendation {
                    name: r.name,
                    version,
                    kind,
                    basis: r.basis,
                    score: r.score,
                    similarity,
                    measured_gain: r.measured_gain,
                    measured_records: r.measured_records,
                    pivot_estimate: r.pivot_estimate,
                    pivots: r.pivots,
                    rows,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(v: &[(&str, f64)]) -> (Vec<Candidate>, BTreeMap<String, f64>) {
        let c = v
            .iter()
            .map(|(n, s)| Candidate {
                name: n.to_string(),
                similarity: *s,
            })
            .collect();
        let m = v.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        (c, m)
    }

    fn names(r: &[Ranked]) -> Vec<&str> {
        r.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn without_outcomes_similarity_decides() {
        let (c, m) = cands(&[("a", 0.2), ("b", 0.9), ("c", 0.5)]);
        let r = rank("t", &c, &m, &[], 0.5);
        assert_eq!(names(&r), ["b", "c", "a"]);
        assert!(r.iter().all(|r| r.basis == Basis::Estimated));
        assert_eq!(r[0].score, 0.9);
    }

    #[test]
    fn a_measurement_outranks_any_estimate_and_a_harmful_one_sinks() {
        let (c, m) = cands(&[("a", 0.2), ("b", 0.9), ("c", 0.5)]);
        let o = vec![
            NewOutcome::new("a", "t", 0.04),
            NewOutcome::new("a", "t", 0.02),
            NewOutcome::new("b", "t", -0.01),
        ];
        let r = rank("t", &c, &m, &o, 0.5);
        assert_eq!(names(&r), ["a", "c", "b"]);
        assert_eq!(r[0].basis, Basis::Measured);
        assert!((r[0].measured_gain.unwrap() - 0.03).abs() < 1e-12);
        assert_eq!(r[0].measured_records, 2);
        assert_eq!(r[2].basis, Basis::MeasuredNoGain);
    }

    #[test]
    fn pivots_on_similar_targets_move_estimates() {
        // p1 is much more similar to t than the average entry; p2 is not.
        let (c, mut m) = cands(&[("a", 0.50), ("b", 0.52)]);
        m.insert("p1".into(), 0.9);
        m.insert("p2".into(), 0.1);
        let o = vec![
            NewOutcome::new("a", "p1", 0.10),
            NewOutcome::new("b", "p1", -0.10),
            NewOutcome::new("b", "p2", 0.50),
        ];
        let without = rank("t", &c, &m, &[], 0.5);
        assert_eq!(names(&without), ["b", "a"]);
        let with = rank("t", &c, &m, &o, 0.5);
        assert_eq!(names(&with), ["a", "b"], "{with:?}");
        let b = &with[1];
        let p2 = b.pivots.iter().find(|p| p.target == "p2").unwrap();
        assert_eq!(
            p2.weight, 0.0,
            "a pivot less similar than average weighs nothing"
        );
        assert!((b.pivot_estimate.unwrap() + 0.10).abs() < 1e-12);
        // λ = 0 ignores pivots.
        assert_eq!(names(&rank("t", &c, &m, &o, 0.0)), ["b", "a"]);
    }
}
