//! The files beside a database, and how taskdb writes files. One owner for both:
//!
//! * `<db>` — the redb file, the only source of truth;
//! * `<db>.index/` — persisted HNSW graphs, one manifest each (derived, checksummed, rebuilt
//!   when they disagree with the store; see `index/persist.rs`);
//! * `<db>.features` — the feature cache (derived, verified per record; see `features.rs`).
//!
//! Every file taskdb writes whole (graph manifests, the per-machine cache of frozen statistics,
//! exported reference libraries) goes through [`write_atomic`]: a temporary file in the same
//! directory, fsync, rename, fsync of the directory, so a crash leaves the old file or the new
//! one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory holding persisted graphs for the database at `db`.
pub fn index_dir(db: &Path) -> PathBuf {
    with_suffix(db, ".index")
}

/// The feature cache of the database at `db`.
pub fn feature_cache(db: &Path) -> PathBuf {
    with_suffix(db, ".features")
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database that a failed first write has just created, with its graphs. The feature
/// cache is kept on purpose: it is derived and verified, and it makes the retry skip the
/// encoding that the failed attempt already paid for.
pub fn remove_new_database(db: &Path) {
    let _ = std::fs::remove_file(db);
    let _ = std::fs::remove_dir_all(index_dir(db));
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A failed write leaves any existing file as it was. The file is
/// created readable by all (0644 on Unix), like any file a user asked for.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], for output that is produced as a stream: `fill` writes the file's
/// contents into a buffered writer; the file appears at `path` only if `fill` and the flush
/// succeed, and then whole.
pub fn write_atomic_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> std::io::Result<T> {
    write_via_temp(path, fill, false)
}

/// Like [`write_atomic_with`], but never replaces a file: when `path` exists (before, or by the
/// time the file is complete) the write fails with `AlreadyExists` and leaves it untouched.
/// The temporary file is removed on any failure (a full disk included).
pub fn write_new_atomic_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> std::io::Result<T> {
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the file exists",
        ));
    }
    write_via_temp(path, fill, true)
}

/// The one atomic write: a temporary file beside `path`, filled, flushed, made 0644, fsynced,
/// renamed into place (refusing an existing file when `no_clobber`), then the directory fsynced.
/// The temporary file is removed on any failure.
fn write_via_temp<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
    no_clobber: bool,
) -> std::io::Result<T> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let out = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let out = fill(&mut w)?;
        w.flush()?;
        out
    };
    #[cfg(unix)]
    {
        // NamedTempFile is created 0600.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    if no_clobber {
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    } else {
        tmp.persist(path).map_err(|e| e.error)?;
    }
    sync_dir(&dir)?;
    Ok(out)
}

/// [`write_new_atomic_with`] for a `fill` that fails with a taskdb error (kept as it is); an
/// existing `path` is [`crate::Error::InvalidInput`] saying that `what` (e.g. "a snapshot")
/// never replaces a file, and any other I/O failure is [`crate::Error::io`] on `path` (disk
/// full included). Nothing is left behind on failure.
pub(crate) fn write_new_file<T>(
    path: &Path,
    what: &str,
    fill: impl FnOnce(&mut dyn Write) -> crate::Result<T>,
) -> crate::Result<T> {
    let mut failure = None;
    let written = write_new_atomic_with(path, |w| {
        fill(w).map_err(|e| {
            failure = Some(e);
            std::io::Error::other("the content failed")
        })
    });
    match (written, failure) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(crate::Error::invalid(
                path.display().to_string(),
                format!(
                    "the file exists; {what} never replaces a file: choose a new path, or \
                     remove the old file first"
                ),
            ))
        }
        (Err(e), None) => Err(crate::Error::io(path, e)),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsyncs a directory, so a rename inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The sha256 (lower-case hex) and size of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_sit_beside_the_database() {
        let db = Path::new("/data/tasks.taskdb");
        assert_eq!(index_dir(db), Path::new("/data/tasks.taskdb.index"));
        assert_eq!(feature_cache(db), Path::new("/data/tasks.taskdb.features"));
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        let (sha, n) = sha256_file(&p).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A streamed write that fails part-way leaves the old file whole.
        let r = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            Err::<(), _>(std::io::Error::other("the producer failed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A write into a missing directory fails and creates nothing.
        assert!(write_atomic(&dir.path().join("no/such/f"), b"x").is_err());
        assert!(!dir.path().join("no").exists());
    }
}
