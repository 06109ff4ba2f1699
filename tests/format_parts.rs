//! Format 3 stores a long vector record in parts that pack into redb's pages (`store::parts`).
//! Databases of format 2 (every record whole) keep working: `fixtures/engine/format2.taskdb`
//! was written by the format-2 taskdb of commit bc68dcf (`scripts/make_format2_fixture.sh`:
//! `sample.jsonl`, then 24 entries of 768-d in space "wide", then `rm wide-3`), and
//! `format2.knn.json` holds that binary's own `knn --json` answers on it.
//!
//! Read-only it is read as it is (and left byte-for-byte unchanged); the first writable open
//! records format 3 and changes nothing else; `compact` cuts its whole records into parts; the
//! answers, `check` and the snapshot root stay the same throughout, and new entries are
//! written in parts.

use std::path::{Path, PathBuf};
use std::process::Command;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use taskdb::{Filter, Kind, NewEntry, Query, TaskDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format2.taskdb"
);
const ANSWERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/engine/format2.knn.json"
);
const VECTORS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("vectors");

/// `(name@version, score)` of a `knn --json` answer.
fn hits(v: &serde_json::Value) -> Vec<(String, f64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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

fn answers_hold(p: &Path) {
    same(&knn_cli(p, "sst2", "20"), &recorded("sst2"));
    same(&knn_cli(p, "wide-0", "10"), &recorded("wide-0"));
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
    std::fs::copy(FIXTURE, &p).unwrap();
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
        let first = &recorded("wide-0")[0].0;
        assert_eq!(&format!("{}@{}", h[0].name, h[0].version), first);
        assert!(db.check().unwrap().ok());
    }
    answers_hold(&p);
    let root_before = root(&p, d.path(), "before.tdbs");
    let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&p));
    assert!(
        std::fs::read(&p).unwrap() == original,
        "a read-only open changed the file"
    );

    // The first writable open records format 3, and nothing else changes.
    {
        let mut db = TaskDb::open(&p).unwrap();
        assert_eq!(db.stats().unwrap().format_version, taskdb::FORMAT_VERSION);
        assert_eq!(taskdb::FORMAT_VERSION, 3);
        let last = db.log(0).unwrap().pop().unwrap();
        assert_eq!(last.op, "migrate");
        assert!(last.detail.unwrap().contains("format 2 -> 3"));
        let r = db.check().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
    }
    assert_eq!(keys(&p), (37, 0));
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
