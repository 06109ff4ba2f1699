//! A flat scan over a matrix space's sketches: the candidate generator of its knn path.
//!
//! Each entry of a matrix space has a 512-d sketch (`taskdb_methods::sketch`), whose dot
//! products estimate the exact centred cosines. hnsw_rs's graph over those sketches loses an
//! entry's close relatives where entries come in tight clusters (measured: 8 of the exact top
//! 10 at 2,048 candidates of 2,600, docs/PERFORMANCE.md §15), so the candidates are taken by a
//! *flat* scan instead: every sketch, quantised to 4 bits a coordinate with one scale per row
//! ([`pack_row`]), against the query quantised to int8. The scan returns the true top `c` of
//! the quantised sketch scores (ties by id), which the caller re-ranks exactly; the rounding
//! error (sd ≈ 0.003 on a score, at most ≈ 0.013, against the sketch's own 0.04–0.05) is small
//! beside the stop rule's margin ([`crate::search::plan`]).
//!
//! The scan reads every row on every query and is bound by memory bandwidth, so its cost is
//! its bytes: 256 a row at m = 512 (512 with the int8 rows used until docs/PERFORMANCE.md §28:
//! 37 → 23 ms a query at 1M entries). A shorter first pass over a *prefix* of each sketch was
//! measured and dropped (§28): in the default space unrelated tasks still score about 0.4, so
//! a 1M population's scores crowd below a query's best, and a 128-coordinate prefix (twice the
//! sketch's error) ruled out too few rows: its second pass refined 30k–700k rows a query and
//! p50 rose from 86 to 186 ms.
//!
//! Derived state, and the whole index of a matrix space: built from the store's vectors
//! (each entry's sketch, `Space::index_vector`), extended on every insert, and persisted as
//! these packed rows in the space's sketch file (`index::persist`, 4 + m / 2 bytes and an id
//! a row), checksummed and loaded straight back. No graph is built for a matrix space
//! (docs/PERFORMANCE.md §29).

use rayon::prelude::*;

use crate::embedding::EntryId;

/// Rows scored per rayon task.
const BLOCK: usize = 4096;

/// A ranking selects this many times the rows a round asks for (see [`Ranking::sort_prefix`]).
const SELECT_AHEAD: usize = 4;

/// Every sketch of one space, row-major, each code in 4 bits: see [`pack_row`].
#[derive(Debug, Default)]
pub(crate) struct FlatSketches {
    m: usize,
    ids: Vec<EntryId>,
    /// [`stride`]`(m)` bytes a row.
    codes: Vec<u8>,
    /// Per row: the value of one step.
    scales: Vec<f32>,
}

/// Codes of a row, padded with zeros to a multiple of 64 (the AVX2 kernel's step).
fn lanes(m: usize) -> usize {
    m.next_multiple_of(64)
}

/// Bytes of a packed row of width `m`: two codes a byte.
fn stride(m: usize) -> usize {
    lanes(m) / 2
}

/// The value of one step when `v`'s largest |component| is `levels` steps: 1 for a zero or
/// non-finite vector.
fn step(v: &[f32], levels: f32) -> f32 {
    let top = v.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
    if top > 0.0 && top.is_finite() {
        top / levels
    } else {
        1.0
    }
}

/// The query's int8 codes (padded with zeros to [`lanes`]) and its scale (the value of one
/// step); a zero vector scales by 1.
fn quantise(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let scale = step(v, 127.0);
    out.extend(
        v.iter()
            .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    out.resize(lanes(v.len()), 0);
    scale
}

/// Appends a row as 4-bit codes and returns its scale (the value of one step: the largest
/// |component| / 7; 1 for a zero or non-finite row). Code c ∈ −7..=7 is stored as c + 8; the
/// codes of block b (64 lanes) are its 32 bytes, lane 64b + i in the low nibble of byte i and
/// lane 64b + 32 + i in the high one, the layout the AVX2 kernel unpacks with a shift and a
/// mask. Padding lanes hold code 0.
///
/// Four bits, not eight: the scan is bound by memory bandwidth (it read 512 MB a query at 1M
/// entries with int8 rows, ≈ 37 ms at this machine's 13.5 GB/s, docs/PERFORMANCE.md §28), and
/// the rounding error this adds to a score (sd 0.0032, at most 0.013, over 1,500 random unit
/// 512-d rows in this module's test) is small beside the sketch's own (0.04–0.05), which the
/// stop rule's margin allows for; recall@10 was the same as with int8 rows at 100k and 1M.
fn pack_row(v: &[f32], out: &mut Vec<u8>) -> f32 {
    let scale = step(v, 7.0);
    let code = |j: usize| -> u8 {
        let x = v
            .get(j)
            .map_or(0.0, |&x| (x / scale).round().clamp(-7.0, 7.0));
        (x as i8 + 8) as u8
    };
    for b in 0..lanes(v.len()) / 64 {
        out.extend((0..32).map(|i| code(64 * b + i) | (code(64 * b + 32 + i) << 4)));
    }
    scale
}

/// The exact dot product of a padded int8 query and a packed row: Σ (code + 8) · q − 8 · Σ q,
/// with `q8 = 8 · Σ q`.
fn dot_portable(q: &[i8], row: &[u8], q8: i32) -> i32 {
    let mut d = 0i32;
    for (b, bytes) in row.chunks_exact(32).enumerate() {
        for (i, &x) in bytes.iter().enumerate() {
            d += i32::from(x & 0x0f) * i32::from(q[64 * b + i]);
            d += i32::from(x >> 4) * i32::from(q[64 * b + 32 + i]);
        }
    }
    d - q8
}

/// [`dot_portable`] with AVX2: per 64 lanes one 32-byte load, the two nibbles unpacked by a
/// shift and a mask, multiplied by the query's codes as unsigned × signed bytes into i16 pairs
/// (`vpmaddubsw`: |15 · 127 · 2| · 2 = 7,620, no saturation) and summed into i32 lanes. The
/// same integers as the portable kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(q: &[i8], row: &[u8], q8: i32) -> i32 {
    use std::arch::x86_64::*;
    let blocks = row.len() / 32;
    assert!(q.len() >= 64 * blocks);
    let mask = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    for b in 0..blocks {
        // SAFETY: `32 b + 32 <= row.len()` and `64 b + 64 <= q.len()` (asserted above).
        unsafe {
            let p = _mm256_loadu_si256(row.as_ptr().add(32 * b).cast());
            let lo = _mm256_and_si256(p, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(p), mask);
            let q0 = _mm256_loadu_si256(q.as_ptr().add(64 * b).cast());
            let q1 = _mm256_loadu_si256(q.as_ptr().add(64 * b + 32).cast());
            let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, q0), _mm256_maddubs_epi16(hi, q1));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(s, ones));
        }
    }
    let x = _mm_add_epi32(
        _mm256_castsi256_si128(acc),
        _mm256_extracti128_si256::<1>(acc),
    );
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01_00_11_10>(x));
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b10_11_00_01>(x));
    _mm_cvtsi128_si32(x) - q8
}

/// `8 · Σ q`: the query's share of the offset its dot products with packed rows subtract.
fn offset(q: &[i8]) -> i32 {
    8 * q.iter().map(|&c| i32::from(c)).sum::<i32>()
}

/// Scores the packed rows of `block` into `out`: `dot · qs · scales[i]`, the dot product exact
/// in i32 (`q8`: the query's [`offset`]).
fn score_block(q: &[i8], qs: f32, q8: i32, block: &[u8], scales: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above; that is the only requirement of
        // a `#[target_feature]` function.
        unsafe { score_block_avx2(q, qs, q8, block, scales, out) };
        return;
    }
    let w = q.len() / 2;
    for ((row, &s), o) in block.chunks_exact(w).zip(scales).zip(out) {
        *o = dot_portable(q, row, q8) as f32 * qs * s;
    }
}

/// [`score_block`] compiled for AVX2, so the AVX2 dot product is inlined into the row loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn score_block_avx2(q: &[i8], qs: f32, q8: i32, block: &[u8], scales: &[f32], out: &mut [f32]) {
    let w = q.len() / 2;
    for ((row, &s), o) in block.chunks_exact(w).zip(scales).zip(out) {
        *o = dot_avx2(q, row, q8) as f32 * qs * s;
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
        let s = pack_row(v, &mut self.codes);
        self.ids.push(id);
        self.scales.push(s);
    }

    /// Whether every one of `n` indexed points is a row here.
    pub fn covers(&self, n: usize) -> bool {
        self.ids.len() == n
    }

    /// The rows' entry ids, in row order.
    pub fn ids(&self) -> &[EntryId] {
        &self.ids
    }

    /// The rows' scales and packed codes ([`stride`] bytes a row), for the sketch file
    /// (`index::persist`).
    pub fn packed(&self) -> (&[f32], &[u8]) {
        (&self.scales, &self.codes)
    }

    /// Bytes of one packed row of width `m`.
    pub fn row_bytes(m: usize) -> usize {
        stride(m)
    }

    /// Rows read back from a sketch file ([`FlatSketches::ids`], [`FlatSketches::packed`]):
    /// `None` when the lengths disagree with `m` and the number of ids, or a scale is not a
    /// positive finite number ([`pack_row`] never writes one).
    pub fn from_parts(
        m: usize,
        ids: Vec<EntryId>,
        scales: Vec<f32>,
        codes: Vec<u8>,
    ) -> Option<FlatSketches> {
        let bytes = ids.len().checked_mul(stride(m))?;
        let ok = m > 0
            && scales.len() == ids.len()
            && codes.len() == bytes
            && scales.iter().all(|s| s.is_finite() && *s > 0.0);
        ok.then_some(FlatSketches {
            m,
            ids,
            codes,
            scales,
        })
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
        let mut qc = Vec::with_capacity(lanes(self.m));
        let qs = quantise(q, &mut qc);
        let q8 = offset(&qc);
        let mut sims = vec![0f32; self.ids.len()];
        self.codes
            .par_chunks(BLOCK * stride(self.m))
            .zip(sims.par_chunks_mut(BLOCK))
            .zip(self.scales.par_chunks(BLOCK))
            .for_each(|((block, out), scales)| score_block(&qc, qs, q8, block, scales, out));
        let floor = first_floor(&sims);
        let scored = match floor {
            f32::NEG_INFINITY => sims.iter().copied().zip(0u32..).collect(),
            _ => rows_from(&sims, floor, f32::INFINITY),
        };
        Some(Ranking {
            ids: &self.ids,
            sims,
            floor,
            scored,
            sorted: 0,
            selected: 0,
            passed: Vec::new(),
            checked: 0,
        })
    }
}

/// Rows a ranking first takes into its selection: an eighth of the space, at least this many
/// (see [`first_floor`]).
const FIRST_ROWS: usize = 1 << 16;

/// The similarity from which a ranking's first selection takes rows (`-∞`: every row): about
/// `max(n / 8, FIRST_ROWS)` rows are at or above it, estimated from every 64th row. Most
/// queries' rounds end within the first few thousand rows (docs/PERFORMANCE.md §26, §28), and
/// selecting among a million (f32, row) pairs cost ≈ 8 ms a query at 1M entries; the rows
/// below the floor are added only if a round widens past it.
fn first_floor(sims: &[f32]) -> f32 {
    const EVERY: usize = 64;
    let n = sims.len();
    let target = (n / 8).max(FIRST_ROWS);
    if n < 2 * target {
        return f32::NEG_INFINITY;
    }
    let mut sample: Vec<f32> = sims.iter().step_by(EVERY).copied().collect();
    let k = (target / EVERY).min(sample.len() - 1);
    let (_, f, _) = sample.select_nth_unstable_by(k, |a, b| b.total_cmp(a));
    *f
}

/// The rows whose similarity is in `[lo, hi)`, as (similarity, row).
fn rows_from(sims: &[f32], lo: f32, hi: f32) -> Vec<(f32, u32)> {
    sims.iter()
        .zip(0u32..)
        .filter(|&(&s, _)| s >= lo && s < hi)
        .map(|(&s, r)| (s, r))
        .collect()
}

/// Every row's sketch similarity to one query, sorted lazily: a prefix of the best rows is kept
/// in order and only extended when a wider prefix is asked for, so a first round of 512 does
/// not pay for sorting the 8,192 a later round might need. Only the rows at or above a floor
/// ([`first_floor`]) are selected among until a round needs more.
///
/// The rows passing the filter are remembered across rounds, so a wider round asks `keep` only
/// about the rows it adds.
#[derive(Debug)]
pub(crate) struct Ranking<'a> {
    ids: &'a [EntryId],
    /// Every row's similarity.
    sims: Vec<f32>,
    /// The rows at or above it are in `scored`, the others not yet (`-∞`: every row is).
    floor: f32,
    /// (similarity, row); `scored[..sorted]` are the best `sorted` rows, best first, and
    /// `scored[..selected]` the best `selected` (`sorted ≤ selected`). Every row not in it
    /// is below each row in it.
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
        let want = want.min(self.sims.len());
        if want <= self.sorted {
            return;
        }
        // A prefix past the rows taken so far takes the rest (all below them); selecting
        // ahead stops at the rows taken.
        if want > self.scored.len() && !self.complete() {
            let rest = rows_from(&self.sims, f32::NEG_INFINITY, self.floor);
            self.scored.extend(rest);
            self.floor = f32::NEG_INFINITY;
        }
        let ids = self.ids;
        let order = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| ids[a.1 as usize].cmp(&ids[b.1 as usize]))
        };
        // Select ahead: one pass over the rows taken moves the best `SELECT_AHEAD × want` to
        // the front, so the next rounds (which widen ×2) select among those instead of among
        // every row taken again.
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

    /// Whether every row is in `scored`.
    fn complete(&self) -> bool {
        self.floor == f32::NEG_INFINITY
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
            if self.passed.len() > c || self.sorted == self.sims.len() {
                let n = self.passed.len().min(c);
                return Candidates {
                    top: self.passed[..n].to_vec(),
                    frontier: self.passed.get(c).map(|p| p.1),
                };
            }
            want = (self.sorted * 4).min(self.sims.len());
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
        let m = 512; // the sketch's width
        let data = rows(3000, m);
        let flat = flat_of(&data, 1);
        assert!(flat.covers(3000));
        let q = &data[17];
        let even = |id: EntryId| id.is_multiple_of(2);
        let f32_dot = |id: EntryId| -> f32 {
            let v = &data[(id - 1) as usize];
            v.iter().zip(q).map(|(a, b)| a * b).sum()
        };
        // Every passing row, by the scan: its 4-bit scores against the f32 dot products.
        let all = flat.top(q, 1500, &even).top;
        assert_eq!(all.len(), 1500);
        assert!(all.iter().all(|&(id, _)| even(id)));
        let errs: Vec<f32> = all.iter().map(|&(id, s)| s - f32_dot(id)).collect();
        let max_err = errs.iter().fold(0f32, |a, e| a.max(e.abs()));
        let sd = (errs.iter().map(|e| e * e).sum::<f32>() / errs.len() as f32).sqrt();
        // Unit rows of 512: measured sd 0.0032, max 0.013 (see `pack_row`).
        assert!(sd < 0.005 && max_err < 0.02, "sd {sd}, max {max_err}");
        // The top 20 and the frontier are the scan's own order.
        let got = flat.top(q, 20, &even);
        assert_eq!(&got.top[..], &all[..20]);
        assert_eq!(got.frontier, Some(all[20].1));
        assert!(got.top.windows(2).all(|w| w[0].1 >= w[1].1));
        // Against the f32 order, a row of its top 20 is missed only when it is within the
        // rounding error of the 21st.
        let mut exact: Vec<(f32, EntryId)> = all.iter().map(|&(id, _)| (f32_dot(id), id)).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(e, id) in &exact[..20] {
            if !got.top.iter().any(|t| t.0 == id) {
                assert!(e - exact[20].0 <= 2.0 * max_err, "row {id} missed at {e}");
            }
        }
        let hit = exact[..20]
            .iter()
            .filter(|(_, id)| got.top.iter().any(|t| t.0 == *id))
            .count();
        assert!(hit >= 15, "{hit} of 20");
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
        assert_eq!(qc.len(), 576, "padded to a multiple of 64");
        let q8 = offset(&qc);
        let mut got = vec![0f32; 50];
        score_block(&qc, qs, q8, &flat.codes, &flat.scales, &mut got);
        let w = stride(m);
        for (r, g) in got.iter().enumerate() {
            let row = &flat.codes[r * w..(r + 1) * w];
            let want = dot_portable(&qc, row, q8) as f32 * qs * flat.scales[r];
            assert_eq!(g.to_bits(), want.to_bits(), "row {r}");
            // The packed row's codes, unpacked lane by lane, give the same integer.
            let lane = |j: usize| {
                let (b, i) = (j / 64, j % 64);
                let byte = row[32 * b + i % 32];
                let nib = if i < 32 { byte & 0x0f } else { byte >> 4 };
                i32::from(nib) - 8
            };
            let by_lane: i32 = (0..576).map(|j| lane(j) * i32::from(qc[j])).sum();
            assert_eq!(dot_portable(&qc, row, q8), by_lane, "row {r}");
            // Each lane within half a step of its component; padding lanes are code 0.
            for (j, &x) in data[r].iter().enumerate() {
                let c = lane(j) as f32 * flat.scales[r];
                assert!(
                    (c - x).abs() <= flat.scales[r] * 0.5 + 1e-6,
                    "row {r} lane {j}"
                );
            }
            assert!((m..576).all(|j| lane(j) == 0));
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

    /// A large space: a ranking first selects among the rows above a sampled floor, and takes
    /// the rest when a round widens past them; every prefix is still the full sort's.
    #[test]
    fn a_large_ranking_starts_above_a_floor_and_takes_the_rest_when_it_widens() {
        let (n, m) = (150_000, 64);
        let data = rows(n, m);
        let flat = flat_of(&data, 0);
        let keep = |id: EntryId| !id.is_multiple_of(3);
        let q = &data[777];
        let mut r = flat.rank(q).expect("a ranking");
        assert!(r.floor.is_finite(), "a floor below {n} rows");
        let taken = r.scored.len();
        assert!(
            taken > FIRST_ROWS / 2 && taken < n / 2,
            "{taken} rows taken first"
        );
        let mut full: Vec<(f32, EntryId)> =
            r.sims.iter().zip(0..).map(|(&s, id)| (s, id)).collect();
        full.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        full.retain(|&(_, id)| keep(id));
        for c in [10, 500, 4000] {
            let got = r.top(c, &keep);
            let want: Vec<(EntryId, f32)> = full[..c].iter().map(|&(s, id)| (id, s)).collect();
            assert_eq!(got.top, want, "c = {c}");
            assert_eq!(got.frontier, Some(full[c].0), "c = {c}");
        }
        assert!(!r.complete(), "narrow rounds stay above the floor");
        for c in [40_000, full.len()] {
            let got = r.top(c, &keep);
            let want: Vec<(EntryId, f32)> = full[..c].iter().map(|&(s, id)| (id, s)).collect();
            assert_eq!(got.top, want, "c = {c}");
            assert_eq!(got.frontier, full.get(c).map(|p| p.0), "c = {c}");
        }
        assert!(r.complete(), "a wide round took every row");
    }
}
