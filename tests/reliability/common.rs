//! What the CLI-driven reliability tests share: running the binary and reading its result.
//! Also included by `tests/reliability_disk_full.rs` (its own binary), which uses part of it.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

/// The taskdb binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// Runs `taskdb --db DB ARGS…` (ignoring any `TASKDB_DB` of the environment).
pub fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("TASKDB_DB")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Exit code (asserting it is not a signal death), stdout, stderr.
pub fn code(o: &Output, what: &str) -> (i32, String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.signal(), None, "{what}: killed by a signal; {err}");
    (o.status.code().unwrap(), out, err)
}
