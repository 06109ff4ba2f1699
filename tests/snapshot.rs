//! Snapshots and the write log (issue 12): tamper detection, consistency under concurrent
//! writes, determinism of the root, exact diffs, queries on snapshots, restore, the log's
//! chain, and every bad input named.

mod engine_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use engine_common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taskdb::{
    Embedding, Error, Filter, Kind, NewEntry, NewOutcome, Query, Snapshot, SnapshotOptions, TaskDb,
};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// A small low-rank (matrix) entry in a fisher space of side 6.
fn fisher(name: &str, seed: u64) -> NewEntry {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dim = 6;
    let mut u: Vec<f32> = (0..2 * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    // Orthonormalise the two columns.
    let n0 = u[..dim].iter().map(|x| x * x).sum::<f32>().sqrt();
    u[..dim].iter_mut().for_each(|x| *x /= n0);
    let d: f32 = (0..dim).map(|i| u[i] * u[dim + i]).sum();
    for i in 0..dim {
        u[dim + i] -= d * u[i];
    }
    let n1 = u[dim..].iter().map(|x| x * x).sum::<f32>().sqrt();
    u[dim..].iter_mut().for_each(|x| *x /= n1);
    fisher_entry(name, "fisher:test", dim, u, vec![1.5, 0.5])
}

/// A database with dense entries in two spaces, matrix entries, outcomes and a deletion.
fn populated(path: &Path) -> TaskDb {
    let db = TaskDb::open(path).unwrap();
    let v = clustered(16, 8, 4, 3);
    db.put(entries("d", "dense", &v)).unwrap();
    db.put(entries("w", "wide", &clustered(4, 32, 2, 4)))
        .unwrap();
    db.put(vec![fisher("m0", 1), fisher("m1", 2), fisher("m2", 3)])
        .unwrap();
    db.add_outcomes(
        vec![
            NewOutcome::new("d1", "d2", 0.7),
            NewOutcome::new("d3", "d2", 0.4),
        ],
        &|i| format!("test {i}"),
    )
    .unwrap();
    db.delete(&"d5".parse().unwrap()).unwrap();
    db
}

/// The records of a snapshot as (start, end, kind) byte ranges, read with the framing of
/// schema/SNAPSHOT.md.
fn frames(b: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut out = Vec::new();
    let mut at = 16;
    let end = b.len() - 48;
    while at < end {
        let len = u64::from_le_bytes(b[at + 1..at + 9].try_into().unwrap()) as usize;
        let stop = at + 9 + len + 32;
        out.push((at, stop, b[at]));
        at = stop;
    }
    assert_eq!(at, end);
    out
}

/// 200 damaged copies (one byte flipped, or truncated) are all refused, each naming the
/// damaged entry, space or section; 50 intact snapshots all pass.
#[test]
fn every_flipped_byte_or_truncation_is_detected_and_named() {
    let d = tempfile::tempdir().unwrap();
    let db = populated(&d.path().join("t.taskdb"));
    let snap = d.path().join("s.tdbsnap");
    let m = db.snapshot(&snap, &SnapshotOptions::default()).unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    let recs = frames(&bytes);
    let content: Vec<String> = m
        .spaces
        .iter()
        .chain(&m.entries)
        .chain(&m.outcomes)
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(
        m.entries.len(),
        22,
        "15 d (d5 deleted), 4 w, 3 m: {:?}",
        m.entries
    );
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut detected = 0;
    for trial in 0..200 {
        let mut b = bytes.clone();
        let truncate = trial % 5 == 4;
        let pos = rng.random_range(1..bytes.len());
        if truncate {
            b.truncate(pos);
        } else {
            b[pos] ^= rng.random_range(1u8..=255);
        }
        let f = d.path().join(format!("bad{trial}.tdbsnap"));
        std::fs::write(&f, &b).unwrap();
        let r = Snapshot::verify(&f, None).unwrap();
        assert!(
            !r.ok && !r.problems.is_empty(),
            "trial {trial} at {pos}: undetected"
        );
        let said: Vec<String> = r
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.what, p.detail))
            .collect();
        // What must be named: the record the byte is in (its payload or digest), or the
        // section.
        let named = if truncate {
            said.iter()
                .any(|p| p.contains("truncated") || p.starts_with("footer"))
        } else if pos < 16 {
            said.iter()
                .any(|p| p.starts_with("header") || p.starts_with("footer"))
        } else if pos >= bytes.len() - 48 {
            said.iter()
                .any(|p| p.starts_with("footer") || p.starts_with("manifest"))
        } else {
            let (i, &(start, _, kind)) = recs
                .iter()
                .enumerate()
                .find(|(_, (a, z, _))| (*a..*z).contains(&pos))
                .unwrap();
            if pos < start + 9 {
                // The kind or length of a record: framing, named by any record or section.
                true
            } else {
                match kind {
                    1..=3 => said.iter().any(|p| p.contains(&content[i])),
                    4 => said.iter().any(|p| p.starts_with("history")),
                    5 => said.iter().any(|p| p.starts_with("write log")),
                    6 => said
                        .iter()
                        .any(|p| p.starts_with("manifest") || p.starts_with("root")),
                    _ => unreachable!(),
                }
            }
        };
        assert!(
            named,
            "trial {trial}: byte {pos} (truncate {truncate}): {said:?}"
        );
        // And a damaged snapshot is never opened for queries.
        assert!(matches!(
            Snapshot::open(&f),
            Err(Error::SnapshotInvalid { .. })
        ));
        detected += 1;
    }
    assert_eq!(detected, 200);
    // 0 false alarms on 50 intact snapshots of 50 different states.
    for i in 0..50 {
        db.put(vec![NewEntry::external(
            format!("x{i}"),
            Kind::Dataset,
            "dense",
            clustered(1, 8, 1, i)[0].clone(),
        )])
        .unwrap();
        let f = d.path().join(format!("ok{i}.tdbsnap"));
        let m = db.snapshot(&f, &SnapshotOptions::default()).unwrap();
        let r = Snapshot::verify(&f, Some(&m.root)).unwrap();
        assert!(r.ok, "intact snapshot {i}: {:?}", r.problems);
        assert_eq!(r.root.as_deref(), Some(m.root.as_str()));
    }
}

/// The live entries after replaying the log up to `seq`.
fn live_at(log: &[taskdb::LogRecord], seq: u64) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for r in log.iter().take_while(|r| r.seq <= seq) {
        for e in &r.entries {
            let n = format!("{}@{}", e.name, e.version);
            match r.op.as_str() {
                "put" => {
                    live.insert(n);
                }
                "delete" => {
                    live.remove(&n);
                }
                _ => {}
            }
        }
    }
    live
}

fn snapshot_names(m: &taskdb::Manifest) -> BTreeSet<String> {
    m.entries.iter().map(|l| l.name.clone()).collect()
}

/// Snapshots taken while another thread writes and deletes in a loop each verify, and hold
/// exactly the entries the log says were live at their `log_seq`.
#[test]
fn snapshots_under_concurrent_writes_hold_whole_writes_only() {
    let d = tempfile::tempdir().unwrap();
    let db = Arc::new(TaskDb::open(d.path().join("c.taskdb")).unwrap());
    let v = clustered(400, 16, 8, 9);
    let writer = {
        let db = db.clone();
        let v = v.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                // Batches of two: a snapshot sees both or neither.
                db.put(entries(&format!("b{i}-"), "s", &v[2 * i..2 * i + 2]))
                    .unwrap();
                if i > 0 && i % 3 == 0 {
                    db.delete(&format!("b{}-0", i - 1).parse().unwrap())
                        .unwrap();
                }
            }
        })
    };
    let mut manifests = Vec::new();
    for i in 0..25 {
        let f = d.path().join(format!("c{i}.tdbsnap"));
        manifests.push((
            f.clone(),
            db.snapshot(&f, &SnapshotOptions::default()).unwrap(),
        ));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    writer.join().unwrap();
    let log = db.log(0).unwrap();
    let mut distinct = BTreeSet::new();
    for (f, m) in &manifests {
        assert!(Snapshot::verify(f, None).unwrap().ok);
        assert_eq!(
            snapshot_names(m),
            live_at(&log, m.log_seq),
            "{}",
            f.display()
        );
        distinct.insert(m.log_seq);
        // The log record it ends at is the write that made its generation.
        if let Some(r) = log.iter().find(|r| r.seq == m.log_seq) {
            assert_eq!(r.generation, m.generation);
        }
    }
    assert!(
        distinct.len() > 3,
        "the snapshots did not interleave with the writes: {distinct:?}"
    );
}

/// Across processes: a writer process loops `import` and `rm` through the CLI while this
/// process runs `snapshot create` (which waits for the writer's lock); every snapshot verifies
/// and equals the database at its log sequence number.
#[test]
fn cli_snapshots_beside_a_writing_process_are_consistent() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("p.taskdb");
    for i in 0..30 {
        let line = jsonl_line(&format!("p{i}"), "dataset", "s", &clustered(1, 8, 1, i)[0]);
        std::fs::write(d.path().join(format!("p{i}.jsonl")), line + "\n").unwrap();
    }
    let (c, _, e) = cli(&[
        "--db",
        s(&db),
        "import",
        s(&d.path().join("p0.jsonl")),
        "-q",
    ]);
    assert_eq!(c, 0, "{e}");
    // Each write retries while the snapshotting process holds the file.
    let script = format!(
        "for i in $(seq 1 29); do \
           until {bin} --db {db} import {dir}/p$i.jsonl -q >/dev/null 2>&1; do sleep 0.01; done; \
           if [ $((i % 2)) = 0 ]; then \
             until {bin} --db {db} rm p$((i-1)) >/dev/null 2>&1; do sleep 0.01; done; fi; \
         done",
        bin = BIN,
        db = s(&db),
        dir = s(d.path())
    );
    let mut writer = Command::new("bash").arg("-c").arg(&script).spawn().unwrap();
    let mut taken = Vec::new();
    for i in 0..6 {
        let f = d.path().join(format!("p{i}.tdbsnap"));
        let (c, _, e) = cli(&[
            "--db",
            s(&db),
            "snapshot",
            "create",
            s(&f),
            "--wait",
            "60",
            "--json",
        ]);
        assert_eq!(c, 0, "{e}");
        taken.push(f);
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    assert!(writer.wait().unwrap().success());
    let log = TaskDb::open_read_only(&db).unwrap().log(0).unwrap();
    for f in &taken {
        let snap = Snapshot::open(f).unwrap();
        let m = snap.manifest();
        assert_eq!(
            snapshot_names(m),
            live_at(&log, m.log_seq),
            "{}",
            f.display()
        );
    }
}

/// The same content reached by different writes (order, batches, a deleted and compacted
/// extra, other times) has the same root; one changed bit changes it.
#[test]
fn the_root_depends_only_on_content() {
    let d = tempfile::tempdir().unwrap();
    let v = clustered(6, 8, 2, 5);
    let all = entries("e", "s", &v);
    let a = TaskDb::open(d.path().join("a.taskdb")).unwrap();
    a.put(all.clone()).unwrap();
    a.put(vec![fisher("m0", 1)]).unwrap();
    a.add_outcomes(
        vec![
            NewOutcome::new("e1", "e2", 0.5),
            NewOutcome::new("e3", "e2", 0.25),
        ],
        &|i| format!("a {i}"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut b = TaskDb::open(d.path().join("b.taskdb")).unwrap();
    b.put(vec![fisher("m0", 1)]).unwrap();
    b.put(vec![NewEntry::external(
        "junk",
        Kind::Model,
        "other",
        vec![1.0, 2.0],
    )])
    .unwrap();
    for e in all.iter().rev() {
        b.put(vec![e.clone()]).unwrap();
    }
    b.add_outcomes(vec![NewOutcome::new("e3", "e2", 0.25)], &|_| "b".into())
        .unwrap();
    b.add_outcomes(vec![NewOutcome::new("e1", "e2", 0.5)], &|_| "b".into())
        .unwrap();
    b.delete(&"junk".parse().unwrap()).unwrap();
    b.compact().unwrap();
    let ma = a
        .snapshot(d.path().join("a.tdbsnap"), &SnapshotOptions::default())
        .unwrap();
    let mb = b
        .snapshot(
            d.path().join("b.tdbsnap"),
            &SnapshotOptions {
                note: Some("another note".into()),
            },
        )
        .unwrap();
    assert_eq!(ma.root, mb.root);
    assert_eq!(ma.entries, mb.entries);
    assert_ne!(ma.history_sha256, mb.history_sha256, "ids and times differ");
    // One bit of one value changes the root.
    let c = TaskDb::open(d.path().join("c.taskdb")).unwrap();
    let mut changed = all.clone();
    let Embedding::Dense(x) = &mut changed[3].vectors[0].embedding else {
        unreachable!()
    };
    x[0] = f32::from_bits(x[0].to_bits() ^ 1);
    c.put(changed).unwrap();
    c.put(vec![fisher("m0", 1)]).unwrap();
    c.add_outcomes(
        vec![
            NewOutcome::new("e1", "e2", 0.5),
            NewOutcome::new("e3", "e2", 0.25),
        ],
        &|_| "c".into(),
    )
    .unwrap();
    let mc = c
        .snapshot(d.path().join("c.tdbsnap"), &SnapshotOptions::default())
        .unwrap();
    assert_ne!(ma.root, mc.root);
}

fn unit(deg: f32) -> Vec<f32> {
    let r = deg.to_radians();
    vec![r.cos(), r.sin()]
}

/// Scripted changes are reported exactly; knn on a snapshot equals knn on its database, for
/// every entry; a restored database answers the same too.
#[test]
fn diff_reports_scripted_changes_exactly_and_snapshots_answer_like_their_database() {
    let d = tempfile::tempdir().unwrap();
    let db = TaskDb::open(d.path().join("d.taskdb")).unwrap();
    // Points on a circle: cosine = cos(angle between them); top-1 neighbours are known.
    let angles = [0.0, 10.0, 25.0, 45.0, 70.0, 100.0];
    db.put(
        angles
            .iter()
            .map(|&a| NewEntry::external(format!("a{a}"), Kind::Dataset, "circle", unit(a)))
            .collect(),
    )
    .unwrap();
    db.put(vec![fisher("m0", 1)]).unwrap();
    let s1 = d.path().join("s1.tdbsnap");
    db.snapshot(&s1, &SnapshotOptions::default()).unwrap();
    // Every entry's neighbours on the snapshot equal the database's, scores to the bit.
    let snap = TaskDb::open_snapshot(&s1).unwrap();
    for e in db.list(&Filter::all()).unwrap() {
        let q = Query::entry(&e.name).unwrap();
        let bits = |h: Vec<taskdb::Hit>| -> Vec<(String, u32, u32)> {
            h.into_iter()
                .map(|h| (h.name, h.version, h.score.to_bits()))
                .collect()
        };
        assert_eq!(
            bits(db.nearest(&q, 4, &Filter::all()).unwrap()),
            bits(snap.nearest(&q, 4, &Filter::all()).unwrap()),
            "{}",
            e.name
        );
    }
    assert!(snap
        .put(vec![NewEntry::external(
            "z",
            Kind::Dataset,
            "circle",
            unit(5.0)
        )])
        .is_err());
    // Scripted: add one, remove one, re-ingest one with a new vector, one with new tags only.
    db.put(vec![NewEntry::external(
        "a200",
        Kind::Dataset,
        "circle",
        unit(200.0),
    )])
    .unwrap();
    db.delete(&"a25".parse().unwrap()).unwrap();
    db.put(vec![NewEntry::external(
        "a100",
        Kind::Dataset,
        "circle",
        unit(160.0),
    )])
    .unwrap();
    db.put(vec![NewEntry::external(
        "a0",
        Kind::Dataset,
        "circle",
        unit(0.0),
    )
    .with_tag("k", "v")])
        .unwrap();
    let s2 = d.path().join("s2.tdbsnap");
    db.snapshot(&s2, &SnapshotOptions::default()).unwrap();
    let (x1, x2) = (
        TaskDb::open_snapshot(&s1).unwrap(),
        TaskDb::open_snapshot(&s2).unwrap(),
    );
    let diff = taskdb::diff(
        &x1,
        &x2,
        &taskdb::DiffOptions {
            neighbours: Some(1),
        },
    )
    .unwrap();
    assert_eq!(diff.added, vec!["a200@1"]);
    assert_eq!(diff.removed, vec!["a25@1"]);
    assert!(diff.changed.is_empty(), "{:?}", diff.changed);
    let rv: BTreeMap<&str, &taskdb::EntryChange> = diff
        .reversioned
        .iter()
        .map(|c| (c.to.as_str(), c))
        .collect();
    assert_eq!(rv.len(), 2, "{:?}", diff.reversioned);
    let a0 = rv["a0@2"];
    assert!(a0.tags_changed && a0.vectors.is_empty() && !a0.provenance_changed);
    // Superseded versions stay (they are live, just not the latest).
    assert_eq!(a0.versions, Some((vec![1], vec![1, 2])));
    let a100 = rv["a100@2"];
    assert!(!a100.tags_changed);
    let cos = a100.vectors[0].cosine.unwrap();
    assert!((cos - 60f64.to_radians().cos()).abs() < 1e-6, "{cos}");
    assert_eq!(diff.unchanged, 4, "a10, a45, a70, m0");
    assert!(diff.spaces_added.is_empty() && diff.spaces_removed.is_empty());
    // Top-1 neighbours that changed, each for a known reason (exact lists).
    let nb: BTreeMap<&str, (&[String], &[String])> = diff
        .neighbours
        .iter()
        .map(|n| (n.entry.as_str(), (n.before.as_slice(), n.after.as_slice())))
        .collect();
    let one = |s: &str| vec![s.to_string()];
    // a45 lost a25 (its nearest) and now sees a70; a70's nearest was a45 and a100 moved away
    // (no change); a100 moved from 100° to 160°: its nearest was a70, now still a70? 160-70=90
    // vs 200-160=40: a200.
    assert_eq!(
        nb["a45@1"],
        (one("a25@1").as_slice(), one("a70@1").as_slice())
    );
    assert_eq!(
        nb["a100@2"],
        (one("a70@1").as_slice(), one("a200@1").as_slice())
    );
    assert_eq!(nb.len(), 2, "{:?}", diff.neighbours);
    // A vector changed under the same name and version (two databases built apart).
    let other = TaskDb::open(d.path().join("o.taskdb")).unwrap();
    other
        .put(
            angles
                .iter()
                .map(|&a| {
                    let deg = if a == 45.0 { 50.0 } else { a };
                    NewEntry::external(format!("a{a}"), Kind::Dataset, "circle", unit(deg))
                })
                .collect(),
        )
        .unwrap();
    other.put(vec![fisher("m0", 1)]).unwrap();
    let diff = taskdb::diff(&x1, &other, &taskdb::DiffOptions::default()).unwrap();
    assert_eq!(diff.changed.len(), 1, "{diff:?}");
    assert_eq!(diff.changed[0].to, "a45@1");
    let cos = diff.changed[0].vectors[0].cosine.unwrap();
    assert!((cos - 5f64.to_radians().cos()).abs() < 1e-6, "{cos}");
    assert_eq!(diff.unchanged, 6);
    // A snapshot and its own database: no difference.
    assert!(taskdb::diff(
        &x2,
        &db,
        &taskdb::DiffOptions {
            neighbours: Some(3)
        }
    )
    .unwrap()
    .is_empty());
    // Restore: a writable database with the same root, ids, versions and answers.
    let restored = d.path().join("r.taskdb");
    Snapshot::open(&s2).unwrap().restore(&restored).unwrap();
    let r = TaskDb::open(&restored).unwrap();
    let m2 = Snapshot::open(&s2).unwrap().manifest().clone();
    let mr = r
        .snapshot(d.path().join("r.tdbsnap"), &SnapshotOptions::default())
        .unwrap();
    assert_eq!(mr.root, m2.root);
    assert_eq!(
        db.list(&Filter::all()).unwrap(),
        r.list(&Filter::all()).unwrap(),
        "same ids, names, versions"
    );
    let log = r.log(0).unwrap();
    assert_eq!(log.last().unwrap().op, "restore");
    assert_eq!(log.len() as u64, m2.log_records + 1);
    assert!(r.verify_log().unwrap().problems.is_empty());
    // Versions are never reused after a restore: a25 was deleted at version 1.
    let w = r
        .put_versioned(vec![NewEntry::external(
            "a25",
            Kind::Dataset,
            "circle",
            unit(25.0),
        )])
        .unwrap();
    assert_eq!(w[0].version, 2);
}

/// `check` finds an edited, removed or appended-by-hand log record.
#[test]
fn check_detects_an_edited_log_record() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("l.taskdb");
    {
        let db = TaskDb::open(&p).unwrap();
        db.put(entries("e", "s", &clustered(5, 4, 1, 1))).unwrap();
        db.delete(&"e2".parse().unwrap()).unwrap();
        db.put(entries("f", "s", &clustered(2, 4, 1, 2))).unwrap();
        let mut db = db;
        let r = db.check().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.log_records_checked, 4);
        let ops: Vec<String> = db.log(0).unwrap().into_iter().map(|r| r.op).collect();
        assert_eq!(ops, ["create", "put", "delete", "put"]);
        assert_eq!(db.log(3).unwrap().len(), 2);
    }
    use redb::ReadableDatabase;
    const LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
    type LogTable<'t> = redb::Table<'t, u64, &'static [u8]>;
    let edit = |f: &dyn Fn(&mut LogTable<'_>)| {
        let rdb = redb::Database::open(&p).unwrap();
        let txn = rdb.begin_write().unwrap();
        {
            let mut t = txn.open_table(LOG).unwrap();
            f(&mut t);
        }
        txn.commit().unwrap();
    };
    // Record 3 says "delete e2@1": make it say e3 instead (the record reads fine; the chain
    // does not).
    let original: Vec<u8> = {
        let rdb = redb::Database::open(&p).unwrap();
        let txn = rdb.begin_read().unwrap();
        let t = txn.open_table(LOG).unwrap();
        let v = t.get(3).unwrap().unwrap().value().to_vec();
        v
    };
    let edited = String::from_utf8(original.clone())
        .unwrap()
        .replace("\"e2\"", "\"e3\"");
    assert_ne!(edited.as_bytes(), original.as_slice());
    edit(&|t| {
        t.insert(3, edited.as_bytes()).unwrap();
    });
    let mut db = TaskDb::open(&p).unwrap();
    let r = db.check().unwrap();
    assert!(!r.ok());
    assert!(
        r.problems.iter().any(|p| p.contains("write log record 4")),
        "{:?}",
        r.problems
    );
    drop(db);
    let (c, out, _) = cli(&["--db", s(&p), "check"]);
    assert_eq!(c, 7, "{out}");
    assert!(out.contains("write log record 4"), "{out}");
    // Put it back: whole again. Then remove the last record: the head no longer matches.
    edit(&|t| {
        t.insert(3, original.as_slice()).unwrap();
    });
    assert!(TaskDb::open(&p).unwrap().check().unwrap().ok());
    edit(&|t| {
        t.remove(4).unwrap();
    });
    let r = TaskDb::open(&p).unwrap().check().unwrap();
    assert!(
        r.problems.iter().any(|p| p.contains("head")),
        "{:?}",
        r.problems
    );
}

/// A database made before the log: its log starts at its next write with a `log-start`
/// record.
#[test]
fn a_database_without_a_log_gets_one_at_its_next_write() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("old.taskdb");
    {
        let db = TaskDb::open(&p).unwrap();
        db.put(entries("e", "s", &clustered(3, 4, 1, 1))).unwrap();
        db.put(entries("f", "s", &clustered(3, 4, 1, 2))).unwrap();
    }
    // Make it look like a database written before the log existed.
    {
        let rdb = redb::Database::open(&p).unwrap();
        let txn = rdb.begin_write().unwrap();
        txn.delete_table(redb::TableDefinition::<u64, &[u8]>::new("log"))
            .unwrap();
        txn.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("meta"))
            .unwrap()
            .remove(b"log_head".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let mut db = TaskDb::open(&p).unwrap();
    assert!(db.log(0).unwrap().is_empty());
    assert!(db.check().unwrap().ok());
    db.delete(&"e1".parse().unwrap()).unwrap();
    let log = db.log(0).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].op, "log-start");
    assert!(
        log[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("generations 1 to 2"),
        "{:?}",
        log[0].detail
    );
    assert_eq!(log[1].op, "delete");
    assert_eq!(log[1].entries[0].name, "e1");
    assert!(db.check().unwrap().ok());
}

fn populated_snapshot(d: &Path) -> (PathBuf, PathBuf, taskdb::Manifest) {
    let dbp = d.join("t.taskdb");
    let db = populated(&dbp);
    let f = d.join("s.tdbsnap");
    let m = db.snapshot(&f, &SnapshotOptions::default()).unwrap();
    (dbp, f, m)
}

/// Every bad input through the CLI: a clear error naming what failed, and the right exit code.
#[test]
fn bad_snapshot_inputs_are_named_with_distinct_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let (dbp, f, m) = populated_snapshot(d.path());
    let bytes = std::fs::read(&f).unwrap();
    // Intact: exit 0, the root printed; --root checks against a published root.
    let (c, out, _) = cli(&["snapshot", "verify", s(&f), "--root", &m.root]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains(&m.root));
    let wrong = "00".repeat(32);
    let (c, out, _) = cli(&["snapshot", "verify", s(&f), "--root", &wrong]);
    assert_eq!(c, 12, "{out}");
    assert!(out.contains("problem: root"), "{out}");
    // Truncated.
    let t = d.path().join("trunc.tdbsnap");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let (c, out, _) = cli(&["snapshot", "verify", s(&t), "--json"]);
    assert_eq!(c, 12);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert!(out.contains("truncated"), "{out}");
    // Queries on a damaged snapshot are refused with the same exit code, naming it.
    let (c, _, err) = cli(&["--db", s(&t), "list"]);
    assert_eq!(c, 12, "{err}");
    assert!(err.contains("failed verification"), "{err}");
    // A flipped byte in an entry: named.
    let e = d.path().join("flip.tdbsnap");
    let recs = frames(&bytes);
    let third_entry = recs.iter().filter(|r| r.2 == 2).nth(2).unwrap();
    let mut b = bytes.clone();
    b[third_entry.0 + 40] ^= 0x20;
    std::fs::write(&e, &b).unwrap();
    let (c, out, _) = cli(&["snapshot", "verify", s(&e)]);
    assert_eq!(c, 12);
    assert!(
        out.contains(&format!("entry 3 of 22 ({})", m.entries[2].name)),
        "{out}"
    );
    // A newer format (intact: the file digest recomputed): exit 6, "upgrade".
    let mut n = bytes.clone();
    n[8..12].copy_from_slice(&2u32.to_le_bytes());
    let cut = n.len() - 40;
    let h = sha256(&n[..cut]);
    n[cut..cut + 32].copy_from_slice(&h);
    let nf = d.path().join("newer.tdbsnap");
    std::fs::write(&nf, &n).unwrap();
    let (c, _, err) = cli(&["snapshot", "verify", s(&nf)]);
    assert_eq!(c, 6, "{err}");
    assert!(
        err.contains("version 2") && err.contains("upgrade"),
        "{err}"
    );
    // Not a snapshot.
    let txt = d.path().join("notes.txt");
    std::fs::write(&txt, "hello, this is not a snapshot\n").unwrap();
    let (c, _, err) = cli(&["snapshot", "verify", s(&txt)]);
    assert_eq!(c, 6, "{err}");
    assert!(err.contains("not a taskdb snapshot"), "{err}");
    // An output path that exists: refused, the file untouched.
    std::fs::write(d.path().join("exists.tdbsnap"), "keep me").unwrap();
    let (c, _, err) = cli(&[
        "--db",
        s(&dbp),
        "snapshot",
        "create",
        s(&d.path().join("exists.tdbsnap")),
    ]);
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        std::fs::read(d.path().join("exists.tdbsnap")).unwrap(),
        b"keep me"
    );
    // Restore refuses a damaged snapshot (nothing created) and an existing database.
    let nd = d.path().join("new.taskdb");
    let (c, _, err) = cli(&["--db", s(&nd), "snapshot", "restore", s(&e)]);
    assert_eq!(c, 12, "{err}");
    assert!(!nd.exists());
    let (c, _, err) = cli(&["--db", s(&dbp), "snapshot", "restore", s(&f)]);
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("never replaces"), "{err}");
    // A snapshot is read-only: writes name it and say what to do.
    let (c, _, err) = cli(&["--db", s(&f), "rm", "d1"]);
    assert_eq!(c, 6, "{err}");
    assert!(err.contains("snapshot") && err.contains("restore"), "{err}");
    // Reads on a snapshot write nothing beside it.
    let before: BTreeSet<_> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for args in [
        vec!["list"],
        vec!["knn", "d1", "-k", "3"],
        vec!["show", "d1"],
        vec!["stats"],
        vec!["log"],
        vec!["compare", "d1", "d2"],
        vec!["recommend", "d2"],
    ] {
        let mut a = vec!["--db", s(&f)];
        a.extend(args.iter());
        let (c, _, err) = cli(&a);
        assert_eq!(c, 0, "{args:?}: {err}");
    }
    let after: BTreeSet<_> = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after);
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// The independent verifier written from schema/SNAPSHOT.md alone agrees with taskdb: the same
/// root on an intact snapshot, a failure on a damaged one.
#[test]
fn the_python_verifier_written_from_the_spec_agrees() {
    let d = tempfile::tempdir().unwrap();
    let (_, f, m) = populated_snapshot(d.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify_snapshot.py");
    let run = |p: &Path| {
        let o = Command::new("python3")
            .arg(&script)
            .arg(p)
            .arg("--json")
            .output()
            .expect("python3 is needed by the test suite (see README)");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code().unwrap(), v)
    };
    let (c, v) = run(&f);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["root"], m.root.as_str());
    assert_eq!(v["entries"], 22);
    let mut b = std::fs::read(&f).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    let bad = d.path().join("bad.tdbsnap");
    std::fs::write(&bad, &b).unwrap();
    let (c, v) = run(&bad);
    assert_eq!(c, 12, "{v}");
    assert_eq!(v["ok"], false);
}

/// Rewrites a snapshot's manifest with `edit` and seals it again (the manifest's digest and
/// the file digest recomputed), so that only the edit is wrong.
fn reseal_manifest(bytes: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let recs = frames(bytes);
    let &(start, stop, kind) = recs.last().unwrap();
    assert_eq!(kind, 6);
    let mut m: serde_json::Value = serde_json::from_slice(&bytes[start + 9..stop - 32]).unwrap();
    edit(&mut m);
    let payload = serde_json::to_vec(&m).unwrap();
    let mut out = bytes[..start].to_vec();
    out.push(6);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let mut leaf = vec![0u8, 6];
    leaf.extend_from_slice(&payload);
    out.extend_from_slice(&sha256(&leaf));
    out.extend_from_slice(&(start as u64).to_le_bytes());
    let h = sha256(&out);
    out.extend_from_slice(&h);
    out.extend_from_slice(b"TDBSNAP\0");
    out
}

/// A manifest that is sealed but lies (about a record's name or the log's last record) is
/// refused: the names it gives are what every message and diff prints.
#[test]
fn a_resealed_manifest_that_lies_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (_, f, _) = populated_snapshot(d.path());
    let bytes = std::fs::read(&f).unwrap();
    // The reseal itself is faithful: an unedited copy verifies.
    let same = d.path().join("same.tdbsnap");
    std::fs::write(&same, reseal_manifest(&bytes, |_| {})).unwrap();
    assert!(Snapshot::verify(&same, None).unwrap().ok);
    for (what, edit) in [
        (
            "entry list names",
            Box::new(|m: &mut serde_json::Value| m["entries"][2]["name"] = "innocent@1".into())
                as Box<dyn Fn(&mut serde_json::Value)>,
        ),
        (
            "log_seq",
            Box::new(|m: &mut serde_json::Value| m["log_seq"] = 99.into()),
        ),
        (
            "format",
            Box::new(|m: &mut serde_json::Value| m["format"] = 2.into()),
        ),
    ] {
        let bad = d.path().join("lie.tdbsnap");
        std::fs::write(&bad, reseal_manifest(&bytes, edit)).unwrap();
        let r = Snapshot::verify(&bad, None).unwrap();
        assert!(!r.ok, "{what}");
        assert!(
            r.problems
                .iter()
                .any(|p| p.what == "manifest" && p.detail.contains(what)),
            "{what}: {:?}",
            r.problems
        );
    }
}
