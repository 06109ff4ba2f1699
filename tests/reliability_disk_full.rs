//! A full disk is "disk full" (exit 11), never "corrupt", and costs nothing committed (issue 10,
//! defect 8). Each test mounts a small `tmpfs` (its own binary because it mounts things),
//! fills it, runs a write through the CLI, then grows the file system (`remount,size=`) as a
//! user freeing space would, and checks what is there. Where mounting is not allowed (not
//! root, or no tmpfs), each test prints a note and returns: it cannot test anything then.

#[path = "reliability/common.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::code;

/// The binary under test: this build's, or `TASKDB_BIN` (to run these tests against another
/// build, e.g. the one before the fix).
fn bin() -> String {
    std::env::var("TASKDB_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_taskdb").to_string())
}

/// A tmpfs of a given size at a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `4m`), or prints why it cannot and returns `None`.
    fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "note: {test}: NOT RUN, no tmpfs can be mounted here (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("note: {test}: NOT RUN, `mount` cannot be run here: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grows (or shrinks) the file system, as freeing space would.
    fn resize(&self, size: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Fills what is free with a file of zeros (written until ENOSPC); returns its size.
    fn fill(&self) -> u64 {
        let p = self.path().join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        std::fs::metadata(&p).unwrap().len()
    }

    /// Removes the filler file.
    fn unfill(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .output();
        }
    }
}

const fn libc_enospc() -> i32 {
    28
}

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TASKDB_DB")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let (c, out, err) = code(&run(db, args), &args.join(" "));
    assert_eq!(c, 0, "{args:?}: {err}");
    out
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `(name, version)` of every entry, all versions.
fn listing(db: &Path) -> Vec<(String, u64)> {
    let v = json(&ok(db, &["list", "--json", "--all-versions"]));
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Temporary graph files left in `<db>.index/`.
fn graph_temporaries(db: &Path) -> Vec<String> {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".index");
    std::fs::read_dir(PathBuf::from(dir))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// `n` import lines `v0…` of dimension `dim` in space `ext`, each vector distinct.
fn import_file(path: &Path, n: usize, dim: usize) {
    let mut s = String::new();
    for i in 0..n {
        let v: Vec<String> = (0..dim)
            .map(|j| format!("{}", ((i * 31 + j * 17) % 97) as f32 / 97.0 + 0.01))
            .collect();
        s.push_str(&format!(
            "{{\"name\": \"v{i}\", \"kind\": \"dataset\", \"space\": \"ext\", \"vector\": [{}], \
             \"tags\": {{\"n\": \"{i}\"}}}}\n",
            v.join(", ")
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// "committed batch B (E entries)" lines of an import's stderr: the last (B, E).
fn last_committed(stderr: &str) -> (u64, u64) {
    stderr
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.strip_prefix("committed batch ")?;
            let (b, rest) = rest.split_once(" (")?;
            let e = rest.strip_suffix(" entries)")?;
            Some((b.parse().ok()?, e.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

/// An import that runs out of space part-way: exit 11 with "disk full" and what stayed
/// committed; those batches are all there once space is freed; `import --resume` then writes
/// only the rest, with no `@2` duplicates; no temporary graph file is left behind.
#[test]
fn import_into_a_full_disk_is_exit_11_keeps_its_batches_and_resumes_without_duplicates() {
    let Some(fs) = Tmpfs::mount("2m", "import into a full disk") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("in.jsonl");
    let (n, dim) = (6000, 48);
    import_file(&file, n, dim);
    let db = fs.path().join("t.taskdb");

    let o = run(
        &db,
        &["import", file.to_str().unwrap(), "--batch-size", "500"],
    );
    let (c, _, err) = code(&o, "import");
    assert_eq!(
        c, 11,
        "import into a full disk must be exit 11 (disk full); stderr: {err}"
    );
    let (batches, entries) = last_committed(&err);
    assert!(
        batches >= 1,
        "the test needs some batches committed first; stderr: {err}"
    );
    assert!(entries < n as u64, "{err}");
    let msg = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(msg.contains("disk full"), "{msg}");
    assert!(
        msg.contains("t.taskdb"),
        "the message names the file: {msg}"
    );
    assert!(
        msg.contains(&format!(
            "the {batches} batch(es) of this import before it ({entries} entries"
        )),
        "the message says what stayed committed: {msg}"
    );
    assert!(msg.contains("--resume"), "{msg}");
    assert!(!msg.contains("corrupt"), "{msg}");
    assert_eq!(graph_temporaries(&db), Vec::<String>::new());

    // Every committed entry is there, once: on the full disk already (the graph rebuilt at
    // open cannot be saved there, which does not stop `list`), and after space is freed.
    for when in ["on the full disk", "after freeing space"] {
        if when == "after freeing space" {
            fs.resize("64m");
        }
        let have = listing(&db);
        assert_eq!(
            have.len() as u64,
            entries,
            "{when}: exactly the committed batches"
        );
        assert!(have.iter().all(|(_, v)| *v == 1), "{when}: {have:?}");
    }

    // The re-run with --resume writes only the rest.
    let out = ok(
        &db,
        &["import", file.to_str().unwrap(), "--resume", "--json"],
    );
    let r = json(&out);
    assert_eq!(r["skipped"].as_u64(), Some(entries), "{r}");
    assert_eq!(r["imported"].as_u64(), Some(n as u64 - entries), "{r}");
    let have = listing(&db);
    assert_eq!(have.len(), n, "no entry lost, none duplicated");
    assert!(have.iter().all(|(_, v)| *v == 1), "no @2 duplicates");
    let check = json(&ok(&db, &["check", "--json"]));
    assert_eq!(check["ok"], true, "{check}");
    // A second re-run writes nothing.
    let out = ok(&db, &["import", file.to_str().unwrap(), "--resume"]);
    assert!(out.contains(&format!("skipped {n} line(s)")), "{out}");
    assert_eq!(graph_temporaries(&db), Vec::<String>::new());
}

/// `n` JSON-lines rows of distinct texts with two labels.
fn dataset_file(path: &Path, n: usize, seed: usize) {
    let words = [
        "apple", "love", "hate", "good", "bad", "soup", "time", "happy", "poor", "nice", "cake",
        "great", "dinner", "really", "so",
    ];
    let mut s = String::new();
    for i in 0..n {
        let text: Vec<&str> = (0..8)
            .map(|j| words[(i * 7 + j * 3 + seed + i / (j + 1)) % words.len()])
            .collect();
        let label = if i % 2 == 0 { "positive" } else { "negative" };
        s.push_str(&format!(
            "{{\"text\": \"{} {seed}-{i}\", \"label\": \"{label}\"}}\n",
            text.join(" ")
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn tiny(args: &[&str]) -> Vec<String> {
    let fx = |p: &str| format!("{}/fixtures/{p}", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend([
        "--surrogate".into(),
        fx("surrogate/tiny"),
        "--probe".into(),
        fx("probe/probe_small.jsonl"),
        "--quiet".into(),
    ]);
    v
}

fn run_tiny(db: &Path, args: &[&str]) -> Output {
    let v = tiny(args);
    let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    run(db, &v)
}

/// A dataset ingestion that runs out of space while saving the feature cache keeps the cache
/// file (no `.features.corrupt`), uses the features it computed, and ends either written
/// (exit 0, with a warning about the cache) or with "disk full" (exit 11), never "corrupt";
/// after space is freed the cached features are still there (the re-run hits them).
#[test]
fn ingestion_into_a_full_disk_keeps_the_feature_cache_and_is_never_corrupt() {
    let Some(fs) = Tmpfs::mount("24m", "ingestion into a full disk") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let db = fs.path().join("t.taskdb");
    let first = work.path().join("first.jsonl");
    let second = work.path().join("second.jsonl");
    dataset_file(&first, 200, 1);
    dataset_file(&second, 3000, 2);
    let (c, _, err) = code(
        &run_tiny(
            &db,
            &["ingest", "dataset", "first", first.to_str().unwrap()],
        ),
        "first ingestion",
    );
    assert_eq!(c, 0, "{err}");
    let cache = fs.path().join("t.taskdb.features");
    assert!(cache.exists());

    fs.fill();
    let o = run_tiny(
        &db,
        &[
            "ingest",
            "dataset",
            "second",
            second.to_str().unwrap(),
            "--json",
        ],
    );
    let (c, out, err) = code(&o, "ingestion into a full disk");
    assert!(
        c == 0 || c == 11,
        "exit {c} (expected 0 with a cache warning, or 11 disk full); stderr: {err}"
    );
    assert!(!err.contains("corrupt"), "{err}");
    let aside = fs.path().join("t.taskdb.features.corrupt");
    assert!(!aside.exists(), "the cache was moved aside; stderr: {err}");
    assert!(cache.exists(), "the cache file is kept");
    if c == 0 {
        let r = json(&out);
        let warned = r["warnings"].to_string();
        assert!(warned.contains("disk is full"), "{r}");
    } else {
        assert!(err.contains("disk full"), "{err}");
        // Nothing of the failed write is there.
        fs.unfill();
        let names: Vec<String> = listing(&db).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["first"], "only the first ingestion is there");
    }
    assert_eq!(graph_temporaries(&db), Vec::<String>::new());

    // Space freed: the first ingestion's features are still cached (the probe set's too).
    fs.unfill();
    fs.resize("128m");
    let o = run_tiny(
        &db,
        &[
            "ingest",
            "dataset",
            "again",
            first.to_str().unwrap(),
            "--json",
        ],
    );
    let (c, out, err) = code(&o, "ingestion after freeing space");
    assert_eq!(c, 0, "{err}");
    let r = json(&out);
    assert_eq!(
        r["cache"]["computed"], 0,
        "the cached features were kept: {r}"
    );
    assert_eq!(r["cache"]["repaired"], 0, "{r}");
    let check = json(&ok(&db, &["check", "--json"]));
    assert_eq!(check["ok"], true, "{check}");
}

/// `compact` on a full disk: exit 11 naming what it could not write, never "corrupt"; no
/// temporary graph file is left; every live entry is there once space is freed.
#[test]
fn compact_on_a_full_disk_is_exit_11_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("16m", "compact on a full disk") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("in.jsonl");
    let n = 3000;
    import_file(&file, n, 32);
    let db = fs.path().join("t.taskdb");
    ok(&db, &["import", file.to_str().unwrap(), "-q"]);
    for i in 0..5 {
        ok(&db, &["rm", &format!("v{i}")]);
    }
    fs.fill();
    let (c, _, err) = code(&run(&db, &["compact"]), "compact on a full disk");
    assert_eq!(
        c, 11,
        "compact on a full disk must be exit 11; stderr: {err}"
    );
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    assert_eq!(graph_temporaries(&db), Vec::<String>::new());

    fs.unfill();
    let have = listing(&db);
    assert_eq!(have.len(), n - 5, "every live entry is there");
    let check = json(&ok(&db, &["check", "--json"]));
    assert_eq!(check["ok"], true, "{check}");
    // And compact works once there is space.
    ok(&db, &["compact"]);
    assert_eq!(listing(&db).len(), n - 5);
}

/// The feature cache through the library, where the outcome is deterministic: a write that
/// hits a full disk returns the computed features, warns, keeps the file (no
/// `.features.corrupt`), and the features cached before are still there once space is freed.
#[test]
fn a_feature_cache_write_on_a_full_disk_keeps_the_file_and_returns_the_features() {
    use taskdb::testing::{FeatureCache, FeatureInput};
    let Some(fs) = Tmpfs::mount("8m", "feature cache on a full disk") else {
        return;
    };
    let path = fs.path().join("c.features");
    let texts: Vec<String> = (0..6000).map(|i| format!("text {i}")).collect();
    let inputs = |r: std::ops::Range<usize>| -> Vec<FeatureInput<'_>> {
        texts[r]
            .iter()
            .map(|t| FeatureInput {
                text: t,
                pair: None,
            })
            .collect()
    };
    let dim = 64;
    let feats = |idx: &[usize], base: usize| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| (0..dim).map(move |j| (base + i) as f32 + j as f32 / 100.0))
            .collect()
    };
    let first = inputs(0..100);
    {
        let cache = FeatureCache::open(&path).unwrap();
        let (_, s) = cache
            .get_or_compute("fp", dim, &first, |idx| Ok(feats(idx, 0)))
            .unwrap();
        assert_eq!(s.computed, 100);
        assert!(cache.warning().is_none());
    }
    fs.fill();
    {
        let cache = FeatureCache::open(&path).unwrap();
        let many = inputs(100..6000);
        let (x, s) = cache
            .get_or_compute("fp", dim, &many, |idx| Ok(feats(idx, 100)))
            .expect("a full disk is not an error for the derived cache");
        assert_eq!(s.computed, 5900);
        assert_eq!(
            x,
            feats(&(0..5900).collect::<Vec<_>>(), 100),
            "the computed features"
        );
        let w = cache
            .warning()
            .expect("a warning says the features were not saved");
        assert!(
            w.contains("disk is full") && w.contains("c.features"),
            "{w}"
        );
        // Later lookups of this handle compute without touching the file.
        let (x, s) = cache
            .get_or_compute("fp", dim, &first, |idx| Ok(feats(idx, 0)))
            .unwrap();
        assert_eq!((s.computed, s.repaired), (100, 0));
        assert_eq!(x, feats(&(0..100).collect::<Vec<_>>(), 0));
    }
    assert!(path.exists(), "the cache file is kept");
    assert!(
        !fs.path().join("c.features.corrupt").exists(),
        "nothing moved aside"
    );
    fs.unfill();
    let cache = FeatureCache::open(&path).unwrap();
    let (x, s) = cache
        .get_or_compute("fp", dim, &first, |_| {
            panic!("the cached features must be there")
        })
        .unwrap();
    assert_eq!((s.hits, s.repaired), (100, 0));
    assert_eq!(x, feats(&(0..100).collect::<Vec<_>>(), 0));
}

/// `snapshot create` onto a full disk (issue 12): exit 11 naming the snapshot, no partial or
/// temporary file left, the database untouched; once space is freed the same command works and
/// the snapshot verifies.
#[test]
fn snapshot_create_onto_a_full_disk_is_exit_11_and_leaves_nothing() {
    let Some(fs) = Tmpfs::mount("1m", "snapshot onto a full disk") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("t.taskdb");
    let src = home.path().join("in.jsonl");
    import_file(&src, 300, 256);
    ok(&db, &["import", src.to_str().unwrap(), "-q"]);
    let before = std::fs::read(&db).unwrap();
    let out = fs.path().join("s.tdbsnap");
    fs.fill();
    let o = run(&db, &["snapshot", "create", out.to_str().unwrap()]);
    let (c, _, err) = code(&o, "snapshot create onto a full disk");
    assert_eq!(c, 11, "{err}");
    assert!(
        err.contains("disk full") && err.contains("s.tdbsnap"),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler")
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database changed");
    fs.unfill();
    fs.resize("16m");
    ok(&db, &["snapshot", "create", out.to_str().unwrap()]);
    let v = json(&ok(
        &db,
        &["snapshot", "verify", "--json", out.to_str().unwrap()],
    ));
    assert_eq!(v["ok"], true);
    assert_eq!(v["entries"], 300);
}
