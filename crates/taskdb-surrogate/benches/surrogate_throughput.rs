//! Throughput of the surrogate pipeline (tokenise → run → pool) on real sentences.
//!
//!     scripts/provision.sh
//!     cargo bench -p taskdb-surrogate --bench surrogate_throughput -- [--threads 1,2] [--runs 5] [--n 2000] [--batch 32]
//!
//! Reads the first N texts of ../shared/data/probe_pool.jsonl (or $TASKDB_BENCH_POOL) and embeds
//! them with the provisioned default surrogate ($TASKDB_SURROGATE or the cache). Prints one JSON
//! line per (threads, run) and a summary per thread count: median sentences/s and the share of
//! stage time spent tokenising, in inference and pooling. Compare with
//! scripts/bench_python_surrogate.py (same sentences, model and threads); docs/PERFORMANCE.md (surrogate section).

use std::path::PathBuf;
use std::time::Instant;

use taskdb_surrogate::{default_surrogate_dir, Options, Surrogate};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: Vec<usize> = arg(&args, "--threads")
        .unwrap_or_else(|| "1,2".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("--threads takes a comma-separated list")
        })
        .collect();
    let runs: usize = arg(&args, "--runs").map_or(5, |s| s.parse().expect("--runs N"));
    let n: usize = arg(&args, "--n").map_or(2000, |s| s.parse().expect("--n N"));
    let batch: usize = arg(&args, "--batch").map_or(32, |s| s.parse().expect("--batch N"));
    let workers: usize = arg(&args, "--workers").map_or(1, |s| s.parse().expect("--workers N"));

    let pool = std::env::var_os("TASKDB_BENCH_POOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/probe_pool.jsonl")
        });
    let texts: Vec<String> = std::fs::read_to_string(&pool)
        .unwrap_or_else(|e| panic!("reading {}: {e} (set TASKDB_BENCH_POOL)", pool.display()))
        .lines()
        .take(n)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["text"]
                .as_str()
                .expect("text")
                .to_string()
        })
        .collect();
    let dir = std::env::var_os("TASKDB_SURROGATE")
        .map(PathBuf::from)
        .unwrap_or_else(default_surrogate_dir);

    for &t in &threads {
        let opts = Options {
            intra_threads: t,
            workers,
            batch_size: batch,
            ..Options::default()
        };
        let s = Surrogate::load(&dir, &opts).unwrap_or_else(|e| panic!("{e}"));
        s.embed(&texts[..64.min(texts.len())]).expect("warm-up");
        let mut rates = Vec::new();
        let (mut tok, mut inf, mut pool_t) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..runs {
            let t0 = Instant::now();
            let e = s.embed(&texts).expect("embed");
            let secs = t0.elapsed().as_secs_f64();
            let st = &e.stats;
            let stage = (st.tokenize + st.inference + st.pool).as_secs_f64();
            rates.push(texts.len() as f64 / secs);
            tok.push(st.tokenize.as_secs_f64() / stage);
            inf.push(st.inference.as_secs_f64() / stage);
            pool_t.push(st.pool.as_secs_f64() / stage);
            println!(
                "{{\"impl\":\"taskdb\",\"threads\":{t},\"workers\":{workers},\"batch\":{batch},\"run\":{r},\"n\":{},\"secs\":{secs:.4},\"sent_per_s\":{:.1},\"tokenize_s\":{:.4},\"inference_s\":{:.4},\"pool_s\":{:.4},\"truncated\":{},\"padded_tokens\":{},\"tokens\":{}}}",
                texts.len(),
                texts.len() as f64 / secs,
                st.tokenize.as_secs_f64(),
                st.inference.as_secs_f64(),
                st.pool.as_secs_f64(),
                st.truncated,
                st.padded_tokens,
                st.tokens
            );
        }
        println!(
            "SUMMARY taskdb threads={t} workers={workers} batch={batch} n={} runs={runs}: median {:.1} sentences/s; stage shares tokenise {:.1}% inference {:.1}% pool {:.2}% (ORT {} from {})",
            texts.len(),
            median(rates),
            100.0 * median(tok),
            100.0 * median(inf),
            100.0 * median(pool_t),
            s.info().ort_version,
            s.info().ort_library.display()
        );
    }
}
