//! Every bad input is a clear error naming the problem, and leaves the database unchanged.

mod engine_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use engine_common::*;
use taskdb::{Error, Filter, Kind, NewEntry, TaskDb};

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// A database with a few entries in space "s" (dim 4), closed.
fn base() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.taskdb");
    let db = TaskDb::open(&p).unwrap();
    db.put(entries("e", "s", &clustered(5, 4, 2, 1))).unwrap();
    (d, p)
}

/// Everything observable about the database's content.
fn snapshot(p: &Path) -> String {
    let db = TaskDb::open_read_only(p).unwrap();
    let list = db
        .list(&Filter {
            all_versions: true,
            ..Filter::all()
        })
        .unwrap();
    let st = db.stats().unwrap();
    format!(
        "{list:?} gen={} spaces={:?}",
        st.generation,
        st.spaces
            .iter()
            .map(|s| (&s.name, s.dim, s.points))
            .collect::<Vec<_>>()
    )
}

fn api_rejects(entries: Vec<NewEntry>, expect: &str) {
    let (_d, p) = base();
    let before = snapshot(&p);
    {
        let db = TaskDb::open(&p).unwrap();
        let err = db.put(entries).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert!(err.to_string().contains(expect), "{err} lacks {expect:?}");
        assert_eq!(err.exit_code(), taskdb::exit::INVALID_INPUT);
    }
    assert_eq!(snapshot(&p), before, "database changed after a failed put");
}

fn good(name: &str) -> NewEntry {
    NewEntry::external(name, Kind::Dataset, "s", vec![1.0, 2.0, 3.0, 4.0])
}

#[test]
fn api_wrong_dimension() {
    api_rejects(
        vec![
            good("ok"),
            NewEntry::external("x", Kind::Dataset, "s", vec![1.0, 2.0]),
        ],
        "wrong dimension for space \"s\": expected 4, got 2",
    );
}

#[test]
fn api_nan_and_infinite() {
    api_rejects(
        vec![
            good("ok"),
            NewEntry::external("x", Kind::Dataset, "s", vec![1.0, f32::NAN, 0.0, 0.0]),
        ],
        "component 1 is NaN",
    );
    api_rejects(
        vec![NewEntry::external(
            "x",
            Kind::Dataset,
            "s",
            vec![f32::INFINITY, 0.0, 0.0, 0.0],
        )],
        "component 0 is inf",
    );
}

#[test]
fn api_zero_vector() {
    api_rejects(
        vec![
            good("ok"),
            NewEntry::external("x", Kind::Model, "s", vec![0.0; 4]),
        ],
        "zero vector",
    );
}

#[test]
fn api_empty_name() {
    api_rejects(vec![good("ok"), good("")], "empty name");
}

#[test]
fn api_duplicate_names_in_one_batch() {
    api_rejects(
        vec![good("a"), good("b"), good("a")],
        "duplicate name in one batch",
    );
}

#[test]
fn api_new_space_in_failed_batch_is_not_created() {
    api_rejects(
        vec![
            NewEntry::external("a", Kind::Dataset, "fresh", vec![1.0, 2.0]),
            NewEntry::external("b", Kind::Dataset, "fresh", vec![1.0, 2.0, 3.0]),
        ],
        "wrong dimension for space \"fresh\": expected 2, got 3",
    );
}

// ---- through the CLI ----

fn cli_import_rejects(lines: &[String], expect: &[&str]) {
    let (d, p) = base();
    let before = snapshot(&p);
    let f = d.path().join("in.jsonl");
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let out = Command::new(BIN)
        .args(["--db", p.to_str().unwrap(), "import", f.to_str().unwrap()])
        .args(["--batch-size", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "stderr {stderr:?} lacks {e:?}");
    }
    assert!(!stderr.contains("committed batch"), "{stderr}");
    assert_eq!(
        snapshot(&p),
        before,
        "database changed after a failed import"
    );
}

fn ok_line(name: &str) -> String {
    jsonl_line(name, "dataset", "s", &[1.0, 2.0, 3.0, 4.0])
}

#[test]
fn cli_malformed_jsonl_reports_line() {
    cli_import_rejects(
        &[ok_line("a"), ok_line("b"), "{\"name\": \"c\", ".into()],
        &["line 3", "malformed JSON"],
    );
    cli_import_rejects(
        &[
            ok_line("a"),
            r#"{"name":"c","kind":"model","space":"s","vector":[1,2,3,NaN]}"#.into(),
        ],
        &["line 2", "malformed JSON"],
    );
    cli_import_rejects(
        &[
            ok_line("a"),
            r#"{"name":"c","kind":"model","space":"s","vektor":[1,2,3,4]}"#.into(),
        ],
        &["line 2", "vektor"],
    );
}

#[test]
fn cli_wrong_dimension() {
    cli_import_rejects(
        &[
            ok_line("a"),
            jsonl_line("b", "model", "s", &[1.0, 2.0, 3.0]),
        ],
        &[
            "line 2",
            "wrong dimension for space \"s\": expected 4",
            "got 3",
        ],
    );
    cli_import_rejects(
        &[
            jsonl_line("a", "model", "new", &[1.0, 2.0]),
            jsonl_line("b", "model", "new", &[1.0, 2.0, 3.0]),
        ],
        &["line 2", "expected 2 (from line 1), got 3"],
    );
}

#[test]
fn cli_infinite_component() {
    // 1e39 is finite JSON but overflows f32.
    cli_import_rejects(
        &[
            ok_line("a"),
            r#"{"name":"c","kind":"model","space":"s","vector":[1,2,3,1e39]}"#.into(),
        ],
        &["line 2", "component 3 is inf"],
    );
}

#[test]
fn cli_zero_vector_empty_name_unknown_kind() {
    cli_import_rejects(
        &[ok_line("a"), jsonl_line("z", "model", "s", &[0.0; 4])],
        &["line 2", "zero vector"],
    );
    cli_import_rejects(&[ok_line("a"), ok_line("")], &["line 2", "empty name"]);
    cli_import_rejects(
        &[ok_line("a"), jsonl_line("m", "classifier", "s", &[1.0; 4])],
        &["line 2", "unknown kind \"classifier\""],
    );
}

#[test]
fn cli_duplicate_names() {
    cli_import_rejects(
        &[ok_line("a"), ok_line("b"), ok_line("a")],
        &["line 3", "duplicate name \"a\" (also on line 1)"],
    );
}

#[test]
fn not_a_taskdb_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.txt");
    let content = b"hello, I am not a database\n".repeat(100);
    std::fs::write(&p, &content).unwrap();
    let err = TaskDb::open(&p).err().unwrap();
    assert!(matches!(err, Error::NotTaskDb { .. }), "{err}");
    assert!(err.to_string().contains("is not a taskdb database"));
    let out = Command::new(BIN)
        .args(["--db", p.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(std::fs::read(&p).unwrap() == content, "file was modified");
    // A redb file made by something else.
    let p2 = d.path().join("other.redb");
    {
        let db = redb::Database::create(&p2).unwrap();
        let t = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("x");
            t.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        t.commit().unwrap();
    }
    let before = std::fs::read(&p2).unwrap();
    let err = TaskDb::open(&p2).err().unwrap();
    assert!(matches!(err, Error::NotTaskDb { .. }), "{err}");
    assert!(std::fs::read(&p2).unwrap() == before, "file was modified");
}

#[test]
fn newer_format_version() {
    let (_d, p) = base();
    {
        let db = redb::Database::open(&p).unwrap();
        let t = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("meta");
            t.open_table(def)
                .unwrap()
                .insert(b"format_version".as_slice(), 99u32.to_le_bytes().as_slice())
                .unwrap();
        }
        t.commit().unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    let err = TaskDb::open(&p).err().unwrap();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 99,
                supported: taskdb::FORMAT_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("format version 99"));
    let out = Command::new(BIN)
        .args(["--db", p.to_str().unwrap(), "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade taskdb"));
    assert!(std::fs::read(&p).unwrap() == before, "file was modified");
}

/// Issue 10, defect 11: an error about the only entry of a write names it without a
/// meaningless "entry 1"; in a batch it says which entry of how many.
#[test]
fn entry_errors_name_the_entry_and_its_place_only_in_a_batch() {
    let (_d, p) = base();
    let db = TaskDb::open(&p).unwrap();
    let bad = || NewEntry::external("bad", Kind::Dataset, "s", vec![f32::NAN, 0.0, 0.0, 1.0]);
    let err = db.put(vec![bad()]).unwrap_err().to_string();
    assert!(err.contains("entry \"bad\""), "{err}");
    assert!(!err.contains("entry 1"), "{err}");
    let good = NewEntry::external("good", Kind::Dataset, "s", vec![1.0, 0.0, 0.0, 0.0]);
    let err = db.put(vec![good, bad()]).unwrap_err().to_string();
    assert!(
        err.contains("entry 2 of 2 in this batch (\"bad\")"),
        "{err}"
    );
}
