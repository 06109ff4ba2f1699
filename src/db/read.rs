//! Reads: one entry with its vectors, listings, spaces and summary figures. All served from
//! the catalog, plus the store for vectors and provenance.

use std::collections::BTreeMap;

use redb::ReadTransaction;
use serde::Serialize;

use super::TaskDb;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::model::{Entry, EntryId, EntryRef, EntrySummary, Kind, Provenance};
use crate::search::Filter;
use crate::space::{Space, SpaceId, TaskSpaceParams};
use crate::store::tables::{read_entry_record, read_vector};

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

impl TaskDb {
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

    /// The outputs on U stored with a model entry at ingestion: each answered row's index in U
    /// and the model's label or distribution there (checksum verified). `None` for a dataset,
    /// an imported entry, or a model ingested before taskdb stored outputs (ingest it again to
    /// store them).
    pub fn model_outputs(&self, r: &EntryRef) -> Result<Option<crate::ModelOutputs>> {
        let st = self.read()?;
        let id = st.catalog.resolve(r)?;
        let e = &st.catalog.entries[&id];
        let label = format!("{}@{}", e.name, e.version);
        let txn = self.db.begin_read()?;
        crate::store::tables::read_outputs(&txn, id, &|| {
            format!("outputs on U of entry {id} ({label})")
        })
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
        self.read()?
            .catalog
            .space_named(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: format!("space {name:?}"),
            })
    }

    /// How many names have a live version (from the catalog; no store access).
    pub(crate) fn live_names(&self) -> Result<usize> {
        Ok(self.read()?.catalog.names.len())
    }

    /// Summary figures.
    pub fn stats(&self) -> Result<Stats> {
        // Each space's `index` says what its graph is, verified: lazy graphs are loaded now.
        self.load_graphs()?;
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
                    index: st
                        .indexes
                        .get(&s.id)
                        .map(|slot| slot.event().to_string())
                        .unwrap_or_default(),
                    centring: s
                        .is_task_space()
                        .then(|| TaskSpaceParams::from_def(&s.def).ok())
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

fn read_entry(txn: &ReadTransaction, c: &Catalog, id: EntryId) -> Result<Entry> {
    let rec = read_entry_record(txn, id)?;
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

impl TaskDb {
    /// The write log from record `since` on (all of it for 0), oldest first. A database made
    /// before the log existed has none until its next write.
    pub fn log(&self, since: u64) -> Result<Vec<crate::LogRecord>> {
        let txn = self.db.begin_read()?;
        crate::error::contain("table log", || {
            crate::store::log::read_raw(&txn, since)?
                .into_iter()
                .map(|(k, v)| crate::store::log::decode(k, &v))
                .collect()
        })
    }

    /// Verifies the write log's hash chain and its recorded head (also part of
    /// [`TaskDb::check`]).
    pub fn verify_log(&self) -> Result<crate::LogCheck> {
        let txn = self.db.begin_read()?;
        crate::error::contain("table log", || crate::store::log::verify_chain(&txn))
    }
}
