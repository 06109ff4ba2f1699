//! Issue 10: the short variant of `scripts/crash_trials.sh` (10 SIGKILL trials, two of each of
//! import, ingest dataset, ingest model, rm and compact, on a small database): after every
//! kill the database opens, `check` passes, nothing reported committed is lost and nothing is
//! half-written. The full run (100+ trials) is `bash scripts/crash_trials.sh`, figures in
//! docs/RELIABILITY.md.

use std::process::Command;

#[test]
fn ten_sigkill_trials_lose_nothing_and_leave_nothing_partial() {
    let o = Command::new("bash")
        .arg("scripts/crash_trials.sh")
        .args(["10", "7"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TASKDB_BIN", env!("CARGO_BIN_EXE_taskdb"))
        .env("SMALL", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("lost=0 partial=0 trials=10 check_failed=0 errors=0"),
        "{stdout}{stderr}"
    );
}
