//! Zero-shot prompt selection (`taskdb select-prompt`): which stored (LLM, prompt) model entry
//! performs the task a target dataset poses. FUTE's rule: rank the candidates' model task
//! embeddings by similarity to the target's dataset task embedding. Beside it, a label-free
//! baseline computed from what taskdb already stores: the entropy of each candidate's labels
//! on U (a prompt that makes the model answer one label for everything is a poor prompt;
//! Yang et al., TACL 2024, compare such baselines). Mutual information between inputs and
//! outputs (Sorensen et al. 2022) needs each model's per-text scores on U, which taskdb does
//! not store yet; it is not offered.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Entry, EntryRef, Kind};
use crate::search::Filter;
use crate::TaskDb;

/// One candidate prompt (a stored model entry) for a target dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptChoice {
    /// The model entry.
    pub name: String,
    /// Its latest version.
    pub version: u32,
    /// Similarity of its model task embedding to the target's (FUTE's rule).
    pub similarity: f64,
    /// Rank by similarity (1 = FUTE's choice).
    pub rank: usize,
    /// Entropy of its labels on U, normalised by log(number of labels of the target, or of
    /// labels it used if more): 1 = every label used equally, 0 = one label for everything;
    /// `None` when not recorded.
    pub output_entropy: Option<f64>,
    /// Rank by output entropy (1 = the entropy baseline's choice).
    pub entropy_rank: Option<usize>,
    /// Its labels on U with their counts, as recorded at ingestion.
    pub label_counts: std::collections::BTreeMap<String, u64>,
}

/// The entropy of a label distribution normalised by `log k`, k = the number of labels the
/// task has (at least the number used); `None` when k < 2 or nothing was counted. A model that
/// gives one label to everything scores 0.
pub(crate) fn normalised_entropy(counts: &[u64], k: usize) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    let k = k.max(counts.len());
    if k < 2 || total == 0 {
        return None;
    }
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum();
    Some(h / (k as f64).ln())
}

fn label_counts(e: &Entry) -> std::collections::BTreeMap<String, u64> {
    e.provenance.details["outputs"]["label_counts"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

impl TaskDb {
    /// Ranks the stored model entries passing `candidates` (e.g. a name prefix or a tag such as
    /// `llm=smollm2`; the kind is set to models) as prompts for the dataset `target`: by
    /// similarity in `method`'s space (default: the default method), with each one's output
    /// entropy and its rank by it beside.
    pub fn select_prompt(
        &self,
        target: &EntryRef,
        candidates: &Filter,
        method: Option<&str>,
    ) -> Result<Vec<PromptChoice>> {
        let entry = self.get(target)?;
        if entry.kind != Kind::Dataset {
            return Err(Error::invalid(
                format!("target {}@{}", entry.name, entry.version),
                "it is a model; select-prompt ranks models for a dataset: name a dataset",
            ));
        }
        let sims = self.similarities(target)?;
        let method = Self::pick_method(&sims, method, crate::DEFAULT_METHOD, &entry.name)?;
        let filter = candidates.clone().kind(Kind::Model);
        let target_labels = entry.provenance.details["dataset"]["label_counts"]
            .as_object()
            .map(|m| m.len())
            .unwrap_or(0);
        let mut out: Vec<PromptChoice> = Vec::new();
        for s in self.list(&filter)? {
            let Some(&similarity) = sims[&method].get(&s.name) else {
                continue; // not in this space
            };
            let e = self.get(&EntryRef::latest(s.name.as_str()))?;
            let counts = label_counts(&e);
            let v: Vec<u64> = counts.values().copied().collect();
            out.push(PromptChoice {
                name: s.name,
                version: s.version,
                similarity,
                rank: 0,
                output_entropy: normalised_entropy(&v, target_labels),
                entropy_rank: None,
                label_counts: counts,
            });
        }
        if out.is_empty() {
            return Err(Error::NotFound {
                what: format!(
                    "model entries passing the filter with a {method} vector like {:?}'s",
                    entry.name
                ),
            });
        }
        let mut by_entropy: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].output_entropy.is_some())
            .collect();
        by_entropy.sort_by(|&a, &b| {
            out[b]
                .output_entropy
                .partial_cmp(&out[a].output_entropy)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(out[a].name.cmp(&out[b].name))
        });
        for (r, &i) in by_entropy.iter().enumerate() {
            out[i].entropy_rank = Some(r + 1);
        }
        out.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.name.cmp(&b.name))
        });
        for (r, c) in out.iter_mut().enumerate() {
            c.rank = r + 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_normalised_and_undefined_for_one_label() {
        assert_eq!(normalised_entropy(&[5, 5], 2), Some(1.0));
        assert_eq!(normalised_entropy(&[10, 0], 2), Some(0.0));
        let h = normalised_entropy(&[2, 1, 1], 3).unwrap();
        assert!(h > 0.9 && h < 1.0, "{h}");
        // One label used of a two-label task: 0, not undefined.
        assert_eq!(normalised_entropy(&[7], 2), Some(0.0));
        // Half the labels used equally: log 2 / log 4.
        assert!((normalised_entropy(&[3, 3], 4).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(normalised_entropy(&[7], 0), None);
        assert_eq!(normalised_entropy(&[0, 0], 2), None);
    }
}
