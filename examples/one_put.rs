//! Times what a one-shot writer (`taskdb ingest`) pays on a large database: open, put one new
//! entry into a space (which loads the space's index to insert into it), flush (which saves
//! the index), then a second put and flush on the same handle. Writes to the database: run it
//! on a copy. Used for the first-insert figures of docs/PERFORMANCE.md §21 (a dense external
//! space: new vectors of width DIM) and §29 (a matrix space: `copy:ENTRY` puts copies of a
//! stored entry's vectors under new names).
//!
//! Run: `cargo run --release --example one_put -- PATH SPACE DIM` or `… -- PATH copy:ENTRY`

mod common;

use taskdb::{EntryRef, Kind, NewEntry, NewVector, SpaceRef, TaskDb};

fn main() -> taskdb::Result<()> {
    let copy = std::env::args().nth(2).filter(|a| a.starts_with("copy:"));
    let (_, path, space, dim) = common::leading_args(
        "one_put PATH SPACE DIM | one_put PATH copy:ENTRY",
        copy.is_none(),
    );
    let (path, space) = (path.as_str(), space.as_str());
    let t = std::time::Instant::now();
    let db = TaskDb::open(path)?;
    let open = t.elapsed().as_secs_f64();
    let source = match &copy {
        Some(c) => Some(db.get(&EntryRef::parse(&c["copy:".len()..])?)?),
        None => None,
    };
    let mut times = Vec::new();
    for i in 0..2 {
        let name = format!("one-put-{}-{i}", std::process::id());
        let entry = match &source {
            Some(e) => NewEntry {
                name,
                kind: e.kind,
                vectors: e
                    .vectors
                    .iter()
                    .map(|(method, (sid, v))| NewVector {
                        method: method.clone(),
                        space: SpaceRef::Id(*sid),
                        embedding: v.clone(),
                    })
                    .collect(),
                tags: Default::default(),
                provenance: Default::default(),
            },
            None => {
                let v: Vec<f32> = (0..dim)
                    .map(|j| ((i * 7 + j * 13) % 29) as f32 - 14.0)
                    .collect();
                NewEntry::external(name, Kind::Dataset, space, v)
            }
        };
        let t = std::time::Instant::now();
        db.put(vec![entry])?;
        let put = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        db.flush()?;
        times.push((put, t.elapsed().as_secs_f64()));
    }
    println!(
        "open {open:.3} s; first put {:.3} s + flush {:.3} s; second put {:.3} s + flush {:.3} s",
        times[0].0, times[0].1, times[1].0, times[1].1
    );
    Ok(())
}
