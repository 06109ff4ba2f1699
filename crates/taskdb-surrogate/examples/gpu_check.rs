//! CPU-versus-CUDA parity and batch-256 throughput of the default surrogate. Run by
//! scripts/gpu-check.sh with ORT_DYLIB_PATH pointing at onnxruntime-gpu's library.
//!
//!     cargo run --release -p taskdb-surrogate --example gpu_check -- [SURROGATE_DIR] [N]
//!
//! Prints one summary line; exits 1 if CUDA cannot be used or parity fails (cosine < 0.999).

use std::path::{Path, PathBuf};
use std::time::Instant;

use taskdb_surrogate::{default_surrogate_dir, Device, Options, Surrogate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(default_surrogate_dir);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let fx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/surrogate/minilm_parity/sentences.jsonl");
    let base: Vec<String> = std::fs::read_to_string(&fx)
        .expect("parity sentences")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let texts: Vec<&str> = base.iter().cycle().take(n).map(|s| s.as_str()).collect();
    let run = |device: Device| -> Result<(Surrogate, Vec<f32>, f64), taskdb_surrogate::Error> {
        let opts = Options {
            device,
            strict: true,
            batch_size: 256,
            ..Options::default()
        };
        let s = Surrogate::load(&dir, &opts)?;
        s.embed(&texts[..256.min(n)])?; // warm-up (CUDA graph/kernels, allocator)
        let t = Instant::now();
        let e = s.embed(&texts)?;
        let rate = n as f64 / t.elapsed().as_secs_f64();
        Ok((s, e.data, rate))
    };
    let (cpu, cpu_v, cpu_rate) = match run(Device::Cpu) {
        Ok(x) => x,
        Err(e) => {
            println!("gpu-check: FAIL cpu: {e}");
            std::process::exit(1)
        }
    };
    let (gpu, gpu_v, gpu_rate) = match run(Device::Cuda(0)) {
        Ok(x) => x,
        Err(e) => {
            println!("gpu-check: FAIL cuda: {e}");
            std::process::exit(1)
        }
    };
    let d = cpu.dim();
    let min_cos = cpu_v
        .chunks_exact(d)
        .zip(gpu_v.chunks_exact(d))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (na * nb)
        })
        .fold(1.0f64, f64::min);
    let ok = min_cos >= 0.999;
    println!(
        "gpu-check: {} model={} ep={} ort={} n={n} batch=256 min_cosine_cpu_vs_cuda={min_cos:.6} cpu={cpu_rate:.0}/s (intra {}) cuda={gpu_rate:.0}/s speedup={:.1}x",
        if ok { "PASS" } else { "FAIL" },
        gpu.info().name,
        gpu.info().execution_provider,
        gpu.info().ort_version,
        cpu.info().intra_threads,
        gpu_rate / cpu_rate
    );
    std::process::exit(if ok { 0 } else { 1 });
}
