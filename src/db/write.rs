//! Writes: [`TaskDb::put`] (one batch, one transaction) and [`TaskDb::delete`]. Each writes the
//! store under the state lock, commits, and only then updates the catalog and graphs, so
//! readers never see the store ahead of the index and a failed write changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redb::{ReadableTable, Table, WriteTransaction};
use serde::Serialize;

use super::{State, TaskDb};
use crate::catalog::{CatEntry, Catalog};
use crate::error::{contain, Error, Result};
use crate::index::{Slot, SpaceIndex};
use crate::model::{Embedding, EntryId, EntryRef, Kind, NewEntry, NewVector, Provenance};
use crate::outputs::{self, ModelOutputs};
use crate::space::{ScoreConsts, Space, SpaceDef, SpaceId, SpaceRef};
use crate::store::codec::{self, EntryRecord, VecMeta};
use crate::store::log::{self, LogEntry, LogOp};
use crate::store::tables::{
    bump_generation, bump_space_generations, open_write, storage, Counters,
};
use crate::store::{
    self, ENTRIES, META, MODEL_OUTPUTS, NAMES, NAME_SEQ, SPACES, SPACE_NAMES, VECTORS,
};

/// One entry as [`TaskDb::put_versioned`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    /// Its id.
    pub id: EntryId,
    /// Its name.
    pub name: String,
    /// The version it got (1 for a new name, else one more than the name's last version).
    pub version: u32,
}

/// An entry written by `put`: its id, catalog entry and vectors per space.
type Added = (EntryId, CatEntry, Vec<(SpaceId, Embedding)>);

/// What one `put` transaction wrote, applied to the catalog and graphs after its commit.
#[derive(Default)]
struct Batch {
    /// Spaces created by this batch.
    spaces: BTreeMap<SpaceId, Space>,
    space_names: HashMap<String, SpaceId>,
    /// Entries written, with their vectors per space.
    added: Vec<Added>,
    /// Spaces that got a vector.
    touched: BTreeSet<SpaceId>,
}

/// The tables a `put` writes.
struct PutTables<'t> {
    meta: Table<'t, &'static [u8], &'static [u8]>,
    entries: Table<'t, u64, &'static [u8]>,
    vectors: Table<'t, (u64, &'static [u8]), &'static [u8]>,
    names: Table<'t, (&'static [u8], u32), u64>,
    name_seq: Table<'t, &'static [u8], u32>,
    spaces: Table<'t, u32, &'static [u8]>,
    space_names: Table<'t, &'static [u8], u32>,
    /// Opened only by a batch that stores model outputs (an older database gets the table
    /// with its first model's outputs).
    outputs: Option<Table<'t, u64, &'static [u8]>>,
}

impl<'t> PutTables<'t> {
    fn open(txn: &'t WriteTransaction, with_outputs: bool) -> Result<PutTables<'t>> {
        Ok(PutTables {
            meta: open_write(txn, META)?,
            entries: open_write(txn, ENTRIES)?,
            vectors: open_write(txn, VECTORS)?,
            names: open_write(txn, NAMES)?,
            name_seq: open_write(txn, NAME_SEQ)?,
            spaces: open_write(txn, SPACES)?,
            space_names: open_write(txn, SPACE_NAMES)?,
            outputs: match with_outputs {
                true => Some(open_write(txn, MODEL_OUTPUTS)?),
                false => None,
            },
        })
    }
}

/// The space a new vector names, as resolved against the catalog and the batch so far.
enum Resolved {
    /// A stored space or one created earlier in this batch.
    Existing(SpaceId),
    /// A space to create with this definition.
    New(SpaceDef),
}

impl TaskDb {
    /// Writes a batch of entries in one transaction: all land or none does. Everything is
    /// validated before anything is written. Returns the new ids in input order.
    pub fn put(&self, entries: Vec<NewEntry>) -> Result<Vec<EntryId>> {
        Ok(self
            .put_versioned(entries)?
            .into_iter()
            .map(|w| w.id)
            .collect())
    }

    /// [`TaskDb::put`], returning each entry's id, name and the version it got (in input
    /// order), as committed by this very transaction.
    pub fn put_versioned(&self, entries: Vec<NewEntry>) -> Result<Vec<Written>> {
        self.put_with_outputs(entries.into_iter().map(|e| (e, None)).collect())
    }

    /// [`TaskDb::put_versioned`] with each model entry's outputs on U (ingestion's write):
    /// entry, vectors and outputs land in one transaction.
    pub(crate) fn put_with_outputs(
        &self,
        entries: Vec<(NewEntry, Option<ModelOutputs>)>,
    ) -> Result<Vec<Written>> {
        let db = self.rw("put")?;
        validate_batch(&entries)?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Write under the state lock, so readers never see the store ahead of the index.
        let mut st = self.write()?;
        contain(
            "tables names, name_seq, spaces, space_names, vectors or model_outputs",
            || self.put_locked(db, &mut st, entries),
        )
        .map_err(|e| e.on_file(&self.path))
    }

    /// The transaction of [`TaskDb::put`], under the state lock.
    fn put_locked(
        &self,
        db: &redb::Database,
        st: &mut State,
        entries: Vec<(NewEntry, Option<ModelOutputs>)>,
    ) -> Result<Vec<Written>> {
        let txn = db.begin_write().map_err(storage("starting a write"))?;
        let now = store::now_ms();
        let mut batch = Batch::default();
        let mut written = Vec::with_capacity(entries.len());
        let counters = {
            let with_outputs = entries.iter().any(|(_, o)| o.is_some());
            let mut t = PutTables::open(&txn, with_outputs)?;
            let mut counters = Counters::read(&t.meta)?;
            counters.generation += 1;
            let n = entries.len();
            let early = early_preps(&st.catalog, &entries);
            for (i, ((e, o), early)) in entries.into_iter().zip(early).enumerate() {
                let ctx = entry_ctx(i, n, &e.name);
                let item = (e, early);
                let w = write_entry(
                    &mut t,
                    &st.catalog,
                    &mut batch,
                    &mut counters,
                    item,
                    &ctx,
                    now,
                )?;
                if let (Some(o), Some(table)) = (o, t.outputs.as_mut()) {
                    table
                        .insert(w.id, outputs::encode(&o).as_slice())
                        .map_err(storage("writing model outputs"))?;
                }
                written.push(w);
            }
            counters.write(&mut t.meta)?;
            counters
        };
        let space_gens = bump_space_generations(&txn, batch.touched.iter().copied())?;
        let mut op = LogOp::new("put");
        op.entries = written
            .iter()
            .map(|w| LogEntry {
                id: w.id,
                name: w.name.clone(),
                version: w.version,
            })
            .collect();
        log::append(&txn, op)?;
        txn.commit().map_err(storage("committing"))?;
        self.apply_put(st, batch, space_gens, counters.generation);
        Ok(written)
    }

    /// Applies a committed batch to the catalog and graphs.
    fn apply_put(
        &self,
        st: &mut State,
        batch: Batch,
        space_gens: Vec<(SpaceId, u64)>,
        generation: u64,
    ) {
        st.meta.generation = generation;
        for (id, s) in batch.spaces {
            st.catalog.space_by_name.insert(s.def.name.clone(), id);
            st.indexes
                .insert(id, Slot::ready(SpaceIndex::empty(&s, &self.params), "new"));
            st.catalog.spaces.insert(id, s);
        }
        let mut per_space: BTreeMap<SpaceId, Vec<(EntryId, Embedding)>> = BTreeMap::new();
        for (id, ce, vals) in batch.added {
            st.catalog.add(id, ce);
            for (sid, e) in vals {
                per_space.entry(sid).or_default().push((id, e));
            }
        }
        for (sid, g) in space_gens {
            st.catalog.space_gen.insert(sid, g);
            if let Some(space) = st.catalog.spaces.get(&sid) {
                let added = per_space.get(&sid).map(Vec::as_slice).unwrap_or_default();
                let c = &st.catalog;
                let prep = |id: EntryId| {
                    let e = c.entries.get(&id)?;
                    e.vector_in(id, sid).ok()?.prep
                };
                super::scan::extend(&mut st.arenas, space, g, added, prep);
            }
            let State {
                catalog, indexes, ..
            } = &mut *st;
            if let (Some(slot), Some(space)) = (indexes.get_mut(&sid), catalog.spaces.get(&sid)) {
                // A lazy graph is loaded (verified first) before it takes new points.
                let load = |p: Option<&_>| {
                    super::open::load_space_now(&self.db, catalog, sid, &self.params, p, true)
                };
                let (idx, event) = slot.get_mut(load);
                // Committed: a graph that cannot take the new vectors becomes unusable
                // (queries scan exactly) instead of failing a write that has happened.
                let was_usable = idx.unusable.is_none();
                idx.insert(space, &per_space.remove(&sid).unwrap_or_default());
                if let (true, Some(why)) = (was_usable, &idx.unusable) {
                    *event = format!("unusable: {why}");
                }
            }
        }
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
        .map_err(|e| e.on_file(&self.path))
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
        let txn = db.begin_write().map_err(storage("starting a write"))?;
        let now = store::now_ms();
        let mut op = LogOp::new("delete");
        {
            let mut ent_t = open_write(&txn, ENTRIES)?;
            let mut names_t = open_write(&txn, NAMES)?;
            for &id in &ids {
                let mut rec = {
                    let g = ent_t
                        .get(id)
                        .map_err(storage("reading entry"))?
                        .ok_or_else(|| Error::Internal(format!("entry {id} missing")))?;
                    codec::decode_entry_unverified(id, g.value())?
                };
                rec.deleted_at_ms = Some(now);
                op.entries.push(LogEntry {
                    id,
                    name: rec.name.clone(),
                    version: rec.version,
                });
                names_t
                    .remove((rec.name.as_bytes(), rec.version))
                    .map_err(storage("removing name"))?;
                ent_t
                    .insert(id, codec::encode_entry(&rec)?.as_slice())
                    .map_err(storage("writing entry"))?;
            }
            bump_generation(&txn)?;
        }
        log::append(&txn, op)?;
        txn.commit().map_err(storage("committing"))?;
        st.meta.generation += 1;
        for &id in &ids {
            st.catalog.mark_deleted(id);
        }
        Ok(ids)
    }
}

/// The checks of a batch that need no store access: each entry's own, and no name twice.
fn validate_batch(entries: &[(NewEntry, Option<ModelOutputs>)]) -> Result<()> {
    let mut seen = HashMap::new();
    let n = entries.len();
    for (i, (e, o)) in entries.iter().enumerate() {
        let ctx = entry_ctx(i, n, &e.name);
        e.validate(&ctx)?;
        if let Some(o) = o {
            if e.kind != Kind::Model {
                return Err(Error::invalid(
                    ctx,
                    "outputs on U belong to a model entry, not a dataset",
                ));
            }
            o.validate(&ctx)?;
        }
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
    Ok(())
}

/// A vector's scoring constants computed ahead of the write ([`early_preps`]): its space and
/// the result of [`Space::prep`], or `None` where `write_entry` computes them itself.
type Early = Option<(SpaceId, Result<Option<ScoreConsts>>)>;

/// The scoring constants of every vector whose space is already stored and which passes that
/// space's checks, computed in parallel across the batch before the write: in a matrix space
/// ⟨e, R⟩ against the space's reference is most of a put's work (r·d² products an entry). `None`
/// elsewhere (a space this batch creates, a vector that fails its checks): `write_entry` then
/// computes them in entry order, so errors and their order are what they were. The arithmetic
/// is the same either way.
fn early_preps(c: &Catalog, entries: &[(NewEntry, Option<ModelOutputs>)]) -> Vec<Vec<Early>> {
    use rayon::prelude::*;
    let none = Batch::default();
    entries
        .par_iter()
        .map(|(e, _)| {
            let early = |v: &NewVector| -> Early {
                let Ok(Resolved::Existing(sid)) = resolve_space(c, &none, v, "") else {
                    return None;
                };
                let space = c.spaces.get(&sid)?;
                space.check(&v.embedding, "").ok()?;
                Some((sid, space.prep(&v.embedding)))
            };
            e.vectors.iter().map(early).collect()
        })
        .collect()
}

/// Writes one entry of a batch (its vectors, name, version and record) into the open tables,
/// with its vectors' constants computed ahead where [`early_preps`] could.
#[allow(clippy::too_many_arguments)]
fn write_entry(
    t: &mut PutTables<'_>,
    c: &Catalog,
    batch: &mut Batch,
    counters: &mut Counters,
    (e, early): (NewEntry, Vec<Early>),
    ctx: &str,
    now: u64,
) -> Result<Written> {
    let id = counters.next_id;
    let mut vmeta = Vec::new();
    let mut vals = Vec::new();
    let mut early = early.into_iter();
    for v in e.vectors {
        let pre = early.next().flatten();
        let vctx = format!("{ctx}, method {:?}", v.method);
        // `early_preps` resolved the vector to a stored space the way `resolve_space` does
        // (stored spaces are looked up before this batch's): not compared again (a task
        // space's definition carries its whitening and reference, ≈ 1.5 MB to compare).
        let sid = match &pre {
            Some((sid, _)) => *sid,
            None => match resolve_space(c, batch, &v, &vctx)? {
                Resolved::Existing(sid) => sid,
                Resolved::New(def) => create_space(t, batch, counters, def, &vctx, now)?,
            },
        };
        let space = c
            .spaces
            .get(&sid)
            .or_else(|| batch.spaces.get(&sid))
            .ok_or_else(|| Error::Internal(format!("space {sid} resolved but missing")))?;
        // Where `early_preps` computed the constants it ran this same check first, and it
        // passed: not run twice.
        if pre.is_none() {
            space.check(&v.embedding, &vctx)?;
        }
        let prep = match pre {
            Some((_, r)) => r?,
            None => space.prep(&v.embedding)?,
        };
        let (bytes, crc) = codec::encode_vector(&v.embedding);
        store::parts::insert(&mut t.vectors, id, &v.method, &bytes)
            .map_err(storage("writing vector"))?;
        batch.touched.insert(sid);
        vmeta.push(VecMeta {
            method: v.method,
            space: sid,
            crc,
            prep,
        });
        vals.push((sid, v.embedding));
    }
    let last = t
        .name_seq
        .get(e.name.as_bytes())
        .map_err(storage("reading name sequence"))?
        .map(|g| g.value())
        .unwrap_or(0);
    let version = last + 1;
    t.name_seq
        .insert(e.name.as_bytes(), version)
        .map_err(storage("writing name sequence"))?;
    t.names
        .insert((e.name.as_bytes(), version), id)
        .map_err(storage("writing name"))?;
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
    t.entries
        .insert(id, codec::encode_entry(&rec)?.as_slice())
        .map_err(storage("writing entry"))?;
    let written = Written {
        id,
        name: e.name.clone(),
        version,
    };
    batch.added.push((
        id,
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
    counters.next_id += 1;
    Ok(written)
}

/// Resolves the space `v` names against the stored spaces and those created earlier in the
/// batch; a definition must equal the stored one of its name (spaces are immutable).
fn resolve_space(c: &Catalog, batch: &Batch, v: &NewVector, vctx: &str) -> Result<Resolved> {
    let lookup = |name: &str| -> Option<&Space> {
        c.space_named(name).or_else(|| {
            batch
                .space_names
                .get(name)
                .and_then(|id| batch.spaces.get(id))
        })
    };
    match &v.space {
        SpaceRef::Id(id) => {
            if c.spaces.contains_key(id) || batch.spaces.contains_key(id) {
                Ok(Resolved::Existing(*id))
            } else {
                Err(Error::NotFound {
                    what: format!("space id {id} ({vctx})"),
                })
            }
        }
        SpaceRef::Def(d) => match lookup(&d.name) {
            Some(s) if &s.def == d => Ok(Resolved::Existing(s.id)),
            Some(s) if s.def.dim != d.dim && s.def.embedding == d.embedding => Err(Error::invalid(
                vctx,
                format!(
                    "wrong dimension for space {:?}: it has dimension {}, got {}",
                    d.name, s.def.dim, d.dim
                ),
            )),
            Some(_) => Err(Error::SpaceMismatch(format!(
                "{vctx}: space {:?} already exists with a different definition; spaces are \
                 immutable, use a new name",
                d.name
            ))),
            None => Ok(Resolved::New(d.clone())),
        },
        SpaceRef::External(name) => {
            if name.is_empty() {
                return Err(Error::invalid(vctx, "empty space name"));
            }
            match lookup(name) {
                Some(s) if !s.def.is_external() => Err(Error::SpaceMismatch(format!(
                    "{vctx}: space {name:?} is a computed space (method {:?}), not an external \
                     one; import into another space name",
                    s.def.method.as_deref().unwrap_or("?")
                ))),
                Some(s) => Ok(Resolved::Existing(s.id)),
                None => Ok(Resolved::New(SpaceDef::external(
                    name,
                    v.embedding.dim() as u32,
                ))),
            }
        }
    }
}

/// Creates a space of the batch (written now, in the catalog after commit).
fn create_space(
    t: &mut PutTables<'_>,
    batch: &mut Batch,
    counters: &mut Counters,
    def: SpaceDef,
    vctx: &str,
    now: u64,
) -> Result<SpaceId> {
    if def.dim == 0 {
        return Err(Error::invalid(vctx, "space dimension 0"));
    }
    let id = counters.next_space;
    counters.next_space += 1;
    let s = Space::new(id, def, now);
    let json =
        serde_json::to_string(&s).map_err(|e| Error::Internal(format!("space json: {e}")))?;
    t.spaces
        .insert(id, json.as_bytes())
        .map_err(storage("writing space"))?;
    t.space_names
        .insert(s.def.name.as_bytes(), id)
        .map_err(storage("writing space"))?;
    batch.space_names.insert(s.def.name.clone(), id);
    batch.spaces.insert(id, s);
    Ok(id)
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
