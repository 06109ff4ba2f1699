//! The one normalisation of dense vectors, used by validation, by the graphs and by scoring.
//!
//! An f32 vector's squared norm can underflow (every component subnormal, e.g. 1e-45: `x*x`
//! is 0 in f32) or overflow (components near 3e38) in f32 arithmetic. [`unit`] scales by the
//! largest magnitude first and normalises in f64, so it is exact to f32 rounding for every
//! finite non-zero f32 vector; [`cosine`] computes the cosine of two stored vectors the same
//! way, never through an f32 norm.

/// How far from 1 the norm of a unit vector may be (f32 rounding gives about 1e-7).
pub(crate) const UNIT_TOLERANCE: f64 = 1e-5;

/// The largest |x| of `v`, or `None` when `v` is empty, has a non-finite component or is zero.
fn max_abs(v: &[f32]) -> Option<f64> {
    let mut m = 0f64;
    for &x in v {
        if !x.is_finite() {
            return None;
        }
        m = m.max((x as f64).abs());
    }
    (m > 0.0).then_some(m)
}

/// The L2 norm of `v` in f64 (scaled, so it neither underflows nor overflows); `None` as for
/// [`unit`].
pub(crate) fn norm64(v: &[f32]) -> Option<f64> {
    let m = max_abs(v)?;
    let n = m * scaled_norm(v, m);
    (n > 0.0 && n.is_finite()).then_some(n)
}

/// ‖v / m‖ in f64 (`m` = the largest |x|, so no square under- or overflows).
fn scaled_norm(v: &[f32], m: f64) -> f64 {
    v.iter()
        .map(|&x| {
            let y = x as f64 / m;
            y * y
        })
        .sum::<f64>()
        .sqrt()
}

/// `v / ‖v‖` as f32, computed in f64 after scaling by the largest |x|; `None` when `v` is
/// empty, zero or not finite, or when the f32 result is not within [`UNIT_TOLERANCE`] of
/// unit length.
pub(crate) fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let m = max_abs(v)?;
    let s = scaled_norm(v, m);
    let u: Vec<f32> = v.iter().map(|&x| ((x as f64 / m) / s) as f32).collect();
    let n2: f64 = u.iter().map(|&x| (x as f64) * (x as f64)).sum();
    ((n2.sqrt() - 1.0).abs() <= UNIT_TOLERANCE).then_some(u)
}

/// The dot product of a unit query `q` and `x / ‖x‖` in f64, given `n = norm64(x)` (computed
/// once beforehand where a vector is scored many times).
pub(crate) fn cosine_with_norm(q: &[f32], x: &[f32], n: f64) -> f64 {
    let d: f64 = q.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
    d / n
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
