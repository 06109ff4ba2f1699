//! `TaskDb::import_jsonl` (the `taskdb import` format) over arbitrary bytes, into a fresh
//! database: never a panic; when the import succeeds, every line it reported is listed, knn
//! answers for an imported entry, and `check` finds nothing wrong; when it fails, the
//! database holds nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb::{EntryRef, Filter, ImportOptions, Query, TaskDb};

fn dir() -> std::path::PathBuf {
    // A RAM disk when there is one: a database is created per input.
    taskdb_fuzz_hooks::scratch("import")
}

fuzz_target!(|data: &[u8]| {
    taskdb_fuzz_hooks::contained_panics_are_not_crashes();
    let d = dir();
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let file = d.join("in.jsonl");
    std::fs::write(&file, data).unwrap();
    let mut db = TaskDb::open(d.join("t.taskdb")).unwrap();
    let opts = ImportOptions {
        batch_size: 3,
        ..ImportOptions::default()
    };
    match db.import_jsonl(&file, &opts, &mut |_| {}) {
        Ok(r) => {
            let listed = db.list(&Filter::all()).unwrap();
            assert_eq!(listed.len() as u64, r.imported, "imported vs listed");
            if let Some(first) = listed.first() {
                let q = Query::Entry(EntryRef::latest(first.name.as_str()));
                db.nearest(&q, 5, &Filter::all()).unwrap();
            }
            assert!(db.check().unwrap().ok(), "check after a successful import");
        }
        Err(_) => {
            assert!(
                db.list(&Filter::all()).unwrap().is_empty(),
                "a refused file wrote"
            );
        }
    }
});
