//! Int8 copies of the exported dense graph's rows, for the graph walk (issue 14).
//!
//! A dense query's graph walk reads ≈ 1,000–2,000 scattered rows of 768 floats: it waits on
//! memory, not arithmetic (docs/PERFORMANCE.md §19). The walk ranks by int8 copies of the rows'
//! unit vectors, one step per row (its largest |component| / 127), against the query quantised
//! the same way: 768 bytes a row instead of 3 KiB (f32) or 1.5 KiB (the f16 copies walked
//! before, §20), and an exact integer dot product (AVX2 `vpmaddwd`, or a portable loop on any
//! CPU). The walk's best candidates are then re-ranked by the f32 rows
//! ([`super::graph::FlatGraph::search`]) and the hits scored exactly from the stored vectors, so
//! only which candidates the walk visits can change, never a score (§24 measures the cost in
//! recall: 0.002 at ef 48, for about 40 % more queries a second at recall@10 0.98).
//!
//! `TASKDB_EXPORT_I8=0` in the environment makes the walk read the f32 rows instead (A/B
//! measurements).

/// Whether the walk reads int8 rows: unless `TASKDB_EXPORT_I8=0` is set (read once per
/// process).
pub(crate) fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TASKDB_EXPORT_I8").is_none_or(|x| x != "0"))
}

/// Lanes of an int8 row of `dim` components: padded with zeros to a multiple of 32 (the AVX2
/// kernel's step).
pub(crate) fn stride(dim: usize) -> usize {
    dim.next_multiple_of(32)
}

/// Appends `v × scale` to `out` as int8 codes, padded with zeros to `stride(v.len())` lanes,
/// and returns the value of one step (the largest |component × scale| / 127; 1 for a zero or
/// non-finite row, whose codes are then meaningless but in range). Rounds to nearest, ties to
/// even, the same on every CPU.
pub(crate) fn push_row(out: &mut Vec<i8>, v: &[f32], scale: f32) -> f32 {
    let top = v.iter().fold(0f32, |m, &x| m.max((x * scale).abs()));
    let step = if top > 0.0 && top.is_finite() {
        top / 127.0
    } else {
        1.0
    };
    let at = out.len();
    out.resize(at + stride(v.len()), 0);
    let mul = scale / step;
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { quantise_avx2(v, mul, &mut out[at..]) };
        return step;
    }
    quantise(v, mul, &mut out[at..]);
    step
}

/// `round_ties_even(x × mul)` clamped to ±127 into `out` (as long as `v` or longer).
#[inline(always)]
fn quantise(v: &[f32], mul: f32, out: &mut [i8]) {
    for (o, &x) in out.iter_mut().zip(v) {
        *o = (x * mul).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
}

/// [`quantise`] compiled for AVX2 (its rounding becomes `vroundps`, not a libm call per
/// component: 77 million of them for a 100k × 768 export). The same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantise_avx2(v: &[f32], mul: f32, out: &mut [i8]) {
    quantise(v, mul, out)
}

/// The exact integer dot product of two code rows (equally long; the shorter bounds it).
#[inline]
pub(crate) fn dot(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// [`dot`] without SIMD intrinsics (also the reference its test compares with).
pub(crate) fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// [`dot`] with AVX2: 32 codes a step, sign-extended to i16 and multiplied pairwise into i32
/// lanes (`vpmaddwd`): the same integers as [`dot_portable`] (|sum| ≤ n × 127², no overflow
/// below 133,000 lanes).
///
/// Also the matrix sketch scan's kernel (`super::flat`), called from its AVX2 row loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let full = n / 32 * 32;
    let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    while i < full {
        // SAFETY: `i + 32 <= full <= n`, which both slices hold: four 16-byte loads.
        unsafe {
            let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
            let x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.cast()));
            let y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.cast()));
            let x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(16).cast()));
            let y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(16).cast()));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x0, y0));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x1, y1));
        }
        i += 32;
    }
    let s = _mm256_add_epi32(s0, s1);
    let x = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01_00_11_10>(x));
    let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b10_11_00_01>(x));
    _mm_cvtsi128_si32(x) + dot_portable(&a[full..n], &b[full..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin() * 0.3).collect()
    }

    #[test]
    fn int8_rows_round_trip_within_half_a_step_and_are_padded() {
        let v = wave(41, 0.37);
        let mut row = vec![5i8]; // rows are appended after what is there
        let step = push_row(&mut row, &v, 2.0);
        assert_eq!(row.len(), 1 + stride(41));
        assert_eq!(stride(41), 64);
        assert!(row[1 + 41..].iter().all(|&c| c == 0), "padding lanes are 0");
        let top = v.iter().fold(0f32, |m, x| m.max(x.abs() * 2.0));
        assert_eq!(step, top / 127.0);
        assert!(
            row[1..].iter().any(|&c| c.abs() == 127),
            "the largest maps to ±127"
        );
        for (&c, &x) in row[1..].iter().zip(&v) {
            assert!((f32::from(c) * step - x * 2.0).abs() <= step * 0.5 + 1e-7);
        }
        // A zero row: step 1, every code 0.
        let mut z = Vec::new();
        assert_eq!(push_row(&mut z, &[0.0; 5], 1.0), 1.0);
        assert_eq!(z, vec![0i8; 32]);
    }

    #[test]
    fn the_int8_dot_product_is_exact_on_every_path_and_tracks_the_f32_one() {
        for n in [1usize, 31, 32, 33, 64, 768, 771] {
            let (a, b) = (wave(n, 0.11), wave(n, 0.29));
            let (mut ca, mut cb) = (Vec::new(), Vec::new());
            let (sa, sb) = (push_row(&mut ca, &a, 1.0), push_row(&mut cb, &b, 1.0));
            let exact = dot_portable(&ca, &cb);
            assert_eq!(dot(&ca, &cb), exact, "n = {n}");
            assert_eq!(dot(&ca[..n], &cb[..n]), exact, "unpadded, n = {n}");
            // Each code is within half a step of its component.
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let got = exact as f32 * sa * sb;
            let bound: f32 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| x.abs() * sb + y.abs() * sa)
                .sum::<f32>()
                * 0.5
                + n as f32 * sa * sb * 0.25;
            assert!(
                (got - want).abs() <= bound + 1e-6,
                "n = {n}: {got} vs {want}"
            );
        }
        // The extremes: 768 lanes of ±127 do not overflow.
        let big = vec![127i8; 768];
        let neg = vec![-127i8; 768];
        assert_eq!(dot(&big, &neg), -768 * 127 * 127);
    }
}
