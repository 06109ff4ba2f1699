//! `run_command` leaves no process behind on any normal path: not the model's `sh` (no
//! zombie), not its grandchildren, not the supervisor that kills the model's process group
//! if taskdb dies. One test in its own binary, so that no other test's children are counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskdb_sources::{run_command, CommandOptions, ProbeSet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn probe() -> ProbeSet {
    ProbeSet::from_file(&root().join("fixtures/probe/probe_small.jsonl")).unwrap()
}

/// This process's children: (pid, state, comm), zombies included.
fn children() -> Vec<(i32, String, String)> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
            let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
            let mut rest = stat[stat.rfind(')')? + 2..].split(' ');
            let state = rest.next()?.to_string();
            let ppid: i32 = rest.next()?.parse().ok()?;
            (ppid == me).then_some((pid, state, comm))
        })
        .collect()
}

#[test]
fn every_normal_path_leaves_no_child_process_or_zombie() {
    let u = probe();
    let rule = root().join("fixtures/models/sentiment_rule.py");
    let quick = CommandOptions {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    // Success; the model leaves a grandchild running, which taskdb kills with the group.
    let out = run_command(
        &format!(
            "python3 {}; sleep 3611 >/dev/null 2>&1 & true",
            rule.display()
        ),
        &u,
        &quick,
    )
    .unwrap();
    assert_eq!(out.predictions.len(), 120);
    assert!(children().is_empty(), "after success: {:?}", children());

    // The model fails.
    let e = run_command("cat >/dev/null; exit 3", &u, &quick).unwrap_err();
    assert!(e.to_string().contains("exit status 3"), "{e}");
    assert!(children().is_empty(), "after a failure: {:?}", children());

    // A protocol error (taskdb kills the group itself).
    let e = run_command("echo garbage; sleep 3612", &u, &quick).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(children().is_empty(), "after bad output: {:?}", children());

    // A timeout.
    let t0 = Instant::now();
    let e = run_command(
        "cat >/dev/null; sleep 3613",
        &u,
        &CommandOptions {
            timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(children().is_empty(), "after a timeout: {:?}", children());

    // The command cannot be run at all.
    let e = run_command("no-such-model-command-3614", &u, &quick).unwrap_err();
    assert!(e.to_string().contains("127"), "{e}");
    assert!(children().is_empty(), "after exit 127: {:?}", children());

    // No grandchild survived either (they are children of init, not of this process).
    std::thread::sleep(Duration::from_millis(200));
    for tag in ["3611", "3612", "3613"] {
        let want = format!("sleep\0{tag}\0");
        let alive = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .any(|c| c == want.as_bytes());
        assert!(!alive, "sleep {tag} survived");
    }
}
