//! Targets -> a canonical soft-target matrix `Q` (n × C, rows sum to 1, classes in an order
//! that depends only on the data, never on label names or indices).

use crate::{Features, MethodError, Targets};
use std::cmp::Ordering;

/// Canonical targets: `q` row-major n × c.
pub(crate) struct Canon {
    pub c: usize,
    pub q: Vec<f64>,
}

/// Quantile bins of `values` into at most `bins` classes: edges are the sorted values at
/// positions ⌊k·n/bins⌋ (k = 1..bins−1); a value's bin is the number of edges ≤ it; empty bins
/// are dropped (ties can merge bins). Returns labels in `0..n_classes` and `n_classes`.
pub fn quantile_bins(values: &[f32], bins: usize) -> Result<(Vec<u32>, usize), MethodError> {
    if values.is_empty() {
        return Err(MethodError::Empty);
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(MethodError::NonFinite(format!(
            "regression target of row {} (1-based, in the order the rows were read) is {}",
            i + 1,
            values[i]
        )));
    }
    let bins = bins.max(1);
    let mut s: Vec<f32> = values.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let edges: Vec<f32> = (1..bins).map(|k| s[(k * n) / bins]).collect();
    let raw: Vec<usize> = values
        .iter()
        .map(|v| edges.partition_point(|e| e <= v))
        .collect();
    let mut used = vec![false; bins];
    for &r in &raw {
        used[r] = true;
    }
    let mut map = vec![0u32; bins];
    let mut next = 0u32;
    for b in 0..bins {
        if used[b] {
            map[b] = next;
            next += 1;
        }
    }
    Ok((raw.iter().map(|&r| map[r]).collect(), next as usize))
}

pub(crate) fn canonical(x: &Features, y: &Targets, bins: usize) -> Result<Canon, MethodError> {
    let n = x.n;
    let (q, c) = match y {
        Targets::Classes { labels, n_classes } => hard(labels, *n_classes, n)?,
        Targets::Regression { values } => {
            if values.len() != n {
                return Err(MethodError::Shape(format!(
                    "{} regression targets for {n} feature rows",
                    values.len()
                )));
            }
            let (labels, c) = quantile_bins(values, bins)?;
            hard(&labels, c, n)?
        }
        Targets::Soft { probs, n_classes } => {
            let c = *n_classes;
            if c == 0 || probs.len() != n * c {
                return Err(MethodError::Shape(format!(
                    "soft targets: {} values for {n} rows × {c} classes",
                    probs.len()
                )));
            }
            let mut q = vec![0.0f64; n * c];
            for i in 0..n {
                let row = &probs[i * c..(i + 1) * c];
                let mut sum = 0.0f64;
                for (k, &p) in row.iter().enumerate() {
                    if !p.is_finite() {
                        return Err(MethodError::NonFinite(format!(
                            "soft target of row {} (1-based), class {k} is {p}",
                            i + 1
                        )));
                    }
                    if p < 0.0 {
                        return Err(MethodError::Target(format!(
                            "soft target of row {} (1-based), class {k} is negative ({p})",
                            i + 1
                        )));
                    }
                    sum += p as f64;
                }
                if sum <= 0.0 {
                    return Err(MethodError::Target(format!(
                        "soft targets of row {} (1-based) sum to 0; give at least one positive score",
                        i + 1
                    )));
                }
                for k in 0..c {
                    q[i * c + k] = row[k] as f64 / sum;
                }
            }
            (q, c)
        }
    };
    reorder(x, q, c)
}

fn hard(labels: &[u32], c: usize, n: usize) -> Result<(Vec<f64>, usize), MethodError> {
    if labels.len() != n {
        return Err(MethodError::Shape(format!(
            "{} labels for {n} feature rows",
            labels.len()
        )));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= c) {
        return Err(MethodError::Target(format!(
            "label of row {} (1-based) is {} but n_classes is {c}",
            i + 1,
            labels[i]
        )));
    }
    let mut q = vec![0.0f64; n * c];
    for (i, &l) in labels.iter().enumerate() {
        q[i * c + l as usize] = 1.0;
    }
    Ok((q, c))
}

/// Drop empty classes and sort classes by (weight desc, class mean lexicographic): an order that
/// depends only on the data, so permuting labels gives bit-identical results when no two
/// classes tie exactly.
fn reorder(x: &Features, q: Vec<f64>, c: usize) -> Result<Canon, MethodError> {
    let (n, d) = (x.n, x.d);
    let mut w = vec![0.0f64; c];
    let mut sums = vec![0.0f64; c * d];
    for i in 0..n {
        let row = x.row(i);
        for k in 0..c {
            let qk = q[i * c + k];
            if qk != 0.0 {
                w[k] += qk;
                let s = &mut sums[k * d..(k + 1) * d];
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += qk * v as f64;
                }
            }
        }
    }
    let mut keep: Vec<usize> = (0..c).filter(|&k| w[k] > 0.0).collect();
    if keep.len() < 2 {
        return Err(MethodError::SingleClass {
            found: keep.len(),
            detail: format!("{n} rows, {c} declared classes"),
        });
    }
    keep.sort_by(|&a, &b| {
        w[b].total_cmp(&w[a]).then_with(|| {
            let (ma, mb) = (&sums[a * d..(a + 1) * d], &sums[b * d..(b + 1) * d]);
            for (u, v) in ma.iter().zip(mb) {
                match (u / w[a]).total_cmp(&(v / w[b])) {
                    Ordering::Equal => continue,
                    o => return o,
                }
            }
            Ordering::Equal
        })
    });
    let c2 = keep.len();
    let mut q2 = vec![0.0f64; n * c2];
    for i in 0..n {
        for (j, &k) in keep.iter().enumerate() {
            q2[i * c2 + j] = q[i * c + k];
        }
    }
    Ok(Canon { c: c2, q: q2 })
}
