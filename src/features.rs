//! The feature cache: surrogate features of texts, keyed by surrogate fingerprint and text.
//!
//! Running the surrogate is the expensive part of every ingestion. Features of the probe set U
//! are computed once per surrogate; features of a dataset's rows are computed once per
//! (surrogate, row text), so re-ingesting a dataset, ingesting it with another `--limit`, or
//! adding a method later does not run the surrogate again.
//!
//! The cache is **derived state**, never the source of truth:
//! - it lives in its own redb file beside the database (`<db>.features`), so deleting it is
//!   always safe and the audited database stays free of bulky intermediate data;
//! - every record carries its dimension and a CRC-32 of its bytes; a record that fails either
//!   check is treated as a miss, recomputed and overwritten (counted in [`CacheStats::repaired`]);
//! - a cache file that redb cannot open or read (damaged pages) is moved aside to
//!   `<db>.features.corrupt` and a fresh cache is created; every input of that lookup is then
//!   recomputed (and counted as repaired). redb's debug builds panic on damaged pages instead of
//!   returning an error, so those panics are caught and treated the same way;
//! - a full disk (ENOSPC, EDQUOT) is not damage: the file is kept as it is (redb commits
//!   nothing of the failed write, so the features it held stay), the features just computed are
//!   used, and the handle stops using the cache; the ingestion goes on (its own write to the
//!   database then succeeds or fails with [`Error::DiskFull`]) and its report carries
//!   [`FeatureCache::warning`];
//! - keys include the surrogate's fingerprint, so two surrogates never share a feature.
//!
//! Key: sha256(surrogate fingerprint ‖ 0x01 ‖ text) for a single text, or
//! sha256(surrogate fingerprint ‖ 0x02 ‖ len(text) ‖ text ‖ text_pair) for a pair.
//! Value: dim (u32 LE) ‖ crc32 of the f32 bytes (u32 LE) ‖ dim × f32 LE.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableDatabase, TableDefinition};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const FEATURES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("features_v1");

/// One input of the surrogate: a text, or a text pair encoded jointly.
#[derive(Debug, Clone, Copy)]
pub struct FeatureInput<'a> {
    /// The text.
    pub text: &'a str,
    /// The second text of a pair, encoded jointly with the first.
    pub pair: Option<&'a str>,
}

/// What one cache lookup did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheStats {
    /// Inputs whose features came from the cache.
    pub hits: usize,
    /// Inputs whose features were computed by the surrogate.
    pub computed: usize,
    /// Cached records that failed verification and were recomputed.
    pub repaired: usize,
}

/// A persistent cache of surrogate features.
pub struct FeatureCache {
    db: Mutex<Slot>,
    path: PathBuf,
}

/// The cache file, or why it is not used for the rest of this handle's life.
enum Slot {
    Open(Database),
    /// The disk is full: the file was kept as it was (its committed features are intact) and
    /// is neither read nor written again by this handle; features are computed and used, not
    /// saved. The text says why, for [`FeatureCache::warning`].
    Full(String),
}

impl FeatureCache {
    /// The cache file that belongs to the database at `db_path`.
    pub fn path_for(db_path: &Path) -> PathBuf {
        crate::files::feature_cache(db_path)
    }

    /// Opens (creating if needed) the cache at `path`. A cache file that cannot be opened as a
    /// redb database is derived state: it is moved aside and a fresh one is created. A full
    /// disk is not damage: the file is kept as it is and the cache is not used (see
    /// [`FeatureCache::warning`]).
    pub fn open(path: &Path) -> Result<FeatureCache> {
        let slot = match catch_unwind(|| Database::create(path)) {
            Ok(Ok(db)) => Slot::Open(db),
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                })
            }
            Ok(Err(e)) => match crate::error::redb_disk_full(e.into()) {
                Ok(io) => Slot::Full(format!("opening it failed: {io}")),
                Err(e) => Self::recreate(path, &e.to_string())?,
            },
            Err(_) => Self::recreate(path, "redb panicked opening it")?,
        };
        Ok(FeatureCache {
            db: Mutex::new(slot),
            path: path.to_path_buf(),
        })
    }

    /// Moves a corrupt or foreign cache file aside (kept for inspection) and creates a new one.
    fn recreate(path: &Path, why: &str) -> Result<Slot> {
        let aside = path.with_extension("features.corrupt");
        std::fs::rename(path, &aside).map_err(|io| Error::io(path, io))?;
        match Database::create(path) {
            Ok(db) => Ok(Slot::Open(db)),
            Err(e2) => match crate::error::redb_disk_full(e2.into()) {
                Ok(io) => Ok(Slot::Full(format!(
                    "{why}; it was moved aside and a new one could not be created: {io}"
                ))),
                Err(e2) => Err(Error::Cache {
                    path: path.to_path_buf(),
                    message: format!("{why}; recreating it failed too: {e2}"),
                }),
            },
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Slot>> {
        self.db.lock().map_err(|_| Error::Cache {
            path: self.path.clone(),
            message: "feature cache lock poisoned".into(),
        })
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why features computed by this handle were not saved (a full disk), if they were not:
    /// a warning for the ingestion report.
    pub fn warning(&self) -> Option<String> {
        match &*self.db.lock().ok()? {
            Slot::Open(_) => None,
            Slot::Full(why) => Some(format!(
                "feature cache {}: the disk is full ({why}); features computed in this run were \
                 used but not saved, and the cache file was kept as it was. Free space so that \
                 the next ingestion can save them",
                self.path.display()
            )),
        }
    }

    /// The cache key of one input.
    pub fn key(surrogate_fingerprint: &str, input: &FeatureInput<'_>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(surrogate_fingerprint.as_bytes());
        match input.pair {
            None => {
                h.update([1u8]);
                h.update(input.text.as_bytes());
            }
            Some(pair) => {
                h.update([2u8]);
                h.update((input.text.len() as u64).to_le_bytes());
                h.update(input.text.as_bytes());
                h.update(pair.as_bytes());
            }
        }
        h.finalize().into()
    }

    /// Returns the features of `inputs` (row-major, `inputs.len() × dim`), computing the missing
    /// ones with `compute` (called at most once, with the indices of the missing inputs, and
    /// expected to return their features row-major in that order) and storing them.
    ///
    /// A full disk while storing them is not an error: the features are returned, the cache
    /// file keeps what it had (nothing of the failed write is in it), and the cache is not used
    /// again by this handle ([`FeatureCache::warning`] says so).
    pub fn get_or_compute<F>(
        &self,
        surrogate_fingerprint: &str,
        dim: usize,
        inputs: &[FeatureInput<'_>],
        compute: F,
    ) -> Result<(Vec<f32>, CacheStats)>
    where
        F: FnOnce(&[usize]) -> Result<Vec<f32>>,
    {
        let keys: Vec<[u8; 32]> = inputs
            .iter()
            .map(|i| Self::key(surrogate_fingerprint, i))
            .collect();
        let mut out = vec![0f32; inputs.len() * dim];
        let mut slot = self.lock()?;
        let (missing, mut stats) = self.lookup(&mut slot, &keys, dim, &mut out)?;
        if missing.is_empty() {
            return Ok((out, stats));
        }
        let computed = compute(&missing)?;
        if computed.len() != missing.len() * dim {
            return Err(Error::Cache {
                path: self.path.clone(),
                message: format!(
                    "surrogate returned {} values for {} inputs of dimension {dim}",
                    computed.len(),
                    missing.len()
                ),
            });
        }
        for (j, &i) in missing.iter().enumerate() {
            out[i * dim..(i + 1) * dim].copy_from_slice(&computed[j * dim..(j + 1) * dim]);
        }
        stats.computed = missing.len();
        let write = |db: &Database| -> Result<()> {
            let txn = db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut table = txn.open_table(FEATURES).map_err(|e| self.err(e))?;
                for (j, &i) in missing.iter().enumerate() {
                    let row = &computed[j * dim..(j + 1) * dim];
                    table
                        .insert(&keys[i], encode(row).as_slice())
                        .map_err(|e| self.err(e))?;
                }
            }
            txn.commit().map_err(|e| self.err(e))
        };
        let mut retried = false;
        loop {
            let Slot::Open(db) = &*slot else {
                return Ok((out, stats));
            };
            match catch_unwind(AssertUnwindSafe(|| write(db))) {
                Ok(Ok(())) => return Ok((out, stats)),
                // A full disk: the file keeps its committed features; stop using it.
                Ok(Err(Error::DiskFull { source, .. })) => {
                    *slot = Slot::Full(format!(
                        "saving {} features failed: {source}",
                        missing.len()
                    ));
                }
                // Damage found while writing: start afresh once, then errors are real.
                Ok(Err(e)) if retried => return Err(e),
                Err(_) if retried => {
                    return Err(self.err(redb::Error::Corrupted(
                        "redb panicked writing a fresh cache file".into(),
                    )))
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "redb panicked writing it".to_string(),
                    };
                    *slot = Self::recreate(&self.path, &why)?;
                    retried = true;
                }
            }
        }
    }

    /// Reads what the cache holds of `keys` into `out`; returns the missing indices. A file
    /// that cannot be read is replaced by a fresh one and everything is missing.
    fn lookup(
        &self,
        slot: &mut Slot,
        keys: &[[u8; 32]],
        dim: usize,
        out: &mut [f32],
    ) -> Result<(Vec<usize>, CacheStats)> {
        let all = || (0..keys.len()).collect::<Vec<usize>>();
        let Slot::Open(db) = &*slot else {
            return Ok((all(), CacheStats::default()));
        };
        match catch_unwind(AssertUnwindSafe(|| self.read(db, keys, dim, out))) {
            Ok(Ok(r)) => Ok(r),
            // A damaged file (an error, or a panic in redb's debug builds): start afresh.
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "redb panicked reading it".to_string(),
                };
                *slot = Self::recreate(&self.path, &why)?;
                let stats = CacheStats {
                    repaired: keys.len(),
                    ..CacheStats::default()
                };
                Ok((all(), stats))
            }
        }
    }

    /// Looks up every key, filling `out` with hits; returns the missing indices.
    fn read(
        &self,
        db: &Database,
        keys: &[[u8; 32]],
        dim: usize,
        out: &mut [f32],
    ) -> Result<(Vec<usize>, CacheStats)> {
        let mut missing = Vec::new();
        let mut stats = CacheStats::default();
        let txn = db.begin_read().map_err(|e| self.err(e))?;
        match txn.open_table(FEATURES) {
            Ok(table) => {
                for (i, key) in keys.iter().enumerate() {
                    let got = table.get(key).map_err(|e| self.err(e))?;
                    match got.as_ref().map(|v| decode(v.value(), dim)) {
                        Some(Some(v)) => {
                            out[i * dim..(i + 1) * dim].copy_from_slice(&v);
                            stats.hits += 1;
                        }
                        Some(None) => {
                            stats.repaired += 1;
                            missing.push(i);
                        }
                        None => missing.push(i),
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => missing = (0..keys.len()).collect(),
            Err(e) => return Err(self.err(e)),
        }
        Ok((missing, stats))
    }

    /// Number of cached feature vectors.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let txn = match &*self.lock()? {
            Slot::Open(db) => db.begin_read().map_err(|e| self.err(e))?,
            Slot::Full(_) => return Ok(0),
        };
        match txn.open_table(FEATURES) {
            Ok(t) => t.len().map_err(|e| self.err(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A redb error of the cache: [`Error::DiskFull`] naming the file when the disk is full,
    /// else [`Error::Cache`].
    fn err(&self, e: impl Into<redb::Error>) -> Error {
        match crate::error::redb_disk_full(e.into()) {
            Ok(io) => Error::disk_full(&self.path, "writing the feature cache", io),
            Err(e) => Error::Cache {
                path: self.path.clone(),
                message: e.to_string(),
            },
        }
    }
}

fn encode(row: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + row.len() * 4);
    bytes.extend_from_slice(&(row.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    for x in row {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes[8..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes and verifies one record; `None` when it is damaged or of another dimension.
fn decode(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    if bytes.len() != 8 + dim * 4 {
        return None;
    }
    let stored_dim = u32::from_le_bytes(bytes[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    if stored_dim != dim || crc32fast::hash(&bytes[8..]) != crc {
        return None;
    }
    Some(
        bytes[8..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(texts: &[&'static str]) -> Vec<FeatureInput<'static>> {
        texts
            .iter()
            .map(|t| FeatureInput {
                text: t,
                pair: None,
            })
            .collect()
    }

    #[test]
    fn computes_once_then_hits() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FeatureCache::open(&dir.path().join("c.features")).unwrap();
        let ins = inputs(&["a", "b", "c"]);
        let f = |idx: &[usize]| Ok(idx.iter().flat_map(|&i| [i as f32, 1.0]).collect());
        let (v, s) = cache.get_or_compute("fp", 2, &ins, f).unwrap();
        assert_eq!(v, vec![0.0, 1.0, 1.0, 1.0, 2.0, 1.0]);
        assert_eq!((s.hits, s.computed), (0, 3));
        let (v2, s2) = cache
            .get_or_compute("fp", 2, &ins, |_| panic!("must not recompute"))
            .unwrap();
        assert_eq!(v2, v);
        assert_eq!((s2.hits, s2.computed), (3, 0));
        // Another surrogate never shares features.
        let (_, s3) = cache.get_or_compute("other", 2, &ins, f).unwrap();
        assert_eq!(s3.computed, 3);
    }

    #[test]
    fn pair_and_single_keys_differ() {
        let a = FeatureCache::key(
            "fp",
            &FeatureInput {
                text: "ab",
                pair: None,
            },
        );
        let b = FeatureCache::key(
            "fp",
            &FeatureInput {
                text: "a",
                pair: Some("b"),
            },
        );
        let c = FeatureCache::key(
            "fp",
            &FeatureInput {
                text: "ab",
                pair: Some(""),
            },
        );
        assert_ne!(a, b);
        assert_ne!(b, c);
    }

    #[test]
    fn damaged_record_is_recomputed() {
        assert!(decode(&encode(&[1.0, 2.0]), 2).is_some());
        let mut bad = encode(&[1.0, 2.0]);
        bad[9] ^= 0x40;
        assert!(decode(&bad, 2).is_none());
        assert!(decode(&encode(&[1.0, 2.0]), 3).is_none());
    }

    #[test]
    fn garbage_cache_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.features");
        std::fs::write(&p, b"this is not a redb file at all, just bytes").unwrap();
        let cache = FeatureCache::open(&p).unwrap();
        assert!(cache.is_empty().unwrap());
        assert!(dir.path().join("c.features.corrupt").exists());
    }
}
