//! [`diff`]: what changed between two databases or snapshots (each read as one consistent
//! image): spaces and entries added and removed, names re-versioned, vectors changed (with the
//! cosine between old and new in each space), outcomes, and optionally top-K neighbours.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::image::{outcome_payload, Image, ImageEntry};
use crate::db::TaskDb;
use crate::error::{Error, Result};
use crate::model::Embedding;
use crate::search::{Filter, Query};
use crate::store::codec;

/// Options for [`diff`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// Also compare each shared entry's top-K neighbours in each space it has a vector in.
    pub neighbours: Option<usize>,
}

/// What changed from `a` to `b`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SnapshotDiff {
    /// Spaces in `b` only (by name).
    pub spaces_added: Vec<String>,
    /// Spaces in `a` only.
    pub spaces_removed: Vec<String>,
    /// Spaces in both under one name with different definitions.
    pub spaces_changed: Vec<String>,
    /// `name@version` live in `b` only, whose name is not live in `a` at all.
    pub added: Vec<String>,
    /// `name@version` live in `a` only, whose name is not live in `b` at all.
    pub removed: Vec<String>,
    /// Names live in both whose live versions differ (re-ingested, or a version removed), with
    /// the change between the latest versions.
    pub reversioned: Vec<EntryChange>,
    /// Entries live in both (same name and version) whose content differs.
    pub changed: Vec<EntryChange>,
    /// Entries live in both with identical content.
    pub unchanged: u64,
    /// Outcome records in `b` only (by content).
    pub outcomes_added: u64,
    /// Outcome records in `a` only.
    pub outcomes_removed: u64,
    /// With [`DiffOptions::neighbours`]: entries whose top-K neighbours differ.
    pub neighbours: Vec<NeighbourChange>,
}

impl SnapshotDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        *self
            == SnapshotDiff {
                unchanged: self.unchanged,
                ..SnapshotDiff::default()
            }
    }
}

/// How one entry (or a name's latest version) changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryChange {
    /// The entry in `a` (`name@version`).
    pub from: String,
    /// The entry in `b`.
    pub to: String,
    /// Live versions of the name in `a` and in `b` (for re-versioned names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<(Vec<u32>, Vec<u32>)>,
    /// Whether the kind, tags or provenance differ.
    pub kind_changed: bool,
    /// Whether the tags differ.
    pub tags_changed: bool,
    /// Whether the provenance differs.
    pub provenance_changed: bool,
    /// Whether the model's stored outputs on U differ (or exist on one side only).
    pub outputs_changed: bool,
    /// Every method whose vector differs (or exists on one side only).
    pub vectors: Vec<VectorChange>,
}

/// One vector of an [`EntryChange`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorChange {
    /// The method key.
    pub method: String,
    /// The space in `a` and in `b` (`None` on the side without the vector).
    pub space: (Option<String>, Option<String>),
    /// The cosine between the old and new vector (Frobenius for matrix spaces), when both
    /// exist; 1 means the same direction.
    pub cosine: Option<f64>,
}

/// An entry whose top-K neighbours differ in a space (compared by name, in order: a neighbour
/// re-versioned in place is the same neighbour).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighbourChange {
    /// The entry (`name@version` in `b`).
    pub entry: String,
    /// The method (space) searched.
    pub method: String,
    /// Top-K in `a`, nearest first.
    pub before: Vec<String>,
    /// Top-K in `b`.
    pub after: Vec<String>,
}

fn label(e: &ImageEntry) -> String {
    format!("{}@{}", e.rec.name, e.rec.version)
}

/// Compares `a` with `b` (databases, or snapshots opened with [`super::Snapshot::to_db`]).
pub fn diff(a: &TaskDb, b: &TaskDb, opts: &DiffOptions) -> Result<SnapshotDiff> {
    let (ia, ib) = (a.read_image()?, b.read_image()?);
    let mut d = SnapshotDiff::default();
    let sa: BTreeMap<&str, _> = ia
        .spaces
        .iter()
        .map(|s| (s.def.name.as_str(), &s.def))
        .collect();
    let sb: BTreeMap<&str, _> = ib
        .spaces
        .iter()
        .map(|s| (s.def.name.as_str(), &s.def))
        .collect();
    for (n, def) in &sb {
        match sa.get(n) {
            None => d.spaces_added.push(n.to_string()),
            Some(old) if old != def => d.spaces_changed.push(n.to_string()),
            _ => {}
        }
    }
    d.spaces_removed = sa
        .keys()
        .filter(|n| !sb.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    let by_name = |img: &'_ Image| {
        let mut m: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in img.entries.iter().enumerate() {
            m.entry(e.rec.name.clone()).or_default().push(i);
        }
        m
    };
    let (na, nb) = (by_name(&ia), by_name(&ib));
    for (name, ib_idx) in &nb {
        let Some(ia_idx) = na.get(name) else {
            d.added
                .extend(ib_idx.iter().map(|&i| label(&ib.entries[i])));
            continue;
        };
        let va: Vec<u32> = ia_idx.iter().map(|&i| ia.entries[i].rec.version).collect();
        let vb: Vec<u32> = ib_idx.iter().map(|&i| ib.entries[i].rec.version).collect();
        if va != vb {
            let (ea, eb) = (
                &ia.entries[*ia_idx.last().expect("non-empty")],
                &ib.entries[*ib_idx.last().expect("non-empty")],
            );
            let mut c = compare(&ia, ea, &ib, eb)?;
            c.versions = Some((va, vb));
            d.reversioned.push(c);
            continue;
        }
        for (&i, &j) in ia_idx.iter().zip(ib_idx) {
            let c = compare(&ia, &ia.entries[i], &ib, &ib.entries[j])?;
            if c.kind_changed
                || c.tags_changed
                || c.provenance_changed
                || c.outputs_changed
                || !c.vectors.is_empty()
            {
                d.changed.push(c);
            } else {
                d.unchanged += 1;
            }
        }
    }
    for (name, idx) in &na {
        if !nb.contains_key(name) {
            d.removed.extend(idx.iter().map(|&i| label(&ia.entries[i])));
        }
    }
    let outs = |img: &Image| -> Result<BTreeMap<Vec<u8>, u64>> {
        let mut m = BTreeMap::new();
        for o in &img.outcomes {
            *m.entry(outcome_payload(&o.outcome)?).or_insert(0) += 1;
        }
        Ok(m)
    };
    let (oa, ob) = (outs(&ia)?, outs(&ib)?);
    for (k, n) in &ob {
        d.outcomes_added += n.saturating_sub(*oa.get(k).unwrap_or(&0));
    }
    for (k, n) in &oa {
        d.outcomes_removed += n.saturating_sub(*ob.get(k).unwrap_or(&0));
    }
    if let Some(k) = opts.neighbours {
        d.neighbours = neighbours(a, b, &ia, &ib, &na, &nb, k)?;
    }
    Ok(d)
}

fn space_name(img: &Image, sid: u32) -> Option<String> {
    img.spaces
        .iter()
        .find(|s| s.id == sid)
        .map(|s| s.def.name.clone())
}

fn compare(ia: &Image, ea: &ImageEntry, ib: &Image, eb: &ImageEntry) -> Result<EntryChange> {
    let mut vectors = Vec::new();
    let methods: BTreeSet<&str> = ea
        .vectors
        .iter()
        .chain(&eb.vectors)
        .map(|(m, _)| m.as_str())
        .collect();
    for m in methods {
        let pa = ea.rec.vectors.iter().position(|v| v.method == m);
        let pb = eb.rec.vectors.iter().position(|v| v.method == m);
        let space = (
            pa.and_then(|i| space_name(ia, ea.rec.vectors[i].space)),
            pb.and_then(|i| space_name(ib, eb.rec.vectors[i].space)),
        );
        let cosine = match (pa, pb) {
            (Some(i), Some(j)) => {
                if ea.vectors[i].1 == eb.vectors[j].1 && space.0 == space.1 {
                    continue;
                }
                let dec =
                    |b: &[u8]| codec::decode_vector(b, || format!("vector {m:?}")).map(|x| x.0);
                cosine(&dec(&ea.vectors[i].1)?, &dec(&eb.vectors[j].1)?)
            }
            _ => None,
        };
        vectors.push(VectorChange {
            method: m.to_string(),
            space,
            cosine,
        });
    }
    Ok(EntryChange {
        from: label(ea),
        to: label(eb),
        versions: None,
        kind_changed: ea.rec.kind != eb.rec.kind,
        tags_changed: ea.rec.tags != eb.rec.tags,
        provenance_changed: ea.rec.provenance_json != eb.rec.provenance_json,
        outputs_changed: ea.outputs != eb.outputs,
        vectors,
    })
}

/// Cosine between two vectors of one shape (dense), or the Frobenius cosine of two symmetric
/// low-rank matrices `U diag(s) Uᵀ`; `None` across shapes or for a zero vector.
fn cosine(a: &Embedding, b: &Embedding) -> Option<f64> {
    let (ab, aa, bb) = match (a, b) {
        (Embedding::Dense(x), Embedding::Dense(y)) if x.len() == y.len() => {
            let dot = |p: &[f32], q: &[f32]| {
                p.iter()
                    .zip(q)
                    .map(|(u, v)| f64::from(*u) * f64::from(*v))
                    .sum::<f64>()
            };
            (dot(x, y), dot(x, x), dot(y, y))
        }
        (Embedding::LowRank(x), Embedding::LowRank(y)) if x.dim == y.dim => {
            let f = |p: &crate::model::LowRank, q: &crate::model::LowRank| {
                let mut s = 0.0;
                for (i, si) in p.s.iter().enumerate() {
                    let ui = &p.u[i * p.dim..(i + 1) * p.dim];
                    for (j, sj) in q.s.iter().enumerate() {
                        let vj = &q.u[j * q.dim..(j + 1) * q.dim];
                        let d: f64 = ui
                            .iter()
                            .zip(vj)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum();
                        s += f64::from(*si) * f64::from(*sj) * d * d;
                    }
                }
                s
            };
            (f(x, y), f(x, x), f(y, y))
        }
        _ => return None,
    };
    let n = (aa * bb).sqrt();
    (n > 0.0).then(|| ab / n)
}

#[allow(clippy::too_many_arguments)]
fn neighbours(
    a: &TaskDb,
    b: &TaskDb,
    ia: &Image,
    ib: &Image,
    na: &BTreeMap<String, Vec<usize>>,
    nb: &BTreeMap<String, Vec<usize>>,
    k: usize,
) -> Result<Vec<NeighbourChange>> {
    let mut out = Vec::new();
    for (name, jb) in nb {
        let Some(ja) = na.get(name) else { continue };
        let (ea, eb) = (
            &ia.entries[*ja.last().expect("non-empty")],
            &ib.entries[*jb.last().expect("non-empty")],
        );
        for (m, _) in &eb.vectors {
            if !ea.vectors.iter().any(|(ma, _)| ma == m) {
                continue;
            }
            let top = |db: &TaskDb, e: &ImageEntry| -> Result<Vec<String>> {
                let q = Query::entry(&label(e))?;
                match db.nearest(&q, k, &Filter::all().method(m.clone())) {
                    Ok(h) => Ok(h
                        .into_iter()
                        .map(|h| format!("{}@{}", h.name, h.version))
                        .collect()),
                    Err(Error::NotFound { .. }) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            };
            let (before, after) = (top(a, ea)?, top(b, eb)?);
            // Compared by name: a neighbour re-versioned in place is the same neighbour.
            let names = |v: &[String]| -> Vec<String> {
                v.iter()
                    .map(|s| s.rsplit_once('@').map(|x| x.0).unwrap_or(s).to_string())
                    .collect()
            };
            if names(&before) != names(&after) {
                out.push(NeighbourChange {
                    entry: label(eb),
                    method: m.clone(),
                    before,
                    after,
                });
            }
        }
    }
    Ok(out)
}
