//! knn: resolves the query to a space and a value, follows the plan of
//! [`crate::search::plan`], and scores candidates exactly through the space's scorer
//! ([`crate::space`]'s `score.rs`), frozen or live-centred.

use std::collections::BTreeSet;
use std::sync::Arc;

use redb::ReadTransaction;

use super::{poisoned, scan, TaskDb, DEFAULT_METHOD};
use crate::catalog::{CatEntry, Catalog};
use crate::error::{Error, Result};
use crate::index::arena::{Arena, ArenaQuery};
use crate::index::flat::FlatSketches;
use crate::index::{IndexParams, SpaceIndex};
use crate::model::{Embedding, EntryId, Kind};
use crate::search::plan::{self, GraphSearch, Plan, Shape, Step};
use crate::search::{Centring, Filter, Hit, Query, SearchOptions, SearchPath, SpaceSel};
use crate::space::{LiveCentre, Prepared, Space, SpaceId, INDEX_SCALE};
use crate::store::codec::VecMeta;
use crate::store::tables::{read_vector, VectorReader};
use crate::testing::GraphOverride;

/// Vectors are read in blocks of this many (one read transaction, sequential); each block is
/// then scored on rayon's pool.
const BLOCK: usize = 1024;

/// One knn query being executed: everything the scoring of a candidate needs.
struct Run<'a> {
    c: &'a Catalog,
    txn: &'a ReadTransaction,
    sid: SpaceId,
    space: &'a Space,
    prepared: Prepared,
    live: Option<Arc<LiveCentre>>,
    /// The space's points (live or not).
    points: &'a BTreeSet<EntryId>,
    arenas: &'a scan::Arenas,
    /// The space's scan arena, once looked up (and checked against `points`) for this query.
    arena: std::sync::OnceLock<Option<Arc<Arena>>>,
}

impl TaskDb {
    /// The `k` nearest live entries to `query` passing `filter`, best first (exact scores).
    /// Only latest versions of non-deleted entries are returned; an entry query leaves out
    /// exactly the queried entry id. Returns exactly `min(k, matching entries)` hits.
    pub fn nearest(&self, query: &Query, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        Ok(self.nearest_explain(query, k, filter)?.0)
    }

    /// Like [`TaskDb::nearest`], also saying which search path answered.
    pub fn nearest_explain(
        &self,
        query: &Query,
        k: usize,
        filter: &Filter,
    ) -> Result<(Vec<Hit>, SearchPath)> {
        self.nearest_with(query, k, filter, &SearchOptions::default())
    }

    /// Like [`TaskDb::nearest_explain`], with [`SearchOptions`] (e.g. centring on the live
    /// library, [`Centring::Live`]).
    pub fn nearest_with(
        &self,
        query: &Query,
        k: usize,
        filter: &Filter,
        opts: &SearchOptions,
    ) -> Result<(Vec<Hit>, SearchPath)> {
        let st = self.read()?;
        let c = &st.catalog;
        let txn = self.db.begin_read()?;
        let (sid, qemb, exclude) = resolve_query(c, &txn, query, filter)?;
        if k == 0 {
            return Ok((Vec::new(), SearchPath::BruteForce));
        }
        let slot = st
            .indexes
            .get(&sid)
            .ok_or_else(|| Error::Internal(format!("no index for space {sid}")))?;
        let space = c
            .spaces
            .get(&sid)
            .ok_or_else(|| Error::Internal(format!("space {sid} not in the catalog")))?;
        let keep = keeper(c, filter, exclude);
        let empty = BTreeSet::new();
        let points = c.space_points.get(&sid).unwrap_or(&empty);
        let live = match opts.centring {
            Centring::Frozen => None,
            Centring::Live => Some(self.live_centre(&txn, c, space, points)?),
        };
        let prepared = match &live {
            Some(l) => space.prepare_centred(&qemb, &l.reference)?,
            None => space.prepare(&qemb)?,
        };
        let run = Run {
            c,
            txn: &txn,
            sid,
            space,
            prepared,
            live,
            points,
            arenas: &st.arenas,
            arena: std::sync::OnceLock::new(),
        };
        let exact = |path: SearchPath| -> Result<(Vec<Hit>, SearchPath)> {
            Ok((run.exact(&keep, k)?, path))
        };
        let rerank = |ids: &[EntryId], floor: Option<f32>| run.rerank(ids, k, floor);
        let shape = Shape {
            k,
            total: points.len(),
            trivial_filter: filter.is_trivial(),
            sketched: SpaceIndex::sketched_space(space),
            live_centring: run.live.is_some(),
            graph_usable: slot.maybe_usable(),
        };
        let mut search = match plan::plan(&self.params, shape, || {
            points.iter().filter(|&&id| keep(id)).count()
        }) {
            Plan::Exact => return exact(SearchPath::BruteForce),
            Plan::Graph(g) => g,
        };
        // The benches' overrides (crate::testing): another candidate count, or given ids.
        let forced = crate::testing::graph_override();
        let ids = match forced {
            Some(GraphOverride::Ids(ids)) => ids.into_iter().filter(|&id| keep(id)).collect(),
            forced => {
                if let Some(GraphOverride::Want(w)) = forced {
                    search.want = w.clamp(1, shape.total.max(1));
                }
                // A lazy graph is checksummed and loaded here, by the first query that
                // searches it (rebuilt from the store if its files fail); one that turns out
                // unusable is not searched: the plan would have scanned exactly.
                let idx =
                    slot.get(|p| super::open::load_space(&txn, c, sid, &self.params, p, false));
                if idx.unusable.is_some() {
                    return exact(SearchPath::BruteForce);
                }
                let qv = match &run.prepared {
                    // A dense query was normalised by `prepare`; its graph vector is that
                    // unit vector scaled (`Space::index_vector`'s arithmetic, not done twice).
                    Prepared::Dense(u) if !shape.sketched => Space::index_of_unit(u),
                    _ => space.index_vector(&qemb)?,
                };
                // A matrix space's candidates come from the flat scan over its sketches,
                // in rounds that stop by the sketch rule (`GraphSearch::next_sketched`); a
                // forced candidate count (benches) is one graph round, re-ranked below.
                if search.sketched() && forced.is_none() {
                    let Some(flat) = idx.flat(qv.len()) else {
                        return exact(SearchPath::BruteForce);
                    };
                    return match sketch_rounds(flat, &qv, &mut search, k, &keep, &rerank)? {
                        Some(hits) => Ok((hits, SearchPath::SketchScan)),
                        None => exact(SearchPath::SketchScanThenBruteForce),
                    };
                }
                let rounds = run.graph_rounds(idx, &qv, &mut search, &keep, &self.params)?;
                let Some(ids) = rounds else {
                    return exact(SearchPath::HnswThenBruteForce);
                };
                // A dense space's candidates are scored from the export's stored vectors.
                if !shape.sketched {
                    if let Some(hits) = run.top_exported(idx, &ids, k)? {
                        return Ok((hits, SearchPath::Hnsw));
                    }
                }
                ids
            }
        };
        if shape.sketched {
            return Ok((run.rerank(&ids, k, None)?, SearchPath::Hnsw));
        }
        Ok((run.top(&ids, k)?, SearchPath::Hnsw))
    }

    /// The graph's first `c` candidates for `q` in the space named `space` (see
    /// [`crate::testing::graph_candidates`]).
    pub(crate) fn graph_candidates(
        &self,
        space: &str,
        q: &Embedding,
        c: usize,
        ef: usize,
    ) -> Result<Vec<EntryId>> {
        let st = self.read()?;
        let cat = &st.catalog;
        let sp = cat.space_named(space).ok_or_else(|| Error::NotFound {
            what: format!("space {space:?}"),
        })?;
        let sid = sp.id;
        let slot = st
            .indexes
            .get(&sid)
            .ok_or_else(|| Error::Internal(format!("no index for space {sid}")))?;
        let txn = self.db.begin_read()?;
        let idx = slot.get(|p| super::open::load_space(&txn, cat, sid, &self.params, p, false));
        let qv = sp.index_vector(q)?;
        idx.search(&qv, c, ef)
    }

    /// Whether the space named `space` is searched through an export holding int8 rows only
    /// (`IndexParams::lean_dense`); `None` when its graph holds no export now.
    pub(crate) fn dense_export_is_lean(&self, space: &str) -> Option<bool> {
        let st = self.read().ok()?;
        let sid = *st.catalog.space_by_name.get(space)?;
        let idx = st.indexes.get(&sid)?.loaded()?;
        match idx.exported.get() {
            Some(Some(g)) => Some(g.lean()),
            _ => None,
        }
    }

    /// The live library mean of a task space and its live entries' scoring constants, cached
    /// until the set of live entries changes. Building it reads every live vector once.
    fn live_centre(
        &self,
        txn: &ReadTransaction,
        c: &Catalog,
        space: &Space,
        points: &BTreeSet<EntryId>,
    ) -> Result<Arc<LiveCentre>> {
        LiveCentre::applies(space)?;
        let live: Vec<EntryId> = points.iter().copied().filter(|&id| c.is_live(id)).collect();
        let key = LiveCentre::key_of(&live);
        let mut cache = self.live_centres.lock().map_err(|_| poisoned())?;
        if let Some(l) = cache.get(&space.id).filter(|l| l.key == key) {
            return Ok(l.clone());
        }
        let mut values = Vec::with_capacity(live.len());
        let vectors = VectorReader::open(txn)?;
        for &id in &live {
            let vm = c.entries[&id].vector_in(id, space.id)?;
            values.push(vectors.read(id, &vm.method)?.to_task());
        }
        let l = Arc::new(LiveCentre::build(space, &live, &values)?);
        cache.insert(space.id, l.clone());
        Ok(l)
    }
}
impl Run<'_> {
    /// The space's scan arena (built on its first use by a handle), looked up once per query.
    fn arena(&self) -> Result<Option<Arc<Arena>>> {
        if let Some(a) = self.arena.get() {
            return Ok(a.clone());
        }
        let a = scan::arena_for(self.arenas, self.c, self.txn, self.space, self.points)?;
        Ok(self.arena.get_or_init(|| a).clone())
    }

    /// Graph rounds (widened ×4 by the plan) until `search.rerank` candidates pass `keep`;
    /// `None` when the plan gives up (the caller scans exactly). A dense space's export, when
    /// this round makes it, reads every point's stored vector through this query's
    /// transaction.
    fn graph_rounds(
        &self,
        idx: &SpaceIndex,
        qv: &[f32],
        search: &mut GraphSearch,
        keep: &dyn Fn(EntryId) -> bool,
        params: &IndexParams,
    ) -> Result<Option<Vec<EntryId>>> {
        let mut stored = super::open::dense_vectors(self.txn, self.c, self.sid);
        loop {
            let ef = (search.ef(params), params.export_after);
            let found = idx.search_for(qv, search.want, ef, &mut stored)?;
            let n_found = found.len();
            // A lean export's candidates are in its int8 walk's order: all of them are scored
            // exactly (`SpaceIndex::lean_export`).
            let take = match idx.lean_export() {
                true => usize::MAX,
                false => search.rerank,
            };
            let kept: Vec<EntryId> = found
                .into_iter()
                .filter(|&id| keep(id))
                .take(take)
                .collect();
            match search.next(n_found, kept.len()) {
                Step::Done => return Ok(Some(kept)),
                Step::Widen => continue,
                Step::Exact => return Ok(None),
            }
        }
    }

    /// Like [`Run::top`] for a dense space's candidates, scored from the stored vectors its
    /// export holds ([`SpaceIndex::exported_vector`]: read from redb, checksums verified, when
    /// the export was made) by the same scorer, so the hits and scores are `top`'s. `None`
    /// when the export is not in use or lacks a candidate.
    fn top_exported(
        &self,
        idx: &SpaceIndex,
        ids: &[EntryId],
        k: usize,
    ) -> Result<Option<Vec<Hit>>> {
        let (Prepared::Dense(q), None) = (&self.prepared, &self.live) else {
            return Ok(None);
        };
        let mut hits = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some((x, norm)) = idx.exported_vector(id) else {
                return Ok(None);
            };
            let e = &self.c.entries[&id];
            let vm = e.vector_in(id, self.sid)?;
            hits.push(self.hit(id, e, vm, Space::score_dense_normed(q, x, norm)));
        }
        hits.sort_by(best_first);
        hits.truncate(k);
        Ok(Some(hits))
    }

    /// The exact top `k` of every point passing `keep`: through the arena, or read from redb
    /// where there is none.
    fn exact(&self, keep: &dyn Fn(EntryId) -> bool, k: usize) -> Result<Vec<Hit>> {
        if !crate::testing::old_scan() {
            let rows = |a: &Arena| rows_passing(a, keep);
            if let Some(hits) = self.top_arena(self.arena()?.as_deref(), rows, k, None)? {
                return Ok(hits);
            }
        }
        let ids: Vec<EntryId> = self.points.iter().copied().filter(|&id| keep(id)).collect();
        self.top(&ids, k)
    }

    /// The exact top `k` of `ids` (a matrix space's candidates): through the arena, or read
    /// from redb where there is none.
    ///
    /// `floor`: the k-th best exact score of the hits an earlier round already holds (`None`
    /// before k are held); an id whose score is surely below it cannot enter their top `k`, so
    /// the arena leaves it out without re-scoring it from the store.
    fn rerank(&self, ids: &[EntryId], k: usize, floor: Option<f32>) -> Result<Vec<Hit>> {
        if !crate::testing::old_scan() {
            let rows = |a: &Arena| a.rows_of(ids);
            let arena = self.arena()?;
            if let Some(hits) = self.top_arena(arena.as_deref(), rows, k, floor)? {
                return Ok(hits);
            }
        }
        self.top(ids, k)
    }

    /// The exact scan through the space's scan arena (`None` without one, or for a query the
    /// arena cannot score: the caller scans the old way). The arena ranks every row passing
    /// `keep` and keeps a candidate set that provably contains the exact top `k`
    /// ([`Arena::candidates`]); those are re-scored exactly by [`Run::top`], so the hits,
    /// their order and their scores are the old scan's.
    fn top_arena(
        &self,
        arena: Option<&Arena>,
        rows: impl FnOnce(&Arena) -> Option<Vec<u32>>,
        k: usize,
        floor: Option<f32>,
    ) -> Result<Option<Vec<Hit>>> {
        let (Some(arena), Prepared::Task(p)) = (arena, &self.prepared) else {
            return Ok(None);
        };
        let Some(q) = ArenaQuery::new(p, self.space.def.dim as usize) else {
            return Ok(None);
        };
        let Some(rows) = rows(arena) else {
            return Ok(None);
        };
        let live = self.live.as_ref().map(|l| &l.consts);
        let ids = arena.candidates(&q, &rows, k, live, floor.map(f64::from));
        Ok(Some(self.top(&ids, k)?))
    }

    /// Scores `ids` exactly and returns the best `k`, best first, ties broken by id. Every
    /// score depends only on its own pair, so the answer is the same whatever the thread count.
    fn top(&self, ids: &[EntryId], k: usize) -> Result<Vec<Hit>> {
        use rayon::prelude::*;
        let mut hits = Vec::new();
        let vectors = VectorReader::open(self.txn)?;
        for block in ids.chunks(BLOCK) {
            let mut rows = Vec::with_capacity(block.len());
            for &id in block {
                let e = &self.c.entries[&id];
                let vm = e.vector_in(id, self.sid)?;
                let x = vectors.read(id, &vm.method)?;
                rows.push((id, e, vm, x));
            }
            let score = |r: &(EntryId, &CatEntry, &VecMeta, Embedding)| {
                let consts = match &self.live {
                    Some(l) => l.consts.get(&r.0).copied(),
                    None => r.2.prep,
                };
                self.space.score(&self.prepared, &r.3, consts)
            };
            let scores: Vec<Result<f32>> = if rows.len() >= 64 {
                rows.par_iter().map(score).collect()
            } else {
                rows.iter().map(score).collect()
            };
            for ((id, e, vm, _), sc) in rows.into_iter().zip(scores) {
                hits.push(self.hit(id, e, vm, sc?));
            }
        }
        hits.sort_by(best_first);
        hits.truncate(k);
        Ok(hits)
    }

    /// The hit of entry `id` (`e`, its vector `vm` in this space) with its exact `score`.
    fn hit(&self, id: EntryId, e: &CatEntry, vm: &VecMeta, score: f32) -> Hit {
        Hit {
            id,
            name: e.name.clone(),
            version: e.version,
            kind: e.kind,
            score,
            space: self.space.def.name.clone(),
            method: vm.method.clone(),
        }
    }
}

/// The arena rows whose ids pass `keep`.
fn rows_passing(a: &Arena, keep: &dyn Fn(EntryId) -> bool) -> Option<Vec<u32>> {
    Some(
        (0u32..)
            .zip(a.ids())
            .filter(|&(_, &id)| keep(id))
            .map(|(r, _)| r)
            .collect(),
    )
}

/// Scores candidate ids exactly and returns the best k, given the k-th score already held
/// (`Run::rerank`).
type Rerank<'a> = dyn Fn(&[EntryId], Option<f32>) -> Result<Vec<Hit>> + 'a;

/// A matrix space's rounds over the flat scan of its sketches: each re-ranks the best
/// `search.want` candidates passing `keep` exactly (`rerank`) and asks the plan whether to
/// stop ([`plan::GraphSearch::next_sketched`]). `Some(hits)` when the rounds end with an
/// answer, `None` when they give up (the caller scans exactly). One scan serves every round.
fn sketch_rounds(
    flat: &FlatSketches,
    qv: &[f32],
    search: &mut GraphSearch,
    k: usize,
    keep: &dyn Fn(EntryId) -> bool,
    rerank: &Rerank<'_>,
) -> Result<Option<Vec<Hit>>> {
    // No ranking (an empty scan, a query of another width): scan exactly.
    let Some(mut ranking) = flat.rank(qv) else {
        return Ok(None);
    };
    // Index vectors are scaled by INDEX_SCALE: their dot products by its square.
    let unscale = f64::from(INDEX_SCALE) * f64::from(INDEX_SCALE);
    let mut hits: Vec<Hit> = Vec::new();
    let mut done = 0;
    loop {
        // A wider round re-ranks only the candidates the last one did not (a wider prefix of
        // the ranking starts with the narrower one): the exact top k of the union is the top k
        // of the two exact lists, in the exact scan's order.
        let scan = ranking.top(search.want, keep);
        let n = scan.top.len();
        let ids: Vec<EntryId> = scan.top[done..n].iter().map(|t| t.0).collect();
        let frontier = scan.frontier;
        // The hits so far prune this round's re-rank: an id surely below their k-th score
        // cannot enter.
        let floor = k.checked_sub(1).and_then(|i| hits.get(i)).map(|h| h.score);
        hits.extend(rerank(&ids, floor)?);
        hits.sort_by(best_first);
        hits.truncate(k);
        done = n;
        let kth = hits.get(k.saturating_sub(1)).map(|h| f64::from(h.score));
        match search.next_sketched(n, kth, frontier.map(|f| f64::from(f) / unscale)) {
            Step::Done => return Ok(Some(hits)),
            Step::Widen => continue,
            Step::Exact => return Ok(None),
        }
    }
}

/// Which entries a query may return: live, passing `filter`, not `exclude` (an entry query
/// leaves itself out). Called for every candidate a search looks at, so a filter that matches
/// everything looks up nothing but liveness.
fn keeper<'a>(
    c: &'a Catalog,
    filter: &'a Filter,
    exclude: Option<EntryId>,
) -> impl Fn(EntryId) -> bool + 'a {
    let trivial = filter.is_trivial();
    move |id: EntryId| -> bool {
        if Some(id) == exclude || !c.is_live(id) {
            return false;
        }
        if trivial {
            return true;
        }
        let e = &c.entries[&id];
        filter.matches(&e.name, e.kind, &e.tags)
    }
}

/// The order of every answer: best score first, ties by id.
fn best_first(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// The space, value and excluded id (an entry query leaves itself out) of a query.
fn resolve_query(
    c: &Catalog,
    txn: &ReadTransaction,
    query: &Query,
    filter: &Filter,
) -> Result<(SpaceId, Embedding, Option<EntryId>)> {
    match query {
        Query::Entry(r) => {
            let id = c.resolve(r)?;
            let vm = query_vector(&c.entries[&id], r, filter)?;
            let emb = read_vector(txn, id, &vm.method)?;
            Ok((vm.space, emb, Some(id)))
        }
        Query::Vector { space, embedding } => {
            let sid = match space {
                SpaceSel::Id(id) => *id,
                SpaceSel::Name(n) => *c.space_by_name.get(n).ok_or_else(|| Error::NotFound {
                    what: format!("space {n:?}"),
                })?,
            };
            let s = c.spaces.get(&sid).ok_or_else(|| Error::NotFound {
                what: format!("space id {sid}"),
            })?;
            s.check(
                embedding,
                &format!("query vector for space {:?}", s.def.name),
            )
            .map_err(|e| match e {
                Error::InvalidInput { context, message }
                    if message.starts_with("wrong dimension") =>
                {
                    Error::SpaceMismatch(format!("{context}: {message}"))
                }
                other => other,
            })?;
            Ok((sid, embedding.clone(), None))
        }
    }
}

/// Which of an entry's vectors a query by that entry uses: the filter's method, its only one,
/// or the default method.
fn query_vector<'a>(
    e: &'a CatEntry,
    r: &crate::model::EntryRef,
    filter: &Filter,
) -> Result<&'a VecMeta> {
    match &filter.method {
        Some(m) => e.vectors.iter().find(|v| &v.method == m).ok_or_else(|| {
            let why = if e.kind == Kind::Model && m == "textemb" {
                " (textemb is the mean feature of the inputs, which for a model are \
                 the probe set U: it would be identical for every model, so models \
                 never get one)"
            } else {
                ""
            };
            Error::SpaceMismatch(format!(
                "entry {r} has no vector for method {m:?}{why}; it has: {}",
                e.methods()
            ))
        }),
        None if e.vectors.len() == 1 => Ok(&e.vectors[0]),
        None => e
            .vectors
            .iter()
            .find(|v| v.method == DEFAULT_METHOD)
            .ok_or_else(|| {
                Error::SpaceMismatch(format!(
                    "entry {r} has several methods ({}); choose one",
                    e.methods()
                ))
            }),
    }
}
