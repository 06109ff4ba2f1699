//! What running a model command costs in wall time, for a trivial model (two `cat`s), so
//! that the per-command overhead of taskdb's process handling (the model's `sh`, and
//! since the SIGKILL fix its supervisor `sh`) can be compared between versions (check out
//! both, run this in each, alternately). Run:
//! `cargo bench --locked -p taskdb-sources --bench command_spawn`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskdb_sources::{run_command, CommandOptions, ProbeSet};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let u = ProbeSet::from_file(&root.join("fixtures/probe/probe_small.jsonl")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let replies = d.path().join("replies.jsonl");
    let mut s = String::new();
    for (i, t) in u.texts.iter().enumerate() {
        s.push_str(&format!(
            "{{\"id\": {}, \"label\": \"{}\"}}\n",
            t.id,
            ["a", "b"][i % 2]
        ));
    }
    std::fs::write(&replies, s).unwrap();
    let cmd = format!("cat >/dev/null; cat {}", replies.display());
    let opts = CommandOptions {
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..20 {
            let out = run_command(&cmd, &u, &opts).unwrap();
            assert_eq!(out.predictions.len(), u.texts.len());
        }
        rounds.push(t.elapsed());
    }
    rounds.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "RESULT bench=command-spawn commands=20 texts={} median_ms={:.1} min_ms={:.1} \
         max_ms={:.1} rounds=7",
        u.texts.len(),
        ms(rounds[3]),
        ms(rounds[0]),
        ms(rounds[6])
    );
}
