//! The redb store: the only source of truth.
//!
//! Tables (see `schema/FORMAT.md`). Text is stored as bytes (`&[u8]`, UTF-8) and decoded by
//! taskdb ([`codec::text`]), never by redb: redb `unwrap`s the UTF-8 decoding of its `&str`
//! type, so in format 1, where these tables were `&str`, a damaged byte made it panic. Byte
//! order of UTF-8 is the order of `str`, so keys sort as they did.
//! - `meta`: `&[u8] -> &[u8]`: `magic` = `b"taskdb"`, `format_version` (u32 LE), `db_uuid`
//!   (16 bytes), `generation` (u64 LE, bumped by every committed write), `next_id` (u64 LE),
//!   `next_space_id` (u32 LE).
//! - `entries`: `u64 -> &[u8]`: postcard [`codec::EntryRecord`] (no vectors).
//! - `vectors`: `(u64, &[u8]) -> &[u8]`: (entry id, method) -> encoded vector with CRC32.
//! - `names`: `(&[u8], u32) -> u64`: (name, version) -> entry id, live (non-deleted) versions only.
//! - `name_seq`: `&[u8] -> u32`: the last version number ever assigned to a name.
//! - `spaces`: `u32 -> &[u8]`: space id -> JSON of [`crate::space::Space`].
//! - `space_names`: `&[u8] -> u32`.
//! - `space_gen`: `u32 -> u64`: per-space generation, bumped when points are added to the space
//!   or the space is compacted; persisted graphs record the generation they reflect.
//! - `outcomes`: `u64 -> &[u8]`: recorded transfer outcomes.
//! - `model_outputs`: `u64 -> &[u8]`: entry id -> a model entry's outputs on U
//!   ([`crate::outputs`], with a CRC32). Absent in databases made before it.
//! - `log`: `u64 -> &[u8]`: the write log, a hash chain (see `log.rs`); `meta.log_head`
//!   holds the SHA-256 of its last record.
//!
//! Format 1 (`v1.rs`) had the same tables with `&str` text; it is read as it is by read-only
//! handles and migrated to format 2 by the first writable open.

pub(crate) mod codec;
pub(crate) mod log;
pub(crate) mod parts;
pub(crate) mod tables;
pub(crate) mod v1;

use std::mem::ManuallyDrop;
use std::path::Path;

use redb::{
    Builder, Database, DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    TableDefinition, TableError,
};

use crate::error::{Error, Result};

/// The on-disk format version written by this build. 3: a long vector record may be stored in
/// parts that pack into redb's pages ([`parts`], issue 14). 2: text stored as bytes (issue
/// 10). Both older formats are read as they are by read-only handles and migrated by the
/// first writable open: 1 by rewriting its text tables ([`v1::migrate`]), 2 by recording the
/// new version ([`upgrade_from_2`]: its whole records are valid format-3 records).
pub const FORMAT_VERSION: u32 = 3;
pub(crate) const MAGIC: &[u8] = b"taskdb";

pub(crate) const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const VECTORS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("vectors");
pub(crate) const NAMES: TableDefinition<(&[u8], u32), u64> = TableDefinition::new("names");
pub(crate) const NAME_SEQ: TableDefinition<&[u8], u32> = TableDefinition::new("name_seq");
pub(crate) const SPACES: TableDefinition<u32, &[u8]> = TableDefinition::new("spaces");
pub(crate) const SPACE_NAMES: TableDefinition<&[u8], u32> = TableDefinition::new("space_names");
pub(crate) const SPACE_GEN: TableDefinition<u32, u64> = TableDefinition::new("space_gen");
/// Recorded transfer outcomes (`crate::outcome`): id → JSON with a CRC32 trailer. Absent in
/// databases that never recorded one (read as empty).
pub(crate) const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
/// A model entry's outputs on U (`crate::outputs`): entry id → record with a CRC32 trailer,
/// written with the entry, removed with it by `compact`. Absent in databases made before it
/// (and in those that never stored a model): read as "no outputs".
pub(crate) const MODEL_OUTPUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("model_outputs");
/// The write log (`log.rs`): sequence number → the record's JSON bytes. Absent in
/// databases made before it (their log starts at their first write after the upgrade).
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// A redb database opened read-write or read-only.
///
/// The database is dropped by hand, under `catch_unwind`: redb's drop (which records a clean
/// shutdown in the file) can panic on a damaged file, for instance after a failed write.
pub(crate) enum Db {
    Rw(ManuallyDrop<Database>),
    Ro(ManuallyDrop<ReadOnlyDatabase>),
    /// A database in memory (a snapshot's content), read-only to taskdb.
    Mem(ManuallyDrop<Database>),
}

impl Db {
    fn rw(d: Database) -> Db {
        Db::Rw(ManuallyDrop::new(d))
    }
    fn ro(d: ReadOnlyDatabase) -> Db {
        Db::Ro(ManuallyDrop::new(d))
    }
    pub(crate) fn mem(d: Database) -> Db {
        Db::Mem(ManuallyDrop::new(d))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = crate::error::contain("the redb file (closing it)", || {
            // SAFETY: this is the only place the database is dropped, once, and it is not used
            // afterwards (`self` is being dropped).
            unsafe {
                match self {
                    Db::Rw(d) | Db::Mem(d) => ManuallyDrop::drop(d),
                    Db::Ro(d) => ManuallyDrop::drop(d),
                }
            }
            Ok(())
        });
    }
}

impl Db {
    pub fn begin_read(&self) -> Result<ReadTransaction> {
        let r = match self {
            Db::Rw(d) | Db::Mem(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        };
        r.map_err(|e| Error::storage("starting a read transaction", e))
    }
}

fn map_open_error(path: &Path, e: DatabaseError) -> Error {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => Error::Locked {
            path: path.to_path_buf(),
        },
        DatabaseError::RepairAborted => Error::NeedsRecovery {
            path: path.to_path_buf(),
        },
        DatabaseError::UpgradeRequired(v) => Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: format!("redb file format {v} needs a manual upgrade"),
        },
        DatabaseError::Storage(redb::StorageError::Io(io)) => Error::io(path, io),
        // The file has redb's header (checked before redb sees it), so this is a damaged
        // database, not a foreign file: corruption (exit 7), with what can still be done.
        DatabaseError::Storage(redb::StorageError::Corrupted(msg)) => Error::Corrupt {
            what: format!("the database file {}", path.display()),
            detail: format!(
                "redb cannot open it ({msg}). Nothing was changed. Restore it from a snapshot \
                 or a backup; if it holds entries that nothing else has, keep the file for \
                 the record"
            ),
        },
        other => Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: format!("not a readable redb file: {other}"),
        },
    }
}

/// The page cache of a store opened without options (`crate::OpenOptions::cache_bytes`).
pub(crate) const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Opens (or creates, when `create` and the file is missing) the redb file, with a page
/// cache of at most `cache_bytes` (`OpenOptions::cache_bytes`).
pub(crate) fn open_db(
    path: &Path,
    read_only: bool,
    create: bool,
    cache_bytes: usize,
) -> Result<(Db, bool)> {
    let exists = path.exists();
    if !exists && (read_only || !create) {
        return Err(Error::NotFound {
            what: format!("database file {}", path.display()),
        });
    }
    // Whether there is a file with content (read once: every decision below uses it).
    let mut nonempty = false;
    if exists {
        // Refuse obviously foreign files before redb touches them.
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::NotTaskDb {
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        nonempty = meta.len() > 0;
        if nonempty {
            use std::io::Read;
            let mut head = [0u8; 9];
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
            if n >= 8 && head[..8] == *b"TDBSNAP\0" {
                return Err(Error::NotTaskDb {
                    path: path.to_path_buf(),
                    reason: "it is a taskdb snapshot, which is read-only: read commands take it \
                             as --db, and `taskdb snapshot restore FILE --db NEW` makes a \
                             writable database of it"
                        .into(),
                });
            }
            if n < 9 || &head[..9] != b"redb\x1A\x0A\xA9\x0D\x0A" {
                return Err(Error::NotTaskDb {
                    path: path.to_path_buf(),
                    reason: "no redb header".into(),
                });
            }
        }
    }
    let mut builder = Builder::new();
    builder.set_cache_size(cache_bytes);
    // A writable open of an existing file is probed read-only first (below), so a failure of
    // the writable open itself is damage, not a foreign file.
    let probed = nonempty && !read_only;
    if probed {
        // Probe read-only first: a writable redb open rewrites the header, and a file that is
        // not ours (or is of a newer format) must be left byte-for-byte unchanged.
        match probe(path) {
            Ok(()) | Err(Error::NeedsRecovery { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let guarded = crate::error::catch_contained(|| {
        if read_only {
            builder.open_read_only(path).map(Db::ro)
        } else if nonempty {
            builder.open(path).map(Db::rw)
        } else {
            builder.create(path).map(Db::rw)
        }
    });
    match guarded {
        Ok(Ok(db)) => Ok((db, !exists)),
        Ok(Err(e)) => Err(map_open_error(path, e)),
        // The read-only probe found taskdb's tables: the writable open (which repairs the
        // file after an unclean shutdown) failing on it is damage, not a foreign file.
        Err(msg) if probed => Err(Error::Corrupt {
            what: "the redb file (opening it for writing)".into(),
            detail: format!(
                "the storage layer failed ({msg}): the database file is damaged; restore it \
                 from a backup, or import or ingest the entries again into a new database \
                 (`taskdb check --read-only` lists what it can still read)"
            ),
        }),
        Err(_) => Err(Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: "redb could not open it (corrupt file)".into(),
        }),
    }
}

/// Runs `f` on one read transaction of the database file at `path`, opened without its
/// catalog or graphs: read-only, or, after a crash (which a read-only open refuses), writable
/// once so redb recovers it. The meta table is validated first.
pub(crate) fn with_read_txn<T>(
    path: &Path,
    f: impl FnOnce(&ReadTransaction) -> Result<T>,
) -> Result<T> {
    let cache = DEFAULT_CACHE_BYTES;
    let db = match open_db(path, true, false, cache) {
        Err(Error::NeedsRecovery { .. }) => open_db(path, false, false, cache)?.0,
        other => other?.0,
    };
    let txn = db.begin_read()?;
    if crate::error::contain("table meta", || read_meta(&txn, path))?.is_none() {
        return Err(Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: "no taskdb tables".into(),
        });
    }
    f(&txn)
}

/// Opens read-only and validates the meta table, without modifying the file.
fn probe(path: &Path) -> Result<()> {
    let ro = crate::error::catch_contained(|| Builder::new().open_read_only(path));
    let db = match ro {
        Ok(Ok(db)) => Db::ro(db),
        Ok(Err(e)) => return Err(map_open_error(path, e)),
        Err(_) => {
            return Err(Error::NotTaskDb {
                path: path.to_path_buf(),
                reason: "redb could not open it (corrupt file)".into(),
            })
        }
    };
    let txn = db.begin_read()?;
    let meta = crate::error::contain("table meta", || read_meta(&txn, path))?;
    if meta.is_none() && crate::error::contain("the table directory", || has_foreign_tables(&txn))?
    {
        return Err(Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: "a redb file without taskdb tables".into(),
        });
    }
    Ok(())
}

/// Values read from the `meta` table.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub format_version: u32,
    pub db_uuid: [u8; 16],
    pub generation: u64,
}

fn read_u64(b: &[u8], key: &str, path: &Path) -> Result<u64> {
    b.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: format!("meta key {key} malformed"),
        })
}

/// Reads and validates the meta table, of either format ([`v1`] for format 1). `Ok(None)`
/// means "no taskdb tables yet" (a fresh file).
pub(crate) fn read_meta(txn: &ReadTransaction, path: &Path) -> Result<Option<Meta>> {
    let t = match v1::MetaTable::open(txn) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => {
            return Err(Error::NotTaskDb {
                path: path.to_path_buf(),
                reason: format!("meta table unreadable: {e}"),
            })
        }
    };
    let get = |k: &str| t.get(k);
    let not = |reason: &str| Error::NotTaskDb {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    match get("magic")? {
        Some(m) if m == MAGIC => {}
        _ => return Err(not("missing taskdb magic")),
    }
    let fv = get("format_version")?.ok_or_else(|| not("missing format version"))?;
    let format_version = u32::from_le_bytes(
        fv.as_slice()
            .try_into()
            .map_err(|_| not("malformed format version"))?,
    );
    if format_version > FORMAT_VERSION || format_version == 0 {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            found: format_version,
            supported: FORMAT_VERSION,
        });
    }
    // The table types must be those of the recorded format.
    if (format_version == 1) != t.is_v1() {
        return Err(Error::Corrupt {
            what: "table meta".into(),
            detail: format!(
                "format version {format_version} recorded in a table of the other format's \
                 types: the file is damaged; restore it from a backup"
            ),
        });
    }
    let uuid = get("db_uuid")?.ok_or_else(|| not("missing db_uuid"))?;
    let db_uuid: [u8; 16] = uuid
        .as_slice()
        .try_into()
        .map_err(|_| not("malformed db_uuid"))?;
    let generation = read_u64(
        &get("generation")?.ok_or_else(|| not("missing generation"))?,
        "generation",
        path,
    )?;
    Ok(Some(Meta {
        format_version,
        db_uuid,
        generation,
    }))
}

/// Returns true if the file has any table at all (a redb file made by something else).
pub(crate) fn has_foreign_tables(txn: &ReadTransaction) -> Result<bool> {
    let mut it = txn
        .list_tables()
        .map_err(|e| Error::storage("listing tables", e))?;
    Ok(it.next().is_some())
}

/// Migrates a format-2 file to format 3 in one transaction: format 3 reads every record
/// format 2 wrote, so only the recorded version changes, and a `migrate` record is appended to
/// the write log. Records stay whole until `compact` cuts them into parts.
pub(crate) fn upgrade_from_2(db: &Database) -> Result<()> {
    const CTX: &str = "migrating the file to format 3";
    let txn = db.begin_write().map_err(tables::storage(CTX))?;
    {
        let mut m = tables::open_write(&txn, META)?;
        let w = tables::storage(CTX);
        m.insert(
            b"format_version".as_slice(),
            FORMAT_VERSION.to_le_bytes().as_slice(),
        )
        .map_err(&w)?;
        // Its whole records are cut into parts by the next `compact` (`parts::repack`).
        m.insert(parts::WHOLE_RECORDS, [1u8].as_slice())
            .map_err(&w)?;
    }
    let mut op = log::LogOp::new("migrate");
    op.detail = Some(format!(
        "format 2 -> {FORMAT_VERSION}: long vector records may be stored in parts (none \
         rewritten; `compact` cuts the whole ones)"
    ));
    log::append(&txn, op)?;
    txn.commit().map_err(tables::storage(CTX))
}

/// Creates the taskdb tables and meta in a fresh file.
pub(crate) fn init(db: &Database) -> Result<()> {
    let txn = db
        .begin_write()
        .map_err(|e| Error::storage("initialising the database", e))?;
    {
        let mut m = txn
            .open_table(META)
            .map_err(|e| Error::storage("initialising meta", e))?;
        let uuid: [u8; 16] = rand::random();
        let ins = |m: &mut redb::Table<&[u8], &[u8]>, k: &str, v: &[u8]| -> Result<()> {
            m.insert(k.as_bytes(), v)
                .map(|_| ())
                .map_err(|e| Error::storage("initialising meta", e))
        };
        ins(&mut m, "magic", MAGIC)?;
        ins(&mut m, "format_version", &FORMAT_VERSION.to_le_bytes())?;
        ins(&mut m, "db_uuid", &uuid)?;
        ins(&mut m, "generation", &0u64.to_le_bytes())?;
        ins(&mut m, "next_id", &1u64.to_le_bytes())?;
        ins(&mut m, "next_space_id", &1u32.to_le_bytes())?;
        ins(
            &mut m,
            "created_by",
            format!("taskdb {}", env!("CARGO_PKG_VERSION")).as_bytes(),
        )?;
    }
    for res in [
        txn.open_table(ENTRIES).map(|_| ()),
        txn.open_table(VECTORS).map(|_| ()),
        txn.open_table(NAMES).map(|_| ()),
        txn.open_table(NAME_SEQ).map(|_| ()),
        txn.open_table(SPACES).map(|_| ()),
        txn.open_table(SPACE_NAMES).map(|_| ()),
        txn.open_table(SPACE_GEN).map(|_| ()),
    ] {
        res.map_err(|e| Error::storage("creating tables", e))?;
    }
    log::append(&txn, log::LogOp::new("create"))?;
    txn.commit()
        .map_err(|e| Error::storage("initialising the database", e))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
