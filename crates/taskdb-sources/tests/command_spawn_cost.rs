//! What running a model command costs in wall time, for a trivial model (two `cat`s), so
//! that the per-command overhead of taskdb's process handling (the model's `sh`, and
//! since the SIGKILL fix its supervisor `sh`) can be compared between versions. A
//! measurement, not a check: run it by hand with
//! `cargo test -p taskdb-sources --test command_spawn_cost -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskdb_sources::{run_command, CommandOptions, ProbeSet};

#[test]
#[ignore = "a timing measurement, run by hand"]
fn wall_time_of_20_trivial_model_commands() {
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
    println!(
        "20 trivial model commands: median {:?}, min {:?}, max {:?} (7 rounds)",
        rounds[3], rounds[0], rounds[6]
    );
}
