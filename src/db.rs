//! [`TaskDb`]: the database handle. redb is the truth; the catalog and graphs in memory are
//! derived from it and updated only after a commit succeeds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;

use crate::entry::{Embedding, Entry, EntryId, EntryRef, EntrySummary, Kind, NewEntry, Provenance};
use crate::error::{contain, contain_at, Error, Result};
use crate::index::{persist, IndexParams, SpaceIndex};
use crate::query::{Centring, Filter, Hit, Query, SearchOptions, SearchPath, SpaceSel};
use crate::space::{EmbeddingKind, Space, SpaceDef, SpaceId, SpaceRef};

/// The method used when an entry has several and the caller names none (the measured best;
/// see docs/METHODS.md).
pub const DEFAULT_METHOD: &str = "scatter";
use crate::store::codec::{self, EntryRecord, VecMeta};
use crate::store::{self, Db, Meta};

/// Options for [`TaskDb::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OpenOptions {
    /// Open read-only (no writes, graphs rebuilt in memory only when needed).
    pub read_only: bool,
    /// Index and search parameters.
    pub index: IndexParams,
}

/// An entry in the in-memory catalog (no vectors, no provenance).
#[derive(Debug, Clone)]
pub(crate) struct CatEntry {
    name: String,
    version: u32,
    kind: Kind,
    tags: BTreeMap<String, String>,
    deleted: bool,
    vectors: Vec<VecMeta>,
    created_at_ms: u64,
}

#[derive(Default)]
pub(crate) struct Catalog {
    entries: HashMap<EntryId, CatEntry>,
    /// name -> version -> id, non-deleted versions only.
    names: BTreeMap<String, BTreeMap<u32, EntryId>>,
    spaces: BTreeMap<SpaceId, Space>,
    space_by_name: HashMap<String, SpaceId>,
    space_gen: HashMap<SpaceId, u64>,
    /// space -> ids with a vector in it (non-deleted and deleted-but-not-compacted).
    space_points: HashMap<SpaceId, BTreeSet<EntryId>>,
    /// Live ids: the latest non-deleted version of each name (what knn may return).
    live: HashSet<EntryId>,
}

impl Catalog {
    fn is_live(&self, id: EntryId) -> bool {
        self.live.contains(&id)
    }

    /// Recomputes which version of `name` is live (the latest non-deleted one).
    fn refresh_latest(&mut self, name: &str) {
        if let Some(m) = self.names.get(name) {
            for id in m.values() {
                self.live.remove(id);
            }
            if let Some(&last) = m.values().next_back() {
                self.live.insert(last);
            }
        }
    }

    /// `r` itself, or, when `r` reads `name@N` and a stored name is exactly that string (a
    /// name an older taskdb accepted), the latest version of that name: an exact name wins.
    fn exact(&self, r: &EntryRef) -> EntryRef {
        if r.version.is_some() {
            let whole = r.to_string();
            if self.names.contains_key(&whole) {
                return EntryRef::latest(whole);
            }
        }
        r.clone()
    }

    fn resolve(&self, r: &EntryRef) -> Result<EntryId> {
        let r = &self.exact(r);
        let versions = self.names.get(&r.name).ok_or_else(|| Error::NotFound {
            what: format!("entry {:?}", r.name),
        })?;
        match r.version {
            None => versions
                .values()
                .next_back()
                .copied()
                .ok_or_else(|| Error::NotFound {
                    what: format!("entry {:?}", r.name),
                }),
            Some(v) => versions.get(&v).copied().ok_or_else(|| Error::NotFound {
                what: format!(
                    "entry \"{}@{}\" (versions present: {})",
                    r.name,
                    v,
                    versions
                        .keys()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    fn add(&mut self, id: EntryId, e: CatEntry) {
        let name = e.name.clone();
        let deleted = e.deleted;
        if !deleted {
            self.names
                .entry(e.name.clone())
                .or_default()
                .insert(e.version, id);
        }
        for v in &e.vectors {
            self.space_points.entry(v.space).or_default().insert(id);
        }
        self.entries.insert(id, e);
        if !deleted {
            self.refresh_latest(&name);
        }
    }

    /// Order-independent digest of the (id, vector crc) pairs in a space, as stored.
    fn digest(&self, space: SpaceId) -> (u64, u32) {
        let mut h = crc32fast::Hasher::new();
        let mut n = 0u64;
        if let Some(ids) = self.space_points.get(&space) {
            for id in ids {
                if let Some(e) = self.entries.get(id) {
                    for v in e.vectors.iter().filter(|v| v.space == space) {
                        h.update(&id.to_le_bytes());
                        h.update(&v.crc.to_le_bytes());
                        n += 1;
                    }
                }
            }
        }
        (n, h.finalize())
    }
}

/// An entry written by `put`, applied to the catalog and graphs after commit.
type Added = (EntryId, CatEntry, Vec<(SpaceId, Embedding)>);

struct State {
    catalog: Catalog,
    indexes: BTreeMap<SpaceId, SpaceIndex>,
    meta: Meta,
    /// What happened to each space's graph at open: "loaded" or "rebuilt: <reason>".
    index_events: BTreeMap<SpaceId, String>,
}

/// A taskdb database. Cheap to share across threads (`&TaskDb` is `Sync`): any number of
/// concurrent readers; writes are serialised. Across processes, one writer excludes everyone
/// else (a second opener gets [`Error::Locked`]); read-only opens share the file.
pub struct TaskDb {
    path: PathBuf,
    db: Db,
    read_only: bool,
    params: IndexParams,
    state: RwLock<State>,
    /// Live-centring statistics per space (derived, in memory, keyed by the live entry set).
    live_centres: Mutex<HashMap<SpaceId, Arc<LiveCentre>>>,
}

/// A space's live library mean and every live entry's scoring constants against it.
struct LiveCentre {
    /// Hash of the sorted live entry ids it was computed from.
    key: u64,
    reference: taskdb_methods::Reference,
    prep: HashMap<EntryId, (f64, f64)>,
}

/// Result of [`TaskDb::check`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// redb's own integrity check: `Some(true)` passed, `None` not run (read-only open).
    pub redb_integrity: Option<bool>,
    /// Entry records checked (including tombstones).
    pub entries_checked: u64,
    /// Vectors whose checksum was verified.
    pub vectors_checked: u64,
    /// Spaces whose in-memory graph was compared with the store.
    pub spaces_checked: u64,
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

/// Per-space figures in [`Stats`].
#[derive(Debug, Clone, Serialize)]
pub struct SpaceStats {
    /// Space id.
    pub id: SpaceId,
    /// Space name.
    pub name: String,
    /// Dimension.
    pub dim: u32,
    /// Method (`null` for external spaces).
    pub method: Option<String>,
    /// Vectors stored (including superseded versions and uncompacted deletions).
    pub points: u64,
    /// Vectors of live (latest, non-deleted) entries.
    pub live: u64,
    /// Graph status at open: `loaded` or `rebuilt: reason`, or `new`.
    pub index: String,
    /// Task spaces: what centres their entries (a reference library, k-means pseudo-tasks on
    /// U, or `none`); `null` for external spaces.
    pub centring: Option<String>,
}

/// Result of [`TaskDb::stats`].
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Database path.
    pub path: String,
    /// On-disk format version.
    pub format_version: u32,
    /// Store generation (bumped by every committed write).
    pub generation: u64,
    /// Distinct live names (each counted once, at its latest version).
    pub names: u64,
    /// Live entries of kind dataset.
    pub datasets: u64,
    /// Live entries of kind model.
    pub models: u64,
    /// Stored versions, not deleted.
    pub versions: u64,
    /// Deleted entries awaiting `compact`.
    pub tombstones: u64,
    /// Size of the redb file in bytes.
    pub file_bytes: u64,
    /// Spaces.
    pub spaces: Vec<SpaceStats>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn se<E: std::fmt::Display>(ctx: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::storage(ctx, e)
}

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
        let path = path.as_ref().to_path_buf();
        let (db, _created) = store::open_db(&path, opts.read_only, true)?;
        let meta = {
            let txn = db.begin_read()?;
            match contain("table meta", || store::read_meta(&txn, &path))? {
                Some(m) => m,
                None => {
                    if contain("the table directory", || store::has_foreign_tables(&txn))? {
                        return Err(Error::NotTaskDb {
                            path,
                            reason: "a redb file without taskdb tables".into(),
                        });
                    }
                    drop(txn);
                    match &db {
                        Db::Rw(d) => store::init(d)?,
                        Db::Ro(_) => {
                            return Err(Error::NotTaskDb {
                                path,
                                reason: "empty redb file".into(),
                            })
                        }
                    }
                    let txn = db.begin_read()?;
                    store::read_meta(&txn, &path)?
                        .ok_or_else(|| Error::Internal("meta missing after init".into()))?
                }
            }
        };
        let txn = db.begin_read()?;
        let catalog = load_catalog(&txn)?;
        let mut tdb = TaskDb {
            path,
            db,
            read_only: opts.read_only,
            params: opts.index,
            state: RwLock::new(State {
                catalog,
                indexes: BTreeMap::new(),
                meta,
                index_events: BTreeMap::new(),
            }),
            live_centres: Mutex::new(HashMap::new()),
        };
        let dir = store::index_dir(&tdb.path);
        if !tdb.read_only {
            persist::clean_temporaries(&dir);
        }
        {
            let st = tdb.state.get_mut().map_err(|_| poisoned())?;
            let space_ids: Vec<SpaceId> = st.catalog.spaces.keys().copied().collect();
            for sid in space_ids {
                let (idx, event) = open_space_index(&txn, &dir, st, sid, &tdb.params)?;
                st.indexes.insert(sid, idx);
                st.index_events.insert(sid, event);
            }
        }
        drop(txn);
        if !tdb.read_only {
            tdb.flush()?;
        }
        Ok(tdb)
    }

    /// The database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>> {
        self.state.read().map_err(|_| poisoned())
    }
    fn write(&self) -> Result<RwLockWriteGuard<'_, State>> {
        self.state.write().map_err(|_| poisoned())
    }
    fn rw(&self, op: &'static str) -> Result<&redb::Database> {
        match &self.db {
            Db::Rw(d) => Ok(&**d),
            Db::Ro(_) => Err(Error::ReadOnly {
                path: self.path.clone(),
                op,
            }),
        }
    }

    /// Writes a batch of entries in one transaction: all land or none does. Everything is
    /// validated before anything is written. Returns the new ids in input order.
    pub fn put(&self, entries: Vec<NewEntry>) -> Result<Vec<EntryId>> {
        let db = self.rw("put")?;
        // 1. Validate what needs no store access.
        let mut seen = HashMap::new();
        let n = entries.len();
        for (i, e) in entries.iter().enumerate() {
            let ctx = entry_ctx(i, n, &e.name);
            e.validate(&ctx)?;
            if let Some(j) = seen.insert(e.name.as_str(), i) {
                return Err(Error::invalid(
                    ctx,
                    format!(
                        "duplicate name in one batch (also entry {}); put each version in its own batch",
                        j + 1
                    ),
                ));
            }
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // 2. Write under the state lock, so readers never see the store ahead of the index.
        let mut st = self.write()?;
        contain(
            "tables names, name_seq, spaces, space_names or vectors",
            || self.put_locked(db, &mut st, entries),
        )
    }

    /// The transaction of [`TaskDb::put`], under the state lock.
    fn put_locked(
        &self,
        db: &redb::Database,
        st: &mut State,
        entries: Vec<NewEntry>,
    ) -> Result<Vec<EntryId>> {
        let txn = db.begin_write().map_err(st_err("starting a write"))?;
        let now = store::now_ms();
        let mut new_spaces: BTreeMap<SpaceId, Space> = BTreeMap::new();
        let mut new_space_names: HashMap<String, SpaceId> = HashMap::new();
        let mut added: Vec<Added> = Vec::new();
        let mut ids = Vec::with_capacity(entries.len());
        {
            let mut meta_t = txn.open_table(store::META).map_err(se("opening meta"))?;
            let mut next_id = u64::from_le_bytes(meta_value(&meta_t, "next_id")?);
            let generation = u64::from_le_bytes(meta_value(&meta_t, "generation")?) + 1;
            let mut next_space = u32::from_le_bytes(meta_value(&meta_t, "next_space_id")?);
            let mut ent_t = txn
                .open_table(store::ENTRIES)
                .map_err(se("opening entries"))?;
            let mut vec_t = txn
                .open_table(store::VECTORS)
                .map_err(se("opening vectors"))?;
            let mut names_t = txn.open_table(store::NAMES).map_err(se("opening names"))?;
            let mut seq_t = txn
                .open_table(store::NAME_SEQ)
                .map_err(se("opening names"))?;
            let mut sp_t = txn
                .open_table(store::SPACES)
                .map_err(se("opening spaces"))?;
            let mut spn_t = txn
                .open_table(store::SPACE_NAMES)
                .map_err(se("opening spaces"))?;
            let mut gen_t = txn
                .open_table(store::SPACE_GEN)
                .map_err(se("opening spaces"))?;
            let mut touched: BTreeSet<SpaceId> = BTreeSet::new();

            let n = entries.len();
            for (i, e) in entries.into_iter().enumerate() {
                let ctx = entry_ctx(i, n, &e.name);
                let mut vmeta = Vec::new();
                let mut vals = Vec::new();
                for v in e.vectors {
                    let vctx = format!("{ctx}, method {:?}", v.method);
                    let lookup = |name: &str| -> Option<Space> {
                        st.catalog
                            .space_by_name
                            .get(name)
                            .and_then(|id| st.catalog.spaces.get(id))
                            .or_else(|| new_space_names.get(name).and_then(|id| new_spaces.get(id)))
                            .cloned()
                    };
                    let def_new: Option<SpaceDef>;
                    let space: Option<Space> = match &v.space {
                        SpaceRef::Id(id) => {
                            def_new = None;
                            Some(
                                st.catalog
                                    .spaces
                                    .get(id)
                                    .or_else(|| new_spaces.get(id))
                                    .cloned()
                                    .ok_or_else(|| Error::NotFound {
                                        what: format!("space id {id} ({vctx})"),
                                    })?,
                            )
                        }
                        SpaceRef::Def(d) => {
                            let s = lookup(&d.name);
                            if let Some(s) = &s {
                                if &s.def != d {
                                    if s.def.dim != d.dim && s.def.embedding == d.embedding {
                                        return Err(Error::invalid(
                                            vctx,
                                            format!(
                                                "wrong dimension for space {:?}: it has dimension {}, got {}",
                                                d.name, s.def.dim, d.dim
                                            ),
                                        ));
                                    }
                                    return Err(Error::SpaceMismatch(format!(
                                        "{vctx}: space {:?} already exists with a different definition; spaces are immutable, use a new name",
                                        d.name
                                    )));
                                }
                            }
                            def_new = Some(d.clone());
                            s
                        }
                        SpaceRef::External(name) => {
                            if name.is_empty() {
                                return Err(Error::invalid(vctx, "empty space name"));
                            }
                            let s = lookup(name);
                            if let Some(s) = &s {
                                if !s.def.is_external() {
                                    return Err(Error::SpaceMismatch(format!(
                                        "{vctx}: space {name:?} is a computed space (method {:?}), not an external one; import into another space name",
                                        s.def.method.as_deref().unwrap_or("?")
                                    )));
                                }
                            }
                            def_new = Some(SpaceDef::external(name, v.embedding.dim() as u32));
                            s
                        }
                    };
                    let space = match space {
                        Some(s) => s,
                        None => {
                            let def = def_new.expect("set when space is unresolved");
                            if def.dim == 0 {
                                return Err(Error::invalid(vctx, "space dimension 0"));
                            }
                            let id = next_space;
                            next_space += 1;
                            let s = Space::new(id, def, now);
                            let json = serde_json::to_string(&s)
                                .map_err(|e| Error::Internal(format!("space json: {e}")))?;
                            sp_t.insert(id, json.as_str())
                                .map_err(se("writing space"))?;
                            spn_t
                                .insert(s.def.name.as_str(), id)
                                .map_err(se("writing space"))?;
                            new_space_names.insert(s.def.name.clone(), id);
                            new_spaces.insert(id, s.clone());
                            s
                        }
                    };
                    space.check(&v.embedding, &vctx)?;
                    let prep = space.prep(&v.embedding)?;
                    let (bytes, crc) = codec::encode_vector(&v.embedding);
                    vec_t
                        .insert((next_id, v.method.as_str()), bytes.as_slice())
                        .map_err(se("writing vector"))?;
                    touched.insert(space.id);
                    vmeta.push(VecMeta {
                        method: v.method,
                        space: space.id,
                        crc,
                        prep,
                    });
                    vals.push((space.id, v.embedding));
                }
                let last = seq_t
                    .get(e.name.as_str())
                    .map_err(se("reading name sequence"))?
                    .map(|g| g.value())
                    .unwrap_or(0);
                let version = last + 1;
                seq_t
                    .insert(e.name.as_str(), version)
                    .map_err(se("writing name sequence"))?;
                names_t
                    .insert((e.name.as_str(), version), next_id)
                    .map_err(se("writing name"))?;
                let mut prov: Provenance = e.provenance;
                if prov.taskdb_version.is_empty() {
                    prov.taskdb_version = env!("CARGO_PKG_VERSION").to_string();
                }
                let rec = EntryRecord {
                    name: e.name.clone(),
                    version,
                    kind: e.kind.to_u8(),
                    tags: e.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    provenance_json: serde_json::to_string(&prov)
                        .map_err(|e| Error::Internal(format!("provenance json: {e}")))?,
                    created_at_ms: now,
                    deleted_at_ms: None,
                    vectors: vmeta.clone(),
                };
                ent_t
                    .insert(next_id, codec::encode_entry(&rec)?.as_slice())
                    .map_err(se("writing entry"))?;
                ids.push(next_id);
                added.push((
                    next_id,
                    CatEntry {
                        name: e.name,
                        version,
                        kind: e.kind,
                        tags: e.tags,
                        deleted: false,
                        vectors: vmeta,
                        created_at_ms: now,
                    },
                    vals,
                ));
                next_id += 1;
            }
            let mut space_gens = Vec::new();
            for sid in touched {
                let g = gen_t
                    .get(sid)
                    .map_err(se("reading space generation"))?
                    .map(|g| g.value())
                    .unwrap_or(0)
                    + 1;
                gen_t
                    .insert(sid, g)
                    .map_err(se("writing space generation"))?;
                space_gens.push((sid, g));
            }
            meta_t
                .insert("next_id", next_id.to_le_bytes().as_slice())
                .map_err(se("writing meta"))?;
            meta_t
                .insert("generation", generation.to_le_bytes().as_slice())
                .map_err(se("writing meta"))?;
            meta_t
                .insert("next_space_id", next_space.to_le_bytes().as_slice())
                .map_err(se("writing meta"))?;
            drop((ent_t, vec_t, names_t, seq_t, sp_t, spn_t, gen_t, meta_t));
            txn.commit().map_err(se("committing"))?;
            // 3. Committed: update the derived state.
            st.meta.generation = generation;
            for (id, s) in new_spaces {
                st.catalog.space_by_name.insert(s.def.name.clone(), id);
                st.indexes
                    .insert(id, SpaceIndex::empty(s.clone(), &self.params, 0));
                st.index_events.insert(id, "new".into());
                st.catalog.spaces.insert(id, s);
            }
            let mut per_space: BTreeMap<SpaceId, Vec<(EntryId, Embedding)>> = BTreeMap::new();
            for (id, ce, vals) in added {
                st.catalog.add(id, ce);
                for (sid, e) in vals {
                    per_space.entry(sid).or_default().push((id, e));
                }
            }
            for (sid, g) in space_gens {
                st.catalog.space_gen.insert(sid, g);
                if let Some(idx) = st.indexes.get_mut(&sid) {
                    // Committed: a graph that cannot take the new vectors becomes unusable
                    // (queries scan exactly) instead of failing a write that has happened.
                    let was_usable = idx.unusable.is_none();
                    idx.insert(&per_space.remove(&sid).unwrap_or_default());
                    idx.generation = g;
                    if let (true, Some(why)) = (was_usable, &idx.unusable) {
                        let event = format!("unusable: {why}");
                        st.index_events.insert(sid, event);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Parses an entry reference typed by a user (`name` or `name@N`), preferring an exact
    /// stored name: where a name like `a@1` was stored (by a taskdb that allowed such names),
    /// `a@1` means that entry, not version 1 of `a`.
    pub fn entry_ref(&self, s: &str) -> Result<EntryRef> {
        if self.read()?.catalog.names.contains_key(s) {
            return Ok(EntryRef::latest(s));
        }
        EntryRef::parse(s)
    }

    /// Reads one entry with its vectors (checksums verified).
    pub fn get(&self, r: &EntryRef) -> Result<Entry> {
        let st = self.read()?;
        let id = st.catalog.resolve(r)?;
        let txn = self.db.begin_read()?;
        read_entry(&txn, &st.catalog, id)
    }

    /// Deletes `name` (all versions) or `name@N` (that version). Deleted entries become
    /// tombstones until [`TaskDb::compact`]; if the latest version is deleted, the previous
    /// remaining version becomes the latest. Returns the ids deleted.
    pub fn delete(&self, r: &EntryRef) -> Result<Vec<EntryId>> {
        let db = self.rw("delete")?;
        let mut st = self.write()?;
        let r = &st.catalog.exact(r);
        contain("tables entries or names", || {
            self.delete_locked(db, &mut st, r)
        })
    }

    /// The transaction of [`TaskDb::delete`], under the state lock.
    fn delete_locked(
        &self,
        db: &redb::Database,
        st: &mut State,
        r: &EntryRef,
    ) -> Result<Vec<EntryId>> {
        let ids: Vec<EntryId> = match r.version {
            Some(_) => vec![st.catalog.resolve(r)?],
            None => {
                st.catalog.resolve(r)?;
                st.catalog.names[&r.name].values().copied().collect()
            }
        };
        let txn = db.begin_write().map_err(st_err("starting a write"))?;
        let now = store::now_ms();
        {
            let mut ent_t = txn
                .open_table(store::ENTRIES)
                .map_err(se("opening entries"))?;
            let mut names_t = txn.open_table(store::NAMES).map_err(se("opening names"))?;
            for &id in &ids {
                let mut rec = {
                    let g = ent_t
                        .get(id)
                        .map_err(se("reading entry"))?
                        .ok_or_else(|| Error::Internal(format!("entry {id} missing")))?;
                    codec::decode_entry_unverified(id, g.value())?
                };
                rec.deleted_at_ms = Some(now);
                names_t
                    .remove((rec.name.as_str(), rec.version))
                    .map_err(se("removing name"))?;
                ent_t
                    .insert(id, codec::encode_entry(&rec)?.as_slice())
                    .map_err(se("writing entry"))?;
            }
            bump_generation(&txn)?;
        }
        txn.commit().map_err(se("committing"))?;
        st.meta.generation += 1;
        for &id in &ids {
            let (name, version) = {
                let e = st.catalog.entries.get_mut(&id).expect("resolved above");
                e.deleted = true;
                (e.name.clone(), e.version)
            };
            st.catalog.live.remove(&id);
            if let Some(m) = st.catalog.names.get_mut(&name) {
                m.remove(&version);
                if m.is_empty() {
                    st.catalog.names.remove(&name);
                }
            }
            st.catalog.refresh_latest(&name);
        }
        Ok(ids)
    }

    /// Lists entries passing `filter` (latest versions unless `filter.all_versions`),
    /// sorted by name then version.
    pub fn list(&self, filter: &Filter) -> Result<Vec<EntrySummary>> {
        let st = self.read()?;
        let c = &st.catalog;
        let mut out = Vec::new();
        for (name, versions) in &c.names {
            let ids: Vec<EntryId> = if filter.all_versions {
                versions.values().copied().collect()
            } else {
                versions.values().next_back().copied().into_iter().collect()
            };
            for id in ids {
                let e = &c.entries[&id];
                if !filter.matches(name, e.kind, &e.tags) {
                    continue;
                }
                if let Some(m) = &filter.method {
                    if !e.vectors.iter().any(|v| &v.method == m) {
                        continue;
                    }
                }
                let mut methods: Vec<String> = e.vectors.iter().map(|v| v.method.clone()).collect();
                methods.sort();
                out.push(EntrySummary {
                    id,
                    name: e.name.clone(),
                    version: e.version,
                    kind: e.kind,
                    methods,
                    tags: e.tags.clone(),
                    created_at_ms: e.created_at_ms,
                });
            }
        }
        Ok(out)
    }

    /// All spaces, by id.
    pub fn spaces(&self) -> Result<Vec<Space>> {
        Ok(self.read()?.catalog.spaces.values().cloned().collect())
    }

    /// Looks up a space by name.
    pub fn space(&self, name: &str) -> Result<Space> {
        let st = self.read()?;
        st.catalog
            .space_by_name
            .get(name)
            .and_then(|id| st.catalog.spaces.get(id))
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: format!("space {name:?}"),
            })
    }

    /// The `k` nearest live entries to `query` passing `filter`, best first (exact scores).
    /// Only latest versions of non-deleted entries are returned; an entry query leaves out
    /// exactly the queried entry id. Returns exactly `min(k, matching entries)` hits.
    pub fn nearest(&self, query: &Query, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        Ok(self.nearest_explain(query, k, filter)?.0)
    }

    /// Like [`TaskDb::nearest`], also saying which search path answered.
    pub fn nearest_explain(
        &self,
        query: &Query,
        k: usize,
        filter: &Filter,
    ) -> Result<(Vec<Hit>, SearchPath)> {
        self.nearest_with(query, k, filter, &SearchOptions::default())
    }

    /// Like [`TaskDb::nearest_explain`], with [`SearchOptions`] (e.g. centring on the live
    /// library, [`Centring::Live`]).
    pub fn nearest_with(
        &self,
        query: &Query,
        k: usize,
        filter: &Filter,
        opts: &SearchOptions,
    ) -> Result<(Vec<Hit>, SearchPath)> {
        let st = self.read()?;
        let c = &st.catalog;
        let txn = self.db.begin_read()?;
        let (sid, qemb, exclude) = match query {
            Query::Entry(r) => {
                let id = c.resolve(r)?;
                let e = &c.entries[&id];
                let vm = match &filter.method {
                    Some(m) => e.vectors.iter().find(|v| &v.method == m).ok_or_else(|| {
                        let why = if e.kind == Kind::Model && m == "textemb" {
                            " (textemb is the mean feature of the inputs, which for a model are \
                             the probe set U: it would be identical for every model, so models \
                             never get one)"
                        } else {
                            ""
                        };
                        Error::SpaceMismatch(format!(
                            "entry {r} has no vector for method {m:?}{why}; it has: {}",
                            methods_of(e)
                        ))
                    })?,
                    None if e.vectors.len() == 1 => &e.vectors[0],
                    None if e.vectors.iter().any(|v| v.method == DEFAULT_METHOD) => e
                        .vectors
                        .iter()
                        .find(|v| v.method == DEFAULT_METHOD)
                        .expect("checked"),
                    None => {
                        return Err(Error::SpaceMismatch(format!(
                            "entry {r} has several methods ({}); choose one",
                            methods_of(e)
                        )))
                    }
                };
                let emb = read_vector(&txn, id, &vm.method)?;
                (vm.space, emb, Some(id))
            }
            Query::Vector { space, embedding } => {
                let sid = match space {
                    SpaceSel::Id(id) => *id,
                    SpaceSel::Name(n) => {
                        *c.space_by_name.get(n).ok_or_else(|| Error::NotFound {
                            what: format!("space {n:?}"),
                        })?
                    }
                };
                let s = c.spaces.get(&sid).ok_or_else(|| Error::NotFound {
                    what: format!("space id {sid}"),
                })?;
                s.check(
                    embedding,
                    &format!("query vector for space {:?}", s.def.name),
                )
                .map_err(|e| match e {
                    Error::InvalidInput { context, message }
                        if message.starts_with("wrong dimension") =>
                    {
                        Error::SpaceMismatch(format!("{context}: {message}"))
                    }
                    other => other,
                })?;
                (sid, embedding.clone(), None)
            }
        };
        if k == 0 {
            return Ok((Vec::new(), SearchPath::BruteForce));
        }
        let idx = st
            .indexes
            .get(&sid)
            .ok_or_else(|| Error::Internal(format!("no index for space {sid}")))?;
        let space = &idx.space;
        let keep = |id: EntryId| -> bool {
            if Some(id) == exclude || !c.is_live(id) {
                return false;
            }
            let e = &c.entries[&id];
            filter.matches(&e.name, e.kind, &e.tags)
        };
        let empty = BTreeSet::new();
        let points = c.space_points.get(&sid).unwrap_or(&empty);
        let live = match opts.centring {
            Centring::Frozen => None,
            Centring::Live => Some(self.live_centre(&txn, c, space, points)?),
        };
        let prepared = match &live {
            Some(l) => space.prepare_centred(&qemb, &l.reference)?,
            None => space.prepare(&qemb)?,
        };
        let score_ids = |ids: &mut dyn Iterator<Item = EntryId>| -> Result<Vec<Hit>> {
            use rayon::prelude::*;
            // Vectors are read in blocks (one read transaction, sequential); each block is then
            // scored on rayon's pool. Every score depends only on its own pair, so the answer is
            // the same whatever the thread count (ties broken by id below).
            const BLOCK: usize = 1024;
            let mut hits = Vec::new();
            let ids: Vec<EntryId> = ids.collect();
            for block in ids.chunks(BLOCK) {
                let mut rows = Vec::with_capacity(block.len());
                for &id in block {
                    let e = &c.entries[&id];
                    let vm =
                        e.vectors.iter().find(|v| v.space == sid).ok_or_else(|| {
                            Error::Internal(format!("entry {id} not in space {sid}"))
                        })?;
                    let x = read_vector(&txn, id, &vm.method)?;
                    let prep = match &live {
                        Some(l) => l.prep.get(&id).copied(),
                        None => vm.prep,
                    };
                    rows.push((id, e, vm, x, prep));
                }
                let score = |r: &(EntryId, _, _, Embedding, _)| space.score(&prepared, &r.3, r.4);
                let scores: Vec<Result<f32>> = if rows.len() >= 64 {
                    rows.par_iter().map(score).collect()
                } else {
                    rows.iter().map(score).collect()
                };
                for ((id, e, vm, _, _), sc) in rows.into_iter().zip(scores) {
                    hits.push(Hit {
                        id,
                        name: e.name.clone(),
                        version: e.version,
                        kind: e.kind,
                        score: sc?,
                        space: space.def.name.clone(),
                        method: vm.method.clone(),
                    });
                }
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            Ok(hits)
        };
        let brute = |path: SearchPath| -> Result<(Vec<Hit>, SearchPath)> {
            let mut it = points.iter().copied().filter(|&id| keep(id));
            let mut hits = score_ids(&mut it)?;
            hits.truncate(k);
            Ok((hits, path))
        };
        // How many entries can match: all points when the filter is trivial (tombstones and
        // superseded versions are few), else counted.
        let total = points.len();
        let mut candidates = total;
        let sketched = space.def.embedding == EmbeddingKind::LowRank;
        let exact_below = if sketched {
            self.params
                .brute_force_below
                .max(self.params.exact_matrix_below)
        } else {
            self.params.brute_force_below
        };
        if candidates > exact_below && !filter.is_trivial() {
            candidates = points.iter().filter(|&&id| keep(id)).count();
        }
        // Live centring moves every score: no graph (built on the frozen sketch) applies. A
        // space whose graph could not be built is always scanned exactly.
        if candidates <= exact_below || live.is_some() || idx.unusable.is_some() {
            return brute(SearchPath::BruteForce);
        }
        // hnsw_rs's filtered search gives up its early exit and explores most of the graph, so
        // the graph is searched unfiltered with oversampling and the hits filtered afterwards;
        // the oversampling grows until k hits pass, then falls back to an exact scan.
        let qv = space.index_vector(&qemb)?;
        let frac = (candidates as f64 / total.max(1) as f64).max(1e-6);
        let mut want = ((k as f64 / frac).ceil() as usize + k / 4 + 2).min(total);
        // The graph of a matrix space holds sketches, estimates of the exact scores: take a wide
        // candidate set (growing with the space) and re-rank all of it exactly.
        let rerank = if sketched {
            want = want.max(32 * k).max(512).max(total / 4).min(total);
            usize::MAX
        } else {
            k
        };
        let ids = loop {
            let ef = self.params.ef_search.max(want);
            let found = idx.search(&qv, want, ef)?;
            let exhausted = found.len() < want || want >= total;
            let kept: Vec<EntryId> = found
                .into_iter()
                .filter(|&id| keep(id))
                .take(rerank)
                .collect();
            if kept.len() >= k {
                break kept;
            }
            if exhausted || want > 4 * self.params.brute_force_below.max(k) {
                return brute(SearchPath::HnswThenBruteForce);
            }
            want = (want * 4).min(total);
        };
        let mut it = ids.into_iter();
        let mut hits = score_ids(&mut it)?;
        hits.truncate(k);
        Ok((hits, SearchPath::Hnsw))
    }

    /// The live library mean of a task space and its live entries' scoring constants, cached
    /// until the set of live entries changes. Building it reads every live vector once.
    fn live_centre(
        &self,
        txn: &ReadTransaction,
        c: &Catalog,
        space: &Space,
        points: &BTreeSet<EntryId>,
    ) -> Result<Arc<LiveCentre>> {
        use std::hash::{Hash, Hasher};
        if !space.is_task_space() {
            return Err(Error::invalid(
                format!("space {:?}", space.def.name),
                "live centring applies to task spaces (made by ingestion); this space holds \
                 imported vectors: search it without centring",
            ));
        }
        let live: Vec<EntryId> = points.iter().copied().filter(|&id| c.is_live(id)).collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        live.hash(&mut h);
        let key = h.finish();
        let mut cache = self.live_centres.lock().map_err(|_| poisoned())?;
        if let Some(l) = cache.get(&space.id).filter(|l| l.key == key) {
            return Ok(l.clone());
        }
        let method = crate::space::TaskSpaceParams::from_def(&space.def)?.method;
        let mut embs = Vec::with_capacity(live.len());
        for &id in &live {
            let vm = c.entries[&id]
                .vectors
                .iter()
                .find(|v| v.space == space.id)
                .ok_or_else(|| Error::Internal(format!("entry {id} not in space {}", space.id)))?;
            embs.push(read_vector(txn, id, &vm.method)?.to_task());
        }
        let refs: Vec<&taskdb_methods::TaskEmbedding> = embs.iter().collect();
        let bad = |e: taskdb_methods::MethodError| {
            Error::invalid(format!("space {:?}", space.def.name), e.to_string())
        };
        let reference = taskdb_methods::library_reference(method, space.def.dim as usize, &refs)
            .map_err(bad)?;
        let dots = taskdb_methods::reference_dots(&reference, &refs).map_err(bad)?;
        let mut prep = HashMap::with_capacity(live.len());
        for ((&id, e), dot) in live.iter().zip(&embs).zip(dots) {
            let norm = taskdb_methods::prepare(e, None).map_err(bad)?.norm;
            prep.insert(id, (norm, dot));
        }
        let l = Arc::new(LiveCentre {
            key,
            reference,
            prep,
        });
        cache.insert(space.id, l.clone());
        Ok(l)
    }

    /// Saves every graph changed since it was last persisted (no-op when read-only).
    /// Called automatically on drop (errors ignored there).
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let mut st = self.write()?;
        let dir = store::index_dir(&self.path);
        let uuid = hex(&st.meta.db_uuid);
        let State {
            catalog, indexes, ..
        } = &mut *st;
        for (sid, idx) in indexes.iter_mut() {
            if !idx.dirty {
                continue;
            }
            let (count, digest) = catalog.digest(*sid);
            if count == 0 || idx.unusable.is_some() {
                persist::remove_space(&dir, *sid);
                idx.dirty = false;
                continue;
            }
            let expect = persist::Expect {
                db_uuid: uuid.clone(),
                space_id: *sid,
                generation: catalog.space_gen.get(sid).copied().unwrap_or(0),
                count,
                digest,
            };
            persist::save(&dir, &idx.graph, &expect)?;
            idx.dirty = false;
        }
        Ok(())
    }

    /// Purges deleted entries, rebuilds every graph without tombstones, and compacts the redb
    /// file. Needs exclusive access (`&mut self`).
    pub fn compact(&mut self) -> Result<CompactReport> {
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
        contain("tables entries, vectors or space_gen", || {
            let txn = db.begin_write().map_err(st_err("starting a write"))?;
            {
                let mut ent_t = txn
                    .open_table(store::ENTRIES)
                    .map_err(se("opening entries"))?;
                let mut vec_t = txn
                    .open_table(store::VECTORS)
                    .map_err(se("opening vectors"))?;
                let mut gen_t = txn
                    .open_table(store::SPACE_GEN)
                    .map_err(se("opening spaces"))?;
                for id in &dead {
                    let e = &st.catalog.entries[id];
                    for v in &e.vectors {
                        vec_t
                            .remove((*id, v.method.as_str()))
                            .map_err(se("removing vector"))?;
                    }
                    ent_t.remove(*id).map_err(se("removing entry"))?;
                }
                for sid in st.catalog.spaces.keys() {
                    let g = gen_t
                        .get(*sid)
                        .map_err(se("reading space generation"))?
                        .map(|g| g.value())
                        .unwrap_or(0)
                        + 1;
                    gen_t
                        .insert(*sid, g)
                        .map_err(se("writing space generation"))?;
                    st.catalog.space_gen.insert(*sid, g);
                }
                drop((ent_t, vec_t, gen_t));
                bump_generation(&txn)?;
            }
            txn.commit().map_err(se("committing"))
        })?;
        st.meta.generation += 1;
        for id in &dead {
            if let Some(e) = st.catalog.entries.remove(id) {
                for v in e.vectors {
                    if let Some(s) = st.catalog.space_points.get_mut(&v.space) {
                        s.remove(id);
                    }
                }
            }
        }
        // Rebuild graphs from the store.
        let txn = self.db.begin_read()?;
        let sids: Vec<SpaceId> = st.catalog.spaces.keys().copied().collect();
        for sid in sids {
            let idx = rebuild_space(&txn, st, sid, &self.params);
            let event = match &idx.unusable {
                Some(why) => format!("unusable: {why}"),
                None => "rebuilt: compact".into(),
            };
            st.indexes.insert(sid, idx);
            st.index_events.insert(sid, event);
        }
        drop(txn);
        let Db::Rw(db) = &mut self.db else {
            unreachable!("checked by rw()")
        };
        let before = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        contain("the redb file (compaction)", || {
            db.compact().map_err(se("compacting the redb file"))
        })?;
        let after = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.flush()?;
        Ok(CompactReport {
            purged: dead.len() as u64,
            bytes_before: before,
            bytes_after: after,
        })
    }

    /// Verifies redb integrity (writable opens only), every record and vector checksum, the
    /// name index, and that each space's graph holds exactly the store's vectors.
    pub fn check(&mut self) -> Result<CheckReport> {
        // Every read of the store runs contained: a panic of the storage layer (a damaged text
        // key or value) becomes a problem naming the table, and the other checks still run.
        let mut problems = Vec::new();
        let redb_integrity = match &mut self.db {
            Db::Rw(d) => match contain("the redb file (integrity check)", || {
                d.check_integrity().map_err(se("checking redb integrity"))
            }) {
                Ok(ok) => Some(ok),
                // redb's "DB corrupted" (a page checksum) is a finding like any other: record it
                // and run the other checks, which can name the entry it belongs to.
                Err(e @ (Error::Corrupt { .. } | Error::Storage { .. })) => {
                    problems.push(e.to_string());
                    Some(false)
                }
                Err(e) => return Err(e),
            },
            Db::Ro(_) => None,
        };
        let st = self.state.get_mut().map_err(|_| poisoned())?;
        let txn = self.db.begin_read()?;
        let mut entries_checked = 0u64;
        let mut vectors_checked = 0u64;
        let mut space_ids: HashMap<SpaceId, BTreeSet<EntryId>> = HashMap::new();
        let at = std::cell::Cell::new("entries");
        let scanned = contain_at(
            || format!("table {}", at.get()),
            || {
                let ent_t = txn
                    .open_table(store::ENTRIES)
                    .map_err(se("opening entries"))?;
                let vec_t = txn
                    .open_table(store::VECTORS)
                    .map_err(se("opening vectors"))?;
                let names_t = txn.open_table(store::NAMES).map_err(se("opening names"))?;
                for row in ent_t.iter().map_err(se("reading entries"))? {
                    let (k, v) = row.map_err(se("reading entries"))?;
                    let id = k.value();
                    entries_checked += 1;
                    let rec = match codec::decode_entry(id, v.value()) {
                        Ok(r) => r,
                        Err(e) => {
                            problems.push(e.to_string());
                            // A record failing its checksum may still decode: check the rest
                            // of what it names (its vectors, the name index) too.
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
                        match names_t.get((rec.name.as_str(), rec.version)) {
                            Ok(Some(g)) if g.value() == id => {}
                            _ => problems.push(format!(
                                "entry {id} ({}@{}) is missing from the name index",
                                rec.name, rec.version
                            )),
                        }
                        at.set("entries");
                    }
                    for vm in &rec.vectors {
                        let what = || {
                            format!(
                                "vector of entry {id} ({}), method {:?}",
                                rec.name, vm.method
                            )
                        };
                        at.set("vectors");
                        let got = vec_t.get((id, vm.method.as_str()));
                        match got {
                            Ok(Some(g)) => match codec::decode_vector(g.value(), what) {
                                Ok((emb, crc)) => {
                                    vectors_checked += 1;
                                    if crc != vm.crc {
                                        problems.push(format!(
                                            "{}: checksum differs from the entry record",
                                            what()
                                        ));
                                    }
                                    match st.catalog.spaces.get(&vm.space) {
                                        Some(s) => {
                                            if let Err(e) = s.check(&emb, &what()) {
                                                problems.push(e.to_string());
                                            }
                                            // The cached exact-scoring constants are derived: recompute.
                                            match s.prep(&emb) {
                                                Ok(p) if prep_matches(p, vm.prep) => {}
                                                Ok(_) => problems.push(format!(
                                            "{}: cached scoring constants disagree with the vector",
                                            what()
                                        )),
                                                Err(e) => problems.push(e.to_string()),
                                            }
                                        }
                                        None => problems.push(format!(
                                            "{}: unknown space {}",
                                            what(),
                                            vm.space
                                        )),
                                    }
                                }
                                Err(e) => problems.push(e.to_string()),
                            },
                            Ok(None) => problems.push(format!("{}: missing", what())),
                            Err(e) => problems.push(format!("{}: {e}", what())),
                        }
                        at.set("entries");
                        space_ids.entry(vm.space).or_default().insert(id);
                    }
                }
                at.set("names");
                let n_names = names_t.len().map_err(se("reading names"))?;
                let live_versions: usize = st.catalog.names.values().map(|m| m.len()).sum();
                if n_names as usize != live_versions {
                    problems.push(format!(
                "name index has {n_names} rows but {live_versions} live versions are stored"
            ));
                }
                Ok(())
            },
        );
        let scanned_all = scanned.is_ok();
        if let Err(e) = scanned {
            problems.push(e.to_string());
        }
        let mut spaces_checked = 0;
        // (Graphs are compared with the store only when the whole store could be read.)
        for (sid, idx) in st.indexes.iter().filter(|_| scanned_all) {
            spaces_checked += 1;
            let in_store = space_ids.remove(sid).unwrap_or_default();
            if let Some(why) = &idx.unusable {
                problems.push(format!(
                    "space {sid} ({}): its graph could not be built ({why}); knn scans the \
                     space exactly until a rebuild succeeds (`taskdb compact`, or the next open \
                     after the entry named above is removed with `taskdb rm`)",
                    idx.space.def.name
                ));
                continue;
            }
            let in_graph = SpaceIndex::graph_ids(&idx.graph);
            let in_store: std::collections::HashSet<EntryId> = in_store.into_iter().collect();
            if in_graph != in_store || idx.points != in_store {
                let missing = in_store.difference(&in_graph).count();
                let extra = in_graph.difference(&in_store).count();
                problems.push(format!(
                    "space {sid} ({}): graph and store disagree ({missing} vectors missing from the graph, {extra} extra)",
                    idx.space.def.name
                ));
            }
        }
        for sid in space_ids.keys().filter(|_| scanned_all) {
            problems.push(format!("space {sid} has vectors but no index"));
        }
        // Frozen space statistics (references are verified through the scorer above; the
        // whitening is only used by ingestion, so verify it here).
        for s in st.catalog.spaces.values().filter(|s| s.is_task_space()) {
            if let Err(e) = crate::space::TaskSpaceParams::from_def(&s.def)
                .and_then(|p| p.whitening(&s.def.name))
            {
                problems.push(e.to_string());
            }
        }
        // Graphs the open found damaged or stale and rebuilt from the store (saved by a
        // writable open before this check; kept in memory only by a read-only one).
        let read_only = self.read_only;
        let repaired = st
            .index_events
            .iter()
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
            .collect();
        Ok(CheckReport {
            redb_integrity,
            entries_checked,
            vectors_checked,
            spaces_checked,
            problems,
            read_only,
            repaired,
        })
    }

    /// Summary figures.
    pub fn stats(&self) -> Result<Stats> {
        let st = self.read()?;
        let c = &st.catalog;
        let mut datasets = 0;
        let mut models = 0;
        for versions in c.names.values() {
            if let Some(id) = versions.values().next_back() {
                match c.entries[id].kind {
                    Kind::Dataset => datasets += 1,
                    Kind::Model => models += 1,
                }
            }
        }
        let spaces = c
            .spaces
            .values()
            .map(|s| {
                let pts = c.space_points.get(&s.id);
                SpaceStats {
                    id: s.id,
                    name: s.def.name.clone(),
                    dim: s.def.dim,
                    method: s.def.method.clone(),
                    points: pts.map(|p| p.len() as u64).unwrap_or(0),
                    live: pts
                        .map(|p| p.iter().filter(|&&id| c.is_live(id)).count() as u64)
                        .unwrap_or(0),
                    index: st.index_events.get(&s.id).cloned().unwrap_or_default(),
                    centring: s
                        .is_task_space()
                        .then(|| crate::space::TaskSpaceParams::from_def(&s.def).ok())
                        .flatten()
                        .map(|p| p.centring()),
                }
            })
            .collect();
        Ok(Stats {
            path: self.path.display().to_string(),
            format_version: st.meta.format_version,
            generation: st.meta.generation,
            names: c.names.len() as u64,
            datasets,
            models,
            versions: c.names.values().map(|m| m.len() as u64).sum(),
            tombstones: c.entries.values().filter(|e| e.deleted).count() as u64,
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            spaces,
        })
    }
}

impl Drop for TaskDb {
    fn drop(&mut self) {
        let _ = self.flush();
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

fn poisoned() -> Error {
    Error::Internal("state lock poisoned by an earlier panic".into())
}

fn st_err<E: std::fmt::Display>(ctx: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::storage(ctx, e)
}

fn methods_of(e: &CatEntry) -> String {
    e.vectors
        .iter()
        .map(|v| v.method.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fixed-size value of the meta table, inside a write transaction.
fn meta_value<const N: usize>(t: &redb::Table<&str, &[u8]>, key: &str) -> Result<[u8; N]> {
    let g = t
        .get(key)
        .map_err(se("reading meta"))?
        .ok_or_else(|| Error::Internal(format!("meta {key} missing")))?;
    g.value()
        .try_into()
        .map_err(|_| Error::Internal(format!("meta {key} malformed")))
}

fn bump_generation(txn: &WriteTransaction) -> Result<()> {
    let mut m = txn.open_table(store::META).map_err(se("opening meta"))?;
    let g = u64::from_le_bytes(meta_value(&m, "generation")?);
    m.insert("generation", (g + 1).to_le_bytes().as_slice())
        .map_err(se("writing meta"))?;
    Ok(())
}

fn load_catalog(txn: &ReadTransaction) -> Result<Catalog> {
    let mut c = Catalog::default();
    contain("table spaces", || {
        let sp_t = txn
            .open_table(store::SPACES)
            .map_err(se("opening spaces"))?;
        for row in sp_t.iter().map_err(se("reading spaces"))? {
            let (k, v) = row.map_err(se("reading spaces"))?;
            let s: Space = serde_json::from_str(v.value()).map_err(|e| Error::Corrupt {
                what: format!("space {}", k.value()),
                detail: e.to_string(),
            })?;
            c.space_by_name.insert(s.def.name.clone(), s.id);
            c.spaces.insert(s.id, s);
        }
        Ok(())
    })?;
    contain("table space_gen", || {
        let gen_t = txn
            .open_table(store::SPACE_GEN)
            .map_err(se("opening spaces"))?;
        for row in gen_t.iter().map_err(se("reading spaces"))? {
            let (k, v) = row.map_err(se("reading spaces"))?;
            c.space_gen.insert(k.value(), v.value());
        }
        Ok(())
    })?;
    contain("table entries", || load_entries(txn, &mut c))?;
    Ok(c)
}

fn load_entries(txn: &ReadTransaction, c: &mut Catalog) -> Result<()> {
    let ent_t = txn
        .open_table(store::ENTRIES)
        .map_err(se("opening entries"))?;
    for row in ent_t.iter().map_err(se("reading entries"))? {
        let (k, v) = row.map_err(se("reading entries"))?;
        let id = k.value();
        let rec = codec::decode_entry_unverified(id, v.value())?;
        let kind = rec.kind(id)?;
        c.add(
            id,
            CatEntry {
                name: rec.name,
                version: rec.version,
                kind,
                tags: rec.tags.into_iter().collect(),
                deleted: rec.deleted_at_ms.is_some(),
                vectors: rec.vectors,
                created_at_ms: rec.created_at_ms,
            },
        );
    }
    Ok(())
}

/// Whether recomputed scoring constants equal the stored ones (to rounding).
fn prep_matches(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some((n1, r1)), Some((n2, r2))) => {
            (n1 - n2).abs() <= 1e-9 * n1.abs().max(1.0) && (r1 - r2).abs() <= 1e-9
        }
        _ => false,
    }
}

fn read_vector(txn: &ReadTransaction, id: EntryId, method: &str) -> Result<Embedding> {
    contain("table vectors", || read_vector_unguarded(txn, id, method))
}

fn read_vector_unguarded(txn: &ReadTransaction, id: EntryId, method: &str) -> Result<Embedding> {
    let t = txn
        .open_table(store::VECTORS)
        .map_err(se("opening vectors"))?;
    let g = t
        .get((id, method))
        .map_err(se("reading vector"))?
        .ok_or_else(|| Error::Corrupt {
            what: format!("vector of entry {id}, method {method:?}"),
            detail: "missing".into(),
        })?;
    let (e, _) = codec::decode_vector(g.value(), || {
        format!("vector of entry {id}, method {method:?}")
    })?;
    Ok(e)
}

fn read_entry(txn: &ReadTransaction, c: &Catalog, id: EntryId) -> Result<Entry> {
    let t = txn
        .open_table(store::ENTRIES)
        .map_err(se("opening entries"))?;
    let rec = contain("table entries", || {
        let g = t
            .get(id)
            .map_err(se("reading entry"))?
            .ok_or_else(|| Error::NotFound {
                what: format!("entry id {id}"),
            })?;
        codec::decode_entry(id, g.value())
    })?;
    let mut vectors = BTreeMap::new();
    for vm in &rec.vectors {
        vectors.insert(
            vm.method.clone(),
            (vm.space, read_vector(txn, id, &vm.method)?),
        );
    }
    let provenance: Provenance =
        serde_json::from_str(&rec.provenance_json).map_err(|e| Error::Corrupt {
            what: format!("provenance of entry {id}"),
            detail: e.to_string(),
        })?;
    Ok(Entry {
        id,
        kind: rec.kind(id)?,
        name: rec.name,
        version: rec.version,
        vectors,
        tags: rec.tags.into_iter().collect(),
        provenance,
        created_at_ms: rec.created_at_ms,
        latest: c.is_live(id),
    })
}

fn space_items(
    txn: &ReadTransaction,
    c: &Catalog,
    sid: SpaceId,
) -> Result<Vec<(EntryId, Embedding)>> {
    let mut items = Vec::new();
    if let Some(ids) = c.space_points.get(&sid) {
        for &id in ids {
            for vm in c.entries[&id].vectors.iter().filter(|v| v.space == sid) {
                items.push((id, read_vector(txn, id, &vm.method)?));
            }
        }
    }
    Ok(items)
}

/// Rebuilds a space's graph from the store. Never fails: when a vector cannot be read or
/// indexed, or the graph cannot be built, the index is unusable (exact scan only) and says why.
fn rebuild_space(
    txn: &ReadTransaction,
    st: &State,
    sid: SpaceId,
    params: &IndexParams,
) -> SpaceIndex {
    let space = st.catalog.spaces[&sid].clone();
    let gen = st.catalog.space_gen.get(&sid).copied().unwrap_or(0);
    match space_items(txn, &st.catalog, sid) {
        Ok(items) => SpaceIndex::build(space, params, &items, gen),
        Err(e) => SpaceIndex::unusable(space, params, gen, e.to_string()),
    }
}

fn open_space_index(
    txn: &ReadTransaction,
    dir: &Path,
    st: &State,
    sid: SpaceId,
    params: &IndexParams,
) -> Result<(SpaceIndex, String)> {
    let (count, digest) = st.catalog.digest(sid);
    let gen = st.catalog.space_gen.get(&sid).copied().unwrap_or(0);
    let space = st.catalog.spaces[&sid].clone();
    if count == 0 {
        let mut idx = SpaceIndex::empty(space, params, gen);
        idx.dirty = true;
        return Ok((idx, "empty".into()));
    }
    let expect = persist::Expect {
        db_uuid: hex(&st.meta.db_uuid),
        space_id: sid,
        generation: gen,
        count,
        digest,
    };
    match persist::load(dir, &expect) {
        Ok(graph) => {
            let points = st
                .catalog
                .space_points
                .get(&sid)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            Ok((
                SpaceIndex {
                    space,
                    graph,
                    points,
                    generation: gen,
                    dirty: false,
                    unusable: None,
                },
                "loaded".into(),
            ))
        }
        Err(reason) => {
            let idx = rebuild_space(txn, st, sid, params);
            let event = match &idx.unusable {
                Some(why) => format!("unusable: {why}"),
                None => format!("rebuilt: {reason}"),
            };
            Ok((idx, event))
        }
    }
}

/// How an error names entry `i` of a batch of `n`: by name alone when it is the only one
/// (`entry "sst2"`), else with its place in the batch (`entry 3 of 40 in this batch
/// ("sst2")`), so a single ingestion's error carries no meaningless "entry 1".
fn entry_ctx(i: usize, n: usize, name: &str) -> String {
    if n == 1 {
        format!("entry {name:?}")
    } else {
        format!("entry {} of {n} in this batch ({name:?})", i + 1)
    }
}
