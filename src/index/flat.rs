//! A flat scan over a matrix space's sketches: the candidate generator of its knn path.
//!
//! A matrix space's graph holds each entry's 512-d sketch (`taskdb_methods::sketch`), whose dot
//! products estimate the exact centred cosines. hnsw_rs's graph over those sketches loses an
//! entry's close relatives where entries come in tight clusters (measured: 8 of the exact top
//! 10 at 2,048 candidates of 2,600, docs/PERFORMANCE.md §15), so the candidates are taken by a
//! *flat* scan instead: every sketch, quantised to int8 with one scale per row, against the
//! query quantised the same way. The scan returns the true top `c` of the quantised sketch
//! scores (ties by id), which the caller re-ranks exactly; the int8 rounding error (about
//! 0.004 on a score, against the sketch's own 0.05) is small beside the stop rule's margin
//! ([`crate::search::plan`]).
//!
//! Derived state: built from the space's loaded graph (the sketches it holds), kept beside it
//! and extended on every insert; never persisted.

use rayon::prelude::*;

use crate::embedding::EntryId;

/// Rows scored per rayon task.
const BLOCK: usize = 4096;

/// A ranking selects this many times the rows a round asks for (see [`Ranking::sort_prefix`]).
const SELECT_AHEAD: usize = 4;

/// Every sketch of one space, int8, row-major.
#[derive(Debug, Default)]
pub(crate) struct FlatSketches {
    m: usize,
    ids: Vec<EntryId>,
    codes: Vec<i8>,
    /// Per row: the value of one int8 step.
    scales: Vec<f32>,
}

/// A row's int8 codes and its scale (the value of one step); a zero vector scales by 1.
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let top = v.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
    let scale = if top > 0.0 && top.is_finite() {
        top / 127.0
    } else {
        1.0
    };
    out.extend(
        v.iter()
            .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// Scores the rows of `block` (each `q.len()` codes) into `out`: `dot · qs · scales[i]`, the
/// dot product exact in i32 (the dense walk's kernels, [`super::int8::dot`]).
fn score_block(q: &[i8], qs: f32, block: &[i8], scales: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; that is the only requirement of
        // a `#[target_feature]` function.
        unsafe { score_block_avx2(q, qs, block, scales, out) };
        return;
    }
    for ((row, &s), o) in block.chunks_exact(q.len()).zip(scales).zip(out) {
        *o = super::int8::dot_portable(q, row) as f32 * qs * s;
    }
}

/// [`score_block`] compiled for AVX2, so the AVX2 dot product is inlined into the row loop:
/// the same integers as the portable kernel (exact: no rounding). An AVX2 kernel measured
/// 3.8× the portable one's speed (5.7 against 21.5 ms per 100,000 rows of 512).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn score_block_avx2(q: &[i8], qs: f32, block: &[i8], scales: &[f32], out: &mut [f32]) {
    for ((row, &s), o) in block.chunks_exact(q.len()).zip(scales).zip(out) {
        *o = super::int8::dot_avx2(q, row) as f32 * qs * s;
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    /// The best `c` passing rows, best first: id and approximate sketch similarity.
    pub top: Vec<(EntryId, f32)>,
    /// The best similarity among passing rows *not* in `top` (`None` when every passing row
    /// is in it): no entry left out is, by its sketch, more similar than this.
    pub frontier: Option<f32>,
}

impl FlatSketches {
    /// Sketches of width `m`, none yet.
    pub fn new(m: usize) -> FlatSketches {
        FlatSketches {
            m,
            ..FlatSketches::default()
        }
    }

    /// The width of a row.
    pub fn width(&self) -> usize {
        self.m
    }

    /// Adds one sketch (any scale: rows are compared by direction times length, so pass the
    /// vectors the graph holds). A row of another width is ignored: the scan is then not used
    /// for it (see [`FlatSketches::covers`]).
    pub fn push(&mut self, id: EntryId, v: &[f32]) {
        if v.len() != self.m {
            return;
        }
        let s = quantise(v, &mut self.codes);
        self.ids.push(id);
        self.scales.push(s);
    }

    /// Whether every one of `n` graph points is a row here.
    pub fn covers(&self, n: usize) -> bool {
        self.ids.len() == n
    }

    /// The best `c` rows passing `keep` for the query sketch `q`, and the frontier beyond
    /// them. Deterministic: ties are broken by id.
    #[cfg(test)]
    pub fn top(&self, q: &[f32], c: usize, keep: &dyn Fn(EntryId) -> bool) -> Candidates {
        match self.rank(q) {
            Some(mut r) => r.top(c, keep),
            None => Candidates::default(),
        }
    }

    /// Scores every row against the query sketch `q` (`None` for a query of another width or
    /// an empty scan): the ranking is then read in widening prefixes by [`Ranking::top`],
    /// sorting only as far as asked.
    pub fn rank(&self, q: &[f32]) -> Option<Ranking<'_>> {
        if q.len() != self.m || self.ids.is_empty() {
            return None;
        }
        let mut qc = Vec::with_capacity(self.m);
        let qs = quantise(q, &mut qc);
        let m = self.m;
        let mut sims = vec![0f32; self.ids.len()];
        self.codes
            .par_chunks(BLOCK * m)
            .zip(sims.par_chunks_mut(BLOCK))
            .zip(self.scales.par_chunks(BLOCK))
            .for_each(|((block, out), scales)| score_block(&qc, qs, block, scales, out));
        Some(Ranking {
            ids: &self.ids,
            scored: sims.into_iter().zip(0u32..).collect(),
            sorted: 0,
            selected: 0,
            passed: Vec::new(),
            checked: 0,
        })
    }
}

/// Every row's sketch similarity to one query, sorted lazily: a prefix of the best rows is kept
/// in order and only extended when a wider prefix is asked for, so a first round of 512 does
/// not pay for sorting the 8,192 a later round might need.
///
/// The rows passing the filter are remembered across rounds, so a wider round asks `keep` only
/// about the rows it adds.
#[derive(Debug)]
pub(crate) struct Ranking<'a> {
    ids: &'a [EntryId],
    /// (similarity, row); `scored[..sorted]` are the best `sorted` rows, best first, and
    /// `scored[..selected]` the best `selected` (`sorted ≤ selected`).
    scored: Vec<(f32, u32)>,
    sorted: usize,
    selected: usize,
    /// The rows of `scored[..checked]` that passed `keep`, in that order, with their
    /// similarities.
    passed: Vec<(EntryId, f32)>,
    checked: usize,
}

impl Ranking<'_> {
    /// Sorts the best `want` rows into place (the prefix already sorted stays as it is: it
    /// holds the best rows of all, so the next ones are the best of the rest).
    fn sort_prefix(&mut self, want: usize) {
        let want = want.min(self.scored.len());
        if want <= self.sorted {
            return;
        }
        let ids = self.ids;
        let order = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| ids[a.1 as usize].cmp(&ids[b.1 as usize]))
        };
        // Select ahead: one pass over all the rows moves the best `SELECT_AHEAD × want` to the
        // front, so the next rounds (which widen ×2) select among those instead of among every
        // row again.
        if want > self.selected {
            let wide = want.saturating_mul(SELECT_AHEAD).min(self.scored.len());
            let rest = &mut self.scored[self.selected..];
            let k = wide - self.selected;
            if k < rest.len() {
                rest.select_nth_unstable_by(k, order);
            }
            self.selected = wide;
        }
        // `scored[sorted..selected]` are the next best rows, in no order: sort the best of them.
        let part = &mut self.scored[self.sorted..self.selected];
        let k = want - self.sorted;
        if k < part.len() {
            part.select_nth_unstable_by(k, order);
        }
        part[..k].sort_unstable_by(order);
        self.sorted = want;
    }

    /// The best `c` rows passing `keep`, best first, and the frontier beyond them. A wider `c`
    /// later returns these same rows first. Deterministic: ties are broken by id. `keep` must
    /// be the same filter on every call of one ranking (the rows it passed are remembered).
    pub fn top(&mut self, c: usize, keep: &dyn Fn(EntryId) -> bool) -> Candidates {
        if c == 0 {
            return Candidates::default();
        }
        // Take the best rows in widening prefixes until c + 1 of them pass the filter (the
        // extra one is the frontier) or every row has been looked at.
        let mut want = 2 * c + 16;
        loop {
            self.sort_prefix(want);
            while self.passed.len() <= c && self.checked < self.sorted {
                let (s, r) = self.scored[self.checked];
                self.checked += 1;
                let id = self.ids[r as usize];
                if keep(id) {
                    self.passed.push((id, s));
                }
            }
            if self.passed.len() > c || self.sorted == self.scored.len() {
                let n = self.passed.len().min(c);
                return Candidates {
                    top: self.passed[..n].to_vec(),
                    frontier: self.passed.get(c).map(|p| p.1),
                };
            }
            want = (self.sorted * 4).min(self.scored.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn rows(n: usize, m: usize) -> Vec<Vec<f32>> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                unit(
                    (0..m)
                        .map(|_| {
                            s ^= s << 13;
                            s ^= s >> 7;
                            s ^= s << 17;
                            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                        })
                        .collect(),
                )
            })
            .collect()
    }

    /// A scan of `data`, row i with id `first + i`.
    fn flat_of(data: &[Vec<f32>], first: EntryId) -> FlatSketches {
        let mut flat = FlatSketches::new(data[0].len());
        for (i, v) in data.iter().enumerate() {
            flat.push(first + i as EntryId, v);
        }
        flat
    }

    #[test]
    fn the_scan_returns_the_best_passing_rows_and_the_frontier_beyond_them() {
        let m = 64;
        let data = rows(3000, m);
        let flat = flat_of(&data, 1);
        assert!(flat.covers(3000));
        let q = &data[17];
        let even = |id: EntryId| id.is_multiple_of(2);
        let got = flat.top(q, 20, &even);
        // Against f32 dot products: the same rows up to int8 rounding at the boundary.
        let mut exact: Vec<(f32, EntryId)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as EntryId + 1))
            .filter(|&(_, id)| even(id))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(got.top.len(), 20);
        assert!(got.top.iter().all(|&(id, _)| even(id)));
        let want: Vec<EntryId> = exact[..20].iter().map(|e| e.1).collect();
        let hit = got.top.iter().filter(|(id, _)| want.contains(id)).count();
        assert!(hit >= 19, "{hit} of 20");
        for (&(_, s), e) in got.top.iter().zip(&exact) {
            assert!((s - e.0).abs() < 0.02, "{s} vs {}", e.0);
        }
        assert!(got.top.windows(2).all(|w| w[0].1 >= w[1].1));
        let f = got.frontier.expect("rows are left");
        assert!(f <= got.top[19].1 && (f - exact[20].0).abs() < 0.02);
    }

    #[test]
    fn a_wider_prefix_of_one_ranking_starts_with_the_narrower_one() {
        let m = 48;
        let data = rows(5000, m);
        let flat = flat_of(&data, 0);
        let q = &data[4321];
        let odd = |id: EntryId| id % 2 == 1;
        let mut r = flat.rank(q).expect("a ranking");
        let narrow = r.top(30, &odd);
        let wide = r.top(900, &odd);
        assert_eq!(narrow.top.len(), 30);
        assert_eq!(wide.top.len(), 900);
        assert_eq!(&wide.top[..30], &narrow.top[..]);
        assert_eq!(narrow.frontier, Some(wide.top[30].1));
        // The same as asking a fresh ranking for the wide prefix at once.
        let fresh = flat.top(q, 900, &odd);
        assert_eq!(fresh.top, wide.top);
        assert_eq!(fresh.frontier, wide.frontier);
        assert!(wide.top.windows(2).all(|w| w[0].1 >= w[1].1));
        // Asking past the end returns every passing row and no frontier.
        let all = r.top(10_000, &odd);
        assert_eq!(all.top.len(), 2500);
        assert_eq!(all.frontier, None);
    }

    #[test]
    fn the_avx2_kernel_gives_the_portable_kernels_integers() {
        let m = 520; // not a multiple of 16: the tail too
        let data = rows(50, m);
        let flat = flat_of(&data, 0);
        let mut qc = Vec::new();
        let qs = quantise(&data[3], &mut qc);
        let mut got = vec![0f32; 50];
        score_block(&qc, qs, &flat.codes, &flat.scales, &mut got);
        for (r, g) in got.iter().enumerate() {
            let row = &flat.codes[r * m..(r + 1) * m];
            let want = super::super::int8::dot_portable(&qc, row) as f32 * qs * flat.scales[r];
            assert_eq!(g.to_bits(), want.to_bits(), "row {r}");
        }
    }

    #[test]
    fn a_selective_filter_widens_and_an_exhausted_scan_has_no_frontier() {
        let m = 32;
        let data = rows(500, m);
        let mut flat = flat_of(&data, 0);
        // Three rows pass, wherever they rank.
        let few = |id: EntryId| id == 3 || id == 250 || id == 499;
        let got = flat.top(&data[0], 10, &few);
        let mut ids: Vec<EntryId> = got.top.iter().map(|t| t.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![3, 250, 499]);
        assert_eq!(got.frontier, None);
        // A row of the wrong width is not taken, and a query of the wrong width finds nothing.
        flat.push(999, &[1.0; 7]);
        assert!(flat.covers(500));
        assert!(flat.top(&[1.0; 7], 5, &|_| true).top.is_empty());
    }

    /// Rows that tie (copies of one sketch) and a ranking read in many widening prefixes, as
    /// a matrix query's rounds read it: every prefix is the brute-force order (similarity,
    /// then id), the frontier is the next passing row's similarity, and `keep` is asked about
    /// each row at most once over all the rounds.
    #[test]
    fn widening_prefixes_match_a_full_sort_with_ties_and_ask_the_filter_once_a_row() {
        let m = 32;
        let base = rows(700, m);
        // Each sketch three times, the copies far apart in id: many exact ties.
        let data: Vec<Vec<f32>> = (0..2100).map(|i| base[i % 700].clone()).collect();
        let flat = flat_of(&data, 10);
        let asked = std::cell::RefCell::new(std::collections::HashMap::<EntryId, usize>::new());
        let keep = |id: EntryId| {
            *asked.borrow_mut().entry(id).or_default() += 1;
            !id.is_multiple_of(5)
        };
        let q = &data[123];
        let mut full: Vec<(f32, EntryId)> = {
            let r = flat.rank(q).expect("a ranking");
            r.scored
                .iter()
                .map(|&(s, row)| (s, r.ids[row as usize]))
                .collect()
        };
        full.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        full.retain(|&(_, id)| !id.is_multiple_of(5));
        let mut r = flat.rank(q).expect("a ranking");
        for c in [5, 10, 20, 40, 80, 160, 320, 640, 1280, 5000] {
            let got = r.top(c, &keep);
            let n = c.min(full.len());
            let want: Vec<(EntryId, f32)> = full[..n].iter().map(|&(s, id)| (id, s)).collect();
            assert_eq!(got.top, want, "c = {c}");
            assert_eq!(got.frontier, full.get(c).map(|p| p.0), "c = {c}");
        }
        assert!(asked.borrow().values().all(|&n| n == 1));
        assert_eq!(asked.borrow().len(), 2100);
    }
}
