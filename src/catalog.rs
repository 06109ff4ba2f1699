//! The in-memory catalog: names, versions, live entries, each space's points and generations,
//! with no vectors and no provenance. Derived from the store at open (`load`), updated only
//! after a commit succeeds, never written back. Everything here is pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable};

use crate::error::{contain, Error, Result};
use crate::model::{EntryId, EntryRef, Kind};
use crate::space::{Space, SpaceId};
use crate::store::codec::{self, VecMeta};
use crate::store::tables::{open_read, storage};
use crate::store::{ENTRIES, SPACE_GEN};

/// An entry in the in-memory catalog (no vectors, no provenance).
#[derive(Debug, Clone)]
pub(crate) struct CatEntry {
    pub name: String,
    pub version: u32,
    pub kind: Kind,
    pub tags: BTreeMap<String, String>,
    pub deleted: bool,
    pub vectors: Vec<VecMeta>,
    pub created_at_ms: u64,
}

impl CatEntry {
    /// The entry's vector in space `sid` (one per space at most).
    pub(crate) fn vector_in(&self, id: EntryId, sid: SpaceId) -> Result<&VecMeta> {
        self.vectors
            .iter()
            .find(|v| v.space == sid)
            .ok_or_else(|| Error::Internal(format!("entry {id} not in space {sid}")))
    }

    /// The entry's methods, comma-separated (for messages).
    pub(crate) fn methods(&self) -> String {
        self.vectors
            .iter()
            .map(|v| v.method.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Default)]
pub(crate) struct Catalog {
    pub entries: HashMap<EntryId, CatEntry>,
    /// name -> version -> id, non-deleted versions only.
    pub names: BTreeMap<String, BTreeMap<u32, EntryId>>,
    pub spaces: BTreeMap<SpaceId, Space>,
    pub space_by_name: HashMap<String, SpaceId>,
    pub space_gen: HashMap<SpaceId, u64>,
    /// space -> ids with a vector in it (non-deleted and deleted-but-not-compacted).
    pub space_points: HashMap<SpaceId, BTreeSet<EntryId>>,
    /// Live ids: the latest non-deleted version of each name (what knn may return).
    pub live: IdSet,
    /// Records the open could not read and left out (a degraded open): each names its table and
    /// id and says why. `check` reports them; everything else stays usable.
    pub set_aside: Vec<String>,
}

/// Ids below this are kept in [`IdSet`]'s bitmap (at most 8 MiB of it); larger ones, which the
/// store's sequential ids never reach in practice, in a hash set.
const DENSE_IDS: EntryId = 1 << 26;

/// A set of entry ids. The store hands out ids in sequence from 1, so a bitmap holds them
/// densely: 100k entries take 12.5 KB, and a lookup is one cached read where a hash set missed
/// the cache (a search asks it for every candidate it looks at: 2,048 times for a typical
/// matrix query at 100k, docs/PERFORMANCE.md §26).
#[derive(Debug, Default, Clone)]
pub(crate) struct IdSet {
    words: Vec<u64>,
    sparse: HashSet<EntryId>,
}

impl IdSet {
    pub(crate) fn contains(&self, id: EntryId) -> bool {
        if id >= DENSE_IDS {
            return self.sparse.contains(&id);
        }
        let (w, bit) = ((id >> 6) as usize, id & 63);
        self.words.get(w).is_some_and(|x| x >> bit & 1 == 1)
    }

    /// Adds `id`; whether it was not there.
    pub(crate) fn insert(&mut self, id: EntryId) -> bool {
        if id >= DENSE_IDS {
            return self.sparse.insert(id);
        }
        let (w, bit) = ((id >> 6) as usize, id & 63);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] >> bit & 1 == 1;
        self.words[w] |= 1 << bit;
        !was
    }

    /// Removes `id`; whether it was there.
    pub(crate) fn remove(&mut self, id: EntryId) -> bool {
        if id >= DENSE_IDS {
            return self.sparse.remove(&id);
        }
        let (w, bit) = ((id >> 6) as usize, id & 63);
        match self.words.get_mut(w) {
            Some(x) => {
                let was = *x >> bit & 1 == 1;
                *x &= !(1 << bit);
                was
            }
            None => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let dense: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        dense as usize + self.sparse.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Catalog {
    pub(crate) fn is_live(&self, id: EntryId) -> bool {
        self.live.contains(id)
    }

    /// Recomputes which version of `name` is live (the latest non-deleted one).
    pub(crate) fn refresh_latest(&mut self, name: &str) {
        if let Some(m) = self.names.get(name) {
            for id in m.values() {
                self.live.remove(*id);
            }
            if let Some(&last) = m.values().next_back() {
                self.live.insert(last);
            }
        }
    }

    /// `r` itself, or, when `r` reads `name@N` and a stored name is exactly that string (a
    /// name an older taskdb accepted), the latest version of that name: an exact name wins.
    pub(crate) fn exact(&self, r: &EntryRef) -> EntryRef {
        if r.version.is_some() {
            let whole = r.to_string();
            if self.names.contains_key(&whole) {
                return EntryRef::latest(whole);
            }
        }
        r.clone()
    }

    pub(crate) fn resolve(&self, r: &EntryRef) -> Result<EntryId> {
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

    pub(crate) fn add(&mut self, id: EntryId, e: CatEntry) {
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
    pub(crate) fn digest(&self, space: SpaceId) -> (u64, u32) {
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

    /// The space named `name`.
    pub(crate) fn space_named(&self, name: &str) -> Option<&Space> {
        self.space_by_name
            .get(name)
            .and_then(|id| self.spaces.get(id))
    }

    /// A space's generation (0 before its first write).
    pub(crate) fn generation(&self, sid: SpaceId) -> u64 {
        self.space_gen.get(&sid).copied().unwrap_or(0)
    }

    /// Marks `id` deleted: it leaves the name index and, if it was live, the previous remaining
    /// version of its name becomes live.
    pub(crate) fn mark_deleted(&mut self, id: EntryId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.deleted = true;
        let (name, version) = (e.name.clone(), e.version);
        self.live.remove(id);
        if let Some(m) = self.names.get_mut(&name) {
            m.remove(&version);
            if m.is_empty() {
                self.names.remove(&name);
            }
        }
        self.refresh_latest(&name);
    }

    /// Forgets a purged entry (after `compact`).
    pub(crate) fn purge(&mut self, id: EntryId) {
        if let Some(e) = self.entries.remove(&id) {
            for v in e.vectors {
                if let Some(s) = self.space_points.get_mut(&v.space) {
                    s.remove(&id);
                }
            }
        }
    }

    /// Reads the catalog from the store.
    pub(crate) fn load(txn: &ReadTransaction) -> Result<Catalog> {
        let mut c = Catalog::default();
        // A space definition that cannot be read is set aside (with the entries that have a
        // vector in it, below); in format 1 a damaged text byte still fails the whole table.
        for (id, s) in contain("table spaces", || crate::store::v1::spaces(txn))? {
            match s {
                Ok(s) => {
                    c.space_by_name.insert(s.def.name.clone(), s.id);
                    c.spaces.insert(s.id, s);
                }
                Err(e) => c.set_aside.push(format!("space {id} set aside: {e}")),
            }
        }
        contain("table space_gen", || {
            let gen_t = open_read(txn, SPACE_GEN)?;
            for row in gen_t.iter().map_err(storage("reading space generations"))? {
                let (k, v) = row.map_err(storage("reading space generations"))?;
                c.space_gen.insert(k.value(), v.value());
            }
            Ok(())
        })?;
        contain("table entries", || c.load_entries(txn))?;
        Ok(c)
    }

    /// Reads every entry record; one that cannot be decoded, or that has a vector in a space
    /// set aside or missing, is set aside itself (named, with why) and the others are loaded.
    fn load_entries(&mut self, txn: &ReadTransaction) -> Result<()> {
        let ent_t = open_read(txn, ENTRIES)?;
        for row in ent_t.iter().map_err(storage("reading entries"))? {
            let (k, v) = row.map_err(storage("reading entries"))?;
            let id = k.value();
            let decoded = codec::decode_entry_unverified(id, v.value())
                .and_then(|rec| Ok((rec.kind(id)?, rec)));
            let (kind, rec) = match decoded {
                Ok(r) => r,
                Err(e) => {
                    self.set_aside
                        .push(format!("entry {id} (table entries) set aside: {e}"));
                    continue;
                }
            };
            if let Some(v) = rec
                .vectors
                .iter()
                .find(|v| !self.spaces.contains_key(&v.space))
            {
                self.set_aside.push(format!(
                    "entry {id} ({}@{}, table entries) set aside: its vector {:?} is in space \
                     {}, whose definition is unreadable or missing",
                    rec.name, rec.version, v.method, v.space
                ));
                continue;
            }
            self.add(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: u32, deleted: bool, space: SpaceId, crc: u32) -> CatEntry {
        CatEntry {
            name: name.into(),
            version,
            kind: Kind::Dataset,
            tags: BTreeMap::new(),
            deleted,
            vectors: vec![VecMeta {
                method: "m".into(),
                space,
                crc,
                prep: None,
            }],
            created_at_ms: 0,
        }
    }

    #[test]
    fn the_latest_remaining_version_is_live() {
        let mut c = Catalog::default();
        c.add(1, entry("a", 1, false, 0, 10));
        c.add(2, entry("a", 2, false, 0, 11));
        c.add(3, entry("b", 1, true, 0, 12));
        assert!(!c.is_live(1) && c.is_live(2) && !c.is_live(3));
        assert_eq!(c.resolve(&EntryRef::latest("a")).unwrap(), 2);
        assert_eq!(c.resolve(&EntryRef::parse("a@1").unwrap()).unwrap(), 1);
        let err = c.resolve(&EntryRef::parse("a@7").unwrap()).unwrap_err();
        assert!(err.to_string().contains("versions present: 1, 2"), "{err}");
        assert!(matches!(
            c.resolve(&EntryRef::latest("b")),
            Err(Error::NotFound { .. })
        ));
        c.mark_deleted(2);
        assert!(c.is_live(1));
        c.mark_deleted(1);
        assert!(!c.names.contains_key("a"));
        assert!(c.live.is_empty());
    }

    #[test]
    fn an_id_set_holds_dense_and_far_ids_alike() {
        let mut s = IdSet::default();
        assert!(s.is_empty() && !s.contains(0) && !s.contains(u64::MAX));
        let ids = [
            0,
            1,
            63,
            64,
            65,
            100_000,
            DENSE_IDS - 1,
            DENSE_IDS,
            u64::MAX,
        ];
        for &id in &ids {
            assert!(s.insert(id), "{id}");
            assert!(!s.insert(id), "{id} twice");
        }
        assert_eq!(s.len(), ids.len());
        for &id in &ids {
            assert!(s.contains(id), "{id}");
        }
        for id in [2, 62, 66, 99_999, 100_001, DENSE_IDS + 1, u64::MAX - 1] {
            assert!(!s.contains(id), "{id}");
            assert!(!s.remove(id), "{id}");
        }
        // A far id costs no bitmap.
        assert!(s.words.len() <= (DENSE_IDS as usize >> 6));
        for &id in &ids {
            assert!(s.remove(id), "{id}");
            assert!(!s.contains(id), "{id}");
        }
        assert!(s.is_empty());
    }

    #[test]
    fn an_exact_stored_name_wins_over_a_version_suffix() {
        let mut c = Catalog::default();
        c.add(1, entry("a@1", 1, false, 0, 1));
        let r = EntryRef::parse("a@1").unwrap();
        assert_eq!(c.exact(&r), EntryRef::latest("a@1"));
        assert_eq!(c.resolve(&r).unwrap(), 1);
    }

    #[test]
    fn the_digest_depends_on_the_points_not_their_order() {
        let mut a = Catalog::default();
        a.add(1, entry("x", 1, false, 5, 100));
        a.add(2, entry("y", 1, false, 5, 200));
        let mut b = Catalog::default();
        b.add(2, entry("y", 1, false, 5, 200));
        b.add(1, entry("x", 1, false, 5, 100));
        assert_eq!(a.digest(5), b.digest(5));
        assert_eq!(a.digest(5).0, 2);
        let mut c = Catalog::default();
        c.add(1, entry("x", 1, false, 5, 100));
        c.add(2, entry("y", 1, false, 5, 201));
        assert_ne!(a.digest(5), c.digest(5));
        a.purge(2);
        assert_eq!(a.digest(5).0, 1);
    }
}
