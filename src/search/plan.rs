//! The search plan: which path answers a knn query, and how far the graph search widens before
//! it gives up. Pure (no store, no graph), so every branch is unit-tested below; the executor
//! (`db/search.rs`) follows it.
//!
//! The rules, measured in docs/PERFORMANCE.md:
//! * a space with few candidates is scanned exactly (`brute_force_below`; matrix spaces, whose
//!   graph holds sketches, also up to `exact_matrix_below`);
//! * live centring moves every score, and a graph that could not be built cannot be trusted,
//!   so both scan exactly;
//! * otherwise the graph is searched *unfiltered* with oversampling (hnsw_rs's filtered search
//!   gives up its early exit and explores most of the graph) and the hits filtered afterwards;
//!   the oversampling grows ×4 until `k` hits pass, then falls back to an exact scan;
//! * a matrix space's candidates come from a flat 4-bit scan over its sketches
//!   ([`crate::index::flat`]; the graph over them misses cluster mates): the best
//!   [`SKETCH_FIRST`] passing the filter are re-ranked exactly, and the search stops when the
//!   k-th exact score clears the sketch similarity of the best entry left out (the frontier) by
//!   [`SKETCH_Z`]·[`SKETCH_SIGMA`]; else it widens ×[`SKETCH_WIDEN`] up to [`SKETCH_LAST`] or a quarter of
//!   the space ([`SKETCH_LAST_SHARE`]), whichever is more, then scans exactly. So an answer is exact unless the sketch was confident, by that
//!   margin, that nothing left out belongs in it.

use crate::index::IndexParams;

/// A matrix space's first round re-ranks at least this many candidates.
pub(crate) const SKETCH_FIRST: usize = 512;
/// Each round of a matrix space re-ranks this many times the candidates of the one before.
/// ×2, not the ×4 of the graph's oversampling: a query among thousands of near-identical
/// entries usually needs a few thousand candidates, and ×2 stops nearer that number (at 100k,
/// the median query re-ranked 2,048 with ×4; with ×2, 72 of those 246 queries stopped at
/// 1,024, docs/PERFORMANCE.md §26). Rounds after the first cost little: the ranking selects
/// ahead ([`crate::index::flat`]) and an earlier round's k-th score prunes the re-rank.
pub(crate) const SKETCH_WIDEN: usize = 2;
/// Rounds widen ×[`SKETCH_WIDEN`] up to this many candidates, or up to a [`SKETCH_LAST_SHARE`]th of the
/// space if that is more; past that a round that has not stopped falls back to the exact scan.
pub(crate) const SKETCH_LAST: usize = 2048;
/// The widest round re-ranks at most `total / SKETCH_LAST_SHARE` candidates (when that exceeds
/// [`SKETCH_LAST`]): re-ranking a candidate costs what scanning it exactly costs, so rounds up
/// to a quarter of the space cost at most about a third of the exact scan on top of it, and
/// they answer most queries among thousands of near-identical entries (a dataset's many
/// versions or resamples) without the full scan. Measured on perturbed real datasets at 100k
/// (docs/PERFORMANCE.md §17): fallbacks to the exact scan 49 → 10 of 200 queries, p95 67 → 53
/// ms, recall@10 0.999 → 0.9965 (the wider rounds stop by the same margin with more entries
/// near the frontier; a margin growing with the round kept 0.9995 but stopped no more often).
pub(crate) const SKETCH_LAST_SHARE: usize = 4;
/// The sd of the 512-d sketch's estimate of an exact score, measured on the synthetic
/// population of `benches/knn.rs` (0.053; 0.039 in the whitened default space).
pub(crate) const SKETCH_SIGMA: f64 = 0.053;
/// How many [`SKETCH_SIGMA`] the k-th exact score must clear the frontier by. Calibrated by
/// simulation on two populations (docs/PERFORMANCE.md §15, "Calibrating an adaptive stop
/// rule"): z = 1.5 kept recall@10 at 1.000 where the rule stopped early, and on the default
/// space, whose scores are too close for the sketch, it does not stop, so those queries fall
/// back to the exact scan.
pub(crate) const SKETCH_Z: f64 = 1.5;

/// What the plan needs to know about a query and its space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Hits wanted.
    pub k: usize,
    /// Points in the space (live or not).
    pub total: usize,
    /// Whether the filter passes every live entry (then candidates are not counted).
    pub trivial_filter: bool,
    /// Whether the space's graph holds sketches (matrix-valued spaces).
    pub sketched: bool,
    /// Whether the query centres on the live library.
    pub live_centring: bool,
    /// Whether the space's graph is usable.
    pub graph_usable: bool,
}

/// How a query is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Score every candidate exactly.
    Exact,
    /// Search the graph, then re-rank exactly.
    Graph(GraphSearch),
}

/// The state of a widening graph search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphSearch {
    /// Neighbours asked of the graph this round.
    pub want: usize,
    /// How many of the hits passing the filter are re-ranked exactly.
    pub rerank: usize,
    k: usize,
    total: usize,
    /// Past this many, widening stops and the space is scanned exactly.
    give_up_above: usize,
    /// Whether the graph holds sketches: rounds end by [`GraphSearch::next_sketched`].
    sketched: bool,
}

/// What to do after a graph round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Enough hits passed the filter: re-rank them.
    Done,
    /// Ask the graph for more (the new `want` is set).
    Widen,
    /// The graph cannot give `k` passing hits: scan exactly.
    Exact,
}

/// Plans a query. `count_candidates` counts the entries passing the filter; it is called only
/// when the answer matters (a non-trivial filter on a space above the exact-scan size).
pub(crate) fn plan(
    params: &IndexParams,
    s: Shape,
    count_candidates: impl FnOnce() -> usize,
) -> Plan {
    let exact_below = if s.sketched {
        params.brute_force_below.max(params.exact_matrix_below)
    } else {
        params.brute_force_below
    };
    // All points can match when the filter is trivial (tombstones and superseded versions are
    // few), else they are counted.
    let mut candidates = s.total;
    if candidates > exact_below && !s.trivial_filter {
        candidates = count_candidates();
    }
    if candidates <= exact_below || s.live_centring || !s.graph_usable {
        return Plan::Exact;
    }
    let frac = (candidates as f64 / s.total.max(1) as f64).max(1e-6);
    let mut want = ((s.k as f64 / frac).ceil() as usize + s.k / 4 + 2).min(s.total);
    let (rerank, give_up_above) = if s.sketched {
        // The flat scan filters as it goes: no oversampling for the filter.
        want = (32 * s.k).max(SKETCH_FIRST).min(s.total);
        (
            usize::MAX,
            want.max(SKETCH_LAST).max(s.total / SKETCH_LAST_SHARE),
        )
    } else {
        (s.k, 4 * params.brute_force_below.max(s.k))
    };
    Plan::Graph(GraphSearch {
        want,
        rerank,
        k: s.k,
        total: s.total,
        give_up_above,
        sketched: s.sketched,
    })
}

impl GraphSearch {
    /// The `ef` of this round.
    pub(crate) fn ef(&self, params: &IndexParams) -> usize {
        params.ef_search.max(self.want)
    }

    /// The next step after a round in which the graph returned `found` neighbours of which
    /// `kept` passed the filter (at most [`GraphSearch::rerank`]).
    pub(crate) fn next(&mut self, found: usize, kept: usize) -> Step {
        if kept >= self.k {
            return Step::Done;
        }
        let exhausted = found < self.want || self.want >= self.total;
        if exhausted || self.want > self.give_up_above {
            return Step::Exact;
        }
        self.want = (self.want * 4).min(self.total);
        Step::Widen
    }

    /// Whether rounds end by [`GraphSearch::next_sketched`] (a matrix space).
    pub(crate) fn sketched(&self) -> bool {
        self.sketched
    }

    /// The most candidates a matrix space's rounds re-rank before it scans exactly.
    #[cfg(test)]
    pub(crate) fn last(&self) -> usize {
        self.give_up_above
    }

    /// The next step of a matrix space's search after a round that re-ranked `kept`
    /// candidates (the best by sketch among those passing the filter) exactly: `kth` is the
    /// k-th best exact score among them (`None` with fewer than k) and `frontier` the sketch
    /// similarity of the best passing entry left out (`None` when none was left out: the
    /// answer is then exact). Done when the k-th exact score clears the frontier by
    /// [`SKETCH_Z`]·[`SKETCH_SIGMA`] (an entry left out would need a sketch error that large
    /// to belong in the top k); else widen ×[`SKETCH_WIDEN`], and past [`GraphSearch::last`]
    /// scan exactly.
    pub(crate) fn next_sketched(
        &mut self,
        kept: usize,
        kth: Option<f64>,
        frontier: Option<f64>,
    ) -> Step {
        let Some(frontier) = frontier else {
            return Step::Done;
        };
        if let Some(kth) = kth.filter(|_| kept >= self.k) {
            if kth - frontier >= SKETCH_Z * SKETCH_SIGMA {
                return Step::Done;
            }
        }
        if self.want >= self.give_up_above {
            return Step::Exact;
        }
        self.want = (self.want * SKETCH_WIDEN).min(self.give_up_above);
        Step::Widen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(k: usize, total: usize) -> Shape {
        Shape {
            k,
            total,
            trivial_filter: true,
            sketched: false,
            live_centring: false,
            graph_usable: true,
        }
    }

    fn params() -> IndexParams {
        IndexParams::default()
    }

    fn graph(p: Plan) -> GraphSearch {
        match p {
            Plan::Graph(g) => g,
            Plan::Exact => panic!("expected a graph search"),
        }
    }

    #[test]
    fn small_spaces_are_scanned_exactly() {
        let p = params();
        let at = p.brute_force_below;
        assert_eq!(plan(&p, shape(10, at), || unreachable!()), Plan::Exact);
        assert!(matches!(plan(&p, shape(10, at + 1), || 0), Plan::Graph(_)));
    }

    #[test]
    fn live_centring_and_unusable_graphs_scan_exactly() {
        let p = params();
        let big = 100 * p.brute_force_below;
        let live = Shape {
            live_centring: true,
            ..shape(10, big)
        };
        assert_eq!(plan(&p, live, || big), Plan::Exact);
        let broken = Shape {
            graph_usable: false,
            ..shape(10, big)
        };
        assert_eq!(plan(&p, broken, || big), Plan::Exact);
    }

    #[test]
    fn a_trivial_filter_is_not_counted_and_a_selective_one_oversamples() {
        let p = params();
        let total = 100 * p.brute_force_below;
        let g = graph(plan(&p, shape(10, total), || unreachable!()));
        assert_eq!(g.want, 10 + 10 / 4 + 2);
        assert_eq!(g.rerank, 10);
        // One candidate in 10: ten times the neighbours.
        let filtered = Shape {
            trivial_filter: false,
            ..shape(10, total)
        };
        let g = graph(plan(&p, filtered, || total / 10));
        assert_eq!(g.want, 100 + 10 / 4 + 2);
        // Few candidates left after filtering: an exact scan of them.
        assert_eq!(plan(&p, filtered, || 3), Plan::Exact);
    }

    #[test]
    fn matrix_spaces_take_a_first_candidate_set_and_rerank_all_of_it() {
        let p = params();
        let total = 100 * p.brute_force_below.max(p.exact_matrix_below);
        let s = Shape {
            sketched: true,
            ..shape(10, total)
        };
        let g = graph(plan(&p, s, || unreachable!()));
        assert_eq!(g.want, SKETCH_FIRST);
        assert_eq!(g.rerank, usize::MAX);
        assert!(g.sketched());
        // Below the matrix exact-scan size, exactly.
        let small = Shape {
            sketched: true,
            ..shape(10, p.exact_matrix_below.max(p.brute_force_below))
        };
        assert_eq!(plan(&p, small, || unreachable!()), Plan::Exact);
    }

    #[test]
    fn widening_grows_fourfold_then_gives_up() {
        let p = params();
        let total = 1000 * p.brute_force_below;
        let mut g = graph(plan(&p, shape(10, total), || unreachable!()));
        assert_eq!(g.ef(&p), p.ef_search.max(g.want));
        let first = g.want;
        assert_eq!(g.next(first, 10), Step::Done);
        assert_eq!(g.next(first, 3), Step::Widen);
        assert_eq!(g.want, first * 4);
        // The graph returned fewer than asked: it is exhausted.
        assert_eq!(g.next(g.want - 1, 3), Step::Exact);
        let mut g = graph(plan(&p, shape(10, total), || unreachable!()));
        let mut rounds = 0;
        while g.next(g.want, 0) == Step::Widen {
            rounds += 1;
            assert!(rounds < 20, "widening must end");
        }
        assert!(g.want > 4 * p.brute_force_below.max(10) || g.want >= total);
    }

    #[test]
    fn matrix_spaces_stop_when_the_kth_exact_score_clears_the_frontier_else_widen_then_scan() {
        let p = params();
        let total = 100 * p.brute_force_below.max(p.exact_matrix_below);
        let s = Shape {
            sketched: true,
            ..shape(10, total)
        };
        let margin = SKETCH_Z * SKETCH_SIGMA;
        // Clear of the frontier: done after the first round.
        let mut g = graph(plan(&p, s, || unreachable!()));
        assert_eq!(g.last(), total / SKETCH_LAST_SHARE);
        assert_eq!(
            g.next_sketched(512, Some(0.5 + margin), Some(0.5)),
            Step::Done
        );
        // Within the sketch's error of it: widen ×SKETCH_WIDEN up to a quarter of the space,
        // then scan exactly.
        let mut g2 = graph(plan(&p, s, || unreachable!()));
        let close = Some(0.5 + margin / 2.0);
        let mut wants = vec![g2.want];
        while g2.next_sketched(g2.want, close, Some(0.5)) == Step::Widen {
            wants.push(g2.want);
            assert!(wants.len() < 20, "widening must end");
        }
        let w = SKETCH_WIDEN;
        assert_eq!(
            wants[..3],
            [SKETCH_FIRST, w * SKETCH_FIRST, w * w * SKETCH_FIRST]
        );
        assert_eq!(*wants.last().unwrap(), total / SKETCH_LAST_SHARE);
        assert!(wants.windows(2).all(|p| p[1] == (w * p[0]).min(total / 4)));
        // A small space still widens to SKETCH_LAST before it gives up.
        let smaller = Shape {
            total: 3 * SKETCH_LAST,
            ..s
        };
        let no_exact = IndexParams {
            exact_matrix_below: 0,
            brute_force_below: 0,
            ..p
        };
        let small_search = || graph(plan(&no_exact, smaller, || unreachable!()));
        let widen_all = |g: &mut GraphSearch, kept: Option<usize>, kth: Option<f64>| {
            let mut wants = vec![g.want];
            while g.next_sketched(kept.unwrap_or(g.want), kth, Some(0.5)) == Step::Widen {
                wants.push(g.want);
                assert!(wants.len() < 20, "widening must end");
            }
            wants
        };
        let mut g5 = small_search();
        assert_eq!(g5.last(), SKETCH_LAST);
        let wants = widen_all(&mut g5, None, close);
        assert_eq!(wants.first(), Some(&SKETCH_FIRST));
        assert_eq!(wants.last(), Some(&SKETCH_LAST));
        assert!(wants
            .windows(2)
            .all(|p| p[1] == (w * p[0]).min(SKETCH_LAST)));
        // Fewer than k passing among the candidates: no score to judge by; widen, then scan.
        let mut g6 = small_search();
        assert_eq!(widen_all(&mut g6, Some(3), None), wants);
        // Nothing passing was left out: the re-ranked set is the whole answer.
        let mut g3 = graph(plan(&p, s, || unreachable!()));
        assert_eq!(g3.next_sketched(300, Some(0.0), None), Step::Done);
        assert_eq!(g3.next_sketched(5, None, None), Step::Done);
        // A selective filter does not oversample the flat scan.
        let filtered = Shape {
            trivial_filter: false,
            ..s
        };
        let g4 = graph(plan(&p, filtered, || total / 10));
        assert_eq!(g4.want, SKETCH_FIRST);
        // k above the first round's size: 32 k candidates first.
        let big_k = graph(plan(&p, Shape { k: 100, ..s }, || unreachable!()));
        assert_eq!(big_k.want, 3200);
        assert_eq!(big_k.last(), total / SKETCH_LAST_SHARE);
    }
}
