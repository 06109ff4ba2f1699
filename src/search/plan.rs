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
//! * a matrix space takes a wide candidate set and re-ranks all of it exactly.

use crate::index::IndexParams;

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
    let rerank = if s.sketched {
        want = want.max(32 * s.k).max(512).max(s.total / 4).min(s.total);
        usize::MAX
    } else {
        s.k
    };
    Plan::Graph(GraphSearch {
        want,
        rerank,
        k: s.k,
        total: s.total,
        give_up_above: 4 * params.brute_force_below.max(s.k),
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
    fn matrix_spaces_take_a_wide_candidate_set_and_rerank_all_of_it() {
        let p = params();
        let total = 100 * p.brute_force_below.max(p.exact_matrix_below);
        let s = Shape {
            sketched: true,
            ..shape(10, total)
        };
        let g = graph(plan(&p, s, || unreachable!()));
        assert_eq!(g.want, (total / 4).max(512).min(total));
        assert_eq!(g.rerank, usize::MAX);
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
}
