//! Snapshots: one self-contained, verifiable file of a database's content, for audits
//! (`schema/SNAPSHOT.md` specifies the bytes).
//!
//! - [`TaskDb::snapshot`] / [`Snapshot::create`] write one from one redb read transaction, so a
//!   concurrent write is wholly in it or wholly absent; atomically (temporary file, fsync,
//!   rename), never over an existing file.
//! - [`Snapshot::verify`] checks every hash up to the Merkle root offline and names what fails.
//! - [`Snapshot::open`] verifies, then [`Snapshot::to_db`] gives a read-only [`TaskDb`] held in
//!   memory (graphs built in memory, nothing written beside the file), so every read query runs
//!   on a snapshot as on a database.
//! - [`Snapshot::restore`] writes a new database file from a verified snapshot.
//! - [`diff`] compares two databases or snapshots.
//!
//! ```
//! use taskdb::{Filter, Kind, NewEntry, Query, Snapshot, SnapshotOptions, TaskDb};
//! # fn main() -> taskdb::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = TaskDb::open(dir.path().join("tasks.taskdb"))?;
//! db.put(vec![
//!     NewEntry::external("sst2", Kind::Dataset, "s", vec![0.1, 0.9, 0.2]),
//!     NewEntry::external("imdb", Kind::Dataset, "s", vec![0.2, 0.8, 0.2]),
//! ])?;
//! let file = dir.path().join("audit.tdbsnap");
//! let manifest = db.snapshot(&file, &SnapshotOptions::default())?;
//! // Later, elsewhere, offline: check it against the published root, then query it.
//! let report = Snapshot::verify(&file, Some(&manifest.root))?;
//! assert!(report.ok);
//! let snap = TaskDb::open_snapshot(&file)?;
//! let hits = snap.nearest(&Query::entry("sst2")?, 1, &Filter::all())?;
//! assert_eq!(hits[0].name, "imdb");
//! // And see what changed since.
//! db.delete(&"imdb".parse()?)?;
//! let d = taskdb::diff(&snap, &db, &taskdb::DiffOptions::default())?;
//! assert_eq!(d.removed, vec!["imdb@1"]);
//! # Ok(()) }
//! ```
//!
//! Invariant: the root covers content only (spaces, live entries with vectors and provenance,
//! outcomes), in canonical order, so it does not depend on ids, times or the order of writes.
//! History (ids, times, version counters, the write log) has its own digests, which the
//! manifest lists and the footer's whole-file digest covers.

mod diff;
mod format;
pub(crate) mod image;
mod verify;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use diff::{diff, DiffOptions, EntryChange, NeighbourChange, SnapshotDiff, VectorChange};
pub use format::SNAPSHOT_FORMAT;
pub use verify::{Problem, VerifyReport};

use crate::db::TaskDb;
use crate::error::{Error, Result};
use crate::index::IndexParams;
use format::RecordKind;
use image::Image;

/// The manifest of a snapshot (its last record; JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The snapshot format version (1).
    pub format: u32,
    /// The taskdb version that wrote it.
    pub taskdb_version: String,
    /// When it was written (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// The `--note` given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The uuid of the database it was taken from (hex).
    pub source_db_uuid: String,
    /// The source's store generation at the snapshot.
    pub generation: u64,
    /// The last write-log record it includes (0: none). Its entries are the database's at
    /// this sequence number.
    pub log_seq: u64,
    /// The SHA-256 of that log record (the chain's head), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_head: Option<String>,
    /// The Merkle root over the content records (hex): the value to publish.
    pub root: String,
    /// The digest of the history record (hex).
    pub history_sha256: String,
    /// Space records in file order: name and digest.
    pub spaces: Vec<Leaf>,
    /// Entry records in file order: `name@version` and digest.
    pub entries: Vec<Leaf>,
    /// Outcome records in file order: `source -> target` and digest.
    pub outcomes: Vec<Leaf>,
    /// Write-log records in the file.
    pub log_records: u64,
}

/// One content record as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// What it is: a space name, `name@version`, or `source -> target`.
    pub name: String,
    /// Its digest (hex), also its Merkle leaf hash.
    pub sha256: String,
}

/// Options for creating a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Free text stored in the manifest (not covered by the root).
    pub note: Option<String>,
}

/// A verified snapshot, held in memory.
pub struct Snapshot {
    path: PathBuf,
    manifest: Manifest,
    image: Image,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .field("root", &self.manifest.root)
            .field("entries", &self.manifest.entries.len())
            .finish()
    }
}

/// Whether the file at `path` starts like a snapshot (its magic), without verifying it.
pub fn is_snapshot(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|()| head == format::MAGIC)
        .unwrap_or(false)
}

fn write_snapshot(img: &Image, out: &Path, opts: &SnapshotOptions) -> Result<Manifest> {
    crate::files::write_new_file(out, "a snapshot", |w| {
        let io = |e: std::io::Error| Error::io(out, e);
        let mut sw = format::Writer::new(w).map_err(io)?;
        let mut manifest = Manifest {
            format: SNAPSHOT_FORMAT,
            taskdb_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at_ms: crate::store::now_ms(),
            note: opts.note.clone(),
            source_db_uuid: hex::encode(img.db_uuid),
            generation: img.generation,
            log_seq: img.log.last().map(|(s, _)| *s).unwrap_or(0),
            log_head: img.log_head.clone(),
            root: String::new(),
            history_sha256: String::new(),
            spaces: Vec::new(),
            entries: Vec::new(),
            outcomes: Vec::new(),
            log_records: img.log.len() as u64,
        };
        let mut leaves = Vec::new();
        img.records(|kind, payload, label| {
            let (_, d) = sw.record(kind, payload).map_err(io)?;
            let leaf = Leaf {
                name: label.to_string(),
                sha256: hex::encode(d),
            };
            match kind {
                RecordKind::Space => manifest.spaces.push(leaf),
                RecordKind::Entry => manifest.entries.push(leaf),
                RecordKind::Outcome => manifest.outcomes.push(leaf),
                RecordKind::History => manifest.history_sha256 = leaf.sha256,
                _ => {}
            }
            if matches!(
                kind,
                RecordKind::Space | RecordKind::Entry | RecordKind::Outcome
            ) {
                leaves.push(d);
            }
            Ok(())
        })?;
        manifest.root = hex::encode(format::merkle_root(&leaves));
        let mj = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Internal(format!("manifest json: {e}")))?;
        let (at, _) = sw.record(RecordKind::Manifest, &mj).map_err(io)?;
        sw.finish(at).map_err(io)?;
        Ok(manifest)
    })
}

impl TaskDb {
    /// Everything a snapshot or an export holds, from one read transaction.
    pub(crate) fn read_image(&self) -> Result<Image> {
        let txn = self.begin_read_txn()?;
        Image::read(&txn)
    }

    /// [`TaskDb::read_image`] for an export: what cannot be read is left out and named in
    /// `skipped` (see [`Image::read_saving`]).
    pub(crate) fn read_image_saving(&self, skipped: &mut Vec<String>) -> Result<Image> {
        let txn = self.begin_read_txn()?;
        Image::read_saving(&txn, Some(skipped))
    }
}

impl TaskDb {
    /// Writes a snapshot of this database to `out` (which must not exist), from one read
    /// transaction. Returns its manifest (its `root` is the value to publish).
    pub fn snapshot(&self, out: impl AsRef<Path>, opts: &SnapshotOptions) -> Result<Manifest> {
        write_snapshot(&self.read_image()?, out.as_ref(), opts)
    }

    /// Opens a snapshot for queries: verified, then held in memory, read-only.
    pub fn open_snapshot(path: impl AsRef<Path>) -> Result<TaskDb> {
        Snapshot::open(path)?.to_db()
    }
}

impl Snapshot {
    /// Snapshots the database file at `db` without building its graphs: it is opened read-only
    /// (a database left by a crash is recovered by a writable open first).
    pub fn create(
        db: impl AsRef<Path>,
        out: impl AsRef<Path>,
        opts: &SnapshotOptions,
    ) -> Result<Manifest> {
        let db = db.as_ref();
        let img = crate::store::with_read_txn(db, Image::read).map_err(|e| e.on_file(db))?;
        write_snapshot(&img, out.as_ref(), opts)
    }

    /// Verifies the file at `path` offline. `expected_root` (hex) is a root published
    /// elsewhere. Damage is reported in [`VerifyReport::problems`]; `Err` means the file is not
    /// a snapshot, cannot be read, or is an intact snapshot of a newer format.
    pub fn verify(path: impl AsRef<Path>, expected_root: Option<&str>) -> Result<VerifyReport> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(verify::verify_bytes(path, &bytes, expected_root)?.report)
    }

    /// Opens and verifies a snapshot; any failed check is [`Error::SnapshotInvalid`] naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let v = verify::verify_bytes(path, &bytes, None)?;
        match (v.image, v.report.manifest) {
            (Some(image), Some(manifest)) if v.report.ok => Ok(Snapshot {
                path: path.to_path_buf(),
                manifest,
                image,
            }),
            _ => {
                let first = v.report.problems.first().cloned().unwrap_or(Problem {
                    what: "snapshot".into(),
                    detail: "unreadable".into(),
                });
                let more = v.report.problems.len().saturating_sub(1);
                Err(Error::SnapshotInvalid {
                    path: path.to_path_buf(),
                    what: first.what,
                    detail: format!(
                        "{}{}; `taskdb snapshot verify {}` lists every problem",
                        first.detail,
                        if more > 0 {
                            format!(" (and {more} more)")
                        } else {
                            String::new()
                        },
                        path.display()
                    ),
                })
            }
        }
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Its content root (hex).
    pub fn root(&self) -> &str {
        &self.manifest.root
    }

    /// What changed from this snapshot to `other` (a database, or another snapshot through
    /// [`Snapshot::to_db`]); see [`diff`].
    pub fn diff(&self, other: &TaskDb, opts: &DiffOptions) -> Result<SnapshotDiff> {
        diff(&self.to_db()?, other, opts)
    }

    /// A read-only [`TaskDb`] over the snapshot's content, held in memory.
    pub fn to_db(&self) -> Result<TaskDb> {
        self.to_db_with(IndexParams::default())
    }

    /// [`Snapshot::to_db`] with explicit index parameters.
    pub fn to_db_with(&self, index: IndexParams) -> Result<TaskDb> {
        // The cache bounded as a file's is (`OpenOptions::cache_bytes`): over an in-memory
        // backend every page it holds is a second copy.
        let mem = redb::Builder::new()
            .set_cache_size(crate::DEFAULT_CACHE_BYTES)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| Error::storage("creating an in-memory database", e))?;
        self.image.materialise(&mem, self.image.db_uuid, None)?;
        TaskDb::in_memory(self.path.clone(), mem, index)
    }

    /// Writes a new database at `to` from this (verified) snapshot: the same entries, ids,
    /// versions, spaces, outcomes and write log, plus a `restore` record. Never replaces a
    /// file; the database appears whole or not at all.
    pub fn restore(&self, to: impl AsRef<Path>) -> Result<()> {
        let to = to.as_ref();
        if to.exists() {
            return Err(Error::invalid(
                to.display().to_string(),
                "the file exists; restore never replaces a database: choose a new path",
            ));
        }
        let dir = crate::files::parent_dir(to);
        let tmp = tempfile::Builder::new()
            .prefix(".taskdb-restore-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        {
            let db = redb::Builder::new()
                .create(&tmp_path)
                .map_err(|e| Error::storage("creating the restored database", e))?;
            let uuid: [u8; 16] = rand::random();
            let detail = format!(
                "restored from snapshot {} (root {}, taken from database {} at log record {})",
                self.path.display(),
                self.manifest.root,
                self.manifest.source_db_uuid,
                self.manifest.log_seq
            );
            self.image
                .materialise(&db, uuid, Some(detail))
                .map_err(|e| e.on_file(to))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(&tmp_path, e))?;
        tmp.persist_noclobber(to).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(
                    to.display().to_string(),
                    "the file appeared while restoring; restore never replaces a database",
                )
            } else {
                Error::io(to, e.error)
            }
        })?;
        crate::files::sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        // Build and save its graphs now (derived; the restored file is complete without them).
        drop(TaskDb::open(to)?);
        Ok(())
    }
}
