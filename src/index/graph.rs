//! A dense space's graph as flat arrays: taskdb's own HNSW *search* over the graph hnsw_rs
//! built (issue 14).
//!
//! hnsw_rs stays the builder (insertion). Its search walks `Arc<Point>`s whose
//! neighbour lists sit behind `RwLock`s and whose vectors are scattered on the heap; measured
//! at 0.22–0.47× the queries/s of hnswlib and faiss on the same 100k × 768 data
//! (docs/PERFORMANCE.md §14). The same graph, exported once into contiguous arrays (every
//! vector in one row-major buffer, the layer-0 neighbour lists in one CSR array, the few upper
//! layers in a map) and searched with a bitset for the visited set and SIMD dot products,
//! answers the same query by the same algorithm (greedy descent through the upper layers, a
//! best-first beam of width `ef` in layer 0) without locks or pointer chasing.
//!
//! Derived state, in memory only: made from a dense graph's persisted structure when the graph
//! is loaded ([`FlatGraph::from_links`]; hnsw_rs's graph is then made from it only if an insert
//! needs it, [`FlatGraph::to_graph`]), or exported from a graph built in memory once a handle
//! has searched the space `IndexParams::export_after` times, and kept beside it. Its rows hold the
//! **stored** vectors, read from redb (checksums verified) when the export is made, not the
//! graph's unit copies: the search ranks by `dot(q, x) / |x|`, and the candidates' exact scores
//! are computed from these rows ([`FlatGraph::stored`]) by the space's own scorer, so a dense
//! query reads nothing from redb after the export, and its scores are the exact scan's. The
//! walk itself reads int8 copies of the rows' unit vectors ([`super::int8`]; a quarter of the
//! bytes) and re-ranks its best by the f32 rows before they are scored.
//! `IndexParams::lean_dense` (read-only handles) keeps the int8 rows only: the walk's best `k + 2`
//! are then returned in its order for the caller to score from the store ([`Rows`]). Points
//! inserted after the export are not in the exported graph: they are kept in an appended list
//! ([`FlatGraph::push`]) that every search scans exactly and merges, so none is ever missed;
//! past [`FlatGraph::stale`] the export is dropped and made again from the graph on the next
//! search.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::dot::dot;
use super::links::Links;
use super::Graph;
use crate::embedding::EntryId;

/// A candidate: similarity (dot product, higher is nearer) and row.
#[derive(Debug, Clone, Copy)]
struct Cand(f32, u32);

impl PartialEq for Cand {
    fn eq(&self, o: &Cand) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Cand) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    /// Nearer is greater (ties: the lower row), so a `BinaryHeap<Cand>` pops the nearest.
    fn cmp(&self, o: &Cand) -> Ordering {
        self.0.total_cmp(&o.0).then_with(|| o.1.cmp(&self.1))
    }
}

/// Which copies of its rows an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// f32 rows only; the walk reads them (`TASKDB_EXPORT_I8=0`, for A/B measurements).
    F32,
    /// int8 unit rows for the walk, f32 rows to re-rank its best and score them.
    I8AndF32,
    /// int8 unit rows only ([`super::IndexParams::lean_dense`]): the caller scores the walk's
    /// best from the store.
    I8,
}

impl Rows {
    /// The rows of an export: int8 rows with the f32 ones unless `lean`; f32 rows only where
    /// `TASKDB_EXPORT_I8=0` ([`super::int8::available`]; then `lean` keeps the f32 rows too,
    /// since the walk needs rows).
    pub fn pick(lean: bool) -> Rows {
        match (super::int8::available(), lean) {
            (false, _) => Rows::F32,
            (true, false) => Rows::I8AndF32,
            (true, true) => Rows::I8,
        }
    }
}

/// The candidates the walk re-ranks (or, lean, returns) beyond those asked for: its int8
/// similarities differ from the f32 ones by about 10⁻³ (quantisation noise of both sides,
/// [`super::int8`]), so the f32 order of its best `k + 2` decides the boundary. Re-ranking
/// `k + 8` instead found 0.001 more of the exact top 10 at 8 % fewer queries a second
/// (docs/PERFORMANCE.md §24). A lean export returns the same `k + 2` in the walk's order, and
/// its caller scores all of them from the store (`SpaceIndex::lean_export`), so it chooses
/// from the same candidates as a default export.
pub(crate) const RERANK_MARGIN: usize = 2;

/// The exported graph.
#[derive(Debug, Default)]
pub(crate) struct FlatGraph {
    dim: usize,
    /// Row → entry id (graph rows first, then the appended points).
    ids: Vec<EntryId>,
    /// Entry id → row.
    rows: HashMap<EntryId, u32>,
    /// Every row's stored vector, row-major (empty when `lean`).
    vecs: Vec<f32>,
    /// Whether the rows are held in int8 only ([`Rows::I8`]): `vecs` stays empty, the walk's
    /// order is the answer's, and [`FlatGraph::stored`] gives nothing.
    lean: bool,
    /// Whether the walk reads int8 rows (every [`Rows`] but `F32`).
    walk_i8: bool,
    /// Every row's |vector| (`unit::norm64`, for exact scores) and 1 / |vector| (the search
    /// ranks by cosine).
    norms: Vec<f64>,
    inv: Vec<f32>,
    /// Every row's unit vector in int8, `cstride` lanes a row, and each row's step, for the
    /// graph walk (empty, and `cstride` 0, with [`Rows::F32`]: the walk then reads `vecs`).
    codes: Vec<i8>,
    steps: Vec<f32>,
    cstride: usize,
    /// The exported graph's structure: its rows are the first `links.len()` rows here (the
    /// rest are appended points).
    links: Links,
}

impl FlatGraph {
    /// Exports `graph` (every point and its layer-0 and upper-layer neighbour lists), with each
    /// point's stored vector from `stored`. `None` when the graph is inconsistent (a neighbour
    /// that is not a point) or a stored vector is missing, of another width than the graph's,
    /// or has no direction: the caller then searches hnsw_rs itself.
    /// `rows`: which copies of the rows it holds ([`Rows::pick`]).
    pub fn export(
        graph: &Graph,
        stored: &mut dyn FnMut(EntryId) -> Option<Vec<f32>>,
        rows: Rows,
    ) -> Option<FlatGraph> {
        let links = Links::of(graph)?;
        let width = match graph.get_nb_point() {
            0 => None,
            _ => graph
                .get_point_indexation()
                .into_iter()
                .next()
                .map(|p| p.get_v().len()),
        };
        let mut checked = |id: EntryId| stored(id).filter(|v| width.is_none_or(|w| v.len() == w));
        Self::from_links(links, &mut checked, rows)
    }

    /// The flat search over `links` (a graph's structure, from hnsw_rs or from its persisted
    /// file), with each row's stored vector from `stored`; `None` when a stored vector is
    /// missing, of another width than the first, or has no direction (as [`FlatGraph::export`]).
    pub fn from_links(
        links: Links,
        stored: &mut dyn FnMut(EntryId) -> Option<Vec<f32>>,
        rows: Rows,
    ) -> Option<FlatGraph> {
        let mut g = FlatGraph {
            lean: rows == Rows::I8,
            walk_i8: rows != Rows::F32,
            ..FlatGraph::default()
        };
        let n = links.len();
        for (r, &id) in links.ids.iter().enumerate() {
            let v = stored(id)?;
            if r == 0 {
                g.set_dim(v.len());
                g.ids.reserve(n);
                g.rows.reserve(n);
                g.norms.reserve(n);
                g.inv.reserve(n);
                if g.walk_i8 {
                    g.codes.reserve(n * g.cstride);
                    g.steps.reserve(n);
                    super::pages::huge_pages(&mut g.codes);
                }
                if !g.lean {
                    g.vecs.reserve(n * g.dim);
                    super::pages::huge_pages(&mut g.vecs);
                }
            }
            if !g.add_row(id, &v) {
                return None;
            }
        }
        g.links = links;
        Some(g)
    }

    /// Every row's entry id (the exported graph's rows, then the appended points).
    pub fn ids(&self) -> &[EntryId] {
        &self.ids
    }

    /// The exported graph's structure (its rows only, not the appended points).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The hnsw_rs graph of the exported rows (their graph vectors made from the stored ones
    /// exactly as `Space::index_vector` makes them), for a space whose graph was loaded as
    /// this export only and now takes an insert. `None` once points were appended (the graph
    /// they went into exists) or when hnsw_rs refuses the structure.
    pub fn to_graph(&self) -> Result<Graph, String> {
        if self.ids.len() != self.links.len() {
            return Err("points were appended to the export".into());
        }
        if self.lean {
            return Err("the export holds int8 rows only (lean_dense)".into());
        }
        use rayon::prelude::*;
        let vectors = (0..self.links.len() as u32)
            .into_par_iter()
            .map(|r| crate::space::Space::dense_graph_vector(self.row(r)))
            .collect::<Option<Vec<_>>>()
            .ok_or("a row without a direction")?;
        self.links.graph(vectors)
    }

    /// Appends a point inserted into the graph after the export, with its stored vector
    /// (searched exactly). False when the vector has another width or no direction.
    pub fn push(&mut self, id: EntryId, v: &[f32]) -> bool {
        if self.ids.is_empty() {
            self.set_dim(v.len());
        }
        self.add_row(id, v)
    }

    /// Sets the width of a row (at the first row) and the int8 rows' lanes.
    fn set_dim(&mut self, dim: usize) {
        self.dim = dim;
        self.cstride = match self.walk_i8 {
            true => super::int8::stride(dim),
            false => 0,
        };
    }

    /// Adds a row, unless `v` has another width, no direction, or components so small or so
    /// large (|x| beyond 1e-15..1e15) that its f32 dot products could under- or overflow: such
    /// a vector is left to hnsw_rs's search of its unit copy.
    fn add_row(&mut self, id: EntryId, v: &[f32]) -> bool {
        let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        match crate::unit::norm64(v) {
            Some(n) if v.len() == self.dim && (1e-15..=1e15).contains(&largest) => {
                self.rows.insert(id, self.ids.len() as u32);
                self.ids.push(id);
                self.norms.push(n);
                self.inv.push((1.0 / n) as f32);
                if !self.lean {
                    self.vecs.extend_from_slice(v);
                }
                if self.cstride > 0 {
                    let step = super::int8::push_row(&mut self.codes, v, (1.0 / n) as f32);
                    self.steps.push(step);
                }
                true
            }
            _ => false,
        }
    }

    /// The stored vector of entry `id`, as read from the store when it was exported or
    /// appended, and its norm (`unit::norm64`); `None` for an id the export does not hold,
    /// and for every id of a lean export (it holds no f32 rows).
    pub fn stored(&self, id: EntryId) -> Option<(&[f32], f64)> {
        if self.lean {
            return None;
        }
        self.rows
            .get(&id)
            .map(|&r| (self.row(r), self.norms[r as usize]))
    }

    /// Whether the rows are held in int8 only ([`Rows::I8`]).
    pub fn lean(&self) -> bool {
        self.lean
    }

    /// Whether so many points were appended since the export that it should be made again
    /// (more than 1,024 and more than a tenth of the graph).
    pub fn stale(&self) -> bool {
        let extra = self.ids.len() - self.links.len();
        extra > 1024 && extra * 10 > self.links.len()
    }

    /// Points held (exported and appended).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    fn row(&self, r: u32) -> &[f32] {
        let r = r as usize;
        &self.vecs[r * self.dim..(r + 1) * self.dim]
    }

    fn sim(&self, q: &[f32], r: u32) -> f32 {
        dot(q, self.row(r)) * self.inv[r as usize]
    }

    /// The similarity the graph walk ranks by: the int8 unit row's dot product with the
    /// query's codes, times both steps, where there are int8 rows; else [`FlatGraph::sim`].
    #[inline]
    fn walk_sim(&self, w: &Walk, r: u32) -> f32 {
        match self.cstride {
            0 => self.sim(w.q, r),
            c => {
                let at = r as usize * c;
                let dot = super::int8::dot(&w.codes, &self.codes[at..at + c]);
                dot as f32 * w.step * self.steps[r as usize]
            }
        }
    }

    /// Asks the CPU to start loading the row the walk reads: its int8 row (up to 16 cache
    /// lines: all of a 768-d one), or the first 8 lines of its f32 row (the hardware prefetcher
    /// follows the rest). A hint only: no effect on results.
    #[inline]
    fn prefetch(&self, r: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let (ptr, bytes) = match self.cstride {
                0 => (self.row(r).as_ptr().cast::<i8>(), (self.dim * 4).min(512)),
                c => (self.codes[r as usize * c..].as_ptr(), c.min(1024)),
            };
            for line in (0..bytes).step_by(64) {
                // SAFETY: `line < bytes`, so the pointer is inside the row; a prefetch never
                // faults and changes no memory.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.add(line)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = r;
    }

    /// The `k` nearest ids to `q` by cosine, nearest first (ties by row), with a beam of
    /// `ef` in layer 0; appended points are scored exactly and merged.
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<EntryId> {
        if q.len() != self.dim || k == 0 {
            return Vec::new();
        }
        // The query's int8 codes, where the walk reads int8 rows.
        let mut codes = Vec::new();
        let step = match self.cstride {
            0 => 0.0,
            _ => super::int8::push_row(&mut codes, q, 1.0),
        };
        let w = Walk { q, codes, step };
        let mut found = match self.links.entry {
            Some(entry) => self.search_graph(&w, entry, ef.max(k)),
            None => Vec::new(),
        };
        if self.cstride > 0 {
            // The walk ranked by int8 rows (a cosine about 1e-3 off the f32 one): re-rank
            // its best k + 2 by the f32 rows, so the k returned are ordered by them, and
            // chosen at the boundary by them. (k is already the plan's widened `want`.)
            // A lean export has no f32 rows: it returns those k + 2 in the walk's order,
            // for the caller to score from the store (`RERANK_MARGIN`).
            found.sort_unstable_by(|a, b| b.cmp(a));
            found.truncate(k + RERANK_MARGIN);
            if !self.lean {
                for c in &mut found {
                    c.0 = self.sim(q, c.1);
                }
            }
        }
        for r in self.links.len()..self.ids.len() {
            let s = match self.lean {
                true => self.walk_sim(&w, r as u32),
                false => self.sim(q, r as u32),
            };
            found.push(Cand(s, r as u32));
        }
        found.sort_unstable_by(|a, b| b.cmp(a));
        found.truncate(if self.lean { k + RERANK_MARGIN } else { k });
        found.into_iter().map(|c| self.ids[c.1 as usize]).collect()
    }

    /// HNSW search of the exported rows: greedy through the upper layers, then a beam.
    fn search_graph(&self, w: &Walk, (mut ep, top): (u32, u8), ef: usize) -> Vec<Cand> {
        let mut best = self.walk_sim(w, ep);
        for layer in (1..=top).rev() {
            loop {
                let mut moved = false;
                if let Some(list) = self.links.upper.get(&(layer, ep)) {
                    for &n in list {
                        let s = self.walk_sim(w, n);
                        if s > best || (s == best && n < ep) {
                            best = s;
                            ep = n;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let mut visited = vec![0u64; self.links.len().div_ceil(64)];
        let mut seen = |r: u32| {
            let (w, b) = ((r / 64) as usize, r % 64);
            let was = visited[w] >> b & 1 == 1;
            visited[w] |= 1 << b;
            was
        };
        seen(ep);
        // `frontier` pops the nearest unexpanded candidate; `results` (a min-heap through
        // Reverse) holds the best `ef`, its root the farthest of them.
        let mut frontier = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::with_capacity(ef + 1);
        frontier.push(Cand(best, ep));
        results.push(std::cmp::Reverse(Cand(best, ep)));
        let mut fresh: Vec<u32> = Vec::with_capacity(64);
        while let Some(c) = frontier.pop() {
            let worst = results.peek().map(|w| w.0);
            if results.len() >= ef && worst.is_some_and(|w| c < w) {
                break;
            }
            let (a, b) = (
                self.links.start[c.1 as usize] as usize,
                self.links.start[c.1 as usize + 1] as usize,
            );
            // The unvisited neighbours first, then their similarities, each vector's first
            // cache lines fetched one step ahead: the search waits on memory, not arithmetic.
            fresh.clear();
            fresh.extend(self.links.nbrs[a..b].iter().copied().filter(|&n| !seen(n)));
            if let Some(&n) = fresh.first() {
                self.prefetch(n);
            }
            for (i, &n) in fresh.iter().enumerate() {
                if let Some(&next) = fresh.get(i + 1) {
                    self.prefetch(next);
                }
                let cand = Cand(self.walk_sim(w, n), n);
                let worst = results.peek().map(|w| w.0);
                if results.len() < ef || worst.is_some_and(|w| cand > w) {
                    frontier.push(cand);
                    results.push(std::cmp::Reverse(cand));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        results.into_iter().map(|r| r.0).collect()
    }
}

/// A query as the graph walk reads it: as given, and as int8 codes padded to the int8 rows'
/// lanes with their step (empty where the walk reads the f32 rows).
struct Walk<'a> {
    q: &'a [f32],
    codes: Vec<i8>,
    step: f32,
}

#[cfg(test)]
mod tests {
    use super::super::dot::dot_portable;
    use super::*;
    use hnsw_rs::prelude::DistDot;

    fn clustered(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..20).map(|_| (0..d).map(|_| next()).collect()).collect();
        (0..n)
            .map(|i| {
                let v: Vec<f32> = centres[i % 20].iter().map(|c| c + 0.3 * next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn exact(data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<EntryId> {
        let mut s: Vec<(f32, EntryId)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (dot_portable(q, v), i as EntryId + 100))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    /// The stored vectors of `graph_of(data)`'s points, by id: `data`'s rows at lengths 1–5
    /// (a stored dense vector need not be unit; the graph holds its direction).
    fn stored(data: &[Vec<f32>]) -> impl FnMut(EntryId) -> Option<Vec<f32>> + '_ {
        |id| {
            let i = usize::try_from(id).ok()?.checked_sub(100)?;
            let len = 1.0 + (i % 5) as f32;
            Some(data.get(i)?.iter().map(|x| x * len).collect())
        }
    }

    fn graph_of(data: &[Vec<f32>]) -> Graph {
        let g = Hnsw::new(16, data.len(), 16, 100, DistDot {});
        for (i, v) in data.iter().enumerate() {
            g.insert_slice((v, i + 100));
        }
        g
    }

    use hnsw_rs::prelude::Hnsw;

    #[test]
    fn the_exported_graph_finds_the_nearest_points_and_appended_ones() {
        let d = 48;
        let data = clustered(3000, d, 7);
        let graph = graph_of(&data[..2800]);
        let mut flat =
            FlatGraph::export(&graph, &mut stored(&data), Rows::pick(false)).expect("export");
        assert_eq!(flat.len(), 2800);
        let queries = clustered(50, d, 99);
        // The same search as hnsw_rs's over the same graph: at least its recall.
        let (mut found, mut theirs) = (0, 0);
        for q in &queries {
            let got = flat.search(q, 10, 64);
            assert_eq!(got.len(), 10);
            let want = exact(&data[..2800], q, 10);
            found += got.iter().filter(|id| want.contains(id)).count();
            theirs += graph
                .search(q, 10, 64)
                .iter()
                .filter(|n| want.contains(&(n.d_id as EntryId)))
                .count();
            // Nearest first.
            let sims: Vec<f32> = got
                .iter()
                .map(|&id| dot_portable(q, &data[(id - 100) as usize]))
                .collect();
            assert!(sims.windows(2).all(|w| w[0] >= w[1] - 1e-6));
        }
        assert!(
            found >= 450 && found + 5 >= theirs,
            "recall {found} of 500, hnsw_rs {theirs}"
        );
        // Points appended after the export are found (scanned exactly), and the export goes
        // stale only past its threshold.
        for (i, v) in data.iter().enumerate().skip(2800) {
            assert!(flat.push(i as EntryId + 100, v));
        }
        assert!(!flat.stale());
        assert!(!flat.push(1, &[0.0; 3]));
        let mut found = 0;
        for q in &queries {
            let want = exact(&data, q, 10);
            found += flat
                .search(q, 10, 64)
                .iter()
                .filter(|id| want.contains(id))
                .count();
        }
        assert!(found >= 450, "recall with appended points {found} of 500");
        // Each appended point is its own nearest neighbour.
        for (i, v) in data.iter().enumerate().skip(2800).step_by(37) {
            assert_eq!(flat.search(v, 1, 16), vec![i as EntryId + 100]);
        }
    }

    #[test]
    fn the_int8_walk_finds_what_the_f32_walk_finds_in_the_same_order() {
        let d = 40; // not a multiple of 32: the int8 rows are padded
        let data = clustered(2000, d, 11);
        let graph = graph_of(&data);
        let f32_walk = FlatGraph::export(&graph, &mut stored(&data), Rows::F32).expect("f32");
        let i8_walk = FlatGraph::export(&graph, &mut stored(&data), Rows::I8AndF32).expect("i8");
        assert_eq!((f32_walk.cstride, f32_walk.codes.len()), (0, 0));
        assert_eq!((i8_walk.cstride, i8_walk.codes.len()), (64, 2000 * 64));
        let queries = clustered(60, d, 5);
        let (mut same, mut found8, mut found32) = (0, 0, 0);
        for q in &queries {
            let (a, b) = (f32_walk.search(q, 10, 48), i8_walk.search(q, 10, 48));
            let want = exact(&data, q, 10);
            found32 += a.iter().filter(|id| want.contains(id)).count();
            found8 += b.iter().filter(|id| want.contains(id)).count();
            same += usize::from(a == b);
            // Nearest first by the f32 rows, whichever rows the walk read.
            let sims: Vec<f32> = b
                .iter()
                .map(|&id| f32_walk.sim(q, f32_walk.rows[&id]))
                .collect();
            assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
        }
        assert!(
            found8 + 3 >= found32,
            "recall int8 {found8}, f32 {found32} of 600"
        );
        assert!(
            same >= 54,
            "{same} of 60 queries got the same ids in the same order"
        );
    }

    #[test]
    fn a_handle_searches_with_hnsw_rs_until_export_after_queries_then_through_the_export() {
        let data = clustered(600, 24, 3);
        let idx = super::super::SpaceIndex::of(
            Some(graph_of(&data)),
            None,
            (0..data.len() as EntryId).map(|i| i + 100).collect(),
            false,
        );
        for _ in 0..3 {
            let hits = idx
                .search_exported(&data[5], 5, (64, 3), &mut stored(&data))
                .unwrap();
            assert_eq!(hits[0], 105);
            assert!(idx.exported.get().is_none(), "exported before 3 queries");
        }
        let hits = idx
            .search_exported(&data[5], 5, (64, 3), &mut stored(&data))
            .unwrap();
        assert_eq!(hits[0], 105);
        assert!(matches!(idx.exported.get(), Some(Some(g)) if g.len() == data.len()));
    }

    #[test]
    fn the_export_holds_the_stored_vectors_and_refuses_a_missing_or_extreme_one() {
        let data = clustered(300, 16, 5);
        let graph = graph_of(&data);
        let flat =
            FlatGraph::export(&graph, &mut stored(&data), Rows::pick(false)).expect("export");
        // Each row is the stored vector itself (here at length 1 + i % 5), not its unit copy.
        for i in [0usize, 3, 299] {
            let want: Vec<f32> = data[i].iter().map(|x| x * (1 + i % 5) as f32).collect();
            let (row, norm) = flat.stored(i as EntryId + 100).unwrap();
            assert_eq!(row, &want[..]);
            assert_eq!(norm, crate::unit::norm64(&want).unwrap());
        }
        assert_eq!(flat.stored(7), None);
        // A point without a stored vector, or one whose f32 dot products could underflow:
        // no export (hnsw_rs's search answers).
        let mut missing = |id: EntryId| (id != 150).then(|| data[id as usize - 100].clone());
        assert!(FlatGraph::export(&graph, &mut missing, Rows::pick(false)).is_none());
        let mut tiny = |id: EntryId| {
            let s = if id == 150 { 1e-30 } else { 1.0 };
            Some(data[id as usize - 100].iter().map(|x| x * s).collect())
        };
        assert!(FlatGraph::export(&graph, &mut tiny, Rows::pick(false)).is_none());
        let mut wide = |id: EntryId| {
            let mut v = data[id as usize - 100].clone();
            v.push(0.5);
            Some(v)
        };
        assert!(FlatGraph::export(&graph, &mut wide, Rows::pick(false)).is_none());
    }

    #[test]
    fn an_empty_graph_and_a_query_of_another_width_find_nothing() {
        let graph = Hnsw::<f32, DistDot>::new(16, 10, 16, 100, DistDot {});
        let mut flat = FlatGraph::export(&graph, &mut |_| None, Rows::pick(false)).expect("export");
        assert!(flat.search(&[1.0, 0.0], 5, 10).is_empty());
        assert!(flat.push(7, &[1.0, 0.0]));
        assert_eq!(flat.search(&[1.0, 0.0], 5, 10), vec![7]);
        assert!(flat.search(&[1.0, 0.0, 0.0], 5, 10).is_empty());
    }

    #[test]
    fn the_avx2_dot_product_agrees_with_the_portable_one() {
        let data = clustered(20, 771, 3);
        for w in data.windows(2) {
            let (a, b) = (dot(&w[0], &w[1]), dot_portable(&w[0], &w[1]));
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
