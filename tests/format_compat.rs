//! Databases of format 1 (text keys and values stored as redb `&str`, taskdb before issue 10's
//! format 2) keep working. `fixtures/engine/format1.taskdb` was written by the format-1 taskdb
//! of commit f2fd703 (`scripts/make_format1_fixture.sh`: `sample.jsonl`, then
//! `format1-more.jsonl` with non-ASCII names, a second space and `imdb@2`, then `rm yelp`);
//! `format1.knn.json` holds that binary's own `knn --json` answers on it.
//!
//! Read-only it is read as it is (and left byte-for-byte unchanged); the first writable open
//! migrates it to the current format in one transaction; the answers, the snapshot root and `check` are
//! the same before and after. A migration that fails (a damaged text byte in a format-1 table)
//! changes nothing.
//!
//! Format 3 stores a long vector record in parts that pack into redb's pages (`store::parts`).
//! `fixtures/engine/format2.taskdb` was written by the format-2 taskdb of commit bc68dcf
//! (`scripts/make_format2_fixture.sh`: `sample.jsonl`, then 24 entries of 768-d in space
//! "wide", then `rm wide-3`), and `format2.knn.json` holds that binary's own answers on it. Read
//! only, it is read as it is; the first writable open records format 3 and changes nothing
//! else; `compact` cuts its whole records into parts; the answers, `check` and the snapshot
//! root stay the same throughout, and new entries are written in parts.

use std::path::{Path, PathBuf};
use std::process::Command;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use taskdb::{Error, Filter, Kind, NewEntry, Query, SnapshotOptions, TaskDb};

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

/// The recorded answer for `name` in `answers` (a `FORMATn.knn.json` file).
fn recorded_in(answers: &str, name: &str) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(answers).unwrap()).unwrap();
    hits(&v[name])
}

fn recorded(name: &str) -> Vec<(String, f64)> {
    recorded_in(ANSWERS, name)
}

fn same(a: &[(String, f64)], b: &[(String, f64)]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{a:?} vs {b:?}");
        assert!((x.1 - y.1).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

/// Checks that the read-only handles before left `p` byte for byte `original` (once the derived
/// index directory they may write is removed), then opens it writable: the current format, a
/// `migrate` record saying `detail` last in the write log, `check` and redb's integrity ok.
fn migrates(p: &Path, original: &[u8], detail: &str) -> TaskDb {
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(p));
    assert!(
        std::fs::read(p).unwrap() == original,
        "a read-only open changed the file"
    );
    let mut db = TaskDb::open(p).unwrap();
    assert_eq!(db.stats().unwrap().format_version, taskdb::FORMAT_VERSION);
    assert_eq!(taskdb::FORMAT_VERSION, 3);
    let last = db.log(0).unwrap().pop().unwrap();
    assert_eq!(last.op, "migrate");
    assert!(last.detail.as_deref().unwrap().contains(detail), "{last:?}");
    let r = db.check().unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.redb_integrity, Some(true));
    db
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
    // The first writable open migrates: the current format, the same answers, check ok, the
    // same root.
    {
        let db = migrates(&p, &original, "format 1 -> 3");
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

const FIXTURE2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format2.taskdb"
);
const ANSWERS2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format2.knn.json"
);
const VECTORS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("vectors");

fn answers_hold(p: &Path) {
    same(&knn_cli(p, "sst2", "20"), &recorded_in(ANSWERS2, "sst2"));
    same(
        &knn_cli(p, "wide-0", "10"),
        &recorded_in(ANSWERS2, "wide-0"),
    );
}

/// The `vectors` table's keys, read with redb itself: (whole-record keys, part keys).
fn keys(p: &Path) -> (usize, usize) {
    let db = redb::ReadOnlyDatabase::open(p).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(VECTORS).unwrap();
    let (mut heads, mut parts) = (0, 0);
    for row in t.iter().unwrap() {
        let (k, _) = row.unwrap();
        let m = k.value().1;
        match m.len() >= 3 && m[m.len() - 3] == 0 {
            true => parts += 1,
            false => heads += 1,
        }
    }
    (heads, parts)
}

/// Whether `meta` marks the file as possibly holding whole records to cut (set by the format-2
/// migration, removed by the `compact` that cuts them).
fn marked_whole(p: &Path) -> bool {
    let db = redb::ReadOnlyDatabase::open(p).unwrap();
    let txn = db.begin_read().unwrap();
    let meta: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
    let t = txn.open_table(meta).unwrap();
    let marked = t.get(b"whole_records".as_slice()).unwrap().is_some();
    marked
}

fn root(p: &Path, dir: &Path, name: &str) -> String {
    taskdb::Snapshot::create(p, dir.join(name), &Default::default())
        .unwrap()
        .root
}

fn wide(i: usize) -> Vec<f32> {
    (0..768)
        .map(|j| ((0.7 * i as f64 + 0.013 * j as f64).sin()) as f32)
        .collect()
}

#[test]
fn a_format2_database_reads_as_it_is_and_compact_cuts_its_records_into_parts() {
    let d = tempfile::tempdir().unwrap();
    let p: PathBuf = d.path().join("old.taskdb");
    std::fs::copy(FIXTURE2, &p).unwrap();
    let original = std::fs::read(&p).unwrap();
    // 13 entries of `sample.jsonl` (8-d, short records) and 24 of 768-d, one deleted: every
    // record whole.
    assert_eq!(keys(&p), (37, 0));

    // Read-only: format 2, the recorded answers, check ok; the file is untouched.
    {
        let mut db = TaskDb::open_read_only(&p).unwrap();
        assert_eq!(db.stats().unwrap().format_version, 2);
        let h = db
            .nearest(&Query::entry("wide-0").unwrap(), 3, &Filter::all())
            .unwrap();
        let first = &recorded_in(ANSWERS2, "wide-0")[0].0;
        assert_eq!(&format!("{}@{}", h[0].name, h[0].version), first);
        assert!(db.check().unwrap().ok());
    }
    answers_hold(&p);
    let root_before = root(&p, d.path(), "before.tdbs");
    // The first writable open records format 3, and nothing else changes.
    assert!(!marked_whole(&p));
    drop(migrates(&p, &original, "format 2 -> 3"));
    assert_eq!(keys(&p), (37, 0));
    assert!(marked_whole(&p));
    answers_hold(&p);
    assert_eq!(root(&p, d.path(), "migrated.tdbs"), root_before);

    // `compact` purges wide-3 and cuts the 23 live 768-d records into four parts each.
    {
        let mut db = TaskDb::open(&p).unwrap();
        assert_eq!(db.compact().unwrap().purged, 1);
        let r = db.check().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
    }
    assert_eq!(keys(&p), (36, 23 * 3));
    assert!(!marked_whole(&p));
    answers_hold(&p);
    let root_compacted = root(&p, d.path(), "compacted.tdbs");

    // A second compact has nothing left to cut; a new 768-d entry is written in parts, and
    // reads back exactly.
    TaskDb::open(&p).unwrap().compact().unwrap();
    assert_eq!(keys(&p), (36, 23 * 3));
    assert_eq!(root(&p, d.path(), "again.tdbs"), root_compacted);
    {
        let mut db = TaskDb::open(&p).unwrap();
        let v = wide(40);
        db.put(vec![NewEntry::external(
            "wide-new",
            Kind::Dataset,
            "wide",
            v.clone(),
        )])
        .unwrap();
        let got = db.get(&"wide-new".parse().unwrap()).unwrap();
        assert_eq!(got.vectors["wide"].1, taskdb::Embedding::Dense(v.clone()));
        let h = db
            .nearest(&Query::dense("wide", v), 1, &Filter::all())
            .unwrap();
        assert_eq!(h[0].name, "wide-new");
        assert!((h[0].score - 1.0).abs() < 1e-6);
        assert!(db.check().unwrap().ok());
    }
    assert_eq!(keys(&p), (37, 24 * 3));
    answers_hold(&p);
}

#[test]
fn a_method_with_a_control_character_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("t.taskdb")).unwrap();
    let err = db
        .put(vec![NewEntry::external(
            "a",
            Kind::Dataset,
            "sp\u{0}ace",
            vec![1.0, 0.0],
        )])
        .unwrap_err()
        .to_string();
    assert!(err.contains("control character"), "{err}");
    assert!(db.list(&Filter::all()).unwrap().is_empty());
}

#[test]
fn a_lost_part_is_damage_that_check_names_and_reads_refuse() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.taskdb");
    {
        let db = TaskDb::open(&p).unwrap();
        let entries = (0..4)
            .map(|i| NewEntry::external(format!("w{i}"), Kind::Dataset, "wide", wide(i)))
            .collect();
        db.put(entries).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(keys(&p), (4, 4 * 3));
    // Part 2 of w1 (entry id 2) lost, with redb itself.
    {
        let db = redb::Database::open(&p).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(VECTORS).unwrap();
            assert!(t
                .remove((2u64, b"wide\0\0\x02".as_slice()))
                .unwrap()
                .is_some());
        }
        txn.commit().unwrap();
    }
    let mut db = TaskDb::open(&p).unwrap();
    let r = db.check().unwrap();
    assert!(!r.ok());
    assert!(
        r.problems
            .iter()
            .any(|m| m.contains("entry 2") && m.contains("wide")),
        "{:?}",
        r.problems
    );
    let err = db.get(&"w1".parse().unwrap()).unwrap_err().to_string();
    assert!(err.contains("entry 2"), "{err}");
    // The other entries read as they were.
    let got = db.get(&"w3".parse().unwrap()).unwrap();
    assert_eq!(got.vectors["wide"].1, taskdb::Embedding::Dense(wide(3)));
}

/// taskdb's second patch to redb (vendor/redb/TASKDB-PATCH.md): below one full region (4 GiB)
/// the file grows by at most 16 MiB beyond what an allocation needs instead of doubling, so a
/// database as built is the pages it uses plus at most one step (with redb 4.6.0 this file
/// doubled from 34 to 68 MiB between two commits). The data reads back after a reopen.
#[test]
fn a_database_file_as_built_is_its_pages_in_use_plus_at_most_one_growth_step() {
    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("grow");
    const STEP: u64 = 16 << 20;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("grow.redb");
    let value = |i: u64| vec![(i % 251) as u8; 3000];
    let db = redb::Database::create(&path).unwrap();
    let mut lens = vec![std::fs::metadata(&path).unwrap().len()];
    for t in 0..25u64 {
        let w = db.begin_write().unwrap();
        {
            let mut tab = w.open_table(T).unwrap();
            for i in t * 1000..(t + 1) * 1000 {
                tab.insert(i, value(i).as_slice()).unwrap();
            }
        }
        w.commit().unwrap();
        lens.push(std::fs::metadata(&path).unwrap().len());
    }
    // Each commit allocates ≈ 4 MB (a 3,000-byte value takes a leaf of its own); no step
    // between two commits is larger than that plus one growth step.
    for w in lens.windows(2) {
        assert!(w[1] - w[0] <= STEP + (8 << 20), "grew {} → {}", w[0], w[1]);
    }
    let w = db.begin_write().unwrap();
    let stats = w.stats().unwrap();
    let in_use = stats.allocated_pages() * stats.page_size() as u64;
    w.abort().unwrap();
    let len = *lens.last().unwrap();
    assert!(in_use > 100_000_000, "{in_use} bytes of pages");
    assert!(
        len <= in_use + STEP + (1 << 20),
        "file {len} for {in_use} in use"
    );
    drop(db);
    let db = redb::Database::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    let tab = r.open_table(T).unwrap();
    assert_eq!(tab.len().unwrap(), 25_000);
    for i in [0u64, 12_345, 24_999] {
        assert_eq!(tab.get(i).unwrap().unwrap().value(), value(i).as_slice());
    }
}
