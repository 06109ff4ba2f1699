//! The scan arenas of matrix spaces ([`crate::index::arena`]): derived, in memory, one per
//! low-rank task space, under the state lock like the catalog and the graphs.
//!
//! * built from redb on the *second* exact query of the space (every vector read through
//!   `read_vector`, so checked by its CRC), sequentially inside one read transaction. The
//!   first query of a handle scans the old way: a process that asks one question (the CLI's
//!   `knn`) would pay the build (0.4 s at 10k entries, 1.8 s at 50k) for nothing, which made
//!   it 1.3–1.6× slower than before the arena (docs/PERFORMANCE.md §11); a long-lived handle
//!   (Python, a service) pays one old-speed query and then scans ~7–13× faster;
//! * extended by `put` after its commit (the new points, in id order), like the graphs;
//! * dropped by `compact` (purged points), rebuilt by the next exact query;
//! * checked before every use: the space's generation and point count must equal the arena's,
//!   and its points, id by id, the arena's rows the first time it is used at a generation
//!   (that comparison walks every id: about 5 ms per query at 100k entries, measured in
//!   docs/PERFORMANCE.md §17, so it is not repeated while neither changes); otherwise it is
//!   rebuilt. Deletions leave tombstones in both, which the scan
//!   skips through the catalog's live set.
//!
//! A space whose arena cannot be built (a dense value, an unreadable vector) is scanned the
//! old way, and the failure is remembered for that generation and point count so that every
//! query does not retry it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use redb::ReadTransaction;

use super::poisoned;
use crate::catalog::Catalog;
use crate::embedding::{Embedding, EntryId};
use crate::error::{Error, Result};
use crate::index::arena::{Arena, Row};
use crate::space::{EmbeddingKind, Space, SpaceId};
use crate::store::tables::VectorReader;

/// One space's arena, or why it has none.
pub(super) enum Slot {
    /// Asked for once: the next exact query builds it.
    Requested,
    Built {
        arena: Arc<Arena>,
        /// The generation at which its rows were last compared with the points, id by id,
        /// and found equal.
        checked: Option<u64>,
    },
    /// The arena could not be built at this generation and point count.
    Unbuildable { generation: u64, points: usize },
}

/// Every space's arena slot.
pub(super) type Arenas = Mutex<HashMap<SpaceId, Slot>>;

/// The arena of `space` reflecting `points` at its current generation, built now if missing or
/// stale; `None` when the space has none (not a low-rank task space, or it cannot be built).
pub(super) fn arena_for(
    arenas: &Arenas,
    c: &Catalog,
    txn: &ReadTransaction,
    space: &Space,
    points: &BTreeSet<EntryId>,
) -> Result<Option<Arc<Arena>>> {
    if space.def.embedding != EmbeddingKind::LowRank || !space.is_task_space() {
        return Ok(None);
    }
    let generation = c.generation(space.id);
    let mut slots = arenas.lock().map_err(|_| poisoned())?;
    if let Some(Slot::Built { arena, checked }) = slots.get_mut(&space.id) {
        let same = arena.generation == generation && arena.len() == points.len();
        if same && (*checked == Some(generation) || arena.reflects(generation, points)) {
            *checked = Some(generation);
            return Ok(Some(arena.clone()));
        }
    }
    match slots.get(&space.id) {
        Some(Slot::Unbuildable {
            generation: g,
            points: n,
        }) if *g == generation && *n == points.len() => return Ok(None),
        None => {
            slots.insert(space.id, Slot::Requested);
            return Ok(None);
        }
        _ => {}
    }
    let slot = match build(c, txn, space, points, generation) {
        Ok(a) => Slot::Built {
            arena: Arc::new(a),
            checked: Some(generation),
        },
        Err(_) => Slot::Unbuildable {
            generation,
            points: points.len(),
        },
    };
    let out = match &slot {
        Slot::Built { arena, .. } => Some(arena.clone()),
        Slot::Unbuildable { .. } | Slot::Requested => None,
    };
    slots.insert(space.id, slot);
    Ok(out)
}

/// Reads every point of `space` from the store into a new arena.
fn build(
    c: &Catalog,
    txn: &ReadTransaction,
    space: &Space,
    points: &BTreeSet<EntryId>,
    generation: u64,
) -> Result<Arena> {
    // Read first, then copied into buffers allocated once at their final size.
    let mut values = Vec::with_capacity(points.len());
    let mut cols = 0;
    let vectors = VectorReader::open(txn)?;
    for &id in points {
        let e = c
            .entries
            .get(&id)
            .ok_or_else(|| Error::Internal(format!("entry {id} not in the catalog")))?;
        let vm = e.vector_in(id, space.id)?;
        let x = vectors.read(id, &vm.method)?;
        if let Embedding::LowRank(v) = &x {
            cols += v.s.len();
        }
        values.push((id, x, vm.prep));
    }
    let mut a = Arena::with_capacity(space.def.dim as usize, generation, values.len(), cols);
    for (id, x, prep) in values {
        push(&mut a, space, id, &x, prep)?;
    }
    Ok(a)
}

/// Appends one point (its stored constants, or computed as `Space::score` would).
fn push(
    a: &mut Arena,
    space: &Space,
    id: EntryId,
    x: &Embedding,
    prep: Option<crate::space::ScoreConsts>,
) -> Result<()> {
    let Embedding::LowRank(v) = x else {
        return Err(Error::Internal(format!(
            "entry {id}: a dense value in low-rank space {:?}",
            space.def.name
        )));
    };
    let consts = match prep {
        Some(p) => p,
        None => space
            .prep(x)?
            .ok_or_else(|| Error::Internal("task space without a scorer".into()))?,
    };
    a.push(Row {
        id,
        value: v,
        consts,
    })
}

/// After a committed `put`: appends the new points of space `sid` (ids ascending) to its arena
/// and moves it to `generation`; an arena that cannot take them is dropped (rebuilt by the
/// next exact query). `prep` gives a new point's stored constants.
pub(super) fn extend(
    arenas: &mut Arenas,
    space: &Space,
    generation: u64,
    added: &[(EntryId, Embedding)],
    prep: impl Fn(EntryId) -> Option<crate::space::ScoreConsts>,
) {
    let Ok(slots) = arenas.get_mut() else {
        return;
    };
    let Some(Slot::Built { arena: arc, .. }) = slots.get_mut(&space.id) else {
        // A requested arena stays requested; an unbuildable one is retried.
        if !matches!(slots.get(&space.id), Some(Slot::Requested)) {
            slots.remove(&space.id);
        }
        return;
    };
    let mut sorted: Vec<&(EntryId, Embedding)> = added.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let ok = match Arc::get_mut(arc) {
        Some(a) => sorted
            .iter()
            .try_for_each(|(id, x)| push(a, space, *id, x, prep(*id)))
            .map(|()| a.generation = generation)
            .is_ok(),
        None => false,
    };
    if !ok {
        slots.remove(&space.id);
    }
}

impl super::TaskDb {
    /// The rows and factor bytes of the built arena of the space named `space` (for
    /// `testing::scan_arena_size`).
    pub(crate) fn scan_arena_size(&self, space: &str) -> Option<(usize, usize)> {
        let st = self.read().ok()?;
        let sid = *st.catalog.space_by_name.get(space)?;
        let slots = st.arenas.lock().ok()?;
        match slots.get(&sid)? {
            Slot::Built { arena: a, .. } => Some((a.len(), a.factor_bytes())),
            Slot::Unbuildable { .. } | Slot::Requested => None,
        }
    }
}

/// Forgets every arena (after `compact`).
pub(super) fn clear(arenas: &mut Arenas) {
    if let Ok(slots) = arenas.get_mut() {
        slots.clear();
    }
}
