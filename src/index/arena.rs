//! The scan arena of a matrix-valued (low-rank) task space: derived state, like the graphs.
//!
//! An exact knn scan of a matrix space used to read every entry from redb on every query and
//! score it with f64 factored inner products. The arena holds, for every point of one space
//! (live or tombstoned, ids ascending), the factors `U` of `U diag(s) Uᵀ` in one contiguous
//! `f32` buffer and the per-vector constants the score needs (`‖e‖`, `⟨e/‖e‖, R⟩`), so a scan
//! streams one buffer and scores it with f32 dot products the compiler vectorises (AVX2/FMA
//! when the CPU has them, chosen at run time).
//!
//! The arena only **ranks candidates**; it never produces a returned score. For each row it
//! computes an approximate score `ŝ` and a rigorous bound `ε` on `|ŝ − s|`, where `s` is the
//! score the exact path (`Space::score`, f64) returns. [`Arena::candidates`] then keeps every
//! row that can still be in the exact top k (see there for the argument); the executor
//! re-scores those exactly, so the answer is the old exact scan's, hits, order and bits.
//!
//! Kept in sync by the executor: built on the second exact query of a space, extended by `put`,
//! dropped by `compact`, and checked on every use against the space's generation and its
//! points in the catalog (rebuilt when they disagree). Nothing of it is stored.

use std::collections::{BTreeSet, HashMap};

use taskdb_methods::{LowRank, Prepared as TaskPrepared, TaskEmbedding};

use crate::embedding::EntryId;
use crate::error::{Error, Result};
use crate::space::ScoreConsts;

/// Lanes of the f32 dot products: each lane sums `⌈d/LANES⌉` products in order, then the lanes
/// are added in a fixed tree of `log2(LANES)` levels (see [`dot_terms`]).
const LANES: usize = 16;

/// Rows scored per rayon task.
const ROWS_PER_TASK: usize = 128;

/// The derived scan arena of one low-rank task space.
#[derive(Debug, Clone)]
pub(crate) struct Arena {
    /// The space's generation this arena reflects.
    pub generation: u64,
    dim: usize,
    /// Row `r`'s entry id; strictly ascending.
    ids: Vec<EntryId>,
    /// Row `r`'s columns are `start[r]..start[r + 1]` (`start.len() == rows + 1`).
    start: Vec<usize>,
    /// Every column of every row, `dim` floats each, row after row.
    u: Vec<f32>,
    /// The weight `s_j` of every column (as stored, widened to f64).
    s: Vec<f64>,
    /// Row `r`'s frozen scoring constants.
    consts: Vec<ScoreConsts>,
    /// `Σ_j |s_j| ‖u_j‖²` of row `r` (for the error bound).
    weight: Vec<f64>,
}

/// What a row of the arena is made of (an entry's low-rank value and its constants).
pub(crate) struct Row<'a> {
    pub id: EntryId,
    pub value: &'a LowRank,
    pub consts: ScoreConsts,
}

impl Arena {
    /// An empty arena for a space of dimension `dim` at `generation`, with room for `rows`
    /// rows of `cols` columns in all.
    pub fn with_capacity(dim: usize, generation: u64, rows: usize, cols: usize) -> Arena {
        let mut start = Vec::with_capacity(rows + 1);
        start.push(0);
        Arena {
            generation,
            dim,
            ids: Vec::with_capacity(rows),
            start,
            u: Vec::with_capacity(cols.saturating_mul(dim)),
            s: Vec::with_capacity(cols),
            consts: Vec::with_capacity(rows),
            weight: Vec::with_capacity(rows),
        }
    }

    /// Appends a row. Ids must ascend (they do: ids are never reused and grow), values must
    /// have the arena's dimension.
    pub fn push(&mut self, row: Row<'_>) -> Result<()> {
        let v = row.value;
        if v.dim != self.dim || v.u.len() != v.dim * v.s.len() {
            return Err(Error::Internal(format!(
                "entry {}: a low-rank value of shape {}×{} in a scan arena of dimension {}",
                row.id,
                v.u.len() / v.dim.max(1),
                v.s.len(),
                self.dim
            )));
        }
        if self.ids.last().is_some_and(|&last| last >= row.id) {
            return Err(Error::Internal(format!(
                "entry {} appended to a scan arena out of id order",
                row.id
            )));
        }
        self.ids.push(row.id);
        self.u.extend_from_slice(&v.u);
        self.s.extend(v.s.iter().map(|&x| x as f64));
        self.start.push(self.s.len());
        self.consts.push(row.consts);
        self.weight.push(weight(v));
        Ok(())
    }

    /// Rows (points of the space, live or not).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Row `r`'s entry ids, ascending.
    pub fn ids(&self) -> &[EntryId] {
        &self.ids
    }

    /// The rows of `ids`, in their order (`None` if one is not here: the caller scans the old
    /// way).
    pub fn rows_of(&self, ids: &[EntryId]) -> Option<Vec<u32>> {
        let all = &self.ids[..];
        let first = all.first().copied().unwrap_or(0);
        let row = |id: EntryId| -> Option<u32> {
            // Ascending ids, consecutive unless `compact` removed some: row `id − first` first.
            let guess = usize::try_from(id.checked_sub(first)?).ok()?;
            let r = match all.get(guess) {
                Some(&x) if x == id => guess,
                _ => all[..guess.saturating_add(1).min(all.len())]
                    .binary_search(&id)
                    .ok()?,
            };
            u32::try_from(r).ok()
        };
        ids.iter().map(|&id| row(id)).collect()
    }

    /// Bytes of factors a full scan reads.
    pub fn factor_bytes(&self) -> usize {
        self.u.len() * std::mem::size_of::<f32>()
    }

    /// Whether the arena reflects exactly these points of its space at this generation: the
    /// check made before every use (ids are compared one by one, in order).
    pub fn reflects(&self, generation: u64, points: &BTreeSet<EntryId>) -> bool {
        self.generation == generation
            && self.ids.len() == points.len()
            && self.ids.iter().zip(points).all(|(a, b)| a == b)
    }

    /// The ids of the rows in `rows` (row indices, any order) that can be among the `k` best
    /// by the exact score, ascending: a superset of the exact top `k`, ties at the k-th score
    /// included. `live`, when given, replaces every row's constants (live centring; a row it
    /// lacks is always a candidate, and the exact path decides).
    ///
    /// The argument. For every row, [`Arena::bounds`] gives `lo ≤ s ≤ hi`, `s` the exact
    /// score (the f32 the exact path returns). Let `L` be the k-th largest `lo`. At least `k`
    /// rows have `s ≥ lo ≥ L`, so the k-th best exact score `s_k ≥ L`. A row in the exact top
    /// `k`, or tied with its k-th score, has `s ≥ s_k ≥ L`, hence `hi ≥ s ≥ L`: it is kept.
    /// Re-scoring the kept rows exactly and sorting them as the exact scan sorts (score, then
    /// id) therefore yields the exact scan's first `k`, whatever the rounding of this pass.
    ///
    /// `floor`: a known lower bound on the k-th exact score of the answer these rows join (an
    /// earlier round's hits); a row with `hi < floor` cannot enter it: the cut is `max(L, floor)`.
    pub fn candidates(
        &self,
        q: &ArenaQuery,
        rows: &[u32],
        k: usize,
        live: Option<&HashMap<EntryId, ScoreConsts>>,
        floor: Option<f64>,
    ) -> Vec<EntryId> {
        use rayon::prelude::*;
        if k == 0 {
            return Vec::new();
        }
        if rows.len() <= k {
            let mut ids: Vec<EntryId> = rows.iter().map(|&r| self.ids[r as usize]).collect();
            ids.sort_unstable();
            return ids;
        }
        let score_block = |block: &[u32]| -> Vec<(f64, f64)> {
            let mut out = Vec::with_capacity(block.len());
            score_rows(self, q, block, live, &mut out);
            out
        };
        let bounds: Vec<(f64, f64)> = if rows.len() >= 2 * ROWS_PER_TASK {
            rows.par_chunks(ROWS_PER_TASK)
                .flat_map_iter(score_block)
                .collect()
        } else {
            score_block(rows)
        };
        let mut lows: Vec<f64> = bounds.iter().map(|b| b.0).collect();
        let (_, &mut cut, _) = lows.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let cut = floor.map_or(cut, |f| cut.max(f));
        let mut ids: Vec<EntryId> = rows
            .iter()
            .zip(&bounds)
            .filter(|(_, b)| b.1 >= cut)
            .map(|(&r, _)| self.ids[r as usize])
            .collect();
        ids.sort_unstable();
        ids
    }

    /// `(lo, hi)` around the exact score of row `r`, from its f32 inner product `inner` (see
    /// [`Arena::candidates`]). Mirrors `methods::Prepared::cosine` and `Space::score` term by
    /// term; only the inner product differs, by at most `γ(2 + γ) W_q W_r` (see
    /// [`ArenaQuery::gamma`]), plus slack for the f64 sums on both sides and the final
    /// rounding to f32. A row whose bound cannot be computed gets `(−∞, +∞)`.
    fn bounds(&self, q: &ArenaQuery, r: usize, inner: f64, c: ScoreConsts) -> (f64, f64) {
        let unknown = (f64::NEG_INFINITY, f64::INFINITY);
        let norms = q.norm * c.norm;
        let ab = inner / norms;
        let rr = q.ref_norm2;
        let num = ab - q.ref_dot - c.ref_dot + rr;
        let da = 1.0 - 2.0 * q.ref_dot + rr;
        let db = 1.0 - 2.0 * c.ref_dot + rr;
        let den = (da.max(0.0) * db.max(0.0)).sqrt();
        if den.is_nan() || den <= 0.0 {
            // The exact path returns exactly 0 here (`den` depends only on the constants,
            // which both paths share bit for bit).
            return (0.0, 0.0);
        }
        let s = (num / den).clamp(-1.0, 1.0);
        // |inner − inner_exact| ≤ (γ(2+γ) + 1e-9) W_q W_r: γ for the f32 dot products, 1e-9
        // (far above (d + r²)·2⁻⁵³) for the f64 sums of both paths. Then divided by the norms
        // and `den`, as `ab` is; 1e-6 covers the f32 rounding of the exact score (≤ 2⁻²⁵) and
        // f64 rounding of the remaining terms.
        let err =
            (q.gamma * (2.0 + q.gamma) + 1e-9) * q.weight * self.weight[r] / norms / den + 1e-6;
        if !(s.is_finite() && err.is_finite()) {
            return unknown;
        }
        (s - err, s + err)
    }
}

/// `Σ_j |s_j| ‖u_j‖²` of a low-rank value (f64).
fn weight(v: &LowRank) -> f64 {
    let d = v.dim.max(1);
    v.u.chunks_exact(d)
        .zip(&v.s)
        .map(|(c, &s)| (s as f64).abs() * sum_sq(c))
        .sum()
}

/// `‖c‖²` in f64 over eight lanes (so it vectorises).
fn sum_sq(c: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = c.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &x) in acc.iter_mut().zip(ch) {
            *a += x as f64 * x as f64;
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&x| x as f64 * x as f64).sum::<f64>()
}

/// A prepared low-rank query, laid out for the arena's kernel.
pub(crate) struct ArenaQuery {
    dim: usize,
    /// The query's columns, `dim` floats each.
    cols: Vec<f32>,
    /// The query's column weights.
    t: Vec<f64>,
    norm: f64,
    ref_dot: f64,
    ref_norm2: f64,
    /// `Σ_j |t_j| ‖v_j‖²`.
    weight: f64,
    /// `γ_n = n·u / (1 − n·u)`, `u = 2⁻²⁴`, `n` the longest chain of roundings in one f32
    /// dot product of the kernel ([`dot_terms`]): the classic bound
    /// `|fl(xᵀy) − xᵀy| ≤ γ_n Σ|x_i y_i| ≤ γ_n ‖x‖‖y‖`, valid with or without FMA.
    gamma: f64,
}

impl ArenaQuery {
    /// The arena form of a prepared task query, `None` unless it is low-rank of dimension
    /// `dim` (dense task spaces are scanned the old way).
    pub fn new(p: &TaskPrepared, dim: usize) -> Option<ArenaQuery> {
        let TaskEmbedding::LowRank(v) = &p.emb else {
            return None;
        };
        if v.dim != dim || dim == 0 || v.u.len() != dim * v.s.len() {
            return None;
        }
        let n = dot_terms(dim) as f64;
        let unit = (2.0f64).powi(-24);
        // Padded with zero columns of weight 0 to a multiple of four (the kernel's width):
        // their products and sums are exactly 0, so neither the value nor the bound moves.
        let padded = v.s.len().div_ceil(4) * 4;
        let mut cols = v.u.clone();
        cols.resize(padded * dim, 0.0);
        let mut t: Vec<f64> = v.s.iter().map(|&x| x as f64).collect();
        t.resize(padded, 0.0);
        Some(ArenaQuery {
            dim,
            cols,
            t,
            norm: p.norm,
            ref_dot: p.ref_dot,
            ref_norm2: p.ref_norm2,
            weight: weight(v),
            gamma: n * unit / (1.0 - n * unit),
        })
    }
}

/// The longest chain of roundings one product goes through in [`dot4`] (or [`dot4_fma`]): its multiplication,
/// the additions in its lane (`⌈d/LANES⌉` products per lane at most, the remainder included),
/// and the `log2(LANES)` levels of the final tree.
fn dot_terms(dim: usize) -> usize {
    1 + dim.div_ceil(LANES) + LANES.trailing_zeros() as usize
}

/// Scores `rows`, pushing `(lo, hi)` per row, with the best kernel this CPU has.
fn score_rows(
    a: &Arena,
    q: &ArenaQuery,
    rows: &[u32],
    live: Option<&HashMap<EntryId, ScoreConsts>>,
    out: &mut Vec<(f64, f64)>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above; that is the only
        // requirement of a `#[target_feature]` function.
        unsafe { score_rows_avx2(a, q, rows, live, out) };
        return;
    }
    score_rows_with::<false>(a, q, rows, live, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn score_rows_avx2(
    a: &Arena,
    q: &ArenaQuery,
    rows: &[u32],
    live: Option<&HashMap<EntryId, ScoreConsts>>,
    out: &mut Vec<(f64, f64)>,
) {
    score_rows_with::<true>(a, q, rows, live, out);
}

#[inline(always)]
fn score_rows_with<const FMA: bool>(
    a: &Arena,
    q: &ArenaQuery,
    rows: &[u32],
    live: Option<&HashMap<EntryId, ScoreConsts>>,
    out: &mut Vec<(f64, f64)>,
) {
    let d = a.dim;
    for &r in rows {
        let r = r as usize;
        let consts = match live {
            None => Some(a.consts[r]),
            Some(m) => m.get(&a.ids[r]).copied(),
        };
        let Some(consts) = consts else {
            out.push((f64::NEG_INFINITY, f64::INFINITY));
            continue;
        };
        let (c0, c1) = (a.start[r], a.start[r + 1]);
        let inner = row_inner::<FMA>(&a.u[c0 * d..c1 * d], &a.s[c0..c1], q);
        out.push(a.bounds(q, r, inner, consts));
    }
}

/// `⟨U diag(s) Uᵀ, V diag(t) Vᵀ⟩_F = Σ_ij s_i t_j (u_iᵀ v_j)²`: dot products in f32 (four
/// query columns per pass over `u_i`, the query being padded to a multiple of four),
/// everything after them in f64.
#[inline(always)]
fn row_inner<const FMA: bool>(u: &[f32], s: &[f64], q: &ArenaQuery) -> f64 {
    let d = q.dim;
    let mut total = 0.0f64;
    for (ui, &si) in u.chunks_exact(d).zip(s) {
        let mut row = 0.0f64;
        for (v, t) in q.cols.chunks_exact(4 * d).zip(q.t.chunks_exact(4)) {
            let g = if FMA {
                // SAFETY: `FMA` is true only in the instance called by `score_rows_avx2`, which
                // runs after the CPU was found to support AVX2 and FMA.
                unsafe { dot4_fma(ui, v, d) }
            } else {
                dot4(ui, v, d)
            };
            for (&gl, &tl) in g.iter().zip(t) {
                let gl = gl as f64;
                row += tl * gl * gl;
            }
        }
        total += si * row;
    }
    total
}

/// [`dot4`] with AVX2 and FMA: the same lanes, each summed in the same order (fused), then the
/// same tree. Only called from [`score_rows_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dot4_fma(x: &[f32], v: &[f32], d: usize) -> [f32; 4] {
    use std::arch::x86_64::{__m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps};
    use std::arch::x86_64::{_mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps};
    use std::arch::x86_64::{_mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0};
    use std::arch::x86_64::{_mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps};
    let (x, v) = (&x[..d], &v[..4 * d]);
    let full = d / LANES * LANES;
    let mut a: [__m256; 8] = [_mm256_setzero_ps(); 8];
    let (px, pv) = (x.as_ptr(), v.as_ptr());
    let mut i = 0;
    while i < full {
        // SAFETY: `i + LANES <= full <= d`, `x` holds `d` floats and `v` four columns of `d`,
        // so every 8-float load below is in bounds (unaligned loads are allowed).
        unsafe {
            // The next columns of the arena follow this one: ask for them early (a prefetch
            // never faults, wherever it points).
            _mm_prefetch::<_MM_HINT_T0>(px.wrapping_add(i + 4 * d).cast());
            let xl = _mm256_loadu_ps(px.add(i));
            let xh = _mm256_loadu_ps(px.add(i + 8));
            for c in 0..4 {
                let col = pv.add(c * d + i);
                a[2 * c] = _mm256_fmadd_ps(xl, _mm256_loadu_ps(col), a[2 * c]);
                a[2 * c + 1] = _mm256_fmadd_ps(xh, _mm256_loadu_ps(col.add(8)), a[2 * c + 1]);
            }
        }
        i += LANES;
    }
    if full == d {
        // No remainder: the tree of `reduce`, level by level, in registers (lanes l and l + 8,
        // then l and l + 4, l and l + 2, l and l + 1).
        return std::array::from_fn(|c| {
            let s8 = _mm256_add_ps(a[2 * c], a[2 * c + 1]);
            let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2));
            _mm_cvtss_f32(s1)
        });
    }
    let mut acc = [[0.0f32; LANES]; 4];
    for (c, lanes) in acc.iter_mut().enumerate() {
        // SAFETY: each store writes 8 floats into a 16-float array, at offsets 0 and 8.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), a[2 * c]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), a[2 * c + 1]);
        }
        let col = &v[c * d..(c + 1) * d];
        for l in 0..d - full {
            lanes[l] = x[full + l].mul_add(col[full + l], lanes[l]);
        }
    }
    acc.map(reduce)
}

/// Elsewhere than x86-64, [`dot4`] (never called: `score_rows` uses the portable kernel).
///
/// # Safety
/// None needed; `unsafe` only to match the x86-64 signature.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn dot4_fma(x: &[f32], v: &[f32], d: usize) -> [f32; 4] {
    dot4(x, v, d)
}

/// The fixed-order sum of the lanes (a tree of `log2(LANES)` levels).
#[inline(always)]
fn reduce(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0]
}

/// `xᵀv_0 … xᵀv_3` for the four consecutive columns of `v` (each of length `d`): lane `l`
/// sums the products at `l`, `l + LANES`, … in order (the remainder `full + l` last), then
/// [`reduce`] adds the lanes. Loads each chunk of `x` once.
#[inline(always)]
fn dot4(x: &[f32], v: &[f32], d: usize) -> [f32; 4] {
    let (v0, rest) = v.split_at(d);
    let (v1, rest) = rest.split_at(d);
    let (v2, v3) = rest.split_at(d);
    let mut acc = [[0.0f32; LANES]; 4];
    let full = d / LANES * LANES;
    let it = x[..full]
        .chunks_exact(LANES)
        .zip(v0[..full].chunks_exact(LANES))
        .zip(v1[..full].chunks_exact(LANES))
        .zip(v2[..full].chunks_exact(LANES))
        .zip(v3[..full].chunks_exact(LANES));
    for ((((a, b0), b1), b2), b3) in it {
        for l in 0..LANES {
            acc[0][l] += a[l] * b0[l];
            acc[1][l] += a[l] * b1[l];
            acc[2][l] += a[l] * b2[l];
            acc[3][l] += a[l] * b3[l];
        }
    }
    for l in 0..d - full {
        let a = x[full + l];
        acc[0][l] += a * v0[full + l];
        acc[1][l] += a * v1[full + l];
        acc[2][l] += a * v2[full + l];
        acc[3][l] += a * v3[full + l];
    }
    acc.map(reduce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use taskdb_methods::{self as methods, MethodKind};

    fn value(rng: &mut ChaCha8Rng, dim: usize) -> LowRank {
        let rank = rng.random_range(1..=19usize);
        let mut cols: Vec<Vec<f32>> = (0..rank)
            .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        for j in 0..rank {
            for p in 0..j {
                let d: f32 = cols[j].iter().zip(&cols[p]).map(|(a, b)| a * b).sum();
                let prev = cols[p].clone();
                cols[j].iter_mut().zip(prev).for_each(|(a, b)| *a -= d * b);
            }
            let n = cols[j].iter().map(|x| x * x).sum::<f32>().sqrt();
            cols[j].iter_mut().for_each(|x| *x /= n);
        }
        let s = (0..rank).map(|_| rng.random_range(-0.5f32..2.0)).collect();
        LowRank {
            dim,
            u: cols.concat(),
            s,
        }
    }

    /// An arena of `vals` (ids 1, 2, …) and their prepared forms, centred by `r`.
    fn arena_of(
        vals: &[TaskEmbedding],
        r: Option<&methods::Reference>,
    ) -> (Arena, Vec<TaskPrepared>) {
        let dim = vals[0].dim();
        let mut a = Arena::with_capacity(dim, 0, 0, 0);
        let mut prepared = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let p = methods::prepare(v, r).unwrap();
            let TaskEmbedding::LowRank(lr) = v else {
                unreachable!()
            };
            let consts = ScoreConsts {
                norm: p.norm,
                ref_dot: p.ref_dot,
            };
            let row = Row {
                id: i as EntryId + 1,
                value: lr,
                consts,
            };
            a.push(row).unwrap();
            prepared.push(p);
        }
        (a, prepared)
    }

    /// Every row's `(lo, hi)` brackets the exact path's f32 score, with both kernels, with and
    /// without a reference, at a dimension with and without a remainder; and the bracket is
    /// narrow enough to prune.
    #[test]
    fn the_bounds_bracket_the_exact_score() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for dim in [384, 37] {
            let vals: Vec<TaskEmbedding> = (0..120)
                .map(|_| TaskEmbedding::LowRank(value(&mut rng, dim)))
                .collect();
            let refs: Vec<&TaskEmbedding> = vals[..20].iter().collect();
            let reference = methods::library_reference(MethodKind::Scatter, dim, &refs).unwrap();
            for r in [None, Some(&reference)] {
                let (a, prepared) = arena_of(&vals, r);
                let rows: Vec<u32> = (0..vals.len() as u32).collect();
                for qp in prepared.iter().take(10) {
                    let q = ArenaQuery::new(qp, dim).unwrap();
                    let mut fast = Vec::new();
                    score_rows(&a, &q, &rows, None, &mut fast);
                    let mut plain = Vec::new();
                    score_rows_with::<false>(&a, &q, &rows, None, &mut plain);
                    for (i, p) in prepared.iter().enumerate() {
                        let exact = (qp.cosine(p).unwrap() as f32).clamp(-1.0, 1.0) as f64;
                        for (lo, hi) in [fast[i], plain[i]] {
                            assert!(lo <= exact && exact <= hi, "{lo} {exact} {hi}");
                            assert!(hi - lo < 0.01, "too wide to prune: {}", hi - lo);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rows_out_of_order_or_of_another_shape_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let v = value(&mut rng, 8);
        let c = ScoreConsts {
            norm: 1.0,
            ref_dot: 0.0,
        };
        let mut a = Arena::with_capacity(8, 0, 0, 0);
        let row = |id| Row {
            id,
            value: &v,
            consts: c,
        };
        a.push(row(5)).unwrap();
        assert!(a.push(row(5)).is_err() && a.push(row(4)).is_err());
        let w = value(&mut rng, 9);
        assert!(a
            .push(Row {
                id: 6,
                value: &w,
                consts: c
            })
            .is_err());
        assert_eq!(a.len(), 1);
        let points = std::collections::BTreeSet::from([5]);
        assert!(a.reflects(0, &points) && !a.reflects(1, &points));
        assert!(!a.reflects(0, &std::collections::BTreeSet::from([5, 6])));
    }

    /// Rows are found by id across gaps (`compact`); one missing id fails the whole lookup.
    #[test]
    fn rows_are_found_by_id_across_gaps() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let v = value(&mut rng, 8);
        let c = ScoreConsts {
            norm: 1.0,
            ref_dot: 0.0,
        };
        let mut a = Arena::with_capacity(8, 0, 0, 0);
        assert_eq!(a.rows_of(&[]), Some(vec![]));
        assert_eq!(a.rows_of(&[1]), None);
        let ids: Vec<EntryId> = [3, 4, 5, 9, 10, 40, 41, 42, 1000].into();
        let row = |id| Row {
            id,
            value: &v,
            consts: c,
        };
        ids.iter().for_each(|&id| a.push(row(id)).unwrap());
        let rev: Vec<EntryId> = ids.iter().rev().copied().collect();
        let want: Vec<u32> = (0..ids.len() as u32).rev().collect();
        assert_eq!(a.rows_of(&rev), Some(want));
        for missing in [0, 2, 6, 11, 39, 43, 999, 1001, u64::MAX] {
            assert_eq!(a.rows_of(&[3, missing]), None, "{missing}");
        }
    }

    /// A floor (an earlier round's k-th exact score) only removes rows that cannot enter the
    /// answer: the exact top `k` at or above it stay, within the rows kept without it.
    #[test]
    fn a_floor_only_removes_rows_that_cannot_enter_the_answer() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let vals: Vec<_> = (0..300)
            .map(|_| TaskEmbedding::LowRank(value(&mut rng, 48)))
            .collect();
        let (a, prepared) = arena_of(&vals, None);
        let rows: Vec<u32> = (0..vals.len() as u32).collect();
        let k = 10;
        for qp in prepared.iter().take(8) {
            let q = ArenaQuery::new(qp, 48).unwrap();
            let mut exact: Vec<(f64, EntryId)> = prepared
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let s = (qp.cosine(p).unwrap() as f32).clamp(-1.0, 1.0);
                    (f64::from(s), i as EntryId + 1)
                })
                .collect();
            exact.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            let plain = a.candidates(&q, &rows, k, None, None);
            for floor_at in [0, 3, k - 1, 40] {
                let floor = exact[floor_at].0;
                let kept = a.candidates(&q, &rows, k, None, Some(floor));
                assert!(kept.iter().all(|id| plain.contains(id)), "not a subset");
                for &(s, id) in &exact[..k] {
                    if s >= floor {
                        assert!(kept.contains(&id), "lost {id} ({s} >= floor {floor})");
                    }
                }
            }
            // A floor above every score keeps nothing; one below every score changes nothing.
            assert!(a.candidates(&q, &rows, k, None, Some(2.0)).is_empty());
            assert_eq!(a.candidates(&q, &rows, k, None, Some(-2.0)), plain);
        }
    }
}
