//! Issue 10, defect 10: `check` says what it found and what it did (a damaged graph it
//! rebuilt is named in `repaired`, in text and in `--json`), and it works on a database it
//! cannot write (`check --read-only`, chosen by itself when the file cannot be opened for
//! writing): it verifies what it can and says what a writable check would repair, writing
//! nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{code, run};
use crate::engine_common;

/// A database of 30 imported entries in space `ext`, whose graph file is then damaged.
fn damaged_graph_db(d: &Path) -> (PathBuf, PathBuf) {
    let db = d.join("t.taskdb");
    let vecs = engine_common::clustered(30, 8, 3, 11);
    let lines: Vec<String> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| engine_common::jsonl_line(&format!("e{i}"), "dataset", "ext", v))
        .collect();
    let file = d.join("in.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (c, _, err) = code(&run(&db, &["import", file.to_str().unwrap()]), "import");
    assert_eq!(c, 0, "{err}");
    let dir = taskdb::files::index_dir(&db);
    let graph = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".graph"))
        .unwrap_or_else(|| panic!("no graph file in {}", dir.display()));
    let mut bytes = std::fs::read(&graph).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&graph, bytes).unwrap();
    (db, graph)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn check_names_the_graph_it_rebuilt_in_text_and_json() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = damaged_graph_db(d.path());
    let (c, stdout, err) = code(&run(&db, &["check", "--json"]), "check --json");
    assert_eq!(c, 0, "{stdout}{err}");
    let v = json(&stdout);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["read_only"], false, "{v}");
    let rep = v["repaired"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(rep.len(), 1, "one graph rebuilt: {v}");
    assert_eq!(rep[0]["space"], "ext", "{v}");
    assert_eq!(rep[0]["done"], true, "{v}");
    assert!(
        rep[0]["action"].as_str().unwrap().contains("rebuilt"),
        "{v}"
    );
    assert!(!rep[0]["reason"].as_str().unwrap().is_empty(), "{v}");
    // Repaired once: the next check has nothing to repair, and says ok.
    let (c, stdout, _) = code(&run(&db, &["check", "--json"]), "check again");
    assert_eq!(c, 0);
    assert_eq!(json(&stdout)["repaired"], serde_json::json!([]), "{stdout}");

    // The text report names the space and the repair.
    let d2 = tempfile::tempdir().unwrap();
    let (db2, _) = damaged_graph_db(d2.path());
    let (c, stdout, err) = code(&run(&db2, &["check"]), "check");
    assert_eq!(c, 0, "{stdout}{err}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("repaired:") && l.contains("ext") && l.contains("rebuilt")),
        "the text report says what was rebuilt: {stdout}"
    );
}

fn digest(paths: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

fn files_of(db: &Path) -> Vec<PathBuf> {
    let mut v = vec![db.to_path_buf()];
    let mut idx: Vec<PathBuf> = std::fs::read_dir(taskdb::files::index_dir(db))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    idx.sort();
    v.extend(idx);
    v
}

/// The read-only check's report: exit 0, read-only, the damaged graph listed as a repair it
/// would make, not made; and nothing on disk changed.
fn assert_read_only_check(db: &Path, args: &[&str], what: &str) {
    let before = digest(&files_of(db));
    let mut a = vec!["check", "--json"];
    a.extend_from_slice(args);
    let (c, stdout, err) = code(&run(db, &a), what);
    assert_eq!(c, 0, "{what}: {stdout}{err}");
    let v = json(&stdout);
    assert_eq!(v["ok"], true, "{what}: {v}");
    assert_eq!(v["read_only"], true, "{what}: {v}");
    let rep = v["repaired"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(rep.len(), 1, "{what}: {v}");
    assert_eq!(rep[0]["space"], "ext", "{what}: {v}");
    assert_eq!(
        rep[0]["done"], false,
        "{what}: a read-only check repairs nothing: {v}"
    );
    assert!(v["entries_checked"].as_u64().unwrap() >= 30, "{v}");
    assert!(v["vectors_checked"].as_u64().unwrap() >= 30, "{v}");
    assert_eq!(
        before,
        digest(&files_of(db)),
        "{what}: wrote to the database"
    );
    // The text form says so.
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let (c, stdout, err) = code(&run(db, &a), what);
    assert_eq!(c, 0, "{what}: {stdout}{err}");
    assert!(stdout.contains("read-only"), "{what}: {stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("would repair:") && l.contains("ext")),
        "{what}: {stdout}"
    );
    assert_eq!(
        before,
        digest(&files_of(db)),
        "{what}: wrote to the database"
    );
}

/// A read-only bind mount of `src` at `at`, unmounted on drop.
struct ReadOnlyMount {
    at: PathBuf,
}

impl ReadOnlyMount {
    fn new(src: &Path, at: &Path) -> Option<ReadOnlyMount> {
        let ok = |args: &[&std::ffi::OsStr]| {
            Command::new("mount")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !ok(&["--bind".as_ref(), src.as_os_str(), at.as_os_str()]) {
            return None;
        }
        let m = ReadOnlyMount {
            at: at.to_path_buf(),
        };
        if !ok(&["-o".as_ref(), "remount,bind,ro".as_ref(), at.as_os_str()]) {
            return None; // (dropping `m` unmounts)
        }
        Some(m)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).output();
    }
}

#[test]
fn check_works_on_a_read_only_database_and_reports_without_writing() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = damaged_graph_db(d.path());
    // The explicit flag, on a writable file.
    assert_read_only_check(&db, &["--read-only"], "check --read-only");

    // A file the user cannot write: `list` works, and so must `check`.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let writes_stopped = std::fs::OpenOptions::new().write(true).open(&db).is_err();
    let (c, _, err) = code(&run(&db, &["list"]), "list");
    assert_eq!(c, 0, "{err}");
    if writes_stopped {
        assert_read_only_check(&db, &[], "check on a 0444 file");
    } else {
        // Root (or a file system ignoring modes): chmod does not stop writes, so the automatic
        // choice cannot be seen here; the explicit path is what a read-only file gets.
        eprintln!(
            "note: {} is still writable after chmod 0444 (running as root?); testing \
             `check --read-only` on it instead",
            db.display()
        );
        assert_read_only_check(&db, &["--read-only"], "check --read-only on a 0444 file");
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    // A read-only mount, where the automatic choice holds for root too. Mounting needs
    // privileges: where a bind mount cannot be made, the cases above are what is tested.
    let mnt = tempfile::tempdir().unwrap();
    match ReadOnlyMount::new(d.path(), mnt.path()) {
        Some(m) => {
            let on_mount = m.at.join("t.taskdb");
            assert!(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&on_mount)
                    .is_err(),
                "the mount is read-only"
            );
            assert_read_only_check(&on_mount, &[], "check on a read-only mount");
        }
        None => eprintln!("note: no read-only bind mount possible here (not privileged)"),
    }

    // A writable check afterwards makes the repair the read-only one announced.
    let (c, stdout, err) = code(&run(&db, &["check", "--json"]), "check");
    assert_eq!(c, 0, "{err}");
    let v = json(&stdout);
    assert_eq!(v["repaired"][0]["done"], true, "{v}");
    assert_eq!(v["repaired"][0]["space"], "ext", "{v}");
}

/// Entry records carry a checksum (issue 10, defect 10): a flipped byte in a record's
/// provenance is a corruption error for `show` (exit 7, naming the record) instead of the
/// altered provenance; the database still opens (`list` works), `check` names the record, and
/// `rm` removes it.
#[test]
fn a_damaged_entry_record_is_refused_by_show_reported_by_check_and_removable() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let marker = "provenance-marker-QZXW-0123456789";
    let file = d.path().join("in.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"name\": \"a\", \"kind\": \"dataset\", \"space\": \"ext\", \"vector\": [1, 0, 0], \
             \"provenance\": {{\"note\": \"{marker}\"}}}}\n\
             {{\"name\": \"b\", \"kind\": \"model\", \"space\": \"ext\", \"vector\": [0, 1, 0]}}\n"
        ),
    )
    .unwrap();
    let (c, _, err) = code(&run(&db, &["import", file.to_str().unwrap()]), "import");
    assert_eq!(c, 0, "{err}");
    let (c, stdout, _) = code(&run(&db, &["show", "a", "--json"]), "show");
    assert_eq!(c, 0);
    assert!(stdout.contains(marker));

    // Flip one byte of the provenance text ('Q' -> 'P': still valid UTF-8 and JSON) wherever
    // the record is in the file.
    let mut bytes = std::fs::read(&db).unwrap();
    let m = marker.as_bytes();
    let at: Vec<usize> = (0..bytes.len() - m.len())
        .filter(|&i| &bytes[i..i + m.len()] == m)
        .collect();
    assert!(!at.is_empty(), "the provenance is stored as text");
    for i in at {
        bytes[i + 18] ^= 0x01;
    }
    std::fs::write(&db, bytes).unwrap();

    let (c, stdout, err) = code(&run(&db, &["show", "a", "--json"]), "show a");
    assert_eq!(
        c, 7,
        "a damaged record is corruption, not altered provenance: {stdout}{err}"
    );
    assert!(
        err.contains("entry record") && err.contains("checksum"),
        "{err}"
    );
    assert!(!stdout.contains("provenance-marker-PZXW"), "{stdout}");
    let (c, _, err) = code(&run(&db, &["show", "b"]), "show b");
    assert_eq!(c, 0, "the other entries still read: {err}");
    let (c, _, err) = code(&run(&db, &["list"]), "list");
    assert_eq!(c, 0, "the database still opens: {err}");
    let (c, stdout, _) = code(&run(&db, &["check"]), "check");
    assert_eq!(c, 7, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("problem:") && l.contains("entry record")),
        "{stdout}"
    );
    let (c, _, err) = code(&run(&db, &["rm", "a"]), "rm a");
    assert_eq!(c, 0, "the damaged entry can be removed: {err}");
    let (c, stdout, _) = code(&run(&db, &["check"]), "check after rm");
    assert_eq!(c, 0, "{stdout}");
}

/// Found by the `open` fuzz target (2026-12-06), two damaged files on which redb panics when
/// taskdb opens them for writing: one in redb's repair of the file, one in its page allocator
/// while taskdb initialises the meta table of a file without taskdb tables. Each is
/// corruption (exit 7) for `check`, with no panic message; the read commands say what they
/// said before (corruption, or not a taskdb file: exit 6), never a panic.
#[test]
fn files_redb_panics_on_when_opened_for_writing_are_corruption_without_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/engine");
    for (file, read_code) in [
        ("fuzz-open-writable-panic.taskdb", 7),
        ("fuzz-open-init-panic.taskdb", 6),
    ] {
        for args in [
            &["check"][..],
            &["list"],
            &["check", "--read-only"],
            &["stats"],
        ] {
            let db = d.path().join("t.taskdb");
            std::fs::copy(fx.join(file), &db).unwrap();
            let _ = std::fs::remove_dir_all(d.path().join("t.taskdb.index"));
            let (c, _, err) = code(&run(&db, args), &args.join(" "));
            let want = if args == ["check"] { 7 } else { read_code };
            assert_eq!(c, want, "{file} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{file} {args:?}: {err}");
        }
    }
}

/// Issue 10, defect 4 (docs/RELIABILITY.md promise 21): two database files
/// the `open` fuzz target found, whose damaged page references name a 4 GiB and a 512 MiB page.
/// redb allocated the page's buffer before reading it, so under a memory limit the process
/// aborted (SIGABRT, exit 134, on `list`, `check` and `check --read-only`), and with memory to
/// spare it spent seconds and gigabytes before an I/O error (exit 8). With the patched redb
/// (vendor/redb/TASKDB-PATCH.md) such a read is refused before anything is allocated: every
/// command says corruption (exit 7) naming the file, and the file is left as it was.
#[test]
fn damaged_page_references_are_corruption_not_an_allocation_under_a_memory_limit() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let d = tempfile::tempdir().unwrap();
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/engine");
    for file in [
        "fuzz-open-oom-4gib-page.taskdb",
        "fuzz-open-slow-512mib-page.taskdb",
    ] {
        let original = std::fs::read(fx.join(file)).unwrap();
        for args in [
            &["list"][..],
            &["check"],
            &["check", "--read-only"],
            &["knn", "e1", "-k", "3"],
            &["compact"],
        ] {
            let db = d.path().join("t.taskdb");
            std::fs::write(&db, &original).unwrap();
            let mut c = Command::new(crate::common::BIN);
            c.env_remove("TASKDB_DB").arg("--db").arg(&db).args(args);
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    // 2 GB of address space: a debug taskdb needs a few hundred MB; the
                    // damaged reads asked for 4 GiB and 512 MiB.
                    let lim = libc::rlimit {
                        rlim_cur: 2_000_000_000,
                        rlim_max: 2_000_000_000,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let o = c.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.signal(), None, "{file} {args:?}: a signal; {err}");
            assert_eq!(o.status.code(), Some(7), "{file} {args:?}: {err}");
            assert!(
                err.contains("points past the end of the file") && err.contains("t.taskdb"),
                "{file} {args:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{file} {args:?}: {err}");
            assert_eq!(
                std::fs::read(&db).unwrap(),
                original,
                "{file} {args:?}: changed"
            );
        }
    }
}
