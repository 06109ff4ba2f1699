//! A model entry's outputs on the probe set U: for each probe row it answered, the row's index
//! in U and the model's distribution over its labels, exactly as the model task embedding was
//! computed from them (hard labels as a label index; soft scores as probabilities after the
//! normalisation and verbalizer mapping ingestion applies). Source data, not derived: written
//! with the entry in its transaction, never recomputed, removed with the entry by `compact`.
//!
//! They live in the redb table `model_outputs` (entry id → the record below); databases made
//! before it have no such table, and their entries simply have no outputs.
//!
//! Record (little-endian):
//! ```text
//! "TDo1"                       magic (4 bytes)
//! kind u8                      0: hard labels (u16 index), 1: soft (f32 rows), 2: hard (u32)
//! probe_rows u32               the size of U
//! rows u32, labels u32         answered rows, labels
//! fingerprint: len u16, bytes  U's fingerprint (hex)
//! labels: (len u32, UTF-8)…    the label names, in the embedding's order
//! row index u32 × rows         ascending, each < probe_rows
//! values                       hard: index u16 (or u32) × rows; soft: f32 × rows × labels
//! crc32 u32                    of every byte before it
//! ```
//! So 3,000 answered rows take 18 KB with hard labels and 12 KB + 12 KB per label with soft
//! scores (36 KB for two labels), plus the label names.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAGIC: [u8; 4] = *b"TDo1";
const HARD16: u8 = 0;
const SOFT32: u8 = 1;
const HARD32: u8 = 2;

/// How far a soft row's probabilities may sum from 1 (they are f32 values of a normalised f64
/// row).
const SUM_TOLERANCE: f64 = 1e-3;

/// The model's answers on the rows of U it answered, aligned with [`ModelOutputs::rows`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "values", rename_all = "lowercase")]
pub enum OutputValues {
    /// One label index (into [`ModelOutputs::labels`]) per row: every answer was a label.
    Hard(Vec<u32>),
    /// One probability distribution over the labels per row, row-major (`rows × labels`):
    /// some answer had scores (a hard answer among them is a one-hot row).
    Soft(Vec<f32>),
}

/// A model entry's outputs on U (see the module documentation), from
/// [`crate::TaskDb::model_outputs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutputs {
    /// The fingerprint of the probe set U the rows index.
    pub probe_fingerprint: String,
    /// The number of texts in U.
    pub probe_rows: u32,
    /// The label names, in the order of the distributions.
    pub labels: Vec<String>,
    /// The row index in U of each answered text, ascending.
    pub rows: Vec<u32>,
    /// The answers.
    #[serde(flatten)]
    pub values: OutputValues,
}

impl ModelOutputs {
    /// Whether every answer was a hard label.
    pub fn is_hard(&self) -> bool {
        matches!(self.values, OutputValues::Hard(_))
    }

    /// The model's distribution over [`ModelOutputs::labels`] on the `i`-th answered row
    /// (one-hot for a hard label).
    pub fn distribution(&self, i: usize) -> Vec<f64> {
        let k = self.labels.len();
        match &self.values {
            OutputValues::Hard(l) => {
                let mut row = vec![0.0; k];
                if let Some(&j) = l.get(i) {
                    if let Some(p) = row.get_mut(j as usize) {
                        *p = 1.0;
                    }
                }
                row
            }
            OutputValues::Soft(p) => p
                .get(i * k..(i + 1) * k)
                .map(|r| r.iter().map(|&x| f64::from(x)).collect())
                .unwrap_or_default(),
        }
    }

    /// Mutual information between the input and the model's output on the answered rows,
    /// I(X;Y) = H(mean over rows of p(y|x)) − mean over rows of H(p(y|x)), normalised by
    /// `log k`, k = `task_labels` or the number of labels given probability if more (as the
    /// output entropy is). `None` when k < 2 or no row was answered. For hard labels
    /// H(p(y|x)) = 0, so it equals the normalised entropy of the labels.
    pub fn mutual_information(&self, task_labels: usize) -> Option<f64> {
        let (n, k) = (self.rows.len(), self.labels.len());
        if n == 0 || k == 0 {
            return None;
        }
        let mut mean = vec![0.0f64; k];
        let mut cond = 0.0f64;
        for i in 0..n {
            let p = self.distribution(i);
            cond += entropy(&p);
            for (m, x) in mean.iter_mut().zip(&p) {
                *m += x;
            }
        }
        let total: f64 = mean.iter().sum();
        if total <= 0.0 {
            return None;
        }
        mean.iter_mut().for_each(|m| *m /= total);
        let used = mean.iter().filter(|&&m| m > 0.0).count();
        let k = task_labels.max(used);
        if k < 2 {
            return None;
        }
        // H(mean) ≥ mean H by concavity; rounding can make a degenerate model's difference a
        // hair below zero.
        let mi = (entropy(&mean) - cond / n as f64).max(0.0);
        Some(mi / (k as f64).ln())
    }

    /// Checks what a write needs: labels present and distinct, rows ascending inside U,
    /// label indices in range, soft rows finite, non-negative and summing to 1. `context`
    /// names the entry.
    pub(crate) fn validate(&self, context: &str) -> Result<()> {
        let bad = |m: String| Err(Error::invalid(context, format!("model outputs: {m}")));
        let k = self.labels.len();
        if k == 0 {
            return bad("no labels".into());
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.labels {
            if !seen.insert(l.as_str()) {
                return bad(format!("label {l:?} twice"));
            }
        }
        if self.probe_fingerprint.len() > usize::from(u16::MAX) {
            return bad("probe fingerprint too long".into());
        }
        if self.rows.windows(2).any(|w| w[0] >= w[1]) {
            return bad("row indices not strictly ascending".into());
        }
        if let Some(&r) = self.rows.last().filter(|&&r| r >= self.probe_rows) {
            return bad(format!("row {r} outside U ({} rows)", self.probe_rows));
        }
        let n = self.rows.len();
        match &self.values {
            OutputValues::Hard(l) => {
                if l.len() != n {
                    return bad(format!("{} labels for {n} rows", l.len()));
                }
                if let Some(j) = l.iter().find(|&&j| j as usize >= k) {
                    return bad(format!("label index {j} of {k} labels"));
                }
            }
            OutputValues::Soft(p) => {
                if p.len() != n * k {
                    return bad(format!(
                        "{} probabilities for {n} rows × {k} labels",
                        p.len()
                    ));
                }
                for (i, row) in p.chunks_exact(k).enumerate() {
                    let sum: f64 = row.iter().map(|&x| f64::from(x)).sum();
                    if row.iter().any(|x| !x.is_finite() || *x < 0.0)
                        || (sum - 1.0).abs() > SUM_TOLERANCE
                    {
                        return bad(format!(
                            "row {} (of U) is not a probability distribution ({row:?})",
                            self.rows[i]
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Shannon entropy (natural log) of a distribution.
fn entropy(p: &[f64]) -> f64 {
    p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum()
}

/// Encodes a record (see the module documentation); validate first.
pub(crate) fn encode(o: &ModelOutputs) -> Vec<u8> {
    let k = o.labels.len();
    let kind = match &o.values {
        OutputValues::Hard(_) if k <= usize::from(u16::MAX) + 1 => HARD16,
        OutputValues::Hard(_) => HARD32,
        OutputValues::Soft(_) => SOFT32,
    };
    let mut out = Vec::with_capacity(32 + o.rows.len() * 6);
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    for n in [o.probe_rows, o.rows.len() as u32, k as u32] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&(o.probe_fingerprint.len() as u16).to_le_bytes());
    out.extend_from_slice(o.probe_fingerprint.as_bytes());
    for l in &o.labels {
        out.extend_from_slice(&(l.len() as u32).to_le_bytes());
        out.extend_from_slice(l.as_bytes());
    }
    for r in &o.rows {
        out.extend_from_slice(&r.to_le_bytes());
    }
    match &o.values {
        OutputValues::Hard(l) if kind == HARD16 => {
            l.iter()
                .for_each(|&j| out.extend_from_slice(&(j as u16).to_le_bytes()));
        }
        OutputValues::Hard(l) => l
            .iter()
            .for_each(|j| out.extend_from_slice(&j.to_le_bytes())),
        OutputValues::Soft(p) => p
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A cursor over a record's bytes whose every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!(
                "truncated ({n} bytes wanted, {} left)",
                self.0.len()
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn text(&mut self, n: usize) -> std::result::Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
    /// `n` values of `w` bytes each, without trusting `n` for an allocation.
    fn array(&mut self, n: usize, w: usize) -> std::result::Result<&'a [u8], String> {
        let bytes = n.checked_mul(w).ok_or("a count overflows")?;
        self.take(bytes)
    }
}

/// Decodes and verifies a record (checksum, layout, then [`ModelOutputs::validate`]'s checks).
/// `what` names it in errors (`outputs of entry 12 (sst2@1)`).
pub(crate) fn decode(bytes: &[u8], what: &dyn Fn() -> String) -> Result<ModelOutputs> {
    let corrupt = |detail: String| Error::Corrupt {
        what: what(),
        detail,
    };
    if bytes.len() < MAGIC.len() + 4 || bytes[..4] != MAGIC {
        return Err(corrupt("not a model-outputs record (no magic)".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the record was \
             damaged on disk; ingest the model again to store its outputs anew"
        )));
    }
    let o = parse(&body[4..]).map_err(corrupt)?;
    o.validate(&what()).map_err(|e| corrupt(e.to_string()))?;
    Ok(o)
}

fn parse(body: &[u8]) -> std::result::Result<ModelOutputs, String> {
    let mut r = Reader(body);
    let kind = r.take(1)?[0];
    let (probe_rows, n, k) = (r.u32()?, r.u32()? as usize, r.u32()? as usize);
    let fl = usize::from(r.u16()?);
    let probe_fingerprint = r.text(fl)?;
    let mut labels = Vec::new();
    for _ in 0..k {
        let l = r.u32()? as usize;
        labels.push(r.text(l)?);
    }
    let rows = r
        .array(n, 4)?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
        .collect();
    let values = match kind {
        HARD16 => OutputValues::Hard(
            r.array(n, 2)?
                .chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes(c.try_into().expect("2"))))
                .collect(),
        ),
        HARD32 => OutputValues::Hard(
            r.array(n, 4)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        ),
        SOFT32 => OutputValues::Soft(
            r.array(n.checked_mul(k).ok_or("a count overflows")?, 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
        ),
        other => return Err(format!("unknown kind {other}")),
    };
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the values", r.0.len()));
    }
    Ok(ModelOutputs {
        probe_fingerprint,
        probe_rows,
        labels,
        rows,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft(rows: Vec<u32>, p: Vec<f32>) -> ModelOutputs {
        ModelOutputs {
            probe_fingerprint: "abcd".into(),
            probe_rows: 10,
            labels: vec!["neg".into(), "pos".into()],
            rows,
            values: OutputValues::Soft(p),
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_named() {
        let hard = ModelOutputs {
            values: OutputValues::Hard(vec![1, 0, 1]),
            ..soft(vec![0, 3, 9], vec![])
        };
        let s = soft(vec![1, 2], vec![0.25, 0.75, 1.0, 0.0]);
        for o in [&hard, &s] {
            o.validate("t").unwrap();
            let b = encode(o);
            assert_eq!(&decode(&b, &|| "x".into()).unwrap(), o);
            for i in 0..b.len() {
                let mut d = b.clone();
                d[i] ^= 0x10;
                let e = decode(&d, &|| "outputs of entry 7".into()).unwrap_err();
                assert!(e.to_string().contains("outputs of entry 7"), "{e}");
            }
            assert!(decode(&b[..b.len() - 1], &|| "x".into()).is_err());
        }
        // 2 bytes per hard label, 4 per row index: 3,000 rows take 18,000 bytes plus the head.
        let head = 4 + 1 + 12 + 2 + 4 + 2 * (4 + 3) + 4;
        assert_eq!(encode(&hard).len(), head + 3 * 6);
    }

    #[test]
    fn mutual_information_by_hand() {
        // Two rows, (0.5, 0.5) and (1, 0): mean (0.75, 0.25).
        let o = soft(vec![0, 1], vec![0.5, 0.5, 1.0, 0.0]);
        let h = |p: &[f64]| -> f64 { p.iter().filter(|&&x| x > 0.0).map(|x| -x * x.ln()).sum() };
        let want = (h(&[0.75, 0.25]) - (h(&[0.5, 0.5]) + 0.0) / 2.0) / 2f64.ln();
        assert!((o.mutual_information(2).unwrap() - want).abs() < 1e-12);
        // Normalised by log 4 for a four-label task.
        let w4 = want * 2f64.ln() / 4f64.ln();
        assert!((o.mutual_information(4).unwrap() - w4).abs() < 1e-12);
        // The same distribution for every input: 0.
        let c = soft(vec![0, 1, 2], [0.3f32, 0.7].repeat(3));
        assert!(c.mutual_information(2).unwrap() < 1e-12);
        // Hard labels: the label entropy.
        let hard = ModelOutputs {
            values: OutputValues::Hard(vec![0, 1, 1, 1]),
            ..soft(vec![0, 1, 2, 3], vec![])
        };
        let e = h(&[0.25, 0.75]) / 2f64.ln();
        assert!((hard.mutual_information(2).unwrap() - e).abs() < 1e-12);
        assert_eq!(soft(vec![], vec![]).mutual_information(2), None);
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let e = |o: ModelOutputs| o.validate("entry \"m\"").unwrap_err().to_string();
        assert!(e(soft(vec![2, 1], vec![0.5, 0.5, 0.5, 0.5])).contains("ascending"));
        assert!(e(soft(vec![1, 10], vec![0.5, 0.5, 0.5, 0.5])).contains("outside U"));
        assert!(e(soft(vec![1], vec![0.5, 0.6])).contains("probability"));
        assert!(e(soft(vec![1], vec![f32::NAN, 1.0])).contains("entry \"m\""));
        let mut dup = soft(vec![1], vec![0.5, 0.5]);
        dup.labels[1] = "neg".into();
        assert!(e(dup).contains("twice"));
    }
}
