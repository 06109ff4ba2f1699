//! The JSON-lines export and its exact re-import (`schema/EXPORT.md`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{rows, ExportReport};
use crate::error::{Error, Result};
use crate::model::{Embedding, Kind, LowRank, NewEntry, NewVector, Provenance};
use crate::outputs::ModelOutputs;
use crate::space::{SpaceDef, SpaceRef};
use crate::TaskDb;

/// The version of the export format (the header's `taskdb_export`). 2: a model's first row
/// may carry its outputs on U (a format-1 reader would refuse the unknown field; this one
/// reads both).
pub const EXPORT_FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Header {
    taskdb_export: u32,
    taskdb_version: String,
    source_db_uuid: String,
    generation: u64,
    log_seq: u64,
    spaces: u64,
    entries: u64,
    rows: u64,
}

#[derive(Serialize, Deserialize)]
struct SpaceLine {
    space: String,
    definition: SpaceDef,
}

#[derive(Serialize, Deserialize)]
struct Factors {
    dim: usize,
    /// U, column-major (rank columns of `dim`).
    u: Vec<f32>,
    s: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowLine {
    name: String,
    version: u32,
    kind: Kind,
    space: String,
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factors: Option<Factors>,
    index_vector: Vec<f32>,
    tags: BTreeMap<String, String>,
    provenance: Provenance,
    id: u64,
    created_at_ms: u64,
    /// The model's outputs on U (`taskdb outputs`), on the first row of its entry version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outputs: Option<ModelOutputs>,
}

fn line<T: Serialize>(w: &mut dyn Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")
}

impl TaskDb {
    /// Writes every live entry to `out` (which must not exist) as JSON lines: a header, the
    /// definitions of the spaces used, then one line per entry and method with its exact
    /// values (f32 written so that reading them back gives the same bits), tags and
    /// provenance, and the unit vector the space indexes.
    pub fn export_jsonl(&self, out: &Path) -> Result<ExportReport> {
        let mut skipped = Vec::new();
        let img = self.read_image_saving(&mut skipped)?;
        let nrows: u64 = img.entries.iter().map(|e| e.vectors.len() as u64).sum();
        crate::files::write_new_file(out, "an export", |w| {
            let io = |e: std::io::Error| Error::io(out, e);
            line(
                w,
                &Header {
                    taskdb_export: EXPORT_FORMAT,
                    taskdb_version: env!("CARGO_PKG_VERSION").into(),
                    source_db_uuid: hex::encode(img.db_uuid),
                    generation: img.generation,
                    log_seq: img.log.last().map(|(s, _)| *s).unwrap_or(0),
                    spaces: img.spaces.len() as u64,
                    entries: img.entries.len() as u64,
                    rows: nrows,
                },
            )
            .map_err(io)?;
            for s in &img.spaces {
                line(
                    w,
                    &SpaceLine {
                        space: s.def.name.clone(),
                        definition: s.def.clone(),
                    },
                )
                .map_err(io)?;
            }
            let mut last_entry = None;
            rows(&img, |row| {
                // The outputs go on the first row of their entry version.
                let first_row = last_entry != Some(row.entry.id);
                last_entry = Some(row.entry.id);
                let outputs = match (&row.entry.outputs, first_row) {
                    (Some(b), true) => Some(crate::outputs::decode(b, &|| {
                        format!(
                            "outputs on U of {}@{}",
                            row.entry.rec.name, row.entry.rec.version
                        )
                    })?),
                    _ => None,
                };
                let (vector, factors) = match row.value {
                    Embedding::Dense(v) => (Some(v), None),
                    Embedding::LowRank(l) => (
                        None,
                        Some(Factors {
                            dim: l.dim,
                            u: l.u,
                            s: l.s,
                        }),
                    ),
                };
                let prov: Provenance = serde_json::from_str(&row.entry.rec.provenance_json)
                    .map_err(|e| Error::Corrupt {
                        what: format!(
                            "provenance of {}@{}",
                            row.entry.rec.name, row.entry.rec.version
                        ),
                        detail: e.to_string(),
                    })?;
                let l = RowLine {
                    name: row.entry.rec.name.clone(),
                    version: row.entry.rec.version,
                    kind: row.entry.rec.kind(row.entry.id)?,
                    space: row.space.def.name.clone(),
                    method: row.method.to_string(),
                    vector,
                    factors,
                    index_vector: row.index_vector,
                    tags: row.entry.rec.tags.iter().cloned().collect(),
                    provenance: prov,
                    id: row.entry.id,
                    created_at_ms: row.entry.rec.created_at_ms,
                    outputs,
                };
                line(w, &l).map_err(io)
            })
        })?;
        Ok(ExportReport {
            entries: img.entries.len() as u64,
            rows: nrows,
            spaces: img.spaces.len() as u64,
            files: vec![out.to_path_buf()],
            skipped,
        })
    }

    /// Imports a file written by [`TaskDb::export_jsonl`]: every line is read and checked
    /// first, then one transaction per entry version writes it with its spaces (definitions
    /// included), kind, tags, provenance and exact values. Returns the entries written and one
    /// warning per entry whose version differs from its exported one (the database already had
    /// versions of its name).
    pub fn import_export(&self, file: &Path) -> Result<(u64, Vec<String>)> {
        let entries = read_export(file)?;
        let mut warnings = Vec::new();
        let n = entries.len() as u64;
        for (at, version, e, outputs) in entries {
            let w = self
                .put_with_outputs(vec![(e, outputs)])
                .map_err(|err| match err {
                    Error::InvalidInput { context, message } => Error::InvalidInput {
                        context: format!("{at}: {context}"),
                        message,
                    },
                    other => other,
                })?;
            if w[0].version != version {
                warnings.push(format!(
                    "{at}: {} was exported as version {version} and imported as version {} \
                     (this database already had versions of that name)",
                    w[0].name, w[0].version
                ));
            }
        }
        self.flush()?;
        Ok((n, warnings))
    }
}

/// Whether `file` starts with an export header (so `import` reads it with
/// [`TaskDb::import_export`]).
pub fn is_export(file: &Path) -> bool {
    let Ok(f) = std::fs::File::open(file) else {
        return false;
    };
    let mut first = String::new();
    if BufReader::new(f.take(1 << 20))
        .read_line(&mut first)
        .is_err()
    {
        return false;
    }
    first.trim_start().starts_with("{\"taskdb_export\"")
}

type Pending = (String, u32, NewEntry, Option<ModelOutputs>);

/// Reads and checks a whole export file: `(where, exported version, entry, its outputs on U)`
/// per entry version.
fn read_export(file: &Path) -> Result<Vec<Pending>> {
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let at = |n: usize| format!("{} line {n}", file.display());
    let mut spaces: BTreeMap<String, SpaceDef> = BTreeMap::new();
    let mut out: Vec<Pending> = Vec::new();
    let mut header: Option<Header> = None;
    let mut nrows = 0u64;
    for (i, l) in BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let l = l.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::invalid(at(n), "not valid UTF-8"),
            _ => Error::io(file, e),
        })?;
        if l.trim().is_empty() {
            continue;
        }
        let bad = |what: &str, e: serde_json::Error| Error::invalid(at(n), format!("{what}: {e}"));
        if header.is_none() {
            let h: Header = serde_json::from_str(&l).map_err(|e| bad("not an export header", e))?;
            if h.taskdb_export > EXPORT_FORMAT {
                return Err(Error::invalid(
                    at(n),
                    format!(
                        "export format {} is newer than this taskdb reads ({EXPORT_FORMAT}); \
                         upgrade taskdb",
                        h.taskdb_export
                    ),
                ));
            }
            header = Some(h);
            continue;
        }
        if l.trim_start().starts_with("{\"space\"") {
            let s: SpaceLine =
                serde_json::from_str(&l).map_err(|e| bad("malformed space line", e))?;
            if s.space != s.definition.name {
                return Err(Error::invalid(
                    at(n),
                    "the space's name differs from its definition's",
                ));
            }
            spaces.insert(s.space, s.definition);
            continue;
        }
        let mut r: RowLine = serde_json::from_str(&l).map_err(|e| bad("malformed row", e))?;
        nrows += 1;
        let def = spaces.get(&r.space).ok_or_else(|| {
            Error::invalid(
                at(n),
                format!("space {:?} has no definition line before it", r.space),
            )
        })?;
        let embedding = match (r.vector.take(), r.factors.take()) {
            (Some(v), None) => Embedding::Dense(v),
            (None, Some(f)) => Embedding::LowRank(LowRank {
                dim: f.dim,
                u: f.u,
                s: f.s,
            }),
            _ => {
                return Err(Error::invalid(
                    at(n),
                    "a row has exactly one of vector or factors",
                ))
            }
        };
        let v = NewVector {
            method: std::mem::take(&mut r.method),
            space: if def.is_external() {
                SpaceRef::External(def.name.clone())
            } else {
                SpaceRef::Def(def.clone())
            },
            embedding,
        };
        add_row(&mut out, at(n), r, v)?;
    }
    let h =
        header.ok_or_else(|| Error::invalid(file.display().to_string(), "empty export file"))?;
    if h.rows != nrows || h.entries != out.len() as u64 {
        return Err(Error::invalid(
            file.display().to_string(),
            format!(
                "the header promises {} entries in {} rows, the file has {} in {nrows}: it was \
                 cut or edited",
                h.entries,
                h.rows,
                out.len()
            ),
        ));
    }
    for (at, _, e, _) in &out {
        e.validate(at)?;
    }
    Ok(out)
}

/// Adds one row to the entry versions read so far: a new entry version, or another method of
/// the last one (which must agree on kind, tags and provenance and carry no outputs).
fn add_row(out: &mut Vec<Pending>, at: String, r: RowLine, v: NewVector) -> Result<()> {
    if let Some(o) = &r.outputs {
        if r.kind != Kind::Model {
            return Err(Error::invalid(
                at.clone(),
                "outputs on U on a row that is not a model's",
            ));
        }
        o.validate(&at)?;
    }
    match out.last_mut() {
        Some((_, version, e, _)) if e.name == r.name && *version == r.version => {
            if e.kind != r.kind || e.tags != r.tags || e.provenance != r.provenance {
                return Err(Error::invalid(
                    at.clone(),
                    format!("{}@{} differs from its earlier rows", r.name, r.version),
                ));
            }
            if r.outputs.is_some() {
                return Err(Error::invalid(
                    at.clone(),
                    format!(
                        "outputs on U of {}@{} belong on its first row only",
                        r.name, r.version
                    ),
                ));
            }
            e.vectors.push(v);
        }
        _ => out.push((
            at,
            r.version,
            NewEntry {
                name: r.name,
                kind: r.kind,
                vectors: vec![v],
                tags: r.tags,
                provenance: r.provenance,
            },
            r.outputs,
        )),
    }
    Ok(())
}
