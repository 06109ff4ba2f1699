//! Maintenance: [`TaskDb::flush`] (persist changed graphs), [`TaskDb::compact`] (purge
//! tombstones, rebuild graphs, compact the file) and [`TaskDb::check`] (verify everything the
//! store holds and everything derived from it).

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable};
use serde::Serialize;

use super::open::{load_space_now, rebuild_space};
use super::{hex, poisoned, State, TaskDb};
use crate::error::{contain, contain_at, Error, Result};
use crate::index::{persist, Slot};
use crate::model::EntryId;
use crate::space::{ScoreConsts, SpaceId, TaskSpaceParams};
use crate::store::codec;
use crate::store::log::{LogEntry, LogOp};
use crate::store::tables::{
    bump_generation, bump_space_generations, open_read, open_write, storage,
};
use crate::store::v1::{NamesTable, VectorsTable};
use crate::store::{parts, Db, ENTRIES, MODEL_OUTPUTS, VECTORS};

/// Result of [`TaskDb::check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// redb's own integrity check: `Some(true)` passed, `None` not run (read-only open).
    pub redb_integrity: Option<bool>,
    /// Entry records checked (including tombstones).
    pub entries_checked: u64,
    /// Vectors whose checksum was verified.
    pub vectors_checked: u64,
    /// Model outputs on U whose checksum was verified.
    pub outputs_checked: u64,
    /// Spaces whose in-memory graph was compared with the store.
    pub spaces_checked: u64,
    /// Write-log records whose hash chain was verified.
    pub log_records_checked: u64,
    /// Every problem found; empty when the database is sound.
    pub problems: Vec<String>,
    /// Whether the check ran on a read-only handle: nothing was written, so the repairs in
    /// [`CheckReport::repaired`] were not made (`done: false`).
    pub read_only: bool,
    /// Derived state found damaged or stale and rebuilt from the store (or, read-only, that a
    /// writable check would rebuild). A repair is not a problem: the store is the truth.
    pub repaired: Vec<Repair>,
}

/// One repair in [`CheckReport::repaired`].
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    /// Space id.
    pub space_id: SpaceId,
    /// Space name.
    pub space: String,
    /// What was (or would be) done.
    pub action: String,
    /// Why: what was found.
    pub reason: String,
    /// True when the repair was made and saved; false on a read-only check.
    pub done: bool,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.redb_integrity != Some(false)
    }
}

/// Result of [`TaskDb::compact`].
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    /// Deleted entries purged from the store.
    pub purged: u64,
    /// File size before.
    pub bytes_before: u64,
    /// File size after.
    pub bytes_after: u64,
}

impl TaskDb {
    /// Saves every graph changed since it was last persisted (no-op when read-only).
    /// Called automatically on drop (errors ignored there).
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let mut st = self.write()?;
        let dir = crate::files::index_dir(&self.path);
        let uuid = hex(&st.meta.db_uuid);
        let State {
            catalog, indexes, ..
        } = &mut *st;
        for (sid, slot) in indexes.iter_mut() {
            // A lazy graph not used yet is the persisted one: nothing to save.
            let Some(idx) = slot.loaded_mut().filter(|idx| idx.dirty) else {
                continue;
            };
            let (count, digest) = catalog.digest(*sid);
            if count == 0 || idx.unusable.is_some() {
                persist::remove_space(&dir, *sid);
                idx.dirty = false;
                continue;
            }
            let expect = persist::Expect {
                db_uuid: uuid.clone(),
                space_id: *sid,
                generation: catalog.generation(*sid),
                count,
                digest,
            };
            let Some(saved) = idx.to_save() else {
                // Nothing to save it from (cannot happen for a usable index): the next open
                // rebuilds it.
                persist::remove_space(&dir, *sid);
                idx.dirty = false;
                continue;
            };
            persist::save(&dir, &saved, &expect).map_err(|e| {
                e.with_committed(
                    "the database itself is complete: graphs are derived, and one that is \
                     missing or stale is rebuilt from it at the next open"
                        .into(),
                    "Free space on that file system (or raise the disk quota); nothing needs to \
                     be run again."
                        .into(),
                )
            })?;
            idx.dirty = false;
        }
        Ok(())
    }

    /// Purges deleted entries, rebuilds every graph without tombstones, and compacts the redb
    /// file. Needs exclusive access (`&mut self`).
    pub fn compact(&mut self) -> Result<CompactReport> {
        let path = self.path.clone();
        self.compact_db().map_err(|e| e.on_file(&path))
    }

    fn compact_db(&mut self) -> Result<CompactReport> {
        self.rw("compact")?;
        let st = self.state.get_mut().map_err(|_| poisoned())?;
        let dead: Vec<EntryId> = st
            .catalog
            .entries
            .iter()
            .filter(|(_, e)| e.deleted)
            .map(|(id, _)| *id)
            .collect();
        let Db::Rw(db) = &mut self.db else {
            unreachable!("checked by rw()")
        };
        let gens = contain(
            "tables entries, vectors, model_outputs or space_gen",
            || {
                let txn = db.begin_write().map_err(storage("starting a write"))?;
                {
                    let mut ent_t = open_write(&txn, ENTRIES)?;
                    let mut vec_t = open_write(&txn, VECTORS)?;
                    let mut out_t = open_write(&txn, MODEL_OUTPUTS)?;
                    for id in &dead {
                        out_t
                            .remove(*id)
                            .map_err(storage("removing model outputs"))?;
                        for v in &st.catalog.entries[id].vectors {
                            parts::remove(&mut vec_t, *id, &v.method)
                                .map_err(storage("removing vector"))?;
                        }
                        ent_t.remove(*id).map_err(storage("removing entry"))?;
                    }
                }
                // Records that an older format stored whole are cut into parts that pack
                // into pages (format 3, `store::parts`): the file shrinks by up to a quarter
                // once redb compacts it below.
                parts::repack(&txn)?;
                let gens = bump_space_generations(&txn, st.catalog.spaces.keys().copied())?;
                bump_generation(&txn)?;
                let mut op = LogOp::new("compact");
                op.entries = dead
                    .iter()
                    .map(|id| {
                        let e = &st.catalog.entries[id];
                        LogEntry {
                            id: *id,
                            name: e.name.clone(),
                            version: e.version,
                        }
                    })
                    .collect();
                crate::store::log::append(&txn, op)?;
                txn.commit().map_err(storage("committing"))?;
                Ok(gens)
            },
        )?;
        st.meta.generation += 1;
        st.catalog.space_gen.extend(gens);
        for id in &dead {
            st.catalog.purge(*id);
        }
        super::scan::clear(&mut st.arenas);
        // Rebuild graphs from the store.
        let txn = self.db.begin_read()?;
        let sids: Vec<SpaceId> = st.catalog.spaces.keys().copied().collect();
        for sid in sids {
            let idx = rebuild_space(&txn, &st.catalog, sid, &self.params);
            let event = match &idx.unusable {
                Some(why) => format!("unusable: {why}"),
                None => "rebuilt: compact".into(),
            };
            st.indexes.insert(sid, Slot::ready(idx, event));
        }
        drop(txn);
        let Db::Rw(db) = &mut self.db else {
            unreachable!("checked by rw()")
        };
        let before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        contain("the redb file (compaction)", || {
            db.compact().map_err(storage("compacting the redb file"))
        })
        .map_err(|e| {
            e.with_committed(
                format!(
                    "the purge of {} deleted entries before it was committed; the file was not \
                     (fully) compacted",
                    dead.len()
                ),
                "Free space on that file system (or raise the disk quota) and run `compact` \
                 again to shrink the file."
                    .into(),
            )
        })?;
        let after = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.flush()?;
        Ok(CompactReport {
            purged: dead.len() as u64,
            bytes_before: before,
            bytes_after: after,
        })
    }

    /// Loads every lazy graph now (each verified first: checksummed, or rebuilt from the
    /// store when its files fail), as `stats` and `check` need them all.
    pub(super) fn load_graphs(&self) -> Result<()> {
        let st = self.read()?;
        for (sid, slot) in &st.indexes {
            slot.get(|p| load_space_now(&self.db, &st.catalog, *sid, &self.params, p, false));
        }
        Ok(())
    }

    /// Verifies redb integrity (writable opens only), every record and vector checksum, the
    /// name index, and that each space's graph holds exactly the store's vectors.
    pub fn check(&mut self) -> Result<CheckReport> {
        let path = self.path.clone();
        self.check_db().map_err(|e| e.on_file(&path))
    }

    fn check_db(&mut self) -> Result<CheckReport> {
        // Every read of the store runs contained: a panic of the storage layer (a damaged text
        // key or value) becomes a problem naming the table, and the other checks still run.
        let mut problems = Vec::new();
        let redb_integrity = self.redb_integrity(&mut problems)?;
        let read_only = self.read_only;
        // Every graph is verified now, lazy ones included (loaded, or rebuilt and saved).
        self.load_graphs()?;
        if !read_only {
            match self.flush() {
                Err(e) if !e.is_disk_full() => return Err(e),
                _ => {}
            }
        }
        let st = self.state.get_mut().map_err(|_| poisoned())?;
        let txn = self.db.begin_read()?;
        let mut tally = Tally::default();
        let at = Cell::new("entries");
        let scanned = contain_at(
            || format!("table {}", at.get()),
            || scan_store(&txn, st, &at, &mut tally, &mut problems),
        );
        let scanned_all = scanned.is_ok();
        if let Err(e) = scanned {
            problems.push(e.to_string());
        }
        // What the open set aside, and (format 2) every text key that is not UTF-8.
        problems.extend(st.catalog.set_aside.iter().cloned());
        if st.meta.format_version >= 2 {
            match contain("the text tables", || crate::store::v1::damaged_text(&txn)) {
                Ok(found) => problems.extend(found),
                Err(e) => problems.push(e.to_string()),
            }
        }
        let outputs_checked = contain("table model_outputs", || scan_outputs(&txn, &mut problems))
            .unwrap_or_else(|e| {
                problems.push(e.to_string());
                0
            });
        let log_records = match contain("table log", || crate::store::log::verify_chain(&txn)) {
            Ok(c) => {
                problems.extend(c.problems);
                c.records
            }
            Err(e) => {
                problems.push(e.to_string());
                0
            }
        };
        // Graphs are compared with the store only when the whole store could be read.
        let spaces_checked = if scanned_all {
            compare_graphs(st, tally.space_ids, &mut problems)
        } else {
            0
        };
        verify_frozen(st, &mut problems);
        Ok(CheckReport {
            redb_integrity,
            entries_checked: tally.entries,
            vectors_checked: tally.vectors,
            outputs_checked,
            spaces_checked,
            log_records_checked: log_records,
            problems,
            read_only,
            repaired: repairs(st, read_only),
        })
    }

    /// redb's own integrity check (`None` on a read-only handle, which cannot run it).
    fn redb_integrity(&mut self, problems: &mut Vec<String>) -> Result<Option<bool>> {
        let Db::Rw(d) = &mut self.db else {
            return Ok(None);
        };
        match contain("the redb file (integrity check)", || {
            d.check_integrity()
                .map_err(storage("checking redb integrity"))
        }) {
            Ok(ok) => Ok(Some(ok)),
            // redb's "DB corrupted" (a page checksum) is a finding like any other: record it
            // and run the other checks, which can name the entry it belongs to.
            Err(e @ (Error::Corrupt { .. } | Error::Storage { .. })) => {
                problems.push(e.to_string());
                Ok(Some(false))
            }
            Err(e) => Err(e),
        }
    }
}

/// What [`scan_store`] counted.
#[derive(Default)]
struct Tally {
    entries: u64,
    vectors: u64,
    /// Space -> ids with a vector in it, as the store says.
    space_ids: HashMap<SpaceId, BTreeSet<EntryId>>,
}

/// Reads every entry record and vector, verifying checksums, the name index, each vector
/// against its space and its cached scoring constants. `at` says which table is being read
/// (for the message should the storage layer panic).
fn scan_store(
    txn: &ReadTransaction,
    st: &State,
    at: &Cell<&'static str>,
    tally: &mut Tally,
    problems: &mut Vec<String>,
) -> Result<()> {
    let ent_t = open_read(txn, ENTRIES)?;
    let vec_t = VectorsTable::open(txn)?;
    let names_t = NamesTable::open(txn)?;
    for row in ent_t.iter().map_err(storage("reading entries"))? {
        let (k, v) = row.map_err(storage("reading entries"))?;
        let id = k.value();
        tally.entries += 1;
        let rec = match codec::decode_entry(id, v.value()) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.to_string());
                // A record failing its checksum may still decode: check the rest of what it
                // names (its vectors, the name index) too.
                match codec::decode_entry_unverified(id, v.value()) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            }
        };
        if let Err(e) = rec.kind(id) {
            problems.push(e.to_string());
        }
        if rec.deleted_at_ms.is_none() {
            at.set("names");
            match names_t.get(&rec.name, rec.version) {
                Ok(Some(g)) if g == id => {}
                _ => problems.push(format!(
                    "entry {id} ({}@{}) is missing from the name index",
                    rec.name, rec.version
                )),
            }
            at.set("entries");
        }
        for vm in &rec.vectors {
            at.set("vectors");
            let what = || {
                format!(
                    "vector of entry {id} ({}), method {:?}",
                    rec.name, vm.method
                )
            };
            match vec_t.get(id, &vm.method, |b| check_vector(st, b, vm, &what, problems)) {
                Ok(Some(decoded)) => {
                    if decoded {
                        tally.vectors += 1;
                    }
                }
                Ok(None) => problems.push(format!("{}: missing", what())),
                Err(e) => problems.push(format!("{}: {e}", what())),
            }
            at.set("entries");
            tally.space_ids.entry(vm.space).or_default().insert(id);
        }
    }
    at.set("names");
    let n_names = names_t.len()?;
    let live_versions: usize = st.catalog.names.values().map(|m| m.len()).sum();
    if n_names as usize != live_versions {
        problems.push(format!(
            "name index has {n_names} rows but {live_versions} live versions are stored"
        ));
    }
    Ok(())
}

/// Verifies every model-outputs record (checksum, layout) and that it belongs to a stored model
/// entry; returns how many decoded. A database without the table has nothing to check.
fn scan_outputs(txn: &ReadTransaction, problems: &mut Vec<String>) -> Result<u64> {
    let Some(out_t) = crate::store::tables::open_outputs(txn)? else {
        return Ok(0);
    };
    let ent_t = open_read(txn, ENTRIES)?;
    let mut checked = 0;
    for row in out_t.iter().map_err(storage("reading model outputs"))? {
        let (k, v) = row.map_err(storage("reading model outputs"))?;
        let id = k.value();
        let rec = match ent_t.get(id).map_err(storage("reading entries"))? {
            Some(g) => codec::decode_entry_unverified(id, g.value()).ok(),
            None => {
                problems.push(format!(
                    "outputs on U of entry {id}: no such entry (an orphaned record)"
                ));
                None
            }
        };
        let label = rec
            .as_ref()
            .map(|r| format!(" ({}@{})", r.name, r.version))
            .unwrap_or_default();
        if rec
            .as_ref()
            .is_some_and(|r| r.kind != crate::model::Kind::Model.to_u8())
        {
            problems.push(format!(
                "outputs on U of entry {id}{label}: it is not a model"
            ));
        }
        match crate::outputs::decode(v.value(), &|| format!("outputs on U of entry {id}{label}")) {
            Ok(_) => checked += 1,
            Err(e) => problems.push(e.to_string()),
        }
    }
    Ok(checked)
}

/// Checks one stored vector record against its entry record (checksum) and its space (the
/// value fits, the cached scoring constants agree). Returns whether the record decoded (it is
/// then counted as checked, whatever else is found).
fn check_vector(
    st: &State,
    bytes: &[u8],
    vm: &codec::VecMeta,
    what: &dyn Fn() -> String,
    problems: &mut Vec<String>,
) -> bool {
    let (emb, crc) = match codec::decode_vector(bytes, what) {
        Ok(v) => v,
        Err(e) => {
            problems.push(e.to_string());
            return false;
        }
    };
    if crc != vm.crc {
        problems.push(format!(
            "{}: checksum differs from the entry record",
            what()
        ));
    }
    let Some(s) = st.catalog.spaces.get(&vm.space) else {
        problems.push(format!("{}: unknown space {}", what(), vm.space));
        return true;
    };
    if let Err(e) = s.check(&emb, &what()) {
        problems.push(e.to_string());
    }
    // The cached exact-scoring constants are derived: recompute.
    match s.prep(&emb) {
        Ok(p) if ScoreConsts::agree(p, vm.prep) => {}
        Ok(_) => problems.push(format!(
            "{}: cached scoring constants disagree with the vector",
            what()
        )),
        Err(e) => problems.push(e.to_string()),
    }
    true
}

/// Compares each space's graph with the store's points; returns the spaces compared.
fn compare_graphs(
    st: &State,
    mut space_ids: HashMap<SpaceId, BTreeSet<EntryId>>,
    problems: &mut Vec<String>,
) -> u64 {
    let mut spaces_checked = 0;
    for (sid, slot) in st.indexes.iter() {
        spaces_checked += 1;
        let Some(idx) = slot.loaded() else {
            problems.push(format!(
                "space {sid}: its graph was not loaded for the check"
            ));
            continue;
        };
        let in_store = space_ids.remove(sid).unwrap_or_default();
        let name = st
            .catalog
            .spaces
            .get(sid)
            .map(|s| s.def.name.as_str())
            .unwrap_or("?");
        if let Some(why) = &idx.unusable {
            problems.push(format!(
                "space {sid} ({}): its graph could not be built ({why}); knn scans the \
                 space exactly until a rebuild succeeds (`taskdb compact`, or the next open \
                 after the entry named above is removed with `taskdb rm`)",
                name
            ));
            continue;
        }
        let in_graph = idx.members();
        let in_store: HashSet<EntryId> = in_store.into_iter().collect();
        if in_graph != in_store || idx.points != in_store {
            let missing = in_store.difference(&in_graph).count();
            let extra = in_graph.difference(&in_store).count();
            problems.push(format!(
                "space {sid} ({}): graph and store disagree ({missing} vectors missing from \
                 the graph, {extra} extra)",
                name
            ));
        }
    }
    for sid in space_ids.keys() {
        problems.push(format!("space {sid} has vectors but no index"));
    }
    spaces_checked
}

/// Frozen space statistics: references are verified through the scorer (every vector's
/// constants above); the whitening is only used by ingestion, so it is verified here.
fn verify_frozen(st: &State, problems: &mut Vec<String>) {
    for s in st.catalog.spaces.values().filter(|s| s.is_task_space()) {
        if let Err(e) = TaskSpaceParams::from_def(&s.def).and_then(|p| p.whitening(&s.def.name)) {
            problems.push(e.to_string());
        }
    }
}

/// Graphs the open found damaged or stale and rebuilt from the store (saved by a writable
/// open before this check; kept in memory only by a read-only one).
fn repairs(st: &State, read_only: bool) -> Vec<Repair> {
    st.indexes
        .iter()
        .map(|(sid, slot)| (sid, slot.event()))
        .filter_map(|(sid, ev)| {
            let reason = ev.strip_prefix("rebuilt: ")?;
            if reason == "compact" {
                return None;
            }
            Some(Repair {
                space_id: *sid,
                space: st
                    .catalog
                    .spaces
                    .get(sid)
                    .map(|s| s.def.name.clone())
                    .unwrap_or_default(),
                action: if read_only {
                    "its graph would be rebuilt from the store".into()
                } else {
                    "its graph was rebuilt from the store and saved".into()
                },
                reason: reason.to_string(),
                done: !read_only,
            })
        })
        .collect()
}
