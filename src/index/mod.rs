//! Per-space approximate-nearest-neighbour indexes (derived state).
//!
//! A dense space has one HNSW graph (hnsw_rs, `DistDot` on L2-normalised vectors); a matrix
//! space has its entries' sketches as packed rows for a flat scan ([`flat`]), and no graph.
//! hnsw_rs cannot delete, so deleted entries and superseded versions stay in an index as
//! tombstones and are hidden by a filter at query time; `compact` rebuilds indexes without
//! them. Indexes are persisted beside the database by [`persist`] in taskdb's own formats
//! ([`links`] for graphs): their manifests are checked on open, and an index is loaded, its
//! file checksummed first, on its first use ([`Slot`]). A dense space's graph is loaded
//! straight into its flat search structure ([`graph`]) with the stored vectors from redb; the
//! hnsw_rs graph is made from it only when an insert needs it.

pub(crate) mod arena;
mod dot;
pub(crate) mod flat;
pub(crate) mod graph;
mod int8;
pub(crate) mod links;
mod pages;
pub(crate) mod persist;
mod sketch_file;

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hnsw_rs::prelude::{DistDot, Hnsw};

use crate::embedding::{Embedding, EntryId};
use crate::error::{Error, Result};
use crate::space::Space;

/// Tuning knobs of the index and of the search strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexParams {
    /// HNSW `M`: neighbours kept per node and layer, in a dense space's graph. (A matrix
    /// space has no graph: its index is the flat scan over its sketches, [`flat`].)
    pub m: usize,
    /// HNSW `ef_construction` of a dense space's graph (see [`IndexParams::m`]).
    pub ef_construction: usize,
    /// HNSW `ef` at search time (raised to `k` when smaller).
    pub ef_search: usize,
    /// Spaces with at most this many live candidates (after filtering) are searched exactly.
    pub brute_force_below: usize,
    /// Matrix-valued (sketched) spaces with at most this many candidates are searched exactly;
    /// above it, by the flat sketch scan with the stop rule ([`flat`], `search/plan.rs`), whose
    /// answers are exact unless the sketch was confident by 1.5 σ and wrong. In the default
    /// space on perturbed real datasets it is 4.5× faster than the scan at 100k with recall@10
    /// 0.9965 (docs/PERFORMANCE.md §17); on pseudo-tasks of the probe set, which have no
    /// neighbourhoods, the rule falls back to the exact scan on every query and costs the scan
    /// plus ≈ 14 ms (§16). So the default is 50,000: exact, without the detour, where the scan
    /// is affordable (at 50k, by extrapolation, about half the 52.8 ms measured at 100k).
    /// Lower it for spaces whose sketch ranks well.
    pub exact_matrix_below: usize,
    /// A dense space's graph queries that one handle answers through hnsw_rs's own search
    /// before it exports the graph to taskdb's flat search structure ([`graph`]), for a graph
    /// built or rebuilt in memory by this handle (one loaded from its file is that structure
    /// from the start). The export costs 2–4 s at 100k × 768 (it reads every stored vector)
    /// and each query after it about a third of the time (docs/PERFORMANCE.md §18–19), so
    /// the default, 16, keeps a one-shot query from paying it while a long-lived handle pays
    /// it once. 0 exports at the first query.
    pub export_after: usize,
    /// Read-only handles only (a writable handle ignores it): a dense space's flat search
    /// structure holds only the int8 copies of its rows that the graph walk reads, not the f32
    /// rows as well. The walk returns its best `want + 2` in its own order, and every one of
    /// them that passes the filter is scored exactly from the store (their vectors, checksums
    /// verified): the candidates a default handle re-ranks, so the answers and scores are
    /// its, and memory is about d bytes a row instead of 5·d. The price is those store reads:
    /// 14–16 a query for k = 10, +57–65 % a query at 100k × 768 (docs/PERFORMANCE.md §24;
    /// §31: reading fewer of them does not buy it back, each read's cost is redb's).
    /// Default false.
    pub lean_dense: bool,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            m: 16,
            ef_construction: 100,
            ef_search: 128,
            brute_force_below: 2048,
            exact_matrix_below: 50_000,
            export_after: 16,
            lean_dense: false,
        }
    }
}

/// The graph type of dense spaces.
pub(crate) type Graph = Hnsw<'static, f32, DistDot>;

/// An index file read back ([`persist::LoadedIndex`]), ready to become an index.
pub(crate) use persist::LoadedIndex;

/// One space's in-memory index: a dense space's graph, or a matrix space's sketch rows.
///
/// The space's definition and generation are not held here: the catalog holds them (one copy
/// of each), and every operation that needs the space is handed it.
pub(crate) struct SpaceIndex {
    /// hnsw_rs's graph, which a dense space's inserts go into. Made when the index is built;
    /// for a dense space loaded from its file, made from the export on its first need (an
    /// insert, or a search the export cannot answer): [`SpaceIndex::graph`]. `None` inside
    /// when that failed, and always for a matrix space.
    graph: OnceLock<Option<Graph>>,
    /// Entry ids present in the graph (live or tombstoned): the graph's own membership, which
    /// `check` compares with the catalog's view of the store (`Catalog::space_points`).
    pub points: HashSet<EntryId>,
    /// True when the graph differs from the persisted file.
    pub dirty: bool,
    /// Why the graph could not be built or updated (an insertion failed or panicked), if it
    /// could not: the space is then searched by exact scan only, and its graph is neither
    /// used nor persisted until a rebuild (the next open or `compact`) succeeds.
    pub unusable: Option<String>,
    /// A matrix space's index: its entries' sketches as packed 4-bit rows ([`flat`]), given
    /// when the index is built or loaded and extended by every insert; `None` for a dense
    /// space (and an unusable index). Whether it is there is what makes an index sketched.
    flat: Option<flat::FlatSketches>,
    /// The graph exported to flat arrays for search ([`graph`]; `None` inside when the export
    /// failed), made on a dense space's first graph search; inserts after it are appended,
    /// and past [`graph::FlatGraph::stale`] it is dropped and made again.
    pub exported: OnceLock<Option<graph::FlatGraph>>,
    /// Graph queries answered by hnsw_rs before the export ([`IndexParams::export_after`]).
    pub before_export: AtomicUsize,
    /// Whether the export holds int8 rows only ([`IndexParams::lean_dense`]).
    lean: bool,
}

pub(crate) fn new_graph(params: &IndexParams, capacity: usize) -> Graph {
    Hnsw::new(
        params.m.clamp(2, 255),
        capacity.max(1024),
        links::MAX_LAYER,
        params.ef_construction,
        DistDot {},
    )
}

impl SpaceIndex {
    /// An index of `graph` and/or `exported` (at least one), holding `points`.
    fn of(
        graph: Option<Graph>,
        exported: Option<graph::FlatGraph>,
        points: HashSet<EntryId>,
        lean: bool,
    ) -> SpaceIndex {
        fn cell<T>(x: Option<T>) -> OnceLock<Option<T>> {
            match x {
                Some(x) => OnceLock::from(Some(x)),
                None => OnceLock::new(),
            }
        }
        SpaceIndex {
            graph: cell(graph),
            points,
            dirty: true,
            unusable: None,
            flat: None,
            exported: cell(exported),
            before_export: AtomicUsize::new(0),
            lean,
        }
    }

    /// A matrix space's index of `rows` (holding `points`).
    fn sketches(rows: flat::FlatSketches, points: HashSet<EntryId>) -> SpaceIndex {
        SpaceIndex {
            graph: OnceLock::from(None),
            flat: Some(rows),
            ..Self::of(None, None, points, false)
        }
    }

    /// Whether `space` is indexed by its sketches ([`flat`]) rather than by a graph.
    pub fn sketched_space(space: &Space) -> bool {
        space.def.embedding == crate::space::EmbeddingKind::LowRank
    }

    /// An empty index of `space`.
    pub fn empty(space: &Space, params: &IndexParams) -> SpaceIndex {
        match Self::sketched_space(space) {
            true => Self::sketches(flat::FlatSketches::default(), HashSet::new()),
            false => Self::empty_graph(params),
        }
    }

    /// An empty graph.
    pub fn empty_graph(params: &IndexParams) -> SpaceIndex {
        Self::of(
            Some(new_graph(params, 0)),
            None,
            HashSet::new(),
            params.lean_dense,
        )
    }

    /// The index of a persisted file read back. A matrix space's sketch rows become its index
    /// as they are; a graph file that holds the graph's vectors (a matrix space's, saved
    /// before its sketch file existed) becomes those rows, marked changed so that a writer
    /// saves them as a sketch file. Else (dense spaces) the stored vectors are read through
    /// `stored`, and become, for a `writer` about to insert, hnsw_rs's graph (its export made
    /// later, as for a graph built in memory), otherwise the flat search structure alone,
    /// hnsw_rs's graph made from it later if ever needed. Why not, when a stored vector is
    /// missing or unusable, or hnsw_rs refuses the structure. `lean`:
    /// [`IndexParams::lean_dense`].
    pub fn from_loaded(
        loaded: LoadedIndex,
        stored: &mut dyn FnMut(EntryId) -> Option<Vec<f32>>,
        writer: bool,
        lean: bool,
    ) -> std::result::Result<SpaceIndex, persist::Reject> {
        let loaded = match loaded {
            LoadedIndex::Sketches(rows) => {
                let points = rows.ids().iter().copied().collect();
                let mut index = Self::sketches(rows, points);
                index.dirty = false;
                return Ok(index);
            }
            LoadedIndex::Graph(loaded) => loaded,
        };
        let points: HashSet<EntryId> = loaded.links.ids.iter().copied().collect();
        let missing = "a stored vector of the graph is missing, of another width, or has no \
                       direction";
        let mut index = match loaded.vectors {
            Some((dim, v)) => {
                let mut rows = flat::FlatSketches::new(dim);
                for (&id, v) in loaded.links.ids.iter().zip(v.chunks_exact(dim.max(1))) {
                    rows.push(id, v);
                }
                // Saved again, as a sketch file, by a writer's next flush.
                return Ok(Self::sketches(rows, points));
            }
            None if writer => {
                let mut rows = Vec::with_capacity(loaded.links.len());
                for &id in &loaded.links.ids {
                    let v = stored(id).ok_or(missing)?;
                    rows.push(Space::dense_graph_vector(&v).ok_or(missing)?);
                }
                // (Rows of different widths: `Hnsw::from_lists` refuses them.)
                Self::of(Some(loaded.links.graph(rows)?), None, points, lean)
            }
            None => {
                let g = catch_unwind(AssertUnwindSafe(|| {
                    let rows = graph::Rows::pick(lean);
                    graph::FlatGraph::from_links(loaded.links, stored, rows)
                }))
                .ok()
                .flatten()
                .ok_or(missing)?;
                Self::of(None, Some(g), points, lean)
            }
        };
        index.dirty = false;
        Ok(index)
    }

    /// hnsw_rs's graph, made now from the export if the index was loaded as its export only
    /// ([`graph::FlatGraph::to_graph`]); `None` when it cannot be made.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph
            .get_or_init(|| match self.exported.get() {
                Some(Some(g)) => catch_unwind(AssertUnwindSafe(|| g.to_graph()))
                    .ok()
                    .and_then(|r| r.ok()),
                _ => None,
            })
            .as_ref()
    }

    /// What to persist: a matrix space's sketch rows; a dense space's graph structure (its
    /// vectors are the store's), from hnsw_rs's graph where it was made, else from the
    /// export. `None` when none of these gives it.
    pub fn to_save(&self) -> Option<persist::SavedIndex<'_>> {
        if let Some(rows) = &self.flat {
            return rows
                .covers(self.points.len())
                .then_some(persist::SavedIndex::Sketches(rows));
        }
        let links = match (self.graph.get(), self.exported.get()) {
            (Some(Some(g)), _) => links::Links::of(g)?,
            (_, Some(Some(g))) if g.len() == g.links().len() => g.links().clone(),
            _ => return None,
        };
        Some(persist::SavedIndex::Graph(persist::Saved {
            links,
            vectors: None,
        }))
    }

    /// The ids the graph holds (read back from hnsw_rs, or from the export where hnsw_rs's
    /// graph was not made; used by `check`).
    pub fn members(&self) -> HashSet<EntryId> {
        if let Some(rows) = &self.flat {
            return rows.ids().iter().copied().collect();
        }
        match (self.graph.get(), self.exported.get()) {
            (Some(Some(g)), _) => Self::graph_ids(g),
            (_, Some(Some(g))) => g.ids().iter().copied().collect(),
            _ => HashSet::new(),
        }
    }

    /// An index that could not be built, for `reason`: no graph, exact scan only.
    pub fn unusable(params: &IndexParams, reason: String) -> SpaceIndex {
        SpaceIndex {
            unusable: Some(reason),
            ..SpaceIndex::empty_graph(params)
        }
    }

    /// Builds a graph from scratch (parallel insertion). Never fails: when a vector cannot be
    /// indexed or the insertion panics, the index is [`SpaceIndex::unusable`].
    pub fn build(
        space: &Space,
        params: &IndexParams,
        items: &[(EntryId, Embedding)],
    ) -> SpaceIndex {
        if Self::sketched_space(space) {
            let mut index = Self::sketches(flat::FlatSketches::default(), HashSet::new());
            index.insert(space, items);
            return match index.unusable.take() {
                Some(why) => SpaceIndex::unusable(params, why),
                None => index,
            };
        }
        match Self::try_build(space, params, items) {
            Ok(graph) => Self::of(
                Some(graph),
                None,
                items.iter().map(|(id, _)| *id).collect(),
                params.lean_dense,
            ),
            Err(e) => SpaceIndex::unusable(params, e.to_string()),
        }
    }

    fn try_build(
        space: &Space,
        params: &IndexParams,
        items: &[(EntryId, Embedding)],
    ) -> Result<Graph> {
        use rayon::prelude::*;
        let vecs: Vec<(Vec<f32>, usize)> = items
            .par_iter()
            .map(|(id, e)| {
                let v = space
                    .index_vector(e)
                    .map_err(|e| Error::Internal(format!("entry {id} cannot be indexed: {e}")))?;
                Ok((v, *id as usize))
            })
            .collect::<Result<_>>()?;
        let refs: Vec<(&Vec<f32>, usize)> = vecs.iter().map(|(v, id)| (v, *id)).collect();
        // Built in its own scope so that a panic leaves no half-built graph behind.
        catch_unwind(AssertUnwindSafe(|| {
            let graph = new_graph(params, items.len());
            crate::testing::maybe_panic_in_graph_insert();
            graph.parallel_insert(&refs);
            graph
        }))
        .map_err(|p| Error::Internal(format!("HNSW insertion panicked: {}", panic_text(&p))))
    }

    /// Inserts points (already validated against `space`, the space of this index). Never
    /// fails: when a vector cannot be indexed or the insertion panics, the index becomes
    /// unusable (exact scan only) until it is rebuilt. Nothing is inserted into an unusable
    /// index.
    pub fn insert(&mut self, space: &Space, items: &[(EntryId, Embedding)]) {
        if self.unusable.is_some() {
            return;
        }
        if let Err(e) = self.try_insert(space, items) {
            self.unusable = Some(e.to_string());
            self.points.clear();
            self.dirty = true;
        }
    }

    fn try_insert(&mut self, space: &Space, items: &[(EntryId, Embedding)]) -> Result<()> {
        use rayon::prelude::*;
        let fresh: Vec<&(EntryId, Embedding)> = items
            .iter()
            .filter(|(id, _)| !self.points.contains(id))
            .collect();
        // In parallel: a matrix entry's 512-d sketch is m·d·r products. Collected in order
        // first, so the error reported is the first entry's, whatever the threads did.
        let vecs: Vec<Result<(Vec<f32>, usize)>> = fresh
            .par_iter()
            .map(|(id, e)| {
                let v = space
                    .index_vector(e)
                    .map_err(|e| Error::Internal(format!("entry {id} cannot be indexed: {e}")))?;
                Ok((v, *id as usize))
            })
            .collect();
        let vecs: Vec<(Vec<f32>, usize)> = vecs.into_iter().collect::<Result<_>>()?;
        if vecs.is_empty() {
            return Ok(());
        }
        if let Some(rows) = &mut self.flat {
            for (v, id) in &vecs {
                if rows.ids().is_empty() && rows.width() != v.len() {
                    *rows = flat::FlatSketches::new(v.len());
                }
                rows.push(*id as EntryId, v);
            }
            self.points
                .extend(vecs.iter().map(|(_, id)| *id as EntryId));
            self.dirty = true;
            return Ok(());
        }
        let graph = self.graph().ok_or_else(|| {
            Error::Internal("the graph could not be made from its persisted structure".into())
        })?;
        catch_unwind(AssertUnwindSafe(|| {
            crate::testing::maybe_panic_in_graph_insert();
            if vecs.len() >= 64 {
                let refs: Vec<(&Vec<f32>, usize)> = vecs.iter().map(|(v, id)| (v, *id)).collect();
                graph.parallel_insert(&refs);
            } else {
                for (v, id) in &vecs {
                    graph.insert_slice((v, *id));
                }
            }
        }))
        .map_err(|p| Error::Internal(format!("HNSW insertion panicked: {}", panic_text(&p))))?;
        self.points
            .extend(vecs.iter().map(|(_, id)| *id as EntryId));
        if let Some(Some(g)) = self.exported.get_mut() {
            // The export holds stored vectors (it re-scores from them), not the unit copies.
            let all = fresh
                .iter()
                .all(|(id, e)| matches!(e, Embedding::Dense(v) if g.push(*id, v)));
            if !all || g.stale() {
                // Made again by the next graph query (this handle has earned it).
                self.exported = OnceLock::new();
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// A matrix space's sketch rows, when they are of width `m` and hold every point (else,
    /// a vector of another width, or a dense space: `None`, and the caller scans exactly).
    pub fn flat(&self, m: usize) -> Option<&flat::FlatSketches> {
        self.flat
            .as_ref()
            .filter(|f| f.width() == m && f.covers(self.points.len()))
    }

    /// Candidate ids for `query` (an index vector), nearest first, unfiltered: tombstones
    /// included; the caller filters.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<EntryId>> {
        if let Some(why) = &self.unusable {
            return Err(Error::Internal(format!(
                "search of an unusable graph ({why})"
            )));
        }
        if self.points.is_empty() {
            return Ok(Vec::new());
        }
        if self.flat.is_some() {
            // A matrix space's "graph search": the flat scan's first k (the benches' and
            // tests' hooks that force a candidate count).
            let ranking = self.flat(query.len()).and_then(|f| f.rank(query));
            return Ok(ranking.map_or_else(Vec::new, |mut r| {
                r.top(k, &|_| true)
                    .top
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            }));
        }
        let Some(graph) = self.graph() else {
            return Err(Error::Internal(
                "the graph could not be made from its persisted structure".into(),
            ));
        };
        let res = catch_unwind(AssertUnwindSafe(|| graph.search(query, k, ef.max(k))))
            .map_err(|_| Error::Internal("HNSW search panicked".into()))?;
        Ok(res.into_iter().map(|n| n.d_id as EntryId).collect())
    }

    /// The graph search of a space: through the export ([`SpaceIndex::search_exported`]) for
    /// a dense space; for a matrix space's sketch rows, whose knn path is the flat sketch scan
    /// in rounds, the scan's first `k` ([`SpaceIndex::search`]: the benches' hooks).
    pub fn search_for(
        &self,
        query: &[f32],
        k: usize,
        (ef, export_after): (usize, usize),
        stored: &mut dyn FnMut(EntryId) -> Option<Vec<f32>>,
    ) -> Result<Vec<EntryId>> {
        match self.flat {
            Some(_) => self.search(query, k, ef),
            None => self.search_exported(query, k, (ef, export_after), stored),
        }
    }

    /// [`SpaceIndex::search`] through the graph exported to flat arrays ([`graph`]), exported
    /// now if it was not yet and this handle has answered `export_after` graph queries of the
    /// space without it, with every point's stored vector from `stored` (redb): the search of
    /// dense spaces. hnsw_rs's own search answers before that, and when the export failed or
    /// does not hold every point.
    pub fn search_exported(
        &self,
        query: &[f32],
        k: usize,
        (ef, export_after): (usize, usize),
        stored: &mut dyn FnMut(EntryId) -> Option<Vec<f32>>,
    ) -> Result<Vec<EntryId>> {
        if self.unusable.is_some() || self.points.is_empty() || crate::testing::hnsw_rs_search() {
            return self.search(query, k, ef);
        }
        if self.exported.get().is_none()
            && self.before_export.fetch_add(1, Ordering::Relaxed) < export_after
        {
            return self.search(query, k, ef);
        }
        let g = self.exported.get_or_init(|| {
            let graph = self.graph()?;
            let rows = graph::Rows::pick(self.lean);
            catch_unwind(AssertUnwindSafe(|| {
                graph::FlatGraph::export(graph, stored, rows)
            }))
            .ok()
            .flatten()
        });
        match g {
            Some(g) if g.len() == self.points.len() => Ok(g.search(query, k, ef.max(k))),
            _ => self.search(query, k, ef),
        }
    }

    /// The stored vector of `id` as the export holds it, and its norm, when the export is in
    /// use (made, and holding every point): a dense query's candidates are scored exactly
    /// from it. `None` for a lean export ([`IndexParams::lean_dense`]): the caller reads the
    /// store.
    pub fn exported_vector(&self, id: EntryId) -> Option<(&[f32], f64)> {
        match self.exported.get() {
            Some(Some(g)) if g.len() == self.points.len() => g.stored(id),
            _ => None,
        }
    }

    /// Whether the search goes through an export that holds int8 rows only
    /// ([`IndexParams::lean_dense`]): it cannot re-rank its walk's best by f32 rows, so it
    /// returns them all (`want + 2`, [`graph::RERANK_MARGIN`]) in the walk's order, and the
    /// caller scores every one passing the filter exactly from the store before it keeps the
    /// best: the candidates a default export re-ranks itself.
    pub fn lean_export(&self) -> bool {
        matches!(self.exported.get(), Some(Some(g)) if g.lean())
    }

    /// The ids stored in an hnsw_rs graph.
    fn graph_ids(graph: &Graph) -> HashSet<EntryId> {
        if graph.get_nb_point() == 0 {
            return HashSet::new();
        }
        graph
            .get_point_indexation()
            .into_iter()
            .map(|p| p.get_origin_id() as EntryId)
            .collect()
    }
}

/// One space's graph, in memory or not loaded yet.
///
/// A graph whose persisted manifest matched the store at open is **lazy**: nothing of its
/// file is read until the first operation that needs the graph (a knn query whose plan
/// searches it, a `put` into its space, `stats`, `check`). That first use is given the
/// persisted graph and loads it (`db::open::load_space`: the file checksummed and decoded
/// by [`persist::Persisted::load`], a dense space's stored vectors read from redb), or
/// rebuilds the graph from the store when that fails; concurrent first users wait for that
/// one load (`OnceLock`). So a graph is verified in full before its first use, however long
/// after the open.
pub(crate) struct Slot {
    /// The graph and what happened to it ("loaded", "rebuilt: <why>", "new", …).
    loaded: OnceLock<(SpaceIndex, String)>,
    /// Where a lazy graph is loaded from.
    persisted: Option<persist::Persisted>,
}

impl Slot {
    /// A graph already in memory.
    pub fn ready(index: SpaceIndex, event: impl Into<String>) -> Slot {
        Slot {
            loaded: OnceLock::from((index, event.into())),
            persisted: None,
        }
    }

    /// A persisted graph whose manifest matched, loaded on first use.
    pub fn lazy(persisted: persist::Persisted) -> Slot {
        Slot {
            loaded: OnceLock::new(),
            persisted: Some(persisted),
        }
    }

    /// The graph, loaded (and verified) now if it was not yet: `load` is given the persisted
    /// graph (`None` when there is none) and returns the index and its event, rebuilding it
    /// from the store when the persisted one fails its checks.
    pub fn get(
        &self,
        load: impl FnOnce(Option<&persist::Persisted>) -> (SpaceIndex, String),
    ) -> &SpaceIndex {
        &self.loaded.get_or_init(|| load(self.persisted.as_ref())).0
    }

    /// [`Slot::get`] for a writer: the graph and its event.
    pub fn get_mut(
        &mut self,
        load: impl FnOnce(Option<&persist::Persisted>) -> (SpaceIndex, String),
    ) -> (&mut SpaceIndex, &mut String) {
        if self.loaded.get().is_none() {
            let v = load(self.persisted.as_ref());
            let _ = self.loaded.set(v);
        }
        match self.loaded.get_mut() {
            Some((idx, event)) => (idx, event),
            None => unreachable!("set just above"),
        }
    }

    /// The graph if it is in memory (a lazy one not used yet is not).
    pub fn loaded(&self) -> Option<&SpaceIndex> {
        self.loaded.get().map(|(idx, _)| idx)
    }

    /// [`Slot::loaded`], mutable.
    pub fn loaded_mut(&mut self) -> Option<&mut SpaceIndex> {
        self.loaded.get_mut().map(|(idx, _)| idx)
    }

    /// Whether the graph can be searched, as far as is known without loading it (a lazy
    /// graph is assumed usable; its load decides).
    pub fn maybe_usable(&self) -> bool {
        self.loaded().is_none_or(|idx| idx.unusable.is_none())
    }

    /// What happened to the graph: "loaded", "rebuilt: <why>", "unusable: <why>", "new",
    /// "empty", or, for a lazy graph not used yet, "persisted (loaded on first use)".
    pub fn event(&self) -> &str {
        match self.loaded.get() {
            Some((_, event)) => event,
            None => "persisted (loaded on first use)",
        }
    }
}

/// The message of a caught panic.
fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}
