//! Microbench: embed time per method (n = 2000, d = 384, C = 2..20) and exact factored scoring of
//! 10k entries. Run: cargo bench -p taskdb-methods --bench methods
//! Prints medians of a few repetitions (a bench binary, not a test).
use std::time::Instant;
use taskdb_methods::*;

// Shared with the tests: `inner_4_lanes`, the baseline.
#[path = "../tests/common/mod.rs"]
mod common;
use common::inner_4_lanes;

fn rows(n: usize, d: usize, c: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let centres: Vec<f64> = (0..c * d).map(|_| next()).collect();
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % c;
        let r: Vec<f64> = (0..d).map(|j| centres[k * d + j] + next()).collect();
        let nr = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.extend(r.iter().map(|v| (v / nr) as f32));
        y.push(k as u32);
    }
    (x, y)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let (n, d) = (2000, 384);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let p = MethodParams::default();
    // The probe set stand-in: scatter's whitening (default) and the k-means reference are built
    // from it.
    let probe = rows(3000, d, 10, 99).0;
    let pf = Features::new(3000, d, &probe).unwrap();
    let t0 = Instant::now();
    let w = build_whitening(&pf, p.scatter_whitening.unwrap_or(0.5), 3000).unwrap();
    println!(
        "build_whitening(3000 probe rows, d = {d}): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    println!("embed, n = {n}, d = {d}: median of {reps} runs (ms); scatter whitened (default)");
    println!("| C | scatter | fisher | tuned | textemb |");
    println!("|---|---|---|---|---|");
    for c in [2usize, 5, 10, 20] {
        let (x, y) = rows(n, d, c, c as u64);
        let f = Features::new(n, d, &x).unwrap();
        let t = Targets::Classes {
            labels: y,
            n_classes: c,
        };
        let mut line = format!("| {c} |");
        for kind in MethodKind::ALL {
            let times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t0 = Instant::now();
                    std::hint::black_box(embed_in(kind, &p, Some(&w), &f, &t).unwrap());
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            line += &format!(" {:.1} |", median(times));
        }
        println!("{line}");
    }
    // exact scoring of 10k prepared entries (ranks 1..19 cycling, like C = 2..20), centred by
    // a k-means reference (the configuration of unwhitened scatter, tuned and textemb)
    let plain = MethodParams {
        scatter_whitening: None,
        ..MethodParams::default()
    };
    let t0 = Instant::now();
    let r = build_reference(
        MethodKind::Scatter,
        &plain,
        &pf,
        &ReferenceSpec {
            ks: vec![8, 12, 16, 20],
            ..ReferenceSpec::default()
        },
    )
    .unwrap();
    println!(
        "build_reference(unwhitened scatter, 3000 probe rows, ks 8,12,16,20 x 3 seeds): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut base = Vec::new();
    for c in [2usize, 3, 4, 6, 20] {
        let (x, y) = rows(400, d, c, 100 + c as u64);
        let f = Features::new(400, d, &x).unwrap();
        base.push(
            embed(
                MethodKind::Scatter,
                &plain,
                &f,
                &Targets::Classes {
                    labels: y,
                    n_classes: c,
                },
            )
            .unwrap(),
        );
    }
    let entries: Vec<Prepared> = (0..10_000)
        .map(|i| prepare(&base[i % base.len()], Some(&r)).unwrap())
        .collect();
    for (label, q) in [
        ("rank 1 query (C = 2)", &entries[0]),
        ("rank 19 query (C = 20)", &entries[4]),
    ] {
        // Interleaved with the same-run baseline: `inner` as it was, with 4 accumulator lanes.
        let TaskEmbedding::LowRank(ql) = &q.emb else {
            unreachable!()
        };
        let (mut times, mut before, mut now) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps.max(3) {
            let t0 = Instant::now();
            let s: f64 = entries.iter().map(|e| q.cosine(e).unwrap()).sum();
            std::hint::black_box(s);
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            for (f, out) in [
                (inner_4_lanes as fn(&LowRank, &LowRank) -> f64, &mut before),
                (inner as fn(&LowRank, &LowRank) -> f64, &mut now),
            ] {
                let t0 = Instant::now();
                let s: f64 = entries
                    .iter()
                    .map(|e| match &e.emb {
                        TaskEmbedding::LowRank(l) => f(ql, l),
                        _ => 0.0,
                    })
                    .sum();
                std::hint::black_box(s);
                out.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!(
            "  inner products only, {label}: 4-lane sum (before) {:.1} ms, `inner` (16 lanes) {:.1} ms",
            median(before),
            median(now)
        );
        println!(
            "exact centred cosine vs 10k entries (mean rank {:.1}), {label}: {:.1} ms",
            entries
                .iter()
                .map(|e| match &e.emb {
                    TaskEmbedding::LowRank(l) => l.rank() as f64,
                    _ => 0.0,
                })
                .sum::<f64>()
                / 1e4,
            median(times)
        );
    }
    let basis = SketchBasis::new(d, 512, 1);
    let sk = Sketcher::new(&basis, Some(&r)).unwrap();
    let times: Vec<f64> = (0..reps.max(3))
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(sk.sketch(&base[4]).unwrap());
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "sketch per entry (m = 512, rank 19, reference sketch precomputed): {:.2} ms",
        median(times)
    );
}
