// Shared helpers for the engine and CLI integration tests (included with `mod`).
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{Kind, NewEntry};

/// `n` clustered unit-ish vectors of dimension `dim`, seeded.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter()
                .map(|x| x + rng.random_range(-0.3f32..0.3))
                .collect()
        })
        .collect()
}

/// Entries `prefix0..prefixN` in external space `space`, alternating kinds, tag `parity`.
pub fn entries(prefix: &str, space: &str, vecs: &[Vec<f32>]) -> Vec<NewEntry> {
    vecs.iter()
        .enumerate()
        .map(|(i, v)| {
            let kind = if i % 2 == 0 {
                Kind::Dataset
            } else {
                Kind::Model
            };
            NewEntry::external(format!("{prefix}{i}"), kind, space, v.clone())
                .with_tag("parity", if i % 2 == 0 { "even" } else { "odd" })
                .with_tag("bucket", (i % 10).to_string())
        })
        .collect()
}

/// One JSONL line for the import format.
pub fn jsonl_line(name: &str, kind: &str, space: &str, v: &[f32]) -> String {
    serde_json::json!({"name": name, "kind": kind, "space": space, "vector": v}).to_string()
}

/// Exact top-k names by cosine, excluding `exclude`.
pub fn exact_topk(
    q: &[f32],
    items: &[(String, Vec<f32>)],
    k: usize,
    exclude: Option<&str>,
) -> Vec<String> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let qn = norm(q);
    let mut s: Vec<(f32, &String)> = items
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != exclude)
        .map(|(n, v)| {
            let d: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
            (d / (qn * norm(v)), n)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.into_iter().take(k).map(|(_, n)| n.clone()).collect()
}

/// A model entry with one matrix value `U diag(s) Uᵀ` (U column-major, `s.len()` columns of
/// `dim`) in a fisher task space named `space` (no reference: plain Frobenius cosines).
pub fn fisher_entry(name: &str, space: &str, dim: usize, u: Vec<f32>, s: Vec<f32>) -> NewEntry {
    let def = taskdb::TaskSpaceParams::new(
        taskdb::MethodKind::Fisher,
        taskdb::MethodParams::default(),
        None,
    )
    .into_def(space.into(), dim as u32, "surrogate-fp", "probe-fp");
    NewEntry {
        name: name.into(),
        kind: Kind::Model,
        vectors: vec![taskdb::NewVector {
            method: "fisher".into(),
            space: taskdb::SpaceRef::Def(def),
            embedding: taskdb::Embedding::LowRank(taskdb::LowRank { dim, u, s }),
        }],
        tags: Default::default(),
        provenance: Default::default(),
    }
}

/// Runs the `taskdb` binary with `args` (`TASKDB_DB` unset): (exit code, stdout, stderr). A
/// process killed by a signal fails the test.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_taskdb"))
        .env_remove("TASKDB_DB")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().expect("not killed by a signal"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A path as `&str`, for [`cli`] arguments.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Orthonormal columns (Gram-Schmidt) of `cols` vectors, concatenated.
pub fn orthonormal(mut cols: Vec<Vec<f32>>) -> Vec<f32> {
    for j in 0..cols.len() {
        for p in 0..j {
            let d: f32 = cols[j].iter().zip(&cols[p]).map(|(a, b)| a * b).sum();
            let prev = cols[p].clone();
            for (a, b) in cols[j].iter_mut().zip(prev) {
                *a -= d * b;
            }
        }
        let n = cols[j].iter().map(|x| x * x).sum::<f32>().sqrt();
        cols[j].iter_mut().for_each(|x| *x /= n);
    }
    cols.concat()
}
