//! Times what a one-shot writer pays on a large dense database: open, put one new entry into
//! a space (which loads the space's graph to insert into it), flush (which saves the graph),
//! then a second put and flush on the same handle. Writes to the database: run it on a copy.
//! Used for the first-insert figures of docs/PERFORMANCE.md §21.
//!
//! Run: `cargo run --release --example one_put -- PATH SPACE DIM`

mod common;

use taskdb::{Kind, NewEntry, TaskDb};

fn main() -> taskdb::Result<()> {
    let (_, path, space, dim) = common::leading_args("one_put PATH SPACE DIM", true);
    let (path, space) = (path.as_str(), space.as_str());
    let t = std::time::Instant::now();
    let db = TaskDb::open(path)?;
    let open = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for i in 0..2 {
        let v: Vec<f32> = (0..dim)
            .map(|j| ((i * 7 + j * 13) % 29) as f32 - 14.0)
            .collect();
        let name = format!("one-put-{}-{i}", std::process::id());
        let t = std::time::Instant::now();
        db.put(vec![NewEntry::external(name, Kind::Dataset, space, v)])?;
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
