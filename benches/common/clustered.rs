//! The dense benchmark data of docs/PERFORMANCE.md "Engine", shared by `benches/engine.rs`
//! and `benches/knn.rs`'s `dense` and `open` modes (included with `#[path]`): 768-d vectors
//! from 200 Gaussian centres N(0, 1) per component (seed 7); a point is a centre plus
//! N(0, 0.35²) per component, L2-normalised (seed 1 for the entries, 2 for the queries).

#![allow(dead_code)] // each bench uses part of it

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{Kind, NewEntry, TaskDb};

pub const DIM: usize = 768;
pub const CLUSTERS: usize = 200;

/// A standard normal sample (Box-Muller).
pub fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// The 200 cluster centres (seed 7).
pub fn centres() -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| gauss(&mut rng)).collect())
        .collect()
}

/// `n` points around `centres`, L2-normalised.
pub fn dataset(n: usize, seed: u64, centres: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.35 * gauss(&mut rng)).collect();
            let nrm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= nrm);
            v
        })
        .collect()
}

/// Indices of the 10 largest inner products with `q` (exact, any order).
pub fn exact_top10(q: &[f32], data: &[Vec<f32>]) -> Vec<usize> {
    let mut s: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    s.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
    s.truncate(10);
    s.into_iter().map(|(_, i)| i).collect()
}

/// Puts `data` into the external space `space` as entries `e0`, `e1`, … (datasets and models
/// alternating), 1,000 per transaction; the caller flushes.
pub fn put_all(db: &TaskDb, space: &str, data: &[Vec<f32>]) {
    for (b, chunk) in data.chunks(1000).enumerate() {
        let batch: Vec<NewEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let kind = if i % 2 == 0 {
                    Kind::Dataset
                } else {
                    Kind::Model
                };
                NewEntry::external(format!("e{}", b * 1000 + i), kind, space, v.clone())
            })
            .collect();
        db.put(batch).expect("put");
    }
}
