//! Opening a database file of arbitrary bytes (seeded with real small databases, so that the
//! mutations are damaged databases): `open` read-only and read-write, `list`, `stats`, a knn
//! per listed entry and `check` must return, never panic (a panic of the storage layer that
//! taskdb contains and reports as corruption is not a crash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb::{EntryRef, Filter, OpenOptions, Query, TaskDb};

fn exercise(db: &mut TaskDb) {
    if let Ok(list) = db.list(&Filter::all()) {
        for e in list.iter().take(4) {
            let _ = db.get(&EntryRef::latest(e.name.as_str()));
            let q = Query::Entry(EntryRef::latest(e.name.as_str()));
            let _ = db.nearest(&q, 3, &Filter::all());
        }
    }
    let _ = db.stats();
    let _ = db.outcomes();
    let _ = db.check();
}

fuzz_target!(|data: &[u8]| {
    taskdb_fuzz_hooks::contained_panics_are_not_crashes();
    let d = taskdb_fuzz_hooks::scratch("open");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("t.taskdb");
    std::fs::write(&p, data).unwrap();
    let ro = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    if let Ok(mut db) = TaskDb::open_with(&p, ro) {
        exercise(&mut db);
    }
    if let Ok(mut db) = TaskDb::open(&p) {
        exercise(&mut db);
    }
});
