//! Export: every live entry as rows (one per entry and method) for the tools a team scales out
//! with, and back (`schema/EXPORT.md`).
//!
//! - JSON lines ([`TaskDb::export_jsonl`]): a header line, one line per space definition, one
//!   line per row with the exact stored values. `taskdb import` recognises the header and
//!   reads the file back exactly: the same spaces (definitions included), names, versions,
//!   kinds, tags, provenance and bit-identical vectors ([`TaskDb::import_export`]).
//! - Parquet ([`TaskDb::export_parquet`]): one file per space, a fixed-size float list per row
//!   for the vector a vector store should index, the exact values beside it.
//!
//! Both read one redb read transaction (the snapshot's [`crate::snapshot`] image), so an
//! export is one consistent state.

mod jsonl;
mod parquet;

use std::path::PathBuf;

use serde::Serialize;

pub use jsonl::{is_export, EXPORT_FORMAT};

use crate::error::{Error, Result};
use crate::model::Embedding;
use crate::snapshot::image::{Image, ImageEntry};
use crate::space::Space;
use crate::store::codec;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportReport {
    /// Entries exported (live ones, every version).
    pub entries: u64,
    /// Rows written (one per entry and method).
    pub rows: u64,
    /// Spaces exported.
    pub spaces: u64,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// What a damaged database could not give (a space definition or live entry that cannot be
    /// read: table and id, and why), left out of the export; empty for a sound database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// One row: an entry's value in one space, decoded, with what a vector store indexes.
pub(crate) struct Row<'a> {
    pub entry: &'a ImageEntry,
    pub space: &'a Space,
    pub method: &'a str,
    pub value: Embedding,
    /// The unit vector the space's graph indexes: the value itself, normalised, for dense
    /// external spaces; the centred (and, for matrix spaces, sketched) value for task spaces.
    pub index_vector: Vec<f32>,
}

/// Calls `f` with every row of `img`, entries in canonical order (name, version), methods by
/// name. Values are decoded and index vectors computed (a matrix space's sketch is the costly
/// part) on rayon, a block of rows at a time; `f` sees the rows in order.
pub(crate) fn rows(img: &Image, mut f: impl FnMut(Row<'_>) -> Result<()>) -> Result<()> {
    use rayon::prelude::*;
    const BLOCK: usize = 2048;
    let mut refs = Vec::new();
    for e in &img.entries {
        for (vm, (method, bytes)) in e.rec.vectors.iter().zip(&e.vectors) {
            let space = img
                .spaces
                .iter()
                .find(|s| s.id == vm.space)
                .ok_or_else(|| Error::Internal(format!("space {} missing", vm.space)))?;
            refs.push((e, space, method.as_str(), bytes.as_slice()));
        }
    }
    for block in refs.chunks(BLOCK) {
        let done: Vec<Result<Row<'_>>> = block
            .par_iter()
            .map(|&(entry, space, method, bytes)| {
                let what = || {
                    format!(
                        "vector of {}@{}, method {method:?}",
                        entry.rec.name, entry.rec.version
                    )
                };
                let value = codec::decode_vector(bytes, what)?.0;
                let mut index_vector = space.index_vector(&value)?;
                let n = index_vector
                    .iter()
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if n > 0.0 {
                    index_vector
                        .iter_mut()
                        .for_each(|x| *x = (f64::from(*x) / n) as f32);
                }
                Ok(Row {
                    entry,
                    space,
                    method,
                    value,
                    index_vector,
                })
            })
            .collect();
        for r in done {
            f(r?)?;
        }
    }
    Ok(())
}
