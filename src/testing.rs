//! Fault injection for taskdb's own reliability tests (`tests/reliability_*.rs`). Not part of
//! the API: hidden from the docs, may change or go away in any release. Nothing here can be
//! reached through the `taskdb` binary.
//!
//! * [`put_unvalidated`] writes entries skipping the checks of names and vectors that a
//!   database written by an older taskdb (or by another program) may not have passed, so that
//!   tests can build such a database and check that it still opens, is reported by `check`
//!   and can be repaired.
//! * [`contained_panics`] counts the storage-layer panics taskdb contained, so that tests can
//!   check that a damaged file is decoded by taskdb rather than by a panicking redb.
//! * [`set_graph_insert_panics`] makes every HNSW insertion panic (as hnsw_rs's assertions
//!   do on a vector that is not unit length), to test that no command depends on a graph
//!   being buildable.
//! * [`graph_candidates`], [`nearest_with_graph_want`] and [`nearest_reranking`] take the
//!   sketch path of a matrix space apart (`benches/knn/sketch.rs`): the index's own candidate
//!   list, the whole path with a given candidate count, and the exact re-rank of given ids.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{
    Embedding, EntryId, Filter, Hit, NewEntry, Query, Result, SearchOptions, SearchPath, TaskDb,
};

thread_local! {
    static UNVALIDATED: Cell<bool> = const { Cell::new(false) };
    static OLD_SCAN: Cell<bool> = const { Cell::new(false) };
    static GRAPH_OVERRIDE: RefCell<Option<GraphOverride>> = const { RefCell::new(None) };
}

/// What [`nearest_with_graph_want`] and [`nearest_reranking`] change in a graph search.
#[derive(Debug, Clone)]
pub(crate) enum GraphOverride {
    /// Ask the graph for this many candidates (ef = max(`ef_search`, this)) instead of the
    /// plan's count.
    Want(usize),
    /// Skip the graph: re-rank exactly these ids.
    Ids(Vec<EntryId>),
}

static GRAPH_INSERT_PANICS: AtomicBool = AtomicBool::new(false);

/// Like [`TaskDb::put`], but without the name and vector checks added by issue 10 (on this
/// thread only, for this call only).
pub fn put_unvalidated(db: &TaskDb, entries: Vec<NewEntry>) -> Result<Vec<EntryId>> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            UNVALIDATED.with(|c| c.set(false));
        }
    }
    UNVALIDATED.with(|c| c.set(true));
    let _reset = Reset;
    db.put(entries)
}

/// Whether the current thread is inside [`put_unvalidated`].
pub(crate) fn unvalidated() -> bool {
    UNVALIDATED.with(|c| c.get())
}

/// [`TaskDb::nearest_with`] answered by the exact scan as it was before the scan arenas of
/// issue 14 (every candidate read from redb and scored exactly; on this thread only, for this
/// call only): the reference the arena path is tested and benchmarked against.
pub fn nearest_with_old_scan(
    db: &TaskDb,
    query: &Query,
    k: usize,
    filter: &Filter,
    opts: &SearchOptions,
) -> Result<(Vec<Hit>, SearchPath)> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            OLD_SCAN.with(|c| c.set(false));
        }
    }
    OLD_SCAN.with(|c| c.set(true));
    let _reset = Reset;
    db.nearest_with(query, k, filter, opts)
}

/// Runs `f` with `o` as this thread's graph override, cleared afterwards.
fn with_override<T>(o: GraphOverride, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            GRAPH_OVERRIDE.with(|c| *c.borrow_mut() = None);
        }
    }
    GRAPH_OVERRIDE.with(|c| *c.borrow_mut() = Some(o));
    let _reset = Reset;
    f()
}

/// [`TaskDb::nearest_with`] with the graph asked for `want` candidates (all re-ranked exactly
/// in a matrix space) where the plan searches the graph; on this thread, for this call only.
pub fn nearest_with_graph_want(
    db: &TaskDb,
    query: &Query,
    k: usize,
    filter: &Filter,
    opts: &SearchOptions,
    want: usize,
) -> Result<(Vec<Hit>, SearchPath)> {
    with_override(GraphOverride::Want(want), || {
        db.nearest_with(query, k, filter, opts)
    })
}

/// [`TaskDb::nearest_with`] with the graph's candidates replaced by `ids` (re-ranked exactly,
/// filtered as the graph's would be) where the plan searches the graph; on this thread, for
/// this call only.
pub fn nearest_reranking(
    db: &TaskDb,
    query: &Query,
    k: usize,
    filter: &Filter,
    opts: &SearchOptions,
    ids: Vec<EntryId>,
) -> Result<(Vec<Hit>, SearchPath)> {
    with_override(GraphOverride::Ids(ids), || {
        db.nearest_with(query, k, filter, opts)
    })
}

/// The override of this thread's graph search, if any (taken: it applies once).
pub(crate) fn graph_override() -> Option<GraphOverride> {
    GRAPH_OVERRIDE.with(|c| c.borrow_mut().take())
}

/// The first `c` candidates (nearest first, tombstones included) of the index of the space
/// named `space` for the value `q`: a dense space's graph searched with `ef` (raised to `c`),
/// a matrix space's 4-bit sketch scan (which has no graph); the index's own list, before any
/// filtering or exact re-rank. Loads the index if it is not yet.
pub fn graph_candidates(
    db: &TaskDb,
    space: &str,
    q: &Embedding,
    c: usize,
    ef: usize,
) -> Result<Vec<EntryId>> {
    db.graph_candidates(space, q, c, ef)
}

/// The rows and factor bytes of the scan arena of the space named `space`, if one is built
/// (it is built by the second exact query of a matrix space on a handle).
pub fn scan_arena_size(db: &TaskDb, space: &str) -> Option<(usize, usize)> {
    db.scan_arena_size(space)
}

/// Whether the dense space named `space` is searched through an export that holds its rows
/// in int8 only (`IndexParams::lean_dense`); `None` when no export is in memory.
pub fn dense_export_is_lean(db: &TaskDb, space: &str) -> Option<bool> {
    db.dense_export_is_lean(space)
}

/// Whether the current thread is inside [`nearest_with_old_scan`].
pub(crate) fn old_scan() -> bool {
    OLD_SCAN.with(|c| c.get())
}

static HNSW_RS_SEARCH: AtomicBool = AtomicBool::new(false);

/// Makes dense spaces' graph searches in this process go through hnsw_rs's own search
/// (`true`) instead of the graph exported to flat arrays (`false`, the default): the baseline
/// `cargo bench --bench knn -- dense` measures the export against.
pub fn set_hnsw_rs_search(on: bool) {
    HNSW_RS_SEARCH.store(on, Ordering::SeqCst);
}

/// Whether [`set_hnsw_rs_search`] is on.
pub(crate) fn hnsw_rs_search() -> bool {
    HNSW_RS_SEARCH.load(Ordering::Relaxed)
}

/// Makes every HNSW insertion in this process panic (`true`) or behave (`false`).
pub fn set_graph_insert_panics(on: bool) {
    GRAPH_INSERT_PANICS.store(on, Ordering::SeqCst);
}

/// Panics when [`set_graph_insert_panics`] is on (called inside graph insertion).
pub(crate) fn maybe_panic_in_graph_insert() {
    if GRAPH_INSERT_PANICS.load(Ordering::SeqCst) {
        panic!("injected HNSW insertion panic (taskdb::testing)");
    }
}

/// How many panics of the storage layer this process has caught and turned into
/// [`crate::Error::Corrupt`] so far (`catch_unwind` around store access, RELIABILITY.md promise
/// 12). In a format-2 database no text is decoded by redb, so a damaged text byte must leave it
/// unchanged.
pub fn contained_panics() -> u64 {
    crate::error::contained_panics()
}

/// Internals that benches and tests measure or inspect directly (the feature cache, the name a
/// computed space gets). Not part of the API.
pub use crate::features::{FeatureCache, FeatureInput};
pub use crate::ingest::spaces::space_name;
