#![allow(dead_code)]
//! Seeded synthetic features for tests (no files, no external RNG crate).

pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// `n` unit rows in `d` dims drawn around `c` random class centres; returns (features, labels).
pub fn clustered(n: usize, d: usize, c: usize, noise: f64, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = Rng::new(seed);
    let centres: Vec<f64> = (0..c * d).map(|_| r.normal()).collect();
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % c;
        let row: Vec<f64> = (0..d)
            .map(|j| centres[k * d + j] + noise * r.normal())
            .collect();
        let nr = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.extend(row.iter().map(|v| (v / nr) as f32));
        y.push(k as u32);
    }
    (x, y)
}

/// Labels of `x` by a rule: the sign pattern of the first `bits` coordinates.
pub fn rule_labels(x: &[f32], d: usize, dims: &[usize]) -> Vec<u32> {
    x.chunks(d)
        .map(|row| {
            dims.iter()
                .enumerate()
                .map(|(b, &j)| ((row[j] > 0.0) as u32) << b)
                .sum()
        })
        .collect()
}

pub fn dense_of(e: &taskdb_methods::TaskEmbedding) -> Vec<f64> {
    match e {
        taskdb_methods::TaskEmbedding::Dense(v) => v.iter().map(|&a| a as f64).collect(),
        taskdb_methods::TaskEmbedding::LowRank(l) => l.to_dense(),
    }
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `inner` as it was with 4 accumulator lanes (the reference for the 16-lane version in
/// tests/methods.rs, and the same-run baseline in benches/methods.rs).
pub fn inner_4_lanes(a: &taskdb_methods::LowRank, b: &taskdb_methods::LowRank) -> f64 {
    let dot = |x: &[f32], y: &[f32]| {
        let mut acc = [0.0f64; 4];
        let chunks = x.len() / 4;
        for k in 0..chunks {
            for l in 0..4 {
                acc[l] += x[4 * k + l] as f64 * y[4 * k + l] as f64;
            }
        }
        let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for k in 4 * chunks..x.len() {
            s += x[k] as f64 * y[k] as f64;
        }
        s
    };
    let mut total = 0.0f64;
    for i in 0..a.rank() {
        let mut row = 0.0f64;
        for j in 0..b.rank() {
            let g = dot(a.col(i), b.col(j));
            row += b.s[j] as f64 * g * g;
        }
        total += a.s[i] as f64 * row;
    }
    total
}
