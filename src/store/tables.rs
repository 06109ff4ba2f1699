//! Typed table access. Every table is opened through [`open_write`] or [`open_read`], whose
//! errors name the table from its definition (so a message can never name the wrong one), and
//! every read of a stored record goes through one helper here: the vector of an entry, the
//! record of an entry, the counters of the meta table, the per-space generations.
//!
//! Text keys and values are bytes (format 2) decoded by taskdb; a format-1 file (read-only
//! handles) is read through `v1.rs`, and reads run inside [`crate::error::contain`] at the
//! caller, so a panic of the storage layer on a damaged record becomes an error naming the
//! table.

use redb::{
    Key, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, TableHandle, Value,
    WriteTransaction,
};

use super::codec::{self, EntryRecord};
use super::{ENTRIES, META, MODEL_OUTPUTS, SPACE_GEN};
use crate::error::{contain, Error, Result};
use crate::model::{Embedding, EntryId};
use crate::outputs::{self, ModelOutputs};
use crate::space::SpaceId;

/// Maps a redb error to [`Error::Storage`] with `ctx` saying what taskdb was doing.
pub(crate) fn storage<E: Into<redb::Error>>(ctx: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::storage(ctx, e)
}

/// Opens `def` for writing in `txn`.
pub(crate) fn open_write<'t, K: Key + 'static, V: Value + 'static>(
    txn: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<Table<'t, K, V>> {
    txn.open_table(def)
        .map_err(|e| Error::storage(format!("opening table {}", def.name()), e))
}

/// Opens `def` for reading in `txn`.
pub(crate) fn open_read<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<ReadOnlyTable<K, V>> {
    txn.open_table(def)
        .map_err(|e| Error::storage(format!("opening table {}", def.name()), e))
}

/// The counters of the meta table a write transaction updates.
pub(crate) struct Counters {
    /// The id the next entry gets.
    pub next_id: u64,
    /// The store generation (bumped by every committed write).
    pub generation: u64,
    /// The id the next space gets.
    pub next_space: u32,
}

impl Counters {
    /// Reads the counters inside a write transaction.
    pub(crate) fn read(meta: &Table<&[u8], &[u8]>) -> Result<Counters> {
        Ok(Counters {
            next_id: u64::from_le_bytes(meta_value(meta, "next_id")?),
            generation: u64::from_le_bytes(meta_value(meta, "generation")?),
            next_space: u32::from_le_bytes(meta_value(meta, "next_space_id")?),
        })
    }

    /// Writes the counters back.
    pub(crate) fn write(&self, meta: &mut Table<&[u8], &[u8]>) -> Result<()> {
        let w = storage("writing meta");
        for (k, v) in [
            ("next_id", &self.next_id.to_le_bytes()[..]),
            ("generation", &self.generation.to_le_bytes()[..]),
            ("next_space_id", &self.next_space.to_le_bytes()[..]),
        ] {
            meta.insert(k.as_bytes(), v).map_err(&w)?;
        }
        Ok(())
    }
}

/// A fixed-size value of the meta table, inside a write transaction.
fn meta_value<const N: usize>(t: &Table<&[u8], &[u8]>, key: &str) -> Result<[u8; N]> {
    let corrupt = |detail: &str| Error::Corrupt {
        what: format!("table meta, key {key}"),
        detail: detail.into(),
    };
    let g = t
        .get(key.as_bytes())
        .map_err(storage("reading meta"))?
        .ok_or_else(|| corrupt("missing"))?;
    g.value()
        .try_into()
        .map_err(|_| corrupt("malformed (wrong length)"))
}

/// Bumps the store generation (a write that changes no other counter).
pub(crate) fn bump_generation(txn: &WriteTransaction) -> Result<()> {
    let mut m = open_write(txn, META)?;
    let g = u64::from_le_bytes(meta_value(&m, "generation")?);
    m.insert(b"generation".as_slice(), (g + 1).to_le_bytes().as_slice())
        .map_err(storage("writing meta"))?;
    Ok(())
}

/// Bumps the generation of each space in `spaces` (the graphs persisted for them become stale)
/// and returns the new generations.
pub(crate) fn bump_space_generations(
    txn: &WriteTransaction,
    spaces: impl IntoIterator<Item = SpaceId>,
) -> Result<Vec<(SpaceId, u64)>> {
    let mut t = open_write(txn, SPACE_GEN)?;
    let mut out = Vec::new();
    for sid in spaces {
        let g = t
            .get(sid)
            .map_err(storage("reading space generation"))?
            .map(|g| g.value())
            .unwrap_or(0)
            + 1;
        t.insert(sid, g)
            .map_err(storage("writing space generation"))?;
        out.push((sid, g));
    }
    Ok(out)
}

/// The stored vector of entry `id` for `method`, checksum verified.
pub(crate) fn read_vector(txn: &ReadTransaction, id: EntryId, method: &str) -> Result<Embedding> {
    VectorReader::open(txn)?.read(id, method)
}

/// Reads many stored vectors through one opened table, instead of opening it for each (no
/// measurable change in knn latency at 100k dense entries, docs/PERFORMANCE.md §18, where cold
/// pages dominate; it saves the table lookup per vector in arena builds and graph rebuilds).
pub(crate) struct VectorReader(super::v1::VectorsTable);

impl VectorReader {
    /// Opens the vectors table of `txn`.
    pub(crate) fn open(txn: &ReadTransaction) -> Result<VectorReader> {
        contain("table vectors", || {
            super::v1::VectorsTable::open(txn).map(VectorReader)
        })
    }

    /// The stored vector of entry `id` for `method`, checksum verified.
    pub(crate) fn read(&self, id: EntryId, method: &str) -> Result<Embedding> {
        contain("table vectors", || {
            let what = || format!("vector of entry {id}, method {method:?}");
            let decoded = self
                .0
                .get(id, method, |b| codec::decode_vector(b, what))?
                .ok_or_else(|| Error::Corrupt {
                    what: what(),
                    detail: "missing".into(),
                })?;
            Ok(decoded?.0)
        })
    }
}

/// The record of entry `id`, checksum verified.
pub(crate) fn read_entry_record(txn: &ReadTransaction, id: EntryId) -> Result<EntryRecord> {
    let t = open_read(txn, ENTRIES)?;
    contain("table entries", || {
        let g = t
            .get(id)
            .map_err(storage("reading entry"))?
            .ok_or_else(|| Error::NotFound {
                what: format!("entry id {id}"),
            })?;
        codec::decode_entry(id, g.value())
    })
}

/// Opens the `model_outputs` table for reading; `None` when the database has none (made
/// before it, or never given a model's outputs).
pub(crate) fn open_outputs(
    txn: &ReadTransaction,
) -> Result<Option<ReadOnlyTable<u64, &'static [u8]>>> {
    match txn.open_table(MODEL_OUTPUTS) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(Error::storage("opening table model_outputs", e)),
    }
}

/// The encoded outputs record of entry `id`, unverified (`None`: none stored).
pub(crate) fn read_outputs_bytes(txn: &ReadTransaction, id: EntryId) -> Result<Option<Vec<u8>>> {
    contain("table model_outputs", || {
        let Some(t) = open_outputs(txn)? else {
            return Ok(None);
        };
        let g = t.get(id).map_err(storage("reading model outputs"))?;
        Ok(g.map(|g| g.value().to_vec()))
    })
}

/// The outputs of entry `id` on U, checksum verified (`None`: none stored). `what` names the
/// entry in errors.
pub(crate) fn read_outputs(
    txn: &ReadTransaction,
    id: EntryId,
    what: &dyn Fn() -> String,
) -> Result<Option<ModelOutputs>> {
    read_outputs_bytes(txn, id)?
        .map(|b| outputs::decode(&b, what))
        .transpose()
}
