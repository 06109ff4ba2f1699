//! Opening a database: the meta record (initialised on first open), the catalog, and each
//! space's graph: when its persisted manifest matches the store exactly (database uuid, space
//! generation, point count and digest, file length) the graph is left on disk, to be
//! checksummed and loaded on its first use ([`Slot`], [`load_space`]); otherwise it is rebuilt
//! from the store now.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use redb::ReadTransaction;

use super::{hex, poisoned, State, TaskDb};
use crate::catalog::Catalog;
use crate::error::{contain, Error, Result};
use crate::index::{persist, IndexParams, Slot, SpaceIndex};
use crate::model::{Embedding, EntryId};
use crate::space::SpaceId;
use crate::store::tables::VectorReader;
use crate::store::{self, Db, Meta};
use crate::OpenOptions;

impl TaskDb {
    /// Opens the database at `path` for reading and writing, creating it if missing.
    pub fn open(path: impl AsRef<Path>) -> Result<TaskDb> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens an existing database read-only. Fails with [`Error::Locked`] while another
    /// process has it open for writing, and with [`Error::NeedsRecovery`] after a crash until a
    /// writer has opened it once.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<TaskDb> {
        Self::open_with(
            path,
            OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        )
    }

    /// Opens with explicit options.
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<TaskDb> {
        let path = path.as_ref();
        Self::open_at(path.to_path_buf(), opts).map_err(|e| e.on_file(path))
    }

    fn open_at(path: std::path::PathBuf, opts: OpenOptions) -> Result<TaskDb> {
        let (db, _created) = store::open_db(&path, opts.read_only, true, opts.cache_bytes)?;
        let meta = read_or_init_meta(&db, &path)?;
        Self::assemble(path, db, meta, opts, true)
    }

    /// A read-only handle over a database held in memory (a snapshot's content, see
    /// [`crate::Snapshot::to_db`]): graphs are built in memory and nothing is written beside
    /// `path`.
    pub(crate) fn in_memory(
        path: std::path::PathBuf,
        db: redb::Database,
        index: crate::IndexParams,
    ) -> Result<TaskDb> {
        let db = Db::mem(db);
        let txn = db.begin_read()?;
        let meta = store::read_meta(&txn, &path)?
            .ok_or_else(|| Error::Internal("in-memory database without meta".into()))?;
        drop(txn);
        let opts = OpenOptions {
            read_only: true,
            index,
            ..OpenOptions::default()
        };
        Self::assemble(path, db, meta, opts, false)
    }

    /// The handle over an open store: the catalog, then each space's graph (left on disk for
    /// its first use when `sidecars` and its manifest matches, else rebuilt).
    fn assemble(
        path: std::path::PathBuf,
        db: Db,
        meta: Meta,
        opts: OpenOptions,
        sidecars: bool,
    ) -> Result<TaskDb> {
        let txn = db.begin_read()?;
        let catalog = Catalog::load(&txn)?;
        let mut tdb = TaskDb {
            path,
            db,
            read_only: opts.read_only,
            // A lean export cannot make hnsw_rs's graph for an insert: read-only handles only.
            params: IndexParams {
                lean_dense: opts.index.lean_dense && opts.read_only,
                ..opts.index
            },
            state: RwLock::new(State {
                catalog,
                indexes: BTreeMap::new(),
                meta,
                arenas: Mutex::new(HashMap::new()),
            }),
            live_centres: Mutex::new(HashMap::new()),
        };
        let dir = sidecars.then(|| crate::files::index_dir(&tdb.path));
        if let (false, Some(dir)) = (tdb.read_only, &dir) {
            persist::clean_temporaries(dir);
        }
        {
            let st = tdb.state.get_mut().map_err(|_| poisoned())?;
            let space_ids: Vec<SpaceId> = st.catalog.spaces.keys().copied().collect();
            for sid in space_ids {
                let slot = open_space_index(&txn, dir.as_deref(), st, sid, &tdb.params);
                st.indexes.insert(sid, slot);
            }
        }
        drop(txn);
        if !tdb.read_only {
            // Saving rebuilt graphs is a convenience (they are derived): on a full disk the
            // database is opened with them in memory (still dirty, saved by a later flush).
            match tdb.flush() {
                Err(e) if !e.is_disk_full() => return Err(e),
                _ => {}
            }
        }
        Ok(tdb)
    }
}

/// The meta record; a new, empty file is initialised (writable opens only).
fn read_or_init_meta(db: &Db, path: &Path) -> Result<Meta> {
    let txn = db.begin_read()?;
    if let Some(m) = contain("table meta", || store::read_meta(&txn, path))? {
        drop(txn);
        return match db {
            Db::Rw(d) if m.format_version < store::FORMAT_VERSION => {
                migrate(d, path, m.format_version)
            }
            _ => Ok(m),
        };
    }
    if contain("the table directory", || store::has_foreign_tables(&txn))? {
        return Err(Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: "a redb file without taskdb tables".into(),
        });
    }
    drop(txn);
    match db {
        // Initialising writes the meta table; on a damaged file redb can panic in its page
        // allocator there (found by the `open` fuzz target): contained, it is corruption.
        Db::Rw(d) => contain("the redb file (initialising its meta table)", || {
            store::init(d)
        })?,
        Db::Ro(_) | Db::Mem(_) => {
            return Err(Error::NotTaskDb {
                path: path.to_path_buf(),
                reason: "empty redb file".into(),
            })
        }
    }
    let txn = db.begin_read()?;
    store::read_meta(&txn, path)?.ok_or_else(|| Error::Internal("meta missing after init".into()))
}

/// Migrates an older file to the current format in one transaction, on the first writable
/// open: format 1 (text as redb `&str`) by rewriting its text tables, format 2 by recording
/// the new version. A failure changes nothing: the file keeps its format, and read-only opens
/// (`check --read-only`) still read it.
fn migrate(d: &redb::Database, path: &Path, from: u32) -> Result<Meta> {
    contain(
        "the older format's tables (migrating them)",
        || match from {
            1 => store::v1::migrate(d),
            _ => store::upgrade_from_2(d),
        },
    )
    .map_err(|e| match e {
        Error::Corrupt { what, detail } => Error::Corrupt {
            what,
            detail: format!(
                "{detail}; the migration to format {} was not committed, the file is \
                 unchanged (`taskdb check --read-only` reads it as it is)",
                store::FORMAT_VERSION
            ),
        },
        e => e,
    })?;
    use redb::ReadableDatabase;
    let txn = d
        .begin_read()
        .map_err(|e| Error::storage("starting a read transaction", e))?;
    store::read_meta(&txn, path)?
        .ok_or_else(|| Error::Internal("meta missing after migration".into()))
}

fn space_items(
    txn: &ReadTransaction,
    c: &Catalog,
    sid: SpaceId,
) -> Result<Vec<(EntryId, Embedding)>> {
    let mut items = Vec::new();
    if let Some(ids) = c.space_points.get(&sid) {
        let vectors = VectorReader::open(txn)?;
        for &id in ids {
            for vm in c.entries[&id].vectors.iter().filter(|v| v.space == sid) {
                items.push((id, vectors.read(id, &vm.method)?));
            }
        }
    }
    Ok(items)
}

/// Rebuilds a space's graph from the store. Never fails: when a vector cannot be read or
/// indexed, or the graph cannot be built, the index is unusable (exact scan only) and says why.
pub(super) fn rebuild_space(
    txn: &ReadTransaction,
    catalog: &Catalog,
    sid: SpaceId,
    params: &IndexParams,
) -> SpaceIndex {
    let space = &catalog.spaces[&sid];
    match space_items(txn, catalog, sid) {
        Ok(items) => SpaceIndex::build(space, params, &items),
        Err(e) => SpaceIndex::unusable(params, e.to_string()),
    }
}

/// The stored dense vectors of space `sid` by entry id, read through `txn` (checksums
/// verified; the table opened on the first read); `None` for an entry without a readable
/// dense vector in the space.
pub(super) fn dense_vectors<'a>(
    txn: &'a ReadTransaction,
    catalog: &'a Catalog,
    sid: SpaceId,
) -> impl FnMut(EntryId) -> Option<Vec<f32>> + 'a {
    let mut reader: Option<VectorReader> = None;
    move |id| {
        let vm = catalog.entries.get(&id)?.vector_in(id, sid).ok()?;
        if reader.is_none() {
            reader = VectorReader::open(txn).ok();
        }
        match reader.as_ref()?.read(id, &vm.method).ok()? {
            Embedding::Dense(v) => Some(v),
            Embedding::LowRank(_) => None,
        }
    }
}

/// A lazy graph's first use ([`Slot::get`]): the persisted graph loaded (checksummed,
/// decoded, a dense space's stored vectors read through `txn`, checksums verified; for a
/// `writer` about to insert, as hnsw_rs's graph: [`SpaceIndex::from_loaded`]), or, when there
/// is none or it fails, the graph rebuilt from the store. Returns the index and what happened
/// to it ("loaded", "rebuilt: <why>", "unusable: <why>").
pub(super) fn load_space(
    txn: &ReadTransaction,
    catalog: &Catalog,
    sid: SpaceId,
    params: &IndexParams,
    persisted: Option<&persist::Persisted>,
    writer: bool,
) -> (SpaceIndex, String) {
    let reason = match persisted.map(|p| p.load()) {
        Some(Ok(loaded)) => {
            let mut stored = dense_vectors(txn, catalog, sid);
            match SpaceIndex::from_loaded(loaded, &mut stored, writer, params.lean_dense) {
                Ok(index) => return (index, "loaded".into()),
                Err(why) => why,
            }
        }
        Some(Err(why)) => why,
        None => "no graph".into(),
    };
    let index = rebuild_space(txn, catalog, sid, params);
    let event = match &index.unusable {
        Some(why) => format!("unusable: {why}"),
        None => format!("rebuilt: {reason}"),
    };
    (index, event)
}

/// [`load_space`] in a read transaction of its own (for a lazy graph's first use outside a
/// query).
pub(super) fn load_space_now(
    db: &Db,
    catalog: &Catalog,
    sid: SpaceId,
    params: &IndexParams,
    persisted: Option<&persist::Persisted>,
    writer: bool,
) -> (SpaceIndex, String) {
    match db.begin_read() {
        Ok(txn) => load_space(&txn, catalog, sid, params, persisted, writer),
        Err(e) => {
            let why = e.to_string();
            (
                SpaceIndex::unusable(params, why.clone()),
                format!("unusable: {why}"),
            )
        }
    }
}

/// A space's graph at open: empty, lazy (its manifest matches: loaded on first use), or
/// rebuilt now.
fn open_space_index(
    txn: &ReadTransaction,
    dir: Option<&Path>,
    st: &State,
    sid: SpaceId,
    params: &IndexParams,
) -> Slot {
    let (count, digest) = st.catalog.digest(sid);
    let gen = st.catalog.generation(sid);
    if count == 0 {
        let idx = match st.catalog.spaces.get(&sid) {
            Some(space) => SpaceIndex::empty(space, params),
            None => SpaceIndex::empty_graph(params),
        };
        return Slot::ready(idx, "empty");
    }
    let expect = persist::Expect {
        db_uuid: hex(&st.meta.db_uuid),
        space_id: sid,
        generation: gen,
        count,
        digest,
    };
    let checked = match dir {
        Some(dir) => persist::check(dir, &expect),
        None => Err("built in memory (no graph files for this handle)".to_string()),
    };
    match checked {
        Ok(persisted) => Slot::lazy(persisted),
        Err(reason) => {
            let idx = rebuild_space(txn, &st.catalog, sid, params);
            let event = match &idx.unusable {
                Some(why) => format!("unusable: {why}"),
                None => format!("rebuilt: {reason}"),
            };
            Slot::ready(idx, event)
        }
    }
}
