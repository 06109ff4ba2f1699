//! Opens an existing database read-only, times the open, and prints its statistics.
//!
//! Run: `cargo run --example open_stats -- PATH`

fn main() -> taskdb::Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: open_stats PATH");
        std::process::exit(2);
    };
    let t = std::time::Instant::now();
    let db = taskdb::TaskDb::open_read_only(&path)?;
    let elapsed = t.elapsed();
    let s = db.stats()?;
    println!("opened {path} in {:.3} s", elapsed.as_secs_f64());
    println!(
        "{} names ({} datasets, {} models), {} versions, {} tombstones",
        s.names, s.datasets, s.models, s.versions, s.tombstones
    );
    for sp in s.spaces {
        println!(
            "space {} {:?}: dim {}, {} vectors ({} live), index {}",
            sp.id, sp.name, sp.dim, sp.points, sp.live, sp.index
        );
    }
    Ok(())
}
