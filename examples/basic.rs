//! The taskdb Rust API in one page: open, put (one transaction), get, nearest with filters,
//! versions, delete, stats, check.
//!
//! Run: `cargo run --example basic` (uses a temporary directory).

use taskdb::{EntryRef, Filter, Kind, NewEntry, Query, TaskDb};

fn main() -> taskdb::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| taskdb::Error::io("tempdir", e))?;
    let path = dir.path().join("example.taskdb");

    // Open (creates the file when missing).
    let mut db = TaskDb::open(&path)?;

    // One batch = one write transaction: all of it lands or none does.
    // "demo" is an external space: created on first use with the dimension of its first vector.
    let ids = db.put(vec![
        NewEntry::external("sst2", Kind::Dataset, "demo", vec![0.9, 0.1, 0.0, 0.1])
            .with_tag("domain", "sentiment"),
        NewEntry::external("imdb", Kind::Dataset, "demo", vec![0.8, 0.2, 0.1, 0.0])
            .with_tag("domain", "sentiment"),
        NewEntry::external("mnli", Kind::Dataset, "demo", vec![0.0, 0.1, 0.9, 0.3])
            .with_tag("domain", "nli"),
        NewEntry::external(
            "bert-sst2",
            Kind::Model,
            "demo",
            vec![0.85, 0.15, 0.05, 0.1],
        ),
    ])?;
    println!("stored ids {ids:?}");

    // Nearest neighbours of an entry (the entry itself is left out).
    for h in db.nearest(&Query::entry("sst2")?, 3, &Filter::all())? {
        println!("{}@{} ({}) score {:.4}", h.name, h.version, h.kind, h.score);
    }

    // Filters: kind, tags, name prefix.
    let models = db.nearest(&Query::entry("sst2")?, 3, &Filter::all().kind(Kind::Model))?;
    assert_eq!(models[0].name, "bert-sst2");
    let nli = db.nearest(
        &Query::dense("demo", vec![0.0, 0.0, 1.0, 0.2]),
        1,
        &Filter::all().tag("domain", "nli"),
    )?;
    assert_eq!(nli[0].name, "mnli");

    // Re-putting a name creates version 2; `name@1` still addresses the old one.
    db.put(vec![NewEntry::external(
        "sst2",
        Kind::Dataset,
        "demo",
        vec![0.95, 0.05, 0.0, 0.1],
    )])?;
    let latest = db.get(&EntryRef::parse("sst2")?)?;
    let old = db.get(&EntryRef::parse("sst2@1")?)?;
    println!(
        "sst2 latest version {}, old version {}",
        latest.version, old.version
    );

    // Delete, compact, check.
    db.delete(&EntryRef::parse("imdb")?)?;
    let report = db.compact()?;
    println!("compact purged {} entries", report.purged);
    let check = db.check()?;
    assert!(check.ok(), "{:?}", check.problems);
    let stats = db.stats()?;
    println!(
        "{} names ({} datasets, {} models) in {} space(s)",
        stats.names,
        stats.datasets,
        stats.models,
        stats.spaces.len()
    );
    Ok(())
}
