//! Write and maintenance commands: rm, compact, check.

use clap::Args;
use serde::Serialize;
use taskdb::EntryRef;

use crate::output;
use crate::read::JsonArg;
use crate::Ctx;

/// `rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// NAME (all versions) or NAME@VERSION.
    pub name: String,
}

pub fn rm(ctx: &Ctx, a: RmArgs) -> taskdb::Result<i32> {
    let db = ctx.open_rw()?;
    let ids = db.delete(&EntryRef::parse(&a.name)?)?;
    db.flush()?;
    println!("deleted {} version(s) of {}", ids.len(), a.name);
    Ok(0)
}

pub fn compact(ctx: &Ctx, a: JsonArg) -> taskdb::Result<i32> {
    let mut db = ctx.open_rw()?;
    let r = db.compact()?;
    if a.json {
        output::json(&r)?;
    } else {
        println!(
            "purged {} deleted entries; file {} -> {} bytes",
            r.purged, r.bytes_before, r.bytes_after
        );
    }
    Ok(0)
}

#[derive(Serialize)]
struct CheckOut<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a taskdb::CheckReport,
}

pub fn check(ctx: &Ctx, a: JsonArg) -> taskdb::Result<i32> {
    let mut db = ctx.open_rw()?;
    let r = db.check()?;
    if a.json {
        output::json(&CheckOut {
            ok: r.ok(),
            report: &r,
        })?;
    } else {
        println!(
            "redb integrity: {}",
            match r.redb_integrity {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "not run",
            }
        );
        println!(
            "checked {} entries, {} vectors, {} spaces",
            r.entries_checked, r.vectors_checked, r.spaces_checked
        );
        for p in &r.problems {
            println!("problem: {p}");
        }
        println!("{}", if r.ok() { "ok" } else { "FAILED" });
    }
    Ok(if r.ok() {
        0
    } else {
        taskdb::error::exit::CORRUPT
    })
}
