//! Databases of format 1 (text keys and values stored as redb `&str`, taskdb before issue 10's
//! format 2) keep working. `fixtures/engine/format1.taskdb` was written by the format-1 taskdb
//! of commit f2fd703 (`scripts/make_format1_fixture.sh`: `sample.jsonl`, then
//! `format1-more.jsonl` with non-ASCII names, a second space and `imdb@2`, then `rm yelp`);
//! `format1.knn.json` holds that binary's own `knn --json` answers on it.
//!
//! Read-only it is read as it is (and left byte-for-byte unchanged); the first writable open
//! migrates it to format 2 in one transaction; the answers, the snapshot root and `check` are
//! the same before and after. A migration that fails (a damaged text byte in a format-1 table)
//! changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use taskdb::{Error, Filter, Query, SnapshotOptions, TaskDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format1.taskdb"
);
const ANSWERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format1.knn.json"
);

fn copy(dir: &Path) -> PathBuf {
    let p = dir.join("old.taskdb");
    std::fs::copy(FIXTURE, &p).unwrap();
    p
}

/// `(name@version, score)` of a `knn --json` answer.
fn hits(v: &serde_json::Value) -> Vec<(String, f64)> {
    let arr = v
        .get("hits")
        .and_then(|h| h.as_array())
        .or_else(|| v.as_array())
        .unwrap_or_else(|| panic!("no hits in {v}"));
    arr.iter()
        .map(|h| {
            (
                format!("{}@{}", h["name"].as_str().unwrap(), h["version"]),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn knn_cli(db: &Path, name: &str, k: &str) -> Vec<(String, f64)> {
    let o = Command::new(BIN)
        .args(["--db", db.to_str().unwrap(), "knn", name, "-k", k, "--json"])
        .env_remove("TASKDB_DB")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    hits(&serde_json::from_slice(&o.stdout).unwrap())
}

fn recorded(name: &str) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(ANSWERS).unwrap()).unwrap();
    hits(&v[name])
}

fn same(a: &[(String, f64)], b: &[(String, f64)]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{a:?} vs {b:?}");
        assert!((x.1 - y.1).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_format1_database_is_read_as_it_is_and_migrated_by_a_writable_open() {
    let d = tempfile::tempdir().unwrap();
    let p = copy(d.path());
    let original = std::fs::read(&p).unwrap();
    let expect_sst2 = recorded("sst2");
    let expect_alpha = recorded("alpha");
    assert!(expect_sst2.len() >= 10 && expect_alpha.len() >= 3);

    // Read-only: format 1, the recorded answers, check ok, a snapshot; the file is untouched.
    let root_before = {
        let mut db = TaskDb::open_read_only(&p).unwrap();
        assert_eq!(db.stats().unwrap().format_version, 1);
        let h = db
            .nearest(&Query::entry("alpha").unwrap(), 5, &Filter::all())
            .unwrap();
        assert_eq!(h[0].name, expect_alpha[0].0.split('@').next().unwrap());
        let r = db.check().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        drop(db);
        let m = taskdb::Snapshot::create(&p, d.path().join("before.tdbs"), &Default::default())
            .unwrap();
        m.root.clone()
    };
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&p));
    assert!(
        std::fs::read(&p).unwrap() == original,
        "a read-only open changed the file"
    );

    // The first writable open migrates: format 2, the same answers, check ok, the same root.
    {
        let mut db = TaskDb::open(&p).unwrap();
        assert_eq!(db.stats().unwrap().format_version, taskdb::FORMAT_VERSION);
        assert_eq!(taskdb::FORMAT_VERSION, 3);
        let log = db.log(0).unwrap();
        let last = log.last().unwrap();
        assert_eq!(last.op, "migrate");
        assert!(last.detail.as_deref().unwrap().contains("format 1 -> 3"));
        let r = db.check().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.redb_integrity, Some(true));
        let m = db
            .snapshot(d.path().join("after.tdbs"), &SnapshotOptions::default())
            .unwrap();
        assert_eq!(
            m.root, root_before,
            "the content is the same after the migration"
        );
    }
    same(&knn_cli(&p, "sst2", "20"), &expect_sst2);
    same(&knn_cli(&p, "alpha", "5"), &expect_alpha);
    // Range and prefix queries over the migrated name index: versions, non-ASCII names, list.
    let db = TaskDb::open(&p).unwrap();
    let names: Vec<String> = db
        .list(&Filter::all())
        .unwrap()
        .into_iter()
        .map(|e| format!("{}@{}", e.name, e.version))
        .collect();
    for n in ["imdb@2", "données-é@1", "Ωmega@1", "alpha@1", "sst2@1"] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("yelp@")));
    assert!(db.get(&"imdb@1".parse().unwrap()).is_ok());
    // Writes go on: a new version of a migrated name, a delete.
    let w = db
        .put_versioned(vec![taskdb::NewEntry::external(
            "données-é",
            taskdb::Kind::Dataset,
            "other",
            vec![0.5, 0.1, 0.2, 0.4],
        )])
        .unwrap();
    assert_eq!(w[0].version, 2);
    db.delete(&"zeta".parse().unwrap()).unwrap();
    drop(db);
    let mut db = TaskDb::open(&p).unwrap();
    assert!(db.check().unwrap().ok());
    assert_eq!(
        db.log(0)
            .unwrap()
            .iter()
            .filter(|r| r.op == "migrate")
            .count(),
        1
    );
}

#[test]
fn a_migration_that_fails_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = copy(d.path());
    // Every copy of the name "zeta" made invalid UTF-8: format 1's `names` and `name_seq` keys
    // make redb panic while the migration reads them.
    let mut bytes = std::fs::read(&p).unwrap();
    let mut n = 0;
    for i in 0..bytes.len() - 4 {
        if &bytes[i..i + 4] == b"zeta" {
            bytes[i] ^= 0x80;
            n += 1;
        }
    }
    assert!(n >= 2, "{n}");
    std::fs::write(&p, &bytes).unwrap();
    let err = TaskDb::open(&p).err().expect("the migration must fail");
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains("unchanged") && msg.contains("check --read-only"),
        "{msg}"
    );
    // Still format 1, still readable read-only; every other entry is there.
    let mut db = TaskDb::open_read_only(&p).unwrap();
    assert_eq!(db.stats().unwrap().format_version, 1);
    let listed = db.list(&Filter::all()).unwrap();
    assert!(listed.iter().any(|e| e.name == "alpha"));
    assert!(!db.check().unwrap().ok());
    drop(db);
    // Through the CLI: a writable `check` fails to migrate (exit 7, no panic report) and
    // `check --read-only` reports the damage; the file still has format 1 afterwards.
    for (args, code) in [
        (&["check"][..], 7),
        (&["check", "--read-only"], 7),
        (&["list"], 0),
    ] {
        let o = Command::new(BIN)
            .args(["--db", p.to_str().unwrap()])
            .args(args)
            .env_remove("TASKDB_DB")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let db = TaskDb::open_read_only(&p).unwrap();
    assert_eq!(db.stats().unwrap().format_version, 1);
}
