//! Comparing two stored tasks (`taskdb compare A B`): their similarity in every space they
//! share, where each ranks among the other's neighbours there, and what differs in what they
//! were made from (labels, sizes, sources).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::model::{Entry, EntryRef, Kind};
use crate::TaskDb;

/// Two tasks side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The first entry (`name@version`).
    pub a: Side,
    /// The second entry.
    pub b: Side,
    /// One row per space they share, by method.
    pub spaces: Vec<SharedSpace>,
    /// Methods only one of them has a vector for (`a` or `b`, then the method).
    pub not_shared: Vec<(String, String)>,
}

/// What one entry was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// `name@version`.
    pub entry: String,
    /// Dataset or model.
    pub kind: Kind,
    /// Rows used (datasets) or probe texts answered (models), as recorded.
    pub rows: BTreeMap<String, u64>,
    /// Its labels with their counts (datasets) or the labels it gave on U (models), when
    /// recorded.
    pub labels: BTreeMap<String, u64>,
    /// Where it came from: the input file's sha256, or the model's source.
    pub source: String,
}

/// The two entries in one space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedSpace {
    /// The method.
    pub method: String,
    /// The space's name.
    pub space: String,
    /// Their similarity (the exact knn score).
    pub similarity: f64,
    /// B's rank among A's neighbours (1 = A's nearest), out of `neighbours`.
    pub rank_of_b_for_a: usize,
    /// A's rank among B's neighbours.
    pub rank_of_a_for_b: usize,
    /// How many live entries other than the query share the space.
    pub neighbours: usize,
}

fn side(e: &Entry) -> Side {
    let p = &e.provenance;
    let labels = e.labels();
    let source = match (&p.input_sha256, p.params.get("source")) {
        (Some(sha), _) => format!("input sha256 {sha}"),
        (None, Some(s)) => match (s["type"].as_str(), &s["command"], &s["path"]) {
            (Some("command"), serde_json::Value::String(c), _) => format!("model command `{c}`"),
            (Some("predictions"), serde_json::Value::String(f), _)
            | (Some("predictions"), _, serde_json::Value::String(f)) => {
                format!("predictions file {f}")
            }
            _ => s.to_string(),
        },
        (None, None) => "not recorded".to_string(),
    };
    Side {
        entry: format!("{}@{}", e.name, e.version),
        kind: e.kind,
        rows: p.rows.clone(),
        labels,
        source,
    }
}

impl TaskDb {
    /// Compares the tasks `a` and `b` (see [`Comparison`]).
    pub fn compare(&self, a: &EntryRef, b: &EntryRef) -> Result<Comparison> {
        let (ea, eb) = (self.get(a)?, self.get(b)?);
        let (ra, rb) = (exact_ref(&ea), exact_ref(&eb));
        let (sa, sb) = (self.similarities(&ra)?, self.similarities(&rb)?);
        let spaces_by_id: BTreeMap<_, _> = self
            .spaces()?
            .into_iter()
            .map(|s| (s.id, s.def.name))
            .collect();
        let mut spaces = Vec::new();
        let mut not_shared = Vec::new();
        for (method, (sid, _)) in &ea.vectors {
            match eb.vectors.get(method) {
                Some((sid_b, _)) if sid_b == sid => {
                    let rank_in = |sims: &BTreeMap<String, f64>, other: &str| {
                        let s = sims.get(other).copied().unwrap_or(f64::NEG_INFINITY);
                        1 + sims.values().filter(|&&x| x > s).count()
                    };
                    let (na, nb) = (&sa[method], &sb[method]);
                    spaces.push(SharedSpace {
                        method: method.clone(),
                        space: spaces_by_id.get(sid).cloned().unwrap_or_default(),
                        similarity: na.get(&eb.name).copied().unwrap_or(f64::NAN),
                        rank_of_b_for_a: rank_in(na, &eb.name),
                        rank_of_a_for_b: rank_in(nb, &ea.name),
                        neighbours: na.len(),
                    });
                }
                _ => not_shared.push(("a".to_string(), method.clone())),
            }
        }
        for method in eb.vectors.keys() {
            if !spaces.iter().any(|s| &s.method == method) {
                not_shared.push(("b".to_string(), method.clone()));
            }
        }
        Ok(Comparison {
            a: side(&ea),
            b: side(&eb),
            spaces,
            not_shared,
        })
    }
}

fn exact_ref(e: &Entry) -> EntryRef {
    EntryRef {
        name: e.name.clone(),
        version: Some(e.version),
    }
}
