//! Issue 10, defect 1: a model `--command` that fails in any way is reported with the
//! documented error (exit 10, what went wrong, the child's stderr tail) and never kills
//! taskdb with a signal, also when taskdb is still writing a large probe set into the
//! child's closed stdin (the SIGPIPE case the small fixture probe set hid). And killing
//! taskdb ends the model's whole process group.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

fn fx(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// A probe set of `n` texts of ~100 bytes each (3,000 of them: ~330 KB, far more than a
/// pipe buffer, like the built-in U).
fn big_probe(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("big_probe.jsonl");
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"id\": {i}, \"text\": \"probe text number {i}: a good or bad sentence, padded to about one hundred bytes long\"}}\n"
        ));
    }
    std::fs::write(&p, s).unwrap();
    p
}

fn ingest_model(db: &Path, probe: &Path, cmd: &str, timeout: &str) -> Output {
    Command::new(BIN)
        .args(["--db"])
        .arg(db)
        .args([
            "ingest",
            "model",
            "m",
            "--command",
            cmd,
            "--timeout",
            timeout,
        ])
        .args(["--surrogate", &fx("surrogate/tiny"), "--quiet", "--probe"])
        .arg(probe)
        .output()
        .unwrap()
}

/// The documented failure: exit 10 (model command failed), not a signal death.
fn assert_model_failure(o: &Output, what: &str, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.signal(),
        None,
        "{what}: taskdb was killed by signal {:?}; stderr: {err}",
        o.status.signal()
    );
    assert_eq!(o.status.code(), Some(10), "{what}: stderr: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}: {err}");
    }
}

#[test]
fn failing_model_commands_with_a_large_probe_set_give_the_documented_error() {
    let d = tempfile::tempdir().unwrap();
    let probe = big_probe(d.path(), 3000);
    let db = d.path().join("m.taskdb");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "exits at once",
            "echo 'cannot load weights' >&2; exit 3",
            &[
                "exit status 3",
                "after 0 output lines",
                "cannot load weights",
            ],
        ),
        (
            "crashes after reading a few lines",
            "head -n 3 >/dev/null; echo 'Traceback: boom' >&2; exit 4",
            &["exit status 4", "Traceback: boom"],
        ),
        (
            "prints garbage",
            "echo 'loading model...'; echo 'warming up' >&2; sleep 1",
            &["line 1", "not a JSON object", "loading model", "warming up"],
        ),
        (
            "prints nothing",
            "echo 'nothing to say' >&2; exit 0",
            &["0 predictions for 3000 probe texts", "nothing to say"],
        ),
        (
            "is not found",
            "no-such-model-command-4711 --flag",
            &["exit status 127", "no-such-model-command-4711", "not found"],
        ),
        (
            "hangs past --timeout",
            "echo 'stuck on GPU init' >&2; exec sleep 4731",
            &["timed out after 1s", "killed", "stuck on GPU init"],
        ),
        (
            "answers with a wrong id",
            "echo '{\"id\": 999999, \"label\": \"a\"}'; echo 'id bug' >&2; sleep 1",
            &["line 1", "id 999999 is not in the probe set", "id bug"],
        ),
    ];
    for (what, cmd, needles) in cases {
        let o = ingest_model(&db, &probe, cmd, "1");
        assert_model_failure(&o, what, needles);
        assert!(
            !db.exists(),
            "{what}: a failed first ingestion left a database"
        );
    }
    // The timed-out model's process group is gone.
    assert!(survivors("sleep 4731").is_empty());
}

fn survivors(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with(prefix))
        .collect()
}

/// Polls `f` for up to 20 s (a liveness wait, not a timing assertion).
fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn killing_taskdb_ends_the_models_process_group() {
    let d = tempfile::tempdir().unwrap();
    let probe = big_probe(d.path(), 3000);
    let db = d.path().join("k.taskdb");
    for (sig, tag) in [(libc::SIGTERM, "4741"), (libc::SIGINT, "4742")] {
        // The model reads U, then starts a grandchild and waits on it.
        let cmd = format!("cat >/dev/null; sleep {tag}");
        let mut c = Command::new(BIN);
        c.arg("--db")
            .arg(&db)
            .args(["ingest", "model", "m", "--command", &cmd])
            .args(["--surrogate", &fx("surrogate/tiny"), "--quiet", "--probe"])
            .arg(&probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // taskdb keeps an inherited "ignore" for these signals (nohup semantics), and a
        // test harness started in the background by a non-interactive shell inherits an
        // ignored SIGINT: give the child the default disposition, as a terminal would.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = c.spawn().unwrap();
        let needle = format!("sleep {tag}");
        assert!(
            wait_for(|| !survivors(&needle).is_empty()),
            "the model never started"
        );
        // SAFETY: signalling the taskdb process this test spawned.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let st = child.wait().unwrap();
        assert!(!st.success(), "{st:?}");
        assert!(
            wait_for(|| survivors(&needle).is_empty()),
            "signal {sig}: the model's process group outlived taskdb: {:?}",
            survivors(&needle)
        );
    }
}

/// Polls `f` for up to `limit`.
fn wait_up_to(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Issue 10 (docs/RELIABILITY.md promise 2): SIGKILL, which no handler sees, still ends
/// the model's grandchildren. `PR_SET_PDEATHSIG` ends only the `sh` that taskdb started;
/// the per-command supervisor process kills the whole group when taskdb's end of its pipe
/// closes.
#[test]
fn sigkilling_taskdb_ends_the_models_grandchildren() {
    let d = tempfile::tempdir().unwrap();
    let probe = big_probe(d.path(), 3000);
    let db = d.path().join("s.taskdb");
    let tag = "4743";
    // Two commands: the shell does not exec the last one, so `sleep` is a grandchild.
    let cmd = format!("cat >/dev/null; sleep {tag}");
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["ingest", "model", "m", "--command", &cmd])
        .args(["--surrogate", &fx("surrogate/tiny"), "--quiet", "--probe"])
        .arg(&probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = format!("sleep {tag}");
    assert!(
        wait_for(|| !survivors(&needle).is_empty()),
        "the model never started"
    );
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    let gone = wait_up_to(Duration::from_secs(5), || survivors(&needle).is_empty());
    let left = survivors(&needle);
    if !gone {
        // Do not leave the grandchild running after a failed test.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &needle])
            .status();
    }
    assert!(
        gone,
        "SIGKILL: the model's grandchild outlived taskdb: {left:?}"
    );
}

/// Issue 10, defect 9: the database is opened for writing only for the commit, so while a
/// model labels U (here: sleeps, then labels) another process can read the database.
#[test]
fn readers_are_not_locked_out_while_a_model_runs() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("r.taskdb");
    let tiny = [
        "--surrogate".to_string(),
        fx("surrogate/tiny"),
        "--probe".to_string(),
        fx("probe/probe_small.jsonl"),
        "--quiet".to_string(),
    ];
    let run = |args: &[String]| -> Output {
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let mut a: Vec<String> = ["ingest", "dataset", "s"].map(String::from).to_vec();
    a.push(fx("datasets/sentiment_a.jsonl"));
    a.extend(tiny.iter().cloned());
    let o = run(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let model = format!("sleep 3; exec python3 {}", fx("models/sentiment_rule.py"));
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["ingest", "model", "m", "--command", &model])
        .args(&tiny)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the model should still be sleeping"
    );
    let t = Instant::now();
    let o = run(&["list".to_string(), "--json".to_string()]);
    assert!(
        o.status.success(),
        "list during a model's run: {:?} {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 1, "{listing}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "list waited {:?}",
        t.elapsed()
    );
    // ... and the ingestion still lands.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = run(&["list".to_string(), "--json".to_string()]);
    let listing: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 2, "{listing}");
}
