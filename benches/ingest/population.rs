//! `TASKDB_BENCH_KNN_POP=datasets`: a population of the default scatter space built from real
//! labelled datasets by perturbation (issue 14's "synthetic population built from them by
//! realistic perturbation"), the recipe of `scripts/quality/index_vector_study.py`:
//!
//! * every dataset file under `TASKDB_BENCH_DATA` (default `../shared/data/datasets`; any
//!   directory of dataset files taskdb reads, searched recursively for `.jsonl`, `.csv` and
//!   `.tsv`) is read with at most `TASKDB_BENCH_DATA_ROWS` rows (default 500) and encoded once
//!   by the real surrogate, through a feature cache kept in the bench directory
//!   (`population.taskdb.features`), in the featurisation the default space uses (|a − b| for
//!   pair datasets);
//! * entry `i` perturbs dataset `i mod D`: a bootstrap resample of 20–100 % of its rows, a share
//!   ε ~ U(0, 0.3) of the resampled rows' labels shuffled among those rows, and with probability
//!   0.3 (when it has ≥ 3 classes) two of its classes merged; regression targets are resampled
//!   and shuffled the same way, never merged;
//! * each perturbed dataset is embedded by `taskdb_methods::embed_in` in the space's frozen
//!   whitening, exactly as ingestion embeds a dataset. Entries use seed 21, queries seed 22,
//!   so every query is a new perturbation, not a stored entry.
//!
//! Each dataset thus has about N / D perturbed siblings in the library: at 100k entries over 33
//! datasets, about 3,000, whose exact scores against a query of the same source are close to
//! each other. That is the hard part of this population for a sketch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use taskdb::ingest::{IngestOptions, Ingestor};
use taskdb::{MethodKind, MethodParams};
use taskdb_methods as methods;
use taskdb_sources as sources;

use super::{env_str, env_usize, load_surrogate, Res};

/// One source dataset: its feature rows (the default space's featurisation) and targets.
struct Source {
    name: String,
    x: Vec<f32>,
    y: methods::Targets,
}

fn dataset_files(dir: &Path, out: &mut Vec<PathBuf>) -> Res<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "TASKDB_BENCH_DATA: cannot read {} ({e}); set it to a directory of labelled dataset files",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            dataset_files(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("jsonl" | "csv" | "tsv")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn sources(root: &Path, params: &MethodParams) -> Res<Vec<Source>> {
    let dir = PathBuf::from(env_str("TASKDB_BENCH_DATA", "../shared/data/datasets"));
    let limit = env_usize("TASKDB_BENCH_DATA_ROWS", 500);
    let mut files = Vec::new();
    dataset_files(&dir, &mut files)?;
    if files.is_empty() {
        return Err(format!(
            "TASKDB_BENCH_DATA: no dataset files under {}",
            dir.display()
        )
        .into());
    }
    let (s, _) = load_surrogate()?;
    let probe = sources::ProbeSet::builtin()?;
    let ing = Ingestor::new(&root.join("population.taskdb"), s, probe)?;
    let opts = IngestOptions {
        methods: vec![MethodKind::Scatter],
        params: Some(params.clone()),
        ..IngestOptions::default()
    };
    let dopts = sources::DatasetOptions {
        limit: Some(limit),
        ..sources::DatasetOptions::default()
    };
    let t = Instant::now();
    let mut out = Vec::new();
    for f in &files {
        let p = ing
            .prepare_dataset(f, &dopts, &opts)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        let mode = match p.has_pairs() {
            true => params.pair_features(MethodKind::Scatter),
            false => methods::PairFeatures::Joint,
        };
        let x = p
            .features(mode)
            .ok_or_else(|| format!("{}: no {mode:?} features prepared", f.display()))?
            .to_vec();
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Source {
            name,
            x,
            y: p.targets(),
        });
    }
    eprintln!(
        "population: {} datasets from {} (≤ {limit} rows each) read and encoded in {:.1} s",
        out.len(),
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Labels of the resampled rows with a share `eps` shuffled among themselves.
fn shuffle_share<T: Copy>(v: &mut [T], eps: f64, rng: &mut ChaCha8Rng) {
    let picked: Vec<usize> = (0..v.len()).filter(|_| rng.random_bool(eps)).collect();
    let mut vals: Vec<T> = picked.iter().map(|&i| v[i]).collect();
    for i in (1..vals.len()).rev() {
        vals.swap(i, rng.random_range(0..=i));
    }
    for (&i, x) in picked.iter().zip(vals) {
        v[i] = x;
    }
}

/// One perturbed copy of `s`, embedded in the whitened space (`None` if it has no structure
/// left, e.g. every resampled row in one class).
fn perturbed(
    s: &Source,
    d: usize,
    params: &MethodParams,
    whitening: &methods::Whitening,
    rng: &mut ChaCha8Rng,
) -> Option<methods::LowRank> {
    let n = s.x.len() / d;
    let m = ((n as f64 * rng.random_range(0.2..1.0)) as usize).max(20);
    let rows: Vec<usize> = (0..m).map(|_| rng.random_range(0..n)).collect();
    let mut x = Vec::with_capacity(m * d);
    for &r in &rows {
        x.extend_from_slice(&s.x[r * d..(r + 1) * d]);
    }
    let eps = rng.random_range(0.0..0.3);
    let y = match &s.y {
        methods::Targets::Classes { labels, n_classes } => {
            let mut l: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
            shuffle_share(&mut l, eps, rng);
            if *n_classes >= 3 && rng.random_bool(0.3) {
                let a = rng.random_range(0..*n_classes as u32);
                let b = (a + rng.random_range(1..*n_classes as u32)) % *n_classes as u32;
                l.iter_mut().filter(|v| **v == b).for_each(|v| *v = a);
            }
            methods::Targets::Classes {
                labels: l,
                n_classes: *n_classes,
            }
        }
        methods::Targets::Regression { values } => {
            let mut v: Vec<f32> = rows.iter().map(|&r| values[r]).collect();
            shuffle_share(&mut v, eps, rng);
            methods::Targets::Regression { values: v }
        }
        methods::Targets::Soft { .. } => return None,
    };
    let f = methods::Features::new(m, d, &x).ok()?;
    match methods::embed_in(MethodKind::Scatter, params, Some(whitening), &f, &y) {
        Ok(methods::TaskEmbedding::LowRank(l)) if l.rank() > 0 => Some(l),
        _ => None,
    }
}

fn draw(
    src: &[Source],
    d: usize,
    params: &MethodParams,
    whitening: &methods::Whitening,
    seed: u64,
    count: usize,
) -> Res<Vec<methods::LowRank>> {
    let v: Result<Vec<methods::LowRank>, String> = (0..count)
        .into_par_iter()
        .map(|i| {
            let s = &src[i % src.len()];
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ i as u64);
            (0..1000)
                .find_map(|_| perturbed(s, d, params, whitening, &mut rng))
                .ok_or_else(|| {
                    format!("{}: 1,000 perturbations without a usable embedding", s.name)
                })
        })
        .collect();
    Ok(v?)
}

/// The `n` entries and `nq` queries of `knn` with `TASKDB_BENCH_KNN_POP=datasets`.
pub(crate) fn dataset_population(
    root: &Path,
    d: usize,
    params: &MethodParams,
    whitening: &methods::Whitening,
    n: usize,
    nq: usize,
) -> Res<(Vec<methods::LowRank>, Vec<methods::LowRank>)> {
    let src = sources(root, params)?;
    let names: Vec<&str> = src.iter().map(|s| s.name.as_str()).collect();
    eprintln!("population sources: {}", names.join(", "));
    Ok((
        draw(&src, d, params, whitening, 21, n)?,
        draw(&src, d, params, whitening, 22, nq)?,
    ))
}
