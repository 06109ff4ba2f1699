//! The leave-one-target-out evaluation of the recommender on a team's own outcome table
//! (`taskdb eval recommend`): NDCG@k, Regret@k and Spearman, beside similarity alone and the
//! exact expectation of a random order.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{rank, Candidate, Ranked};
use crate::error::Result;
use crate::model::EntryRef;
use crate::outcome::NewOutcome;
use crate::search::Filter;
use crate::TaskDb;

/// One ranker's figures in an evaluation (means over targets).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalRow {
    /// The ranker: `taskdb[ (default)]: METHOD, outcomes of other targets (λ …)`,
    /// `taskdb[ (default)] without outcomes: METHOD similarity`, or `random order (expected)`.
    pub ranker: String,
    /// NDCG@k with gains = outcome − the target's smallest outcome.
    pub ndcg: f64,
    /// Regret@k: mean outcome of the true top k − that of the predicted top k.
    pub regret: f64,
    /// Spearman correlation of predicted and true order.
    pub spearman: f64,
}

/// The leave-one-target-out evaluation of [`TaskDb::eval_recommend`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The k of NDCG@k and Regret@k.
    pub k: usize,
    /// The targets evaluated (each with at least two measured sources in the database).
    pub targets: Vec<String>,
    /// Outcome records not usable (entries not in the database), with why.
    pub skipped: Vec<String>,
    /// One row per ranker.
    pub rows: Vec<EvalRow>,
}

impl TaskDb {
    /// Leave-one-target-out evaluation of [`TaskDb::recommend`] on `outcomes` (a team's own
    /// table, not necessarily stored): for each target with at least two measured sources,
    /// its own outcomes are hidden, its measured sources are ranked (pivots from the other
    /// targets' outcomes), and the ranking is scored against the hidden truth. Beside it:
    /// similarity alone in each space the target has, and a random order (its exact
    /// expectation). Outcomes stored in the database are not used.
    pub fn eval_recommend(
        &self,
        outcomes: &[NewOutcome],
        k: usize,
        lambda: f64,
    ) -> Result<EvalReport> {
        let names: BTreeSet<String> = self
            .list(&Filter::all())?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut skipped = BTreeSet::new();
        let usable: Vec<NewOutcome> = outcomes
            .iter()
            .filter(|o| {
                for n in [&o.source, &o.target] {
                    if !names.contains(n.as_str()) {
                        skipped.insert(format!("{n}: not in the database"));
                        return false;
                    }
                }
                true
            })
            .cloned()
            .collect();
        let mut by_target: BTreeMap<&str, BTreeMap<&str, (f64, usize)>> = BTreeMap::new();
        for o in &usable {
            let g = by_target
                .entry(&o.target)
                .or_default()
                .entry(&o.source)
                .or_insert((0.0, 0));
            g.0 += o.gain();
            g.1 += 1;
        }
        let mut rows: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
        let mut targets = Vec::new();
        for (t, truth) in &by_target {
            if truth.len() < 2 {
                skipped.insert(format!("{t}: fewer than two measured sources"));
                continue;
            }
            targets.push(t.to_string());
            let truth: BTreeMap<&str, f64> = truth
                .iter()
                .map(|(s, &(g, n))| (*s, g / n as f64))
                .collect();
            let sims = self.similarities(&EntryRef::latest(*t))?;
            let method = Self::pick_method(&sims, None, super::RECOMMEND_METHOD, t)?;
            let others: Vec<NewOutcome> =
                usable.iter().filter(|o| o.target != *t).cloned().collect();
            let cands = |m: &str| -> Vec<Candidate> {
                truth
                    .keys()
                    .map(|s| Candidate {
                        name: s.to_string(),
                        similarity: sims[m].get(*s).copied().unwrap_or(f64::NEG_INFINITY),
                    })
                    .collect()
            };
            let order = |r: Vec<Ranked>| r.into_iter().map(|r| r.name).collect::<Vec<_>>();
            for m in sims.keys() {
                // The default recommending space is marked; the others are there to compare.
                let mark = if *m == method { " (default)" } else { "" };
                let ours = order(rank(t, &cands(m), &sims[m], &others, lambda));
                rows.entry(format!(
                    "taskdb{mark}: {m}, outcomes of other targets (λ {lambda})"
                ))
                .or_default()
                .push(metrics(&ours, &truth, k));
                let alone = order(rank(t, &cands(m), &sims[m], &[], lambda));
                rows.entry(format!("taskdb{mark} without outcomes: {m} similarity"))
                    .or_default()
                    .push(metrics(&alone, &truth, k));
            }
            rows.entry("random order (expected)".into())
                .or_default()
                .push(random_metrics(&truth, k));
        }
        let rows = rows
            .into_iter()
            .map(|(ranker, v)| {
                let n = v.len() as f64;
                EvalRow {
                    ranker,
                    ndcg: v.iter().map(|x| x.0).sum::<f64>() / n,
                    regret: v.iter().map(|x| x.1).sum::<f64>() / n,
                    spearman: v.iter().map(|x| x.2).sum::<f64>() / n,
                }
            })
            .collect();
        Ok(EvalReport {
            k,
            targets,
            skipped: skipped.into_iter().collect(),
            rows,
        })
    }
}

/// What both scorings need: the true gains best first, the smallest, the k used, and the
/// ideal DCG@k (gains are outcome − the smallest outcome).
struct Ideal {
    sorted: Vec<f64>,
    min: f64,
    k: usize,
    idcg: f64,
}

impl Ideal {
    fn of(truth: &BTreeMap<&str, f64>, k: usize) -> Ideal {
        let mut sorted: Vec<f64> = truth.values().copied().collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let min = sorted.last().copied().unwrap_or(0.0);
        let k = k.min(sorted.len()).max(1);
        let idcg = sorted
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, g)| (g - min) * discount(i))
            .sum();
        Ideal {
            sorted,
            min,
            k,
            idcg,
        }
    }

    /// The mean true outcome of the true top k.
    fn top(&self) -> f64 {
        self.sorted.iter().take(self.k).sum::<f64>() / self.k as f64
    }

    fn ndcg(&self, dcg: f64) -> f64 {
        if self.idcg > 0.0 {
            dcg / self.idcg
        } else {
            1.0
        }
    }
}

/// The DCG discount of rank `i` (0-based).
fn discount(i: usize) -> f64 {
    1.0 / ((i + 2) as f64).log2()
}

/// NDCG@k, Regret@k and Spearman of `order` (best first) against `truth` (gain per source).
pub(crate) fn metrics(order: &[String], truth: &BTreeMap<&str, f64>, k: usize) -> (f64, f64, f64) {
    let ideal = Ideal::of(truth, k);
    let top: Vec<f64> = order
        .iter()
        .take(ideal.k)
        .map(|s| truth[s.as_str()])
        .collect();
    let dcg: f64 = top
        .iter()
        .enumerate()
        .map(|(i, g)| (g - ideal.min) * discount(i))
        .sum();
    let top_pred = top.iter().sum::<f64>() / ideal.k as f64;
    (
        ideal.ndcg(dcg),
        ideal.top() - top_pred,
        spearman(order, truth),
    )
}

/// The expected NDCG@k and Regret@k of a uniformly random order (exact), Spearman 0.
fn random_metrics(truth: &BTreeMap<&str, f64>, k: usize) -> (f64, f64, f64) {
    let ideal = Ideal::of(truth, k);
    let n = truth.len() as f64;
    let mean = truth.values().sum::<f64>() / n;
    // Every rank holds each source with probability 1/n: E[DCG] = mean gain × Σ discounts.
    let dcg = (mean - ideal.min) * (0..ideal.k).map(discount).sum::<f64>();
    (ideal.ndcg(dcg), ideal.top() - mean, 0.0)
}

/// Spearman's rank correlation of the predicted order and the true gains (ties averaged).
fn spearman(order: &[String], truth: &BTreeMap<&str, f64>) -> f64 {
    let n = order.len();
    if n < 2 {
        return 0.0;
    }
    // Predicted rank: position in `order` (0 = best). True rank: by gain, ties averaged.
    let pred: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let gains: Vec<f64> = order.iter().map(|s| truth[s.as_str()]).collect();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| gains[b].total_cmp(&gains[a]));
    let mut true_rank = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && gains[idx[j + 1]] == gains[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0;
        for &x in &idx[i..=j] {
            true_rank[x] = r;
        }
        i = j + 1;
    }
    let mean = (n - 1) as f64 / 2.0;
    let cov: f64 = (0..n)
        .map(|i| (pred[i] - mean) * (true_rank[i] - mean))
        .sum();
    let var_p: f64 = pred.iter().map(|p| (p - mean).powi(2)).sum();
    let var_t: f64 = true_rank.iter().map(|t| (t - mean).powi(2)).sum();
    if var_t <= 0.0 {
        return 0.0;
    }
    cov / (var_p * var_t).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        let truth: BTreeMap<&str, f64> = [("a", 0.3), ("b", 0.1), ("c", 0.0)].into();
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (ndcg, regret, rho) = metrics(&o(&["a", "b", "c"]), &truth, 2);
        assert!((ndcg - 1.0).abs() < 1e-12 && regret.abs() < 1e-12 && (rho - 1.0).abs() < 1e-12);
        let (ndcg, regret, rho) = metrics(&o(&["c", "b", "a"]), &truth, 2);
        // DCG = 0 + 0.1/log2(3); IDCG = 0.3 + 0.1/log2(3).
        let l3 = 3f64.log2();
        assert!((ndcg - (0.1 / l3) / (0.3 + 0.1 / l3)).abs() < 1e-12);
        assert!((regret - (0.2 - 0.05)).abs() < 1e-12);
        assert!((rho + 1.0).abs() < 1e-12);
        let (rn, rr, rs) = random_metrics(&truth, 2);
        let mean_rel = (0.3 + 0.1) / 3.0;
        assert!((rn - mean_rel * (1.0 + 1.0 / l3) / (0.3 + 0.1 / l3)).abs() < 1e-12);
        assert!((rr - (0.2 - 0.4 / 3.0)).abs() < 1e-12);
        assert_eq!(rs, 0.0);
    }
}
