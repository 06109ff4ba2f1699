//! Bench settings from the environment, shared by `benches/engine.rs`, `benches/ingest.rs` and
//! `benches/knn.rs` (included with `#[path]`).

#![allow(dead_code)] // each bench uses part of it

/// A comma list of numbers from the environment (`default` when unset).
pub fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().parse().expect("a comma list of numbers"))
        .collect()
}

/// A number from the environment (`default` when unset or not a number).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
