//! Issue 10's CLI-level reliability tests that share helpers, in one test binary
//! (`common.rs`): `check` (defect 10), the documented exit codes and defect 11 (`cli`),
//! names (defects 5 and 6) and vectors at the edges of f32 (defects 2 and 3). The fault
//! injection, crash trials, model-command and graph-failure tests stay binaries of their own:
//! they are timing-sensitive or set process-wide hooks.

#[path = "../engine_common/mod.rs"]
mod engine_common;
#[path = "../ingest_common/mod.rs"]
mod ingest_common;

mod common;

mod check;
mod cli;
mod names;
mod vectors;
