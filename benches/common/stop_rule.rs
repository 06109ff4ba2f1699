//! Simulation of an adaptive stop rule for the sketch path of matrix spaces (issue 14), shared
//! by `knn -- matrix-stop` (the synthetic population of `matrix`) and `ingest -- stop` (the
//! whitened default space's pseudo-tasks over U).
//!
//! The rule: take the top C0 = max(32k, 512) candidates by sketch similarity, re-rank them
//! exactly and stop if `s_k − t ≥ z·σ`, where `s_k` is the k-th best exact score among the
//! candidates and `t` the lowest sketch similarity among them (the frontier: every entry left
//! out has a sketch similarity ≤ t, so an exact score above `t + z·σ` only with probability
//! about Φ(−z) if the sketch's error has sd σ); else widen C ×4 and repeat, up to the plan's
//! max(512, N/4), where it stops as the path does today. Only the order by sketch similarity
//! and the exact scores are needed: the simulation runs on the flat sketch ranking (the graph
//! matched the flat scan within 0.004 of recall@10 at every C in docs/PERFORMANCE.md §15).
//!
//! σ options: `fixed` (0.053, measured on `matrix`, §15), `resid` (per query: the sd of
//! exact − sketch over its C0 candidates, computed once at the first step), `theory`
//! (sqrt((1 + s_k²)/m) with m = 512, the sd of a Gaussian sketch's estimate of a cosine s_k).

/// One query's candidates, in decreasing sketch similarity, as many as the plan takes.
pub struct Cands {
    /// The sketch similarity (dot product of the unit sketches) of each candidate.
    pub sketch: Vec<f32>,
    /// Its exact score.
    pub exact: Vec<f32>,
    /// Whether it is among the exact top k of the whole population.
    pub hit: Vec<bool>,
}

pub const ZS: [f64; 5] = [1.0, 1.5, 2.0, 2.5, 3.0];
pub const SIGMAS: [&str; 3] = ["fixed", "resid", "theory"];
pub const FIXED_SIGMA: f64 = 0.053;
pub const SKETCH_M: f64 = 512.0;

/// The candidate counts the rule tries: C0 = max(32k, 512), ×4, …, capped at the plan's
/// max(512, N/4) (and N).
pub fn schedule(n: usize, k: usize) -> Vec<usize> {
    schedule_to(n, (n / 4).max(512).min(n), k)
}

/// The rule's candidate counts with the cap `cap` instead of the plan's (at most `n`).
pub fn schedule_to(n: usize, cap: usize, k: usize) -> Vec<usize> {
    let cap = cap.min(n);
    let mut c = (32 * k).max(512).min(cap);
    let mut out = vec![c];
    while c < cap {
        c = (c * 4).min(cap);
        out.push(c);
    }
    out
}

fn kth_exact(q: &Cands, c: usize, k: usize) -> f64 {
    let mut e: Vec<f32> = q.exact[..c].to_vec();
    if e.len() < k {
        return f64::NEG_INFINITY;
    }
    e.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    e[k - 1] as f64
}

fn found(q: &Cands, c: usize) -> usize {
    q.hit[..c].iter().filter(|h| **h).count()
}

fn resid(q: &Cands, c: usize) -> (f64, f64) {
    let c = c.min(q.exact.len()).max(1);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for i in 0..c {
        let e = q.exact[i] as f64 - q.sketch[i] as f64;
        s1 += e;
        s2 += e * e;
    }
    let m = s1 / c as f64;
    (m, (s2 / c as f64 - m * m).max(0.0).sqrt())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Prints the fixed-C baselines (`<name>-fixed`), the sketch's residuals over the C0
/// candidates and the frontier gap (`<name>-gap`), then one `<name>` line per (z, σ).
/// `lat[i][j]`, when given, is query i's measured whole-path time (ms) with `sched[j]`
/// candidates: `p50_restart_ms` sums the steps a query took (each widening searches again),
/// `p50_final_ms` is the time at its stopping C alone (a search that resumes for free).
///
/// `cap`: the largest C tried (the plan's max(512, N/4) for `matrix-stop`; `default-stop`
/// also tries N, to see what the rule would need without the plan's cap). Each query's
/// candidate lists must hold at least `cap` entries.
pub fn simulate(
    name: &str,
    n: usize,
    k: usize,
    qs: &[Cands],
    lat: Option<&[Vec<f64>]>,
    cap: usize,
) {
    let sched = schedule_to(n, cap, k);
    let nq = qs.len().max(1) as f64;
    let denom = (k as f64) * nq;
    for (j, &c) in sched.iter().enumerate() {
        let rec = qs.iter().map(|q| found(q, c)).sum::<usize>() as f64 / denom;
        let p50 = lat.map(|l| pct(&mut l.iter().map(|r| r[j]).collect::<Vec<_>>(), 0.5));
        println!(
            "RESULT bench={name}-fixed n={n} cap={cap} C={c} recall10={rec:.4}{} queries={}",
            p50.map(|p| format!(" p50_ms={p:.2}")).unwrap_or_default(),
            qs.len()
        );
    }
    let c0 = sched[0];
    let (mut means, mut sds, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for q in qs {
        let (m, sd) = resid(q, c0);
        means.push(m);
        sds.push(sd);
        gaps.push(kth_exact(q, c0, k) - q.sketch[c0 - 1] as f64);
    }
    let (mut s1, mut s2, mut cnt) = (0.0f64, 0.0f64, 0usize);
    for q in qs {
        for i in 0..c0.min(q.exact.len()) {
            let e = q.exact[i] as f64 - q.sketch[i] as f64;
            s1 += e;
            s2 += e * e;
            cnt += 1;
        }
    }
    let pm = s1 / cnt.max(1) as f64;
    let psd = (s2 / cnt.max(1) as f64 - pm * pm).max(0.0).sqrt();
    println!(
        "RESULT bench={name}-gap n={n} cap={cap} C0={c0} resid_mean={pm:.4} resid_sd={psd:.4} \
         resid_sd_q_p10={:.4} resid_sd_q_p50={:.4} resid_sd_q_p90={:.4} gap_p10={:.4} \
         gap_p50={:.4} gap_p90={:.4} queries={}",
        pct(&mut sds.clone(), 0.1),
        pct(&mut sds.clone(), 0.5),
        pct(&mut sds.clone(), 0.9),
        pct(&mut gaps.clone(), 0.1),
        pct(&mut gaps.clone(), 0.5),
        pct(&mut gaps.clone(), 0.9),
        qs.len()
    );
    for sigma in SIGMAS {
        for z in ZS {
            let mut rec = 0usize;
            let mut stops = vec![0usize; sched.len()];
            let mut csum = 0.0f64;
            let mut worst = k;
            let (mut restart, mut fin) = (Vec::new(), Vec::new());
            for (qi, q) in qs.iter().enumerate() {
                let sd_q = sds[qi];
                let mut at = sched.len() - 1;
                for (j, &c) in sched.iter().enumerate() {
                    let sk = kth_exact(q, c, k);
                    let t = q.sketch[c - 1] as f64;
                    let s = match sigma {
                        "fixed" => FIXED_SIGMA,
                        "resid" => sd_q,
                        _ => ((1.0 + sk * sk) / SKETCH_M).sqrt(),
                    };
                    if sk - t >= z * s {
                        at = j;
                        break;
                    }
                }
                stops[at] += 1;
                let c = sched[at];
                csum += c as f64;
                let f = found(q, c);
                rec += f;
                worst = worst.min(f);
                if let Some(l) = lat {
                    restart.push(l[qi][..=at].iter().sum::<f64>());
                    fin.push(l[qi][at]);
                }
            }
            let shares: Vec<String> = stops
                .iter()
                .map(|s| format!("{:.2}", *s as f64 / nq))
                .collect();
            let lat_s = if lat.is_some() {
                format!(
                    " p50_restart_ms={:.2} p50_final_ms={:.2} p99_restart_ms={:.2}",
                    pct(&mut restart, 0.5),
                    pct(&mut fin, 0.5),
                    pct(&mut restart, 0.99)
                )
            } else {
                String::new()
            };
            println!(
                "RESULT bench={name} n={n} cap={cap} z={z} sigma={sigma} recall10={:.4} \
                 stop_c0_share={:.2} mean_c={:.0} stop_shares={} worst_found={worst}{lat_s} \
                 queries={}",
                rec as f64 / denom,
                stops[0] as f64 / nq,
                csum / nq,
                shares.join("/"),
                qs.len()
            );
        }
    }
    println!(
        "# {name}: schedule {}; stop_shares = share of queries stopping at each",
        sched
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
