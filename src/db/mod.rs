//! [`TaskDb`]: the database handle. redb is the truth; the catalog and graphs in memory are
//! derived from it and updated only after a commit succeeds.
//!
//! The handle's methods are split by verb, one file each: `open.rs` (opening; graphs checked
//! in their manifests, or rebuilt), `write.rs` (put, delete), `read.rs` (get, list, spaces, stats),
//! `search.rs` (knn: the plan of [`crate::search::plan`] executed against the catalog, the
//! graphs and the store), `maintain.rs` (flush, compact, check), `outcomes.rs` (recorded
//! transfer outcomes).

mod maintain;
mod open;
pub(crate) mod outcomes;
mod read;
mod scan;
mod search;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::{IndexParams, Slot};
use crate::space::{LiveCentre, SpaceId};
use crate::store::{Db, Meta};

pub use maintain::{CheckReport, CompactReport, Repair};
pub use read::{SpaceStats, Stats};
pub use write::Written;

/// The method used when an entry has several and the caller names none (the measured best;
/// see docs/METHODS.md).
pub const DEFAULT_METHOD: &str = "scatter";

/// Options for [`TaskDb::open_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenOptions {
    /// Open read-only (no writes, graphs rebuilt in memory only when needed).
    pub read_only: bool,
    /// Index and search parameters.
    pub index: IndexParams,
    /// The most memory, in bytes, that the store (redb) may hold as its page cache: pages read,
    /// and a write transaction's pages (at most half of it; beyond that they go to the file
    /// before the commit). Default [`DEFAULT_CACHE_BYTES`].
    ///
    /// taskdb reads what it searches from its own derived structures (graphs, scan arenas), so
    /// the store's cache mostly holds pages that were read once, when those were made: with
    /// redb's own default (1 GiB) it kept about 400 MiB of a 100k × 768 dense space's vectors
    /// resident after its first query, for nothing (docs/PERFORMANCE.md §22). Raise it when
    /// exact scans of dense spaces read from the store (filtered queries, spaces below the
    /// graph threshold) over more than fit in it.
    pub cache_bytes: usize,
}

/// The store's page cache by default: 64 MiB ([`OpenOptions::cache_bytes`]).
pub const DEFAULT_CACHE_BYTES: usize = crate::store::DEFAULT_CACHE_BYTES;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            index: IndexParams::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Everything derived from the store, under one lock: readers never see the store ahead of
/// the catalog and graphs, because a writer holds the lock across its commit.
struct State {
    catalog: Catalog,
    /// Each space's graph, with what happened to it ("loaded", "rebuilt: <reason>", …); a
    /// graph whose manifest matched at open is loaded, verified first, on its first use.
    indexes: BTreeMap<SpaceId, Slot>,
    meta: Meta,
    /// The scan arenas of matrix spaces (derived, built by the second exact query of a space; `scan.rs`).
    arenas: scan::Arenas,
}

/// A taskdb database. Cheap to share across threads (`&TaskDb` is `Sync`): any number of
/// concurrent readers; writes are serialised. Across processes, one writer excludes everyone
/// else (a second opener gets [`Error::Locked`]); read-only opens share the file.
///
/// ```
/// use taskdb::{Filter, Kind, NewEntry, Query, TaskDb};
/// # fn main() -> taskdb::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = TaskDb::open(dir.path().join("tasks.taskdb"))?;
/// db.put(vec![
///     NewEntry::external("sst2", Kind::Dataset, "my-space", vec![0.1, 0.9, 0.2]),
///     NewEntry::external("bert-sst2", Kind::Model, "my-space", vec![0.1, 0.8, 0.3]),
///     NewEntry::external("mnli", Kind::Dataset, "my-space", vec![0.9, 0.1, 0.1]),
/// ])?;
/// let hits = db.nearest(&Query::entry("sst2")?, 2, &Filter::all())?;
/// assert_eq!(hits[0].name, "bert-sst2");
/// assert!(hits[0].score > hits[1].score);
/// # Ok(()) }
/// ```
pub struct TaskDb {
    path: PathBuf,
    db: Db,
    read_only: bool,
    params: IndexParams,
    state: RwLock<State>,
    /// Live-centring statistics per space (derived, in memory, keyed by the live entry set).
    live_centres: Mutex<HashMap<SpaceId, Arc<LiveCentre>>>,
}

impl TaskDb {
    /// The database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>> {
        self.state.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, State>> {
        self.state.write().map_err(|_| poisoned())
    }

    /// A read transaction on the store (one consistent state).
    pub(crate) fn begin_read_txn(&self) -> Result<redb::ReadTransaction> {
        self.db.begin_read()
    }

    /// The writable database, or [`Error::ReadOnly`] naming `op`.
    fn rw(&self, op: &'static str) -> Result<&redb::Database> {
        match &self.db {
            Db::Rw(d) => Ok(&**d),
            Db::Ro(_) | Db::Mem(_) => Err(Error::ReadOnly {
                path: self.path.clone(),
                op,
            }),
        }
    }
}

impl Drop for TaskDb {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn poisoned() -> Error {
    Error::Internal("state lock poisoned by an earlier panic".into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
