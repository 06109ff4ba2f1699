//! Issue 10, defect 4: a damaged database file is reported, never a panic. Single bytes of a
//! small database file are flipped (the bytes of its text keys and values, where redb's UTF-8
//! decoding used to panic, and seeded positions across the whole file) and the file is cut at
//! every page boundary; `list`, `show`, `knn`, `check` and `compact` run on each copy: every
//! run ends with a documented exit code, never with 101 (a panic) or a signal.
//!
//! Since format 2 text is stored as bytes and decoded by taskdb, so a flip in text must not
//! even make redb panic inside taskdb's containment: the CLI reports every contained panic on
//! stderr under `TASKDB_REPORT_CONTAINED_PANICS`, and the text flips must show none.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_taskdb");

/// What a contained panic looks like on stderr (see `src/bin/taskdb/main.rs`).
const CONTAINED: &str = "taskdb: contained panic:";

/// Runs taskdb with a 20 s time limit and a 2 GB address-space limit (a damaged length must
/// not make it hang or allocate without bound): (exit code, signal, stdout and stderr).
fn run(db: &Path, args: &[&str]) -> (Option<i32>, Option<i32>, String) {
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000; exec timeout -s KILL 20 \"$@\"")
        .arg("sh")
        .arg(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("TASKDB_DB")
        .env("TASKDB_REPORT_CONTAINED_PANICS", "1")
        .output()
        .unwrap();
    (
        o.status.code(),
        o.status.signal(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// An import file of 20 entries in 3 spaces, both kinds, with tags, written into `dir`.
fn twenty_entries(dir: &Path) -> PathBuf {
    let input = dir.join("in.jsonl");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let space = ["space_one", "space_two", "third"][i % 3];
            serde_json::json!({
                "name": format!("entry{i}"),
                "kind": if i % 2 == 0 { "dataset" } else { "model" },
                "space": space,
                "vector": [i as f32 + 1.0, 1.0, (i % 3) as f32, 0.5],
                "tags": {"k": i.to_string()},
            })
            .to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    input
}

#[test]
fn flipped_bytes_in_the_database_file_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let input = twenty_entries(d.path());
    for args in [
        vec!["import", input.to_str().unwrap()],
        vec!["rm", "entry7"],
    ] {
        let (c, _, err) = run(&db, &args);
        assert_eq!(c, Some(0), "{args:?}: {err}");
    }
    let clean = std::fs::read(&db).unwrap();

    // Where the text lives: space definitions (JSON), names, methods, meta keys.
    let mut positions = Vec::new();
    for needle in [
        &b"{\"id\""[..],
        b"space_one",
        b"space_two",
        b"entry3",
        b"next_id",
        b"magic",
    ] {
        for p in find_all(&clean, needle) {
            positions.extend(p..(p + needle.len() + 2).min(clean.len()));
        }
    }
    positions.sort_unstable();
    positions.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // At most 100 text bytes (spread evenly), plus 80 seeded positions anywhere (the suite runs
    // this in well under a minute; longer one-off runs are in docs/RELIABILITY.md).
    let step = positions.len().div_ceil(100).max(1);
    let mut flips: Vec<(usize, u8)> = positions
        .iter()
        .step_by(step)
        .map(|&p| (p, 0x80u8))
        .collect();
    let text_flips = flips.len();
    for _ in 0..80 {
        flips.push((
            rng.random_range(0..clean.len()),
            rng.random_range(1..=255u8),
        ));
    }
    // Flips of the page allocator's state found by a longer run (2,083 flips): `compact` on
    // them made redb panic inside the compaction and again when the database was dropped.
    flips.extend([(4241, 41), (4333, 37), (4491, 175)]);
    assert!(
        text_flips >= 40,
        "the text of the file was found ({text_flips} bytes)"
    );

    let copy = d.path().join("c.taskdb");
    damaged_text_is_named_by_check(&clean, &copy);

    // Flips, then truncations at every page (4 KiB) boundary.
    let mut copies: Vec<(String, Vec<u8>)> = flips
        .iter()
        .map(|&(pos, mask)| {
            let mut b = clean.clone();
            b[pos] ^= mask;
            (format!("byte {pos} ^ {mask:#04x}"), b)
        })
        .collect();
    for cut in (4096..clean.len()).step_by(4096) {
        copies.push((format!("cut at {cut}"), clean[..cut].to_vec()));
    }
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut contained = 0;
    for (i, (what, bytes)) in copies.iter().enumerate() {
        std::fs::write(&copy, bytes).unwrap();
        let _ = std::fs::remove_dir_all(taskdb::files::index_dir(&copy));
        for args in [
            &["list"][..],
            &["show", "entry3"],
            &["knn", "entry3", "-k", "3"],
            &["check"],
            &["compact"],
        ] {
            let (c, sig, err) = run(&copy, args);
            let key = match (c, sig) {
                (Some(c), _) => format!("{} exit {c}", args[0]),
                (None, s) => format!("{} signal {s:?}", args[0]),
            };
            *codes.entry(key).or_default() += 1;
            if err.contains(CONTAINED) {
                contained += 1;
                if i < text_flips {
                    bad.push(format!(
                        "{what} (a text byte), {args:?}: redb panicked (contained): {}",
                        err.lines().find(|l| l.contains(CONTAINED)).unwrap_or("")
                    ));
                }
            }
            // 0 ok, 3 not found, 5 needs recovery, 6 not a taskdb file, 7 corrupt, 8 I/O.
            if !matches!(c, Some(0 | 3 | 5 | 6 | 7 | 8)) {
                bad.push(format!(
                    "{what}, {args:?}: exit {c:?} signal {sig:?}: {}",
                    err.lines().take(3).collect::<Vec<_>>().join(" | ")
                ));
            }
        }
    }
    eprintln!(
        "{} flips ({text_flips} in text), {} cuts: {codes:?}; {contained} runs with a contained \
         panic (none may be on a text flip)",
        flips.len(),
        copies.len() - flips.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {} runs ended badly:\n{}",
        bad.len(),
        copies.len() * 5,
        bad.join("\n")
    );
}

/// A damaged space definition, entry name or space name is decoded by taskdb (no contained
/// panic), the other entries stay usable, and `check` names the damaged record's table and id.
fn damaged_text_is_named_by_check(clean: &[u8], copy: &Path) {
    // The space JSON: `{"id":N,...` (ids 1 to 3, one per space).
    let at = find_all(clean, b"{\"id\"")[0];
    let id = clean[at + 6] as char;
    let mut bytes = clean.to_vec();
    bytes[at + 2] ^= 0x80;
    std::fs::write(copy, &bytes).unwrap();
    let (c, _, out) = run(copy, &["check"]);
    assert_eq!(c, Some(7), "{out}");
    assert!(
        out.contains(&format!("table spaces, id {id}")) && out.contains("not UTF-8"),
        "{out}"
    );
    assert!(out.contains("set aside"), "{out}");
    assert!(
        !out.contains("panicked") && !out.contains(CONTAINED),
        "{out}"
    );
    // The open degrades: the entries of the other spaces are listed and answer knn.
    let (c, _, out) = run(copy, &["list"]);
    assert_eq!(c, Some(0), "{out}");
    assert!(!out.contains(CONTAINED), "{out}");
    let listed = (0..20)
        .filter(|i| out.contains(&format!("entry{i}@")))
        .count();
    assert!((10..20).contains(&listed), "{listed} entries listed: {out}");
    // What is readable can be saved: an export leaves out (and names) what is not, and
    // imports into a new database; `compact` works and keeps the damaged records for `check`.
    let out_file = copy.with_extension("export.jsonl");
    let _ = std::fs::remove_file(&out_file);
    let (c, _, out) = run(copy, &["export", out_file.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}");
    assert!(
        out.contains("left out of the export") && out.contains(&format!("table spaces, id {id}")),
        "{out}"
    );
    let fresh = copy.with_extension("fresh.taskdb");
    let _ = std::fs::remove_file(&fresh);
    let (c, _, out) = run(&fresh, &["import", out_file.to_str().unwrap()]);
    assert_eq!(c, Some(0), "{out}");
    let (c, _, out) = run(&fresh, &["list"]);
    assert_eq!(c, Some(0), "{out}");
    let exported = (0..20)
        .filter(|i| out.contains(&format!("entry{i}@")))
        .count();
    assert_eq!(exported, listed, "{out}");
    let (c, _, out) = run(copy, &["compact"]);
    assert_eq!(c, Some(0), "{out}");
    let (c, _, out) = run(copy, &["check"]);
    assert_eq!(c, Some(7), "{out}");
    assert!(out.contains(&format!("table spaces, id {id}")), "{out}");

    // Each copy of an entry's name (the name index, the name sequence, its record, the write
    // log) and of a space's name (its definition, the `space_names` key, the method of its
    // vectors, which external spaces name after the space): `check` names where
    // it is, without a contained panic. (Some copies are in pages redb no longer reads:
    // `check` is ok there.)
    for (needle, at, places, must) in [
        (
            &b"entry3"[..],
            5,
            &[
                "entry 4 ",
                "entry 4,",
                "table name_seq, key entry",
                "write log record",
            ][..],
            &["entry 4 ", "table name_seq, key entry"][..],
        ),
        (
            b"space_two",
            0,
            &[
                "table spaces, id",
                "table space_names, key",
                "table vectors, entry",
                "(table entries) set aside",
                "write log record",
            ],
            &["table spaces, id", "table space_names, key"],
        ),
    ] {
        let mut named = std::collections::BTreeSet::new();
        for p in find_all(clean, needle) {
            let mut bytes = clean.to_vec();
            bytes[p + at] ^= 0x80;
            std::fs::write(copy, &bytes).unwrap();
            let (c, _, out) = run(copy, &["check"]);
            assert!(!out.contains(CONTAINED), "flip at {p}: {out}");
            match c {
                Some(0) => {}
                Some(7) => {
                    let w = places.iter().find(|w| out.contains(*w));
                    named.insert(*w.unwrap_or_else(|| panic!("flip at {p}: {out}")));
                }
                c => panic!("flip at {p}: exit {c:?}: {out}"),
            }
        }
        for w in must {
            assert!(
                named.contains(w),
                "{:?}: {w:?} never named ({named:?})",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// A flip found by a longer run (2,699 flips of a 40-version file): a damaged leaf of the meta
/// table made redb slice out of bounds while the writable open probed the file (`check` and
/// `compact` exited 101).
#[test]
fn a_damaged_meta_leaf_is_corruption_for_writable_opens_too() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("t.taskdb");
    let input = twenty_entries(d.path());
    for _ in 0..2 {
        for args in [
            vec!["import", input.to_str().unwrap()],
            vec!["rm", "entry7"],
        ] {
            let (c, _, err) = run(&db, &args);
            assert_eq!(c, Some(0), "{args:?}: {err}");
        }
    }
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[45081] ^= 137;
    let copy = d.path().join("c.taskdb");
    std::fs::write(&copy, &bytes).unwrap();
    for args in [&["list"][..], &["check"], &["compact"]] {
        let (c, sig, err) = run(&copy, args);
        assert_eq!(sig, None, "{args:?}: {err}");
        assert!(matches!(c, Some(0 | 7)), "{args:?}: exit {c:?}: {err}");
    }
}
