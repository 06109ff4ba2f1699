//! Zero-shot prompt selection (`taskdb select-prompt`): which stored (LLM, prompt) model entry
//! performs the task a target dataset poses. FUTE's rule: rank the candidates' model task
//! embeddings by similarity to the target's dataset task embedding. Beside it, a label-free
//! baseline computed from what taskdb already stores: the entropy of each candidate's labels
//! on U (a prompt that makes the model answer one label for everything is a poor prompt;
//! Yang et al., TACL 2024, compare such baselines), and the mutual information between inputs
//! and outputs (Sorensen et al. 2022) from the model's outputs on U stored at ingestion
//! ([`crate::ModelOutputs::mutual_information`]).

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
    /// Mutual information between U's texts and its outputs there, I(X;Y) = H(mean p(y|x)) −
    /// mean H(p(y|x)) over the answered rows, normalised like `output_entropy` (equal to it
    /// for hard labels, where H(p(y|x)) = 0). `None` when its outputs on U are not stored (a
    /// model ingested before taskdb stored them: ingest it again), see
    /// [`PromptChoice::mi_note`].
    pub mutual_information: Option<f64>,
    /// Rank by mutual information (1 = the mutual-information baseline's choice).
    pub mi_rank: Option<usize>,
    /// Its labels on U with their counts, as recorded at ingestion.
    pub label_counts: std::collections::BTreeMap<String, u64>,
}

impl PromptChoice {
    /// One note for a ranking where some candidate has no mutual information, naming them,
    /// saying why and how to get it; `None` when every candidate has it.
    pub fn mi_note(choices: &[PromptChoice]) -> Option<String> {
        let missing: Vec<String> = choices
            .iter()
            .filter(|c| c.mutual_information.is_none())
            .map(|c| format!("{}@{}", c.name, c.version))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "mutual information is unavailable for {}: their outputs on U are not stored \
                 (ingested before taskdb stored them); ingest them again (`taskdb ingest model \
                 NAME …`, a new version) to get it",
                missing.join(", ")
            )
        })
    }
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
            let mi = self
                .model_outputs(&EntryRef {
                    name: s.name.clone(),
                    version: Some(s.version),
                })?
                .and_then(|o| o.mutual_information(target_labels));
            out.push(PromptChoice {
                name: s.name,
                version: s.version,
                similarity,
                rank: 0,
                output_entropy: normalised_entropy(&v, target_labels),
                entropy_rank: None,
                mutual_information: mi,
                mi_rank: None,
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
        for (r, i) in rank_by(&out, |c| c.output_entropy) {
            out[i].entropy_rank = Some(r);
        }
        for (r, i) in rank_by(&out, |c| c.mutual_information) {
            out[i].mi_rank = Some(r);
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

/// `(rank, index)` of the choices that have a `score`, highest first (ties by name).
fn rank_by(out: &[PromptChoice], score: fn(&PromptChoice) -> Option<f64>) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..out.len())
        .filter(|&i| score(&out[i]).is_some())
        .collect();
    idx.sort_by(|&a, &b| {
        score(&out[b])
            .partial_cmp(&score(&out[a]))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(out[a].name.cmp(&out[b].name))
    });
    idx.into_iter()
        .enumerate()
        .map(|(r, i)| (r + 1, i))
        .collect()
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
