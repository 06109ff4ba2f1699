//! Verifying and opening a snapshot file of arbitrary bytes (seeded with small real snapshots,
//! so that mutations are damaged snapshots): `Snapshot::verify` must return a report or an
//! error, never panic; a snapshot that passes opens as a database that answers list, knn and
//! the log.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb::{EntryRef, Filter, Query, Snapshot};

fuzz_target!(|data: &[u8]| {
    taskdb_fuzz_hooks::contained_panics_are_not_crashes();
    let p = taskdb_fuzz_hooks::scratch("snapshot").with_extension("tdbsnap");
    std::fs::write(&p, data).unwrap();
    let _ = Snapshot::verify(&p, None);
    if let Ok(s) = Snapshot::open(&p) {
        if let Ok(db) = s.to_db() {
            if let Ok(list) = db.list(&Filter::all()) {
                for e in list.iter().take(4) {
                    let q = Query::Entry(EntryRef::latest(e.name.as_str()));
                    let _ = db.nearest(&q, 3, &Filter::all());
                }
            }
            let _ = db.log(0);
        }
    }
    let _ = std::fs::remove_file(&p);
});
