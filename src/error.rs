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

/// [`contain`], with `what` computed after a panic (so that it can say how far `f` got).
pub(crate) fn contain_at<T>(
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
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
    r.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
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
            Error::Locked { .. } | Error::NeedsRecovery { .. } => exit::LOCKED,
            Error::NotTaskDb { .. } | Error::UnsupportedFormat { .. } => exit::INCOMPATIBLE,
            Error::ReadOnly { .. } => exit::INTERNAL,
            Error::InvalidInput { .. } | Error::SpaceMismatch(_) => exit::INVALID_INPUT,
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::Corrupt { .. } => exit::CORRUPT,
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

    pub(crate) fn storage(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Storage {
            context: context.into(),
            message: e.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
