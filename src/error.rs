//! The one error type of the taskdb library.
//!
//! Every variant carries the context a user needs to act (file, line, entry, space) and maps to
//! a process exit code through [`Error::exit_code`], which the CLI uses verbatim. The library
//! never prints and never exits; it returns these.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes used by the `taskdb` binary (documented in `schema/cli-json.md`).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Internal error (a bug): please report it.
    pub const INTERNAL: i32 = 1;
    /// Command-line usage error (clap).
    pub const USAGE: i32 = 2;
    /// The named entry or space does not exist.
    pub const NOT_FOUND: i32 = 3;
    /// Invalid input: malformed JSONL, bad vector, bad name, wrong dimension, space mismatch.
    pub const INVALID_INPUT: i32 = 4;
    /// The database is locked by another process (or needs recovery by a writer).
    pub const LOCKED: i32 = 5;
    /// The file is not a taskdb database, or has a newer/unknown format version.
    pub const INCOMPATIBLE: i32 = 6;
    /// Corruption detected (redb integrity, vector checksum, index/store disagreement).
    pub const CORRUPT: i32 = 7;
    /// An I/O error (permissions, disk full, missing input file).
    pub const IO: i32 = 8;
    /// The surrogate could not run: ONNX Runtime or the model missing or broken, device unusable.
    pub const SURROGATE: i32 = 9;
    /// A model command failed: crashed, timed out, or broke the JSON-lines protocol.
    pub const MODEL: i32 = 10;
    /// The disk is full (ENOSPC) or the disk quota is spent (EDQUOT): nothing of the failed
    /// write was committed; free space and run the command again.
    pub const DISK_FULL: i32 = 11;
    /// A snapshot failed verification: damaged, truncated, edited, or not the root asked for.
    pub const SNAPSHOT_INVALID: i32 = 12;
}

/// Everything that can go wrong in taskdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a named path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file system holding `path` is full (ENOSPC) or the user's disk quota is spent
    /// (EDQUOT), whether redb, a graph file, the feature cache or any other file hit it. The
    /// write that failed committed nothing; `committed` says what earlier work stays (an import's
    /// earlier batches), `todo` what to do.
    #[error(
        "disk full: no space left on the file system holding {} ({source}) while {what}; {committed}. \
         {todo}",
        disk_full_path(path)
    )]
    DiskFull {
        /// The file being written (empty when the storage layer did not say, see
        /// [`Error::on_file`]).
        path: PathBuf,
        /// What taskdb was writing.
        what: String,
        /// What stays committed: "nothing of that write was committed" unless a caller knows
        /// more (see [`Error::with_committed`]).
        committed: String,
        /// What the user should do.
        todo: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the database open for writing (or, for a writer, open at all).
    #[error(
        "database {path} is locked by another process; wait for it to finish (only one writer, \
         and no reader while a writer runs) and retry"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },

    /// A read-only open found a database that was not closed cleanly.
    #[error(
        "database {path} was not closed cleanly and must be recovered by a writer first; \
         open it read-write once (e.g. `taskdb --db {path} check`)"
    )]
    NeedsRecovery {
        /// The database file.
        path: PathBuf,
    },

    /// The file exists but is not a taskdb database.
    #[error("{path} is not a taskdb database ({reason})")]
    NotTaskDb {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// The database has a format version this build does not understand.
    #[error(
        "{path} has taskdb format version {found}, but this build supports up to version \
         {supported}; upgrade taskdb"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A write was attempted on a database opened read-only.
    #[error("database {path} is open read-only; {op} needs a writable open")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// The refused operation.
        op: &'static str,
    },

    /// Invalid user input. `context` says where (e.g. `line 12`, `entry "foo"`).
    #[error("{context}: {message}")]
    InvalidInput {
        /// Where the problem is.
        context: String,
        /// What is wrong and, where possible, what to do.
        message: String,
    },

    /// A named entry, version or space does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `entry "foo@3"`.
        what: String,
    },

    /// A query mixed vectors of different spaces (or asked for a method an entry lacks).
    #[error("{0}")]
    SpaceMismatch(String),

    /// A snapshot failed verification (see `schema/SNAPSHOT.md`): `what` names the entry,
    /// space or section that failed.
    #[error("snapshot {path} failed verification: {what}: {detail}")]
    SnapshotInvalid {
        /// The snapshot file.
        path: PathBuf,
        /// The entry, space or section that failed (e.g. `entry 57 of 200 (sst2@1)`).
        what: String,
        /// What is wrong, and what to do.
        detail: String,
    },

    /// Stored data failed verification.
    #[error("corruption in {what}: {detail}")]
    Corrupt {
        /// What was being read (e.g. `vector of entry 12, method "m"`).
        what: String,
        /// What failed.
        detail: String,
    },

    /// An error reported by the storage layer (redb) while doing `context`.
    #[error("storage error while {context}: {message}")]
    Storage {
        /// What taskdb was doing.
        context: String,
        /// redb's message.
        message: String,
    },

    /// The surrogate runtime failed (ONNX Runtime discovery, model, tokenizer, device, input).
    #[error(transparent)]
    Surrogate(#[from] taskdb_surrogate::Error),

    /// A dataset, probe set, prediction file or model command was unusable.
    #[error(transparent)]
    Source(#[from] taskdb_sources::Error),

    /// The feature cache (derived state) could not be used.
    #[error(
        "feature cache {path}: {message} (the cache is derived state: deleting the file is safe)"
    )]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What failed.
        message: String,
    },

    /// An internal invariant failed: a bug in taskdb.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

thread_local! {
    static CONTAINED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Panics of the storage layer caught by [`catch_contained`] in this process (read by the
/// reliability tests through `taskdb::testing::contained_panics`).
static CONTAINED_PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many panics of the storage layer this process has contained so far.
pub(crate) fn contained_panics() -> u64 {
    CONTAINED_PANICS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether the current thread is inside a taskdb storage read or write that turns a panic of
/// the storage layer into [`Error::Corrupt`] (redb unwraps the UTF-8 decoding of text keys
/// and values, so a damaged byte in one panics). A host program's panic hook may stay quiet
/// then: the panic's message is in the error that follows.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(|c| c.get() > 0)
}

/// Runs `f`, an access to `what` (e.g. `table spaces`), turning a panic into
/// [`Error::Corrupt`] naming it.
pub(crate) fn contain<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    contain_at(|| what.to_string(), f)
}

/// Runs `f` with a panic of the storage layer caught and marked as contained (see
/// [`panic_is_contained`]: a host's panic hook stays quiet for it); returns the panic's
/// message when there was one.
pub(crate) fn catch_contained<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    CONTAINED.with(|c| c.set(c.get() + 1));
    let depth = Depth;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    drop(depth);
    if r.is_err() {
        CONTAINED_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into())
    })
}

/// [`contain`], with `what` computed after a panic (so that it can say how far `f` got).
pub(crate) fn contain_at<T>(
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    catch_contained(f).unwrap_or_else(|msg| {
        Err(Error::Corrupt {
            what: what(),
            detail: format!(
                "the storage layer failed reading it ({msg}): the database file is damaged \
                 there; restore it from a backup, or import or ingest the entries again into \
                 a new database (where the database still opens, `taskdb check` lists the \
                 damage it finds)"
            ),
        })
    })
}

impl Error {
    /// The process exit code the CLI uses for this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } => exit::IO,
            Error::DiskFull { .. } => exit::DISK_FULL,
            Error::Locked { .. } | Error::NeedsRecovery { .. } => exit::LOCKED,
            Error::NotTaskDb { .. } | Error::UnsupportedFormat { .. } => exit::INCOMPATIBLE,
            Error::ReadOnly { .. } => exit::INTERNAL,
            Error::InvalidInput { .. } | Error::SpaceMismatch(_) => exit::INVALID_INPUT,
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::Corrupt { .. } => exit::CORRUPT,
            Error::SnapshotInvalid { .. } => exit::SNAPSHOT_INVALID,
            Error::Storage { .. } => exit::CORRUPT,
            Error::Internal(_) => exit::INTERNAL,
            Error::Surrogate(e) => match e {
                taskdb_surrogate::Error::Input { .. } => exit::INVALID_INPUT,
                taskdb_surrogate::Error::Io { .. } => exit::IO,
                _ => exit::SURROGATE,
            },
            Error::Source(e) => {
                use taskdb_sources::Error as S;
                match e {
                    S::Io { .. } => exit::IO,
                    S::Spawn { .. }
                    | S::ChildFailed { .. }
                    | S::Timeout { .. }
                    | S::TooFewLines { .. }
                    | S::UnknownId { .. }
                    | S::DuplicateId { .. }
                    | S::NotJson { .. }
                    | S::BadPrediction { .. } => exit::MODEL,
                    _ => exit::INVALID_INPUT,
                }
            }
            Error::Cache { .. } => exit::IO,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            context: context.into(),
            message: message.into(),
        }
    }

    /// An error of the storage layer (redb) while doing `context`: [`Error::DiskFull`] when an
    /// I/O error in it says the disk is full (its path is filled in by [`Error::on_file`] where
    /// the caller knows the file), else [`Error::Storage`].
    pub(crate) fn storage(context: impl Into<String>, e: impl Into<redb::Error>) -> Self {
        let e: redb::Error = e.into();
        let context = context.into();
        match redb_disk_full(e) {
            Ok(io) => Error::disk_full(PathBuf::new(), context, io),
            Err(e) => Error::Storage {
                context,
                message: e.to_string(),
            },
        }
    }

    /// An I/O error on `path`: [`Error::DiskFull`] when it says the disk is full (ENOSPC,
    /// EDQUOT), else [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            return Error::disk_full(path, "writing it", source);
        }
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// [`Error::DiskFull`] for `path`, saying nothing of the write was committed.
    pub(crate) fn disk_full(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Error::DiskFull {
            path: path.into(),
            what: what.into(),
            committed: "nothing of that write was committed".into(),
            todo: "Free space on that file system (or raise the disk quota) and run the command \
                   again."
                .into(),
            source,
        }
    }

    /// Names the file of an [`Error::DiskFull`] that the storage layer left unnamed; other
    /// errors are returned as they are.
    pub(crate) fn on_file(mut self, file: &std::path::Path) -> Self {
        if let Error::DiskFull { path, .. } = &mut self {
            if path.as_os_str().is_empty() {
                *path = file.to_path_buf();
            }
        }
        self
    }

    /// Says what stays committed, and what to do, in an [`Error::DiskFull`] (an import's earlier
    /// batches); other errors are returned as they are.
    pub(crate) fn with_committed(mut self, stays: String, then: String) -> Self {
        if let Error::DiskFull {
            committed, todo, ..
        } = &mut self
        {
            *committed = format!("{committed}; {stays}");
            *todo = then;
        }
        self
    }

    /// Whether this is [`Error::DiskFull`].
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull { .. })
    }
}

fn disk_full_path(p: &std::path::Path) -> String {
    if p.as_os_str().is_empty() {
        "the database".into()
    } else {
        p.display().to_string()
    }
}

/// Whether an I/O error says the disk is full: kind `StorageFull` (ENOSPC) or `QuotaExceeded`
/// (EDQUOT), or those OS codes, looking through errors wrapped inside it (`io::Error::other`).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) {
        return true;
    }
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        return true;
    }
    let mut inner: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(x) = inner {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return is_disk_full(io);
        }
        inner = x.source();
    }
    false
}

/// The I/O error of a redb error when it says the disk is full; otherwise the error back.
pub(crate) fn redb_disk_full(e: redb::Error) -> std::result::Result<std::io::Error, redb::Error> {
    match e {
        redb::Error::Io(io) if is_disk_full(&io) => Ok(io),
        redb::Error::Backend(b) => {
            let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(&*b);
            while let Some(x) = inner {
                if let Some(io) = x.downcast_ref::<std::io::Error>() {
                    if is_disk_full(io) {
                        return Ok(std::io::Error::new(io.kind(), io.to_string()));
                    }
                }
                inner = x.source();
            }
            Err(redb::Error::Backend(b))
        }
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, ErrorKind};

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOSPC)
    }

    #[test]
    fn full_disks_and_spent_quotas_are_disk_full_and_nothing_else_is() {
        assert!(is_disk_full(&enospc()));
        assert!(is_disk_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(is_disk_full(&io::Error::from(ErrorKind::StorageFull)));
        assert!(is_disk_full(&io::Error::from(ErrorKind::QuotaExceeded)));
        // Wrapped inside another I/O error (`io::Error::other`, a tempfile or BufWriter error).
        assert!(is_disk_full(&io::Error::other(enospc())));
        for other in [
            io::Error::from_raw_os_error(libc::EIO),
            io::Error::from_raw_os_error(libc::EROFS),
            io::Error::from_raw_os_error(libc::EFBIG),
            io::Error::from(ErrorKind::PermissionDenied),
            io::Error::other("no space left on device"),
        ] {
            assert!(!is_disk_full(&other), "{other}");
        }
    }

    #[test]
    fn io_errors_of_a_full_disk_become_disk_full_with_exit_11() {
        let e = Error::io("/data/t.taskdb.index/x", enospc());
        assert!(e.is_disk_full());
        assert_eq!(e.exit_code(), exit::DISK_FULL);
        assert_eq!(exit::DISK_FULL, 11);
        let msg = e.to_string();
        for part in [
            "disk full",
            "/data/t.taskdb.index/x",
            "nothing of that write was committed",
            "Free space",
            "run the command again",
        ] {
            assert!(msg.contains(part), "{part:?} missing: {msg}");
        }
        let e = Error::io("/x", io::Error::from(ErrorKind::PermissionDenied));
        assert_eq!(e.exit_code(), exit::IO);
    }

    #[test]
    fn redb_errors_of_a_full_disk_become_disk_full_whatever_wraps_them() {
        let storage = || redb::StorageError::Io(enospc());
        let cases: Vec<(&str, Error)> = vec![
            ("storage", Error::storage("writing", storage())),
            (
                "commit",
                Error::storage("committing", redb::CommitError::Storage(storage())),
            ),
            (
                "transaction",
                Error::storage("starting", redb::TransactionError::Storage(storage())),
            ),
            (
                "table",
                Error::storage("opening", redb::TableError::Storage(storage())),
            ),
            (
                "database",
                Error::storage("opening", redb::DatabaseError::Storage(storage())),
            ),
            (
                "compaction",
                Error::storage("compacting", redb::CompactionError::Storage(storage())),
            ),
            (
                "backend",
                Error::storage(
                    "writing",
                    redb::StorageError::Backend(Box::new(io::Error::other(enospc()))),
                ),
            ),
        ];
        for (what, e) in cases {
            assert!(e.is_disk_full(), "{what}: {e:?}");
            assert_eq!(e.exit_code(), 11, "{what}");
            // The file is named once the caller knows it.
            let e = e.on_file(std::path::Path::new("/data/t.taskdb"));
            assert!(e.to_string().contains("/data/t.taskdb"), "{what}: {e}");
        }
        // Anything else from redb stays a storage error (exit 7), with redb's message.
        let e = Error::storage(
            "committing",
            redb::StorageError::Corrupted("bad page".into()),
        );
        assert!(matches!(e, Error::Storage { .. }), "{e:?}");
        assert!(e.to_string().contains("bad page"), "{e}");
        assert_eq!(e.exit_code(), exit::CORRUPT);
        let e = Error::storage(
            "committing",
            redb::StorageError::Io(io::Error::from_raw_os_error(libc::EIO)),
        );
        assert_eq!(e.exit_code(), exit::CORRUPT);
        // A name given already is kept; other errors pass through on_file unchanged.
        let e = Error::io("/a", enospc()).on_file(std::path::Path::new("/b"));
        assert!(
            e.to_string().contains("/a") && !e.to_string().contains("/b"),
            "{e}"
        );
        assert!(matches!(
            Error::invalid("x", "y").on_file(std::path::Path::new("/b")),
            Error::InvalidInput { .. }
        ));
    }

    #[test]
    fn what_stayed_committed_is_added_to_a_disk_full_error_only() {
        let e = Error::storage("committing", redb::StorageError::Io(enospc()))
            .on_file(std::path::Path::new("/d/t.taskdb"))
            .with_committed("2 batches stay".into(), "Run it with --resume.".into());
        let msg = e.to_string();
        assert!(
            msg.contains("nothing of that write was committed; 2 batches stay"),
            "{msg}"
        );
        assert!(msg.ends_with("Run it with --resume."), "{msg}");
        let e = Error::invalid("x", "y").with_committed("z".into(), "w".into());
        assert_eq!(e.to_string(), "x: y");
    }
}
