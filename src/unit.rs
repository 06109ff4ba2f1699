//! The one normalisation of dense vectors, used by validation, by the graphs and by scoring.
//!
//! An f32 vector's squared norm can underflow (every component subnormal, e.g. 1e-45: `x*x`
//! is 0 in f32) or overflow (components near 3e38) in f32 arithmetic. [`unit`] scales by the
//! power of two nearest below the largest magnitude first (exactly) and normalises in f64, so
//! it is exact to f32 rounding for every finite non-zero f32 vector; [`cosine_with_norm`]
//! scores a stored vector the same way, never through an f32 norm.

/// How far from 1 the norm of a unit vector may be (f32 rounding gives about 1e-7).
pub(crate) const UNIT_TOLERANCE: f64 = 1e-5;

/// The scale of `v`: the largest power of two not above its largest |x| (so dividing by it is
/// exact, and no square of a scaled component under- or overflows), or `None` when `v` is
/// empty, zero or has an infinite component. (A NaN is not seen here: `f32::max` passes over
/// it, and it makes the scaled norm NaN, which every caller refuses.)
fn scale(v: &[f32]) -> Option<f64> {
    let m = v.iter().fold(0f32, |m, &x| m.max(x.abs()));
    (m > 0.0 && m.is_finite()).then(|| f64::from_bits(f64::from(m).to_bits() & (0x7ff << 52)))
}

/// The sum of `f(a[i], b[i])` over equally long slices in f64, in eight interleaved partial
/// sums (a fixed order, so the same bits on every machine; eight chains instead of one let
/// the additions overlap: a dense query scores a dozen 768-d rows this way).
#[inline(always)]
fn sum8(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// The L2 norm of `v` in f64 (scaled, so it neither underflows nor overflows); `None` as for
/// [`unit`].
pub(crate) fn norm64(v: &[f32]) -> Option<f64> {
    let p = scale(v)?;
    let n = p * scaled_norm(v, p);
    (n > 0.0 && n.is_finite()).then_some(n)
}

/// ‖v / p‖ in f64 (`p` = [`scale`]: the division is exact).
fn scaled_norm(v: &[f32], p: f64) -> f64 {
    let inv = 1.0 / p;
    sum8(v, v, |x, _| {
        let y = f64::from(x) * inv;
        y * y
    })
    .sqrt()
}

/// `v / ‖v‖` as f32, computed in f64 after an exact scaling by a power of two near the
/// largest |x|; `None` when `v` is empty, zero or not finite, or when the f32 result is not
/// within [`UNIT_TOLERANCE`] of unit length.
pub(crate) fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let p = scale(v)?;
    let s = scaled_norm(v, p);
    if !(s > 0.0 && s.is_finite()) {
        return None;
    }
    let (inv_p, inv_s) = (1.0 / p, 1.0 / s);
    let u: Vec<f32> = v
        .iter()
        .map(|&x| (f64::from(x) * inv_p * inv_s) as f32)
        .collect();
    let n2 = sum8(&u, &u, |x, _| f64::from(x) * f64::from(x));
    ((n2.sqrt() - 1.0).abs() <= UNIT_TOLERANCE).then_some(u)
}

/// The dot product of a unit query `q` and `x / ‖x‖` in f64, given `n = norm64(x)` (computed
/// once beforehand where a vector is scored many times). Each product of two f32 is exact in
/// f64; only the sums round.
pub(crate) fn cosine_with_norm(q: &[f32], x: &[f32], n: f64) -> f64 {
    sum8(q, x, |a, b| f64::from(a) * f64::from(b)) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_exact_at_both_ends_of_the_f32_range() {
        for v in [
            vec![1e-45f32, 1e-45, 1e-45],
            vec![3e38f32, 1e38, 3e38],
            vec![f32::MAX, f32::MAX],
            vec![1.0, 1e-45],
        ] {
            let u = unit(&v).unwrap();
            let n: f64 = u.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            assert!((n - 1.0).abs() < 1e-6, "{v:?}: {n}");
            assert!(u.iter().all(|x| x.is_finite()));
        }
        assert_eq!(unit(&[0.0, 0.0]), None);
        assert_eq!(unit(&[]), None);
        assert_eq!(unit(&[1.0, f32::NAN]), None);
        assert_eq!(unit(&[1.0, f32::INFINITY]), None);
    }

    #[test]
    fn cosine_of_huge_vectors_is_not_lost_to_overflow() {
        let a = [3e38f32, 1e38, 0.0];
        let b = [1e38f32, 3e38, 3e38];
        let c = cosine_with_norm(&unit(&a).unwrap(), &b, norm64(&b).unwrap());
        let want = (3e76 + 3e76) / ((10e76f64).sqrt() * (19e76f64).sqrt());
        assert!((c - want).abs() < 1e-7, "{c} vs {want}");
    }
}
