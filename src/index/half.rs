//! Half-precision copies of the exported dense graph's rows, for the graph walk (issue 14).
//!
//! A dense query's graph walk reads ≈ 1,000–2,000 scattered rows of 768 floats: it waits on
//! memory, not arithmetic (docs/PERFORMANCE.md §19). Walking over IEEE binary16 copies of the
//! rows' unit vectors halves the bytes read; the walk's best candidates are then re-ranked by
//! the f32 rows ([`super::graph::FlatGraph::search`]) and the hits scored exactly from the
//! stored vectors as before, so only which candidates the walk visits can change, not a score.
//!
//! Used where the CPU converts f16 in hardware (x86-64 with AVX2, FMA and F16C, checked at run
//! time); elsewhere, and with `TASKDB_EXPORT_F16=0` in the environment (A/B measurements), the
//! walk reads the f32 rows.

/// Whether the walk uses f16 rows on this machine (see the module docs): the CPU can
/// ([`cpu_has_f16c`]) and `TASKDB_EXPORT_F16=0` is not set. The environment is read once per
/// process.
pub(crate) fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("TASKDB_EXPORT_F16").is_none_or(|x| x != "0") && cpu_has_f16c()
    })
}

/// Whether this CPU has every feature the f16 kernels are compiled for (AVX2, FMA, F16C;
/// std caches the checks).
fn cpu_has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Lanes of an f16 row of `dim` components: padded with zeros to a multiple of 8.
pub(crate) fn stride(dim: usize) -> usize {
    dim.next_multiple_of(8)
}

/// Appends `v × scale` to `out` as f16 (round to nearest), padded with zeros to
/// `stride(v.len())` lanes. Where the CPU lacks the features ([`cpu_has_f16c`]) it appends
/// nothing and returns false.
pub(crate) fn push_row(out: &mut Vec<u16>, v: &[f32], scale: f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    if cpu_has_f16c() {
        // SAFETY: `cpu_has_f16c` checked that the CPU has AVX2, FMA and F16C.
        unsafe { push_row_f16c(out, v, scale) };
        return true;
    }
    let _ = (out, v, scale);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn push_row_f16c(out: &mut Vec<u16>, v: &[f32], scale: f32) {
    use std::arch::x86_64::*;
    for chunk in v.chunks(8) {
        let mut lanes = [0f32; 8];
        for (l, x) in lanes.iter_mut().zip(chunk) {
            *l = x * scale;
        }
        let mut h = [0u16; 8];
        // SAFETY: an 8-float load from an array of 8, a 16-byte store into 8 u16s.
        unsafe {
            let f = _mm256_loadu_ps(lanes.as_ptr());
            let p = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(f);
            _mm_storeu_si128(h.as_mut_ptr().cast::<__m128i>(), p);
        }
        out.extend_from_slice(&h);
    }
}

/// The dot product of an f32 query padded to `row.len()` lanes and an f16 row of
/// [`push_row`]; 0 where the CPU lacks the features (no such row exists there).
#[inline]
pub(crate) fn dot(q: &[f32], row: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if cpu_has_f16c() {
        // SAFETY: `cpu_has_f16c` checked that the CPU has AVX2, FMA and F16C.
        return unsafe { dot_f16c(q, row) };
    }
    let _ = (q, row);
    0.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16c(q: &[f32], row: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = row.len().min(q.len()) / 8 * 8;
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`, which both slices hold: two 8-lane loads from each.
        unsafe {
            let h0 = _mm_loadu_si128(row.as_ptr().add(i).cast::<__m128i>());
            let h1 = _mm_loadu_si128(row.as_ptr().add(i + 8).cast::<__m128i>());
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_cvtph_ps(h0), a0);
            a1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(q.as_ptr().add(i + 8)),
                _mm256_cvtph_ps(h1),
                a1,
            );
        }
        i += 16;
    }
    if i < n {
        // SAFETY: `i + 8 <= n` (n is a multiple of 8): one 8-lane load from each.
        unsafe {
            let h0 = _mm_loadu_si128(row.as_ptr().add(i).cast::<__m128i>());
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_cvtph_ps(h0), a0);
        }
    }
    let mut lanes = [0f32; 8];
    // SAFETY: writes 8 floats into an array of 8.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(a0, a1)) };
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rows_round_trip_within_half_precision_and_dot_like_f32() {
        if !cpu_has_f16c() {
            // Nothing to check where the CPU has no f16 kernels: `push_row` says so.
            assert!(!push_row(&mut Vec::new(), &[1.0], 1.0));
            return;
        }
        let v: Vec<f32> = (0..21)
            .map(|i| ((i * 7919) % 23) as f32 / 23.0 - 0.4)
            .collect();
        let mut row = Vec::new();
        assert!(push_row(&mut row, &v, 0.5));
        assert_eq!(row.len(), stride(21));
        assert_eq!(stride(21), 24);
        assert!(row[21..].iter().all(|&h| h == 0), "padding lanes are +0");
        let mut q: Vec<f32> = (0..21).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f32 = q.iter().zip(&v).map(|(a, b)| a * b * 0.5).sum();
        q.resize(24, 0.0);
        let got = dot(&q, &row);
        // binary16 keeps 11 significant bits: each term within 2^-11 relative.
        let bound: f32 = q
            .iter()
            .zip(&v)
            .map(|(a, b)| (a * b * 0.5).abs())
            .sum::<f32>()
            / 2048.0;
        assert!(
            (got - want).abs() <= bound + 1e-6,
            "{got} vs {want} (bound {bound})"
        );
        assert_ne!(got, 0.0);
    }
}
