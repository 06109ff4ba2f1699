//! # taskdb
//!
//! An embedded database of task embeddings: datasets and models as vectors in one space,
//! stored crash-safely in [redb](https://docs.rs/redb), indexed per space with HNSW, and
//! queried by nearest neighbour.
//!
//! ```no_run
//! use taskdb::{Filter, Kind, NewEntry, Query, TaskDb};
//! # fn main() -> taskdb::Result<()> {
//! let db = TaskDb::open("tasks.taskdb")?;
//! db.put(vec![
//!     NewEntry::external("sst2", Kind::Dataset, "my-space", vec![0.1, 0.9, 0.2]),
//!     NewEntry::external("bert-sst2", Kind::Model, "my-space", vec![0.1, 0.8, 0.3]),
//! ])?;
//! let hits = db.nearest(&Query::entry("sst2")?, 5, &Filter::all())?;
//! assert_eq!(hits[0].name, "bert-sst2");
//! # Ok(()) }
//! ```
//!
//! Invariants: redb is the only source of truth; graphs are derived, checksummed and rebuilt
//! when they disagree with it; vectors of different spaces never meet; a space's definition
//! never changes; one `put` is one transaction. The library never prints and never exits.

#![warn(missing_docs)]

// The modules are private; the API is the list of re-exports below, plus three deliberate
// namespaces: `ingest` (computing task embeddings from datasets and models), `files` (the
// files beside a database, and atomic writes) and `exit` (the CLI's exit codes).
mod bytes;
mod catalog;
mod db;
mod embedding;
mod error;
mod export;
mod features;
pub mod files;
mod import;
mod index;
pub mod ingest;
mod map;
mod model;
mod outcome;
mod outputs;
mod recommend;
mod reflib;
mod search;
mod snapshot;
mod space;
mod spread;
mod store;
#[doc(hidden)]
pub mod testing;
mod unit;

pub use db::{
    CheckReport, CompactReport, OpenOptions, Repair, SpaceStats, Stats, TaskDb, Written,
    DEFAULT_CACHE_BYTES, DEFAULT_METHOD,
};
pub use error::{exit, panic_is_contained, Error, Result};
pub use export::{is_export, ExportReport, EXPORT_FORMAT};
pub use features::CacheStats;
pub use import::{ImportEvent, ImportOptions, ImportReport};
pub use index::IndexParams;
pub use map::{
    MapLayout, MapNeighbour, MapOptions, MapPoint, MapRole, RenderOptions, RenderReport, TaskMap,
    MAP_FORMAT, MAP_MAX_POINTS, TSNE_MAX_POINTS,
};
pub use model::{
    validate_name_for_new_entry, Embedding, Entry, EntryId, EntryRef, EntrySummary, Kind, LowRank,
    NewEntry, NewVector, Provenance,
};
pub use outcome::{read_outcomes_csv, NewOutcome, Outcome};
pub use outputs::{ModelOutputs, OutputValues};
pub use recommend::{
    rank, Basis, Candidate, Comparison, EvalReport, EvalRow, Pivot, PromptChoice, Ranked,
    RecommendOptions, Recommendation, SharedSpace, Side, Target, UnstoredTarget, DEFAULT_LAMBDA,
    RECOMMEND_METHOD,
};
pub use reflib::{ReferenceLibrary, ReferenceTask};
pub use search::{Centring, Filter, Hit, Query, SearchOptions, SearchPath, SpaceSel};
pub use snapshot::{
    diff, is_snapshot, DiffOptions, EntryChange, Leaf, Manifest, NeighbourChange, Problem,
    Snapshot, SnapshotDiff, SnapshotOptions, VectorChange, VerifyReport, SNAPSHOT_FORMAT,
};
pub use space::{
    EmbeddingKind, SketchSpec, Space, SpaceDef, SpaceId, SpaceRef, StoredReference,
    StoredWhitening, TaskSpaceParams, SKETCH_DIM,
};
pub use spread::{score_noise, tied_with_best, tied_within, SCORE_NOISE};
pub use store::log::{LogCheck, LogEntry, LogRecord};
pub use store::FORMAT_VERSION;
pub use taskdb_methods::{MethodKind, MethodParams};
