// Shared helpers for the ingestion tests (library and CLI), included with `mod ingest_common;`.
// Everything runs on fixtures/ only: the tiny surrogate, the small probe set, small datasets.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use taskdb::ingest::Ingestor;
use taskdb::{Embedding, EntryRef, TaskDb};
use taskdb_sources::ProbeSet;
use taskdb_surrogate::{Options, Surrogate};

pub const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// `fixtures/<rel>` as an absolute path.
pub fn fx(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// `fx(rel)` as a string, for command lines.
pub fn fxs(rel: &str) -> String {
    fx(rel).to_str().unwrap().to_string()
}

/// The tiny surrogate with `threads` intra-op threads.
pub fn surrogate(threads: usize) -> Surrogate {
    let o = Options {
        intra_threads: threads,
        ..Options::default()
    };
    Surrogate::load(fx("surrogate/tiny"), &o)
        .expect("tiny surrogate loads (run scripts/provision.sh)")
}

/// The small probe set U.
pub fn probe() -> ProbeSet {
    ProbeSet::from_file(&fx("probe/probe_small.jsonl")).expect("probe_small loads")
}

/// An ingestor for `db_path` whose frozen references are cached in `refs` (a test's tempdir).
pub fn ingestor(db_path: &Path, refs: &Path, threads: usize) -> Ingestor {
    Ingestor::new(db_path, surrogate(threads), probe())
        .expect("ingestor")
        .with_reference_cache(Some(refs.to_path_buf()))
}

/// The vectors of the latest version of `name`, by method.
pub fn vectors(db: &TaskDb, name: &str) -> BTreeMap<String, Embedding> {
    db.get(&EntryRef::latest(name))
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .vectors
        .into_iter()
        .map(|(m, (_, e))| (m, e))
        .collect()
}

/// An embedding as a flat f64 vector: dense as is, low-rank as its dense matrix (so two
/// factorisations of one matrix compare equal whatever the eigenvector signs).
pub fn flat(e: &Embedding) -> Vec<f64> {
    match e {
        Embedding::Dense(v) => v.iter().map(|&x| x as f64).collect(),
        Embedding::LowRank(l) => l.to_dense(),
        other => panic!("unexpected embedding kind {other:?}"),
    }
}

pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    d / (n(a) * n(b))
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Bit patterns of an embedding's stored values (factors included), for bit-identity checks.
pub fn bits(e: &Embedding) -> Vec<u32> {
    match e {
        Embedding::Dense(v) => v.iter().map(|x| x.to_bits()).collect(),
        Embedding::LowRank(l) => {
            let mut b = vec![l.dim as u32];
            b.extend(l.u.iter().map(|x| x.to_bits()));
            b.extend(l.s.iter().map(|x| x.to_bits()));
            b
        }
        other => panic!("unexpected embedding kind {other:?}"),
    }
}

// ---- the binary ----

/// Options that make every surrogate-running command use the tiny fixtures.
pub fn tiny_args() -> Vec<String> {
    vec![
        "--surrogate".into(),
        fxs("surrogate/tiny"),
        "--probe".into(),
        fxs("probe/probe_small.jsonl"),
        "--quiet".into(),
    ]
}

/// Runs `taskdb --db DB ARGS` (from the repository root, so relative fixture paths work).
pub fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Runs an ingest command with the tiny surrogate options appended.
pub fn run_tiny(db: &Path, args: &[&str]) -> Output {
    let extra = tiny_args();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(extra.iter().map(|s| s.as_str()));
    run(db, &all)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Asserts failure and returns stderr.
pub fn fails(o: Output, what: &str) -> String {
    assert!(
        !o.status.success(),
        "{what} should have failed; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    stderr(&o)
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `list --json --all-versions` of the database (for before/after comparisons).
pub fn listing(db: &Path) -> serde_json::Value {
    json(&ok(run(db, &["list", "--json", "--all-versions"]), "list"))
}

/// Names of `knn NAME --kind dataset --method M --json` hits, best first.
pub fn knn_datasets(db: &Path, name: &str, method: Option<&str>) -> Vec<String> {
    let mut args = vec!["knn", name, "-k", "10", "--kind", "dataset", "--json"];
    if let Some(m) = method {
        args.extend(["--method", m]);
    }
    let hits = json(&ok(run(db, &args), "knn"));
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["kind"], "dataset");
            h["name"].as_str().unwrap().to_string()
        })
        .collect()
}
