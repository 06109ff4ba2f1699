//! Shared by the examples: their leading positional arguments and the seeded random source
//! of their query vectors.
#![allow(dead_code)] // each example uses part of it

/// The arguments after the program name, and the first two (PATH, SPACE) and, when `dim`,
/// the third as a whole number (DIM, else 0); prints `usage` and exits with 2 when they are
/// missing.
pub fn leading_args(usage: &str, dim: bool) -> (Vec<String>, String, String, usize) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let d = match dim {
        true => args.get(2).and_then(|d| d.parse::<usize>().ok()),
        false => Some(0),
    };
    let (Some(path), Some(space), Some(d)) = (args.first(), args.get(1), d) else {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    };
    let (path, space) = (path.clone(), space.clone());
    (args, path, space, d)
}

/// xorshift64 from `seed`: uniform values in [-0.5, 0.5).
pub fn xorshift(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}
