//! The data model: entries (names, versions, kinds, tags, provenance) and the embedding values
//! they carry. Knows nothing of the store, the catalog or search; spaces are named by id or
//! definition only.

mod entry;

pub use crate::embedding::{Embedding, LowRank};
pub use entry::{
    validate_name_for_new_entry, Entry, EntryId, EntryRef, EntrySummary, Kind, NewEntry, NewVector,
    Provenance,
};
