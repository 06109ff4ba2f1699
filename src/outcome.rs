//! Recorded transfer outcomes: what a team measured when it trained on SOURCE before TARGET.
//!
//! An outcome is a fact, not an estimate: `value` is the target's metric after training on the
//! source first, `baseline` (optional) the same metric without it, so the *gain* is
//! `value − baseline`, or `value` itself when no baseline is given (a relative change, as in
//! TaskWeb's tables). [`crate::TaskDb::recommend`] puts a measured gain above every estimate
//! and uses the outcomes of similar targets as pivots (see `recommend.rs`).
//!
//! Outcomes name entries by name (not version): a transfer result is about tasks, and stays
//! true when an entry is re-ingested. They live in the redb table `outcomes` (id → JSON with a
//! CRC32 trailer); databases made before outcomes existed simply have none.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An outcome to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutcome {
    /// The entry trained on first.
    pub source: String,
    /// The entry whose metric was measured.
    pub target: String,
    /// The target's metric after training on the source first.
    pub value: f64,
    /// The metric's name (e.g. `accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The same metric without the source (the gain is `value − baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The model that was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The run's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl NewOutcome {
    /// An outcome with only the required fields.
    pub fn new(source: impl Into<String>, target: impl Into<String>, value: f64) -> NewOutcome {
        NewOutcome {
            source: source.into(),
            target: target.into(),
            value,
            metric: None,
            baseline: None,
            model: None,
            seed: None,
            note: None,
        }
    }

    /// The gain the outcome records: `value − baseline`, or `value` without a baseline.
    pub fn gain(&self) -> f64 {
        self.value - self.baseline.unwrap_or(0.0)
    }

    /// What makes two records the same measurement: (source, target, metric, model, seed).
    pub(crate) fn identity(&self) -> (&str, &str, Option<&str>, Option<&str>, Option<u64>) {
        (
            &self.source,
            &self.target,
            self.metric.as_deref(),
            self.model.as_deref(),
            self.seed,
        )
    }

    /// The checks that need no database: names present and distinct, finite numbers.
    pub(crate) fn validate(&self, ctx: &str) -> Result<()> {
        if self.source.is_empty() || self.target.is_empty() {
            return Err(Error::invalid(ctx, "source and target must be entry names"));
        }
        if self.source == self.target {
            return Err(Error::invalid(
                ctx,
                format!(
                    "source and target are both {:?}: an outcome records a transfer from one \
                     task to another",
                    self.source
                ),
            ));
        }
        if !self.value.is_finite() {
            return Err(Error::invalid(
                ctx,
                format!("value {} is not a finite number", self.value),
            ));
        }
        if let Some(b) = self.baseline.filter(|b| !b.is_finite()) {
            return Err(Error::invalid(
                ctx,
                format!("baseline {b} is not a finite number"),
            ));
        }
        Ok(())
    }
}

/// A stored outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Its id (never reused).
    pub id: u64,
    /// What was recorded.
    #[serde(flatten)]
    pub outcome: NewOutcome,
    /// When it was recorded (ms since the Unix epoch).
    pub recorded_at_ms: u64,
    /// Where it came from (`outcome add`, or `FILE line N`).
    #[serde(default)]
    pub origin: String,
}

impl Outcome {
    /// The gain the outcome records (see [`NewOutcome::gain`]).
    pub fn gain(&self) -> f64 {
        self.outcome.gain()
    }
}

/// Encodes a stored outcome: JSON, then the CRC32 of the JSON (4 bytes LE).
pub(crate) fn encode(o: &Outcome) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec(o).map_err(|e| Error::Internal(format!("outcome json: {e}")))?;
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    Ok(v)
}

/// Decodes a stored outcome, verifying its checksum.
pub(crate) fn decode(id: u64, bytes: &[u8]) -> Result<Outcome> {
    let corrupt = |detail: String| Error::Corrupt {
        what: format!("outcome {id}"),
        detail,
    };
    if bytes.len() < 4 {
        return Err(corrupt("record too short".into()));
    }
    let (json, crc) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(json) != want {
        return Err(corrupt(
            "checksum mismatch: the record is damaged; remove it with `taskdb outcome rm` and \
             record it again"
                .into(),
        ));
    }
    serde_json::from_slice(json).map_err(|e| corrupt(format!("unreadable record: {e}")))
}

/// Reads outcomes from a CSV file with a header. Columns by name: `source`, `target` and the
/// value column (`value_column`, default `value`) are required; `metric`, `baseline`, `model`,
/// `seed` and `note` are optional; other columns are an error (a misspelt optional column
/// would otherwise be dropped silently). Every error names the file, line and column.
pub fn read_outcomes_csv(path: &Path, value_column: Option<&str>) -> Result<Vec<NewOutcome>> {
    let value_col = value_column.unwrap_or("value");
    let file = path.display().to_string();
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| csv_err(&file, e))?;
    let headers: Vec<String> = r
        .headers()
        .map_err(|e| csv_err(&file, e))?
        .iter()
        .map(|h| h.to_string())
        .collect();
    let known = [
        "source", "target", value_col, "metric", "baseline", "model", "seed", "note",
    ];
    let mut col = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !known.contains(&h.as_str()) {
            return Err(Error::invalid(
                format!("{file} line 1"),
                format!(
                    "unknown column {h:?}; the columns are source, target, {value_col} (the \
                     value) and optionally metric, baseline, model, seed, note{}",
                    if value_col == "value" {
                        " (name another value column with --value-column)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        col.insert(h.as_str(), i);
    }
    for need in ["source", "target", value_col] {
        if !col.contains_key(need) {
            return Err(Error::invalid(
                format!("{file} line 1"),
                format!(
                    "missing column {need:?} (found: {}); the header must name source, \
                     target and {value_col}",
                    headers.join(", ")
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| csv_err(&file, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let at = |c: &str| format!("{file} line {line}, column {c:?}");
        let get = |c: &str| col.get(c).and_then(|&i| rec.get(i)).unwrap_or("");
        let opt = |c: &str| Some(get(c).to_string()).filter(|s| !s.is_empty());
        let num = |c: &str| -> Result<Option<f64>> {
            match opt(c) {
                None => Ok(None),
                Some(s) => s
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| Error::invalid(at(c), format!("{s:?} is not a number"))),
            }
        };
        let value = num(value_col)?.ok_or_else(|| Error::invalid(at(value_col), "empty value"))?;
        let seed =
            match opt("seed") {
                None => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    Error::invalid(at("seed"), format!("{s:?} is not a whole number"))
                })?),
            };
        let o = NewOutcome {
            source: get("source").to_string(),
            target: get("target").to_string(),
            value,
            metric: opt("metric"),
            baseline: num("baseline")?,
            model: opt("model"),
            seed,
            note: opt("note"),
        };
        o.validate(&format!("{file} line {line}"))?;
        out.push(o);
    }
    Ok(out)
}

fn csv_err(file: &str, e: csv::Error) -> Error {
    let at = match e.position() {
        Some(p) => format!("{file} line {}", p.line()),
        None => file.to_string(),
    };
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(file, io),
        k => Error::invalid(at, format!("malformed CSV: {k:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(o: NewOutcome) -> Outcome {
        Outcome {
            id: 3,
            outcome: o,
            recorded_at_ms: 1,
            origin: "test".into(),
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let mut o = NewOutcome::new("a", "b", 0.81);
        o.baseline = Some(0.75);
        o.seed = Some(7);
        let s = stored(o);
        let bytes = encode(&s).unwrap();
        assert_eq!(decode(3, &bytes).unwrap(), s);
        assert!((s.gain() - 0.06).abs() < 1e-12);
        let mut bad = bytes.clone();
        bad[2] ^= 1;
        let e = decode(3, &bad).unwrap_err().to_string();
        assert!(e.contains("outcome 3") && e.contains("checksum"), "{e}");
        assert!(decode(3, &bytes[..2]).is_err());
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let e = |o: NewOutcome| o.validate("here").unwrap_err().to_string();
        assert!(e(NewOutcome::new("a", "a", 1.0)).contains("both \"a\""));
        assert!(e(NewOutcome::new("a", "b", f64::NAN)).contains("not a finite number"));
        let mut o = NewOutcome::new("a", "b", 1.0);
        o.baseline = Some(f64::INFINITY);
        assert!(e(o).contains("baseline"));
        assert!(e(NewOutcome::new("", "b", 1.0)).contains("entry names"));
    }

    #[test]
    fn csv_reading_names_file_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.csv");
        std::fs::write(
            &p,
            "target,source,combined_score,seed\nt,s1,0.5,1\nt,s2,-0.25,\n",
        )
        .unwrap();
        let got = read_outcomes_csv(&p, Some("combined_score")).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].source.as_str(), got[0].seed), ("s1", Some(1)));
        assert_eq!(got[1].gain(), -0.25);
        // Without --value-column the value column is missing.
        let e = read_outcomes_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("combined_score"), "{e}");
        std::fs::write(&p, "source,target,value\ns,t,abc\n").unwrap();
        let e = read_outcomes_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"value\""), "{e}");
        std::fs::write(&p, "source,target,value,baselne\ns,t,1,0\n").unwrap();
        let e = read_outcomes_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("unknown column \"baselne\""), "{e}");
        std::fs::write(&p, "source,target,value\ns,t,NaN\n").unwrap();
        let e = read_outcomes_csv(&p, None).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("finite"), "{e}");
    }
}
