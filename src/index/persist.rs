//! Graph persistence: graphs are derived state, saved beside the database for fast open and
//! never trusted blindly.
//!
//! Layout in `<db>.index/`: `space-<id>.hnsw.graph`, `space-<id>.hnsw.data` (hnsw_rs dump) and
//! `space-<id>.manifest.json`. Saving dumps to temporary names, fsyncs, renames the two dump
//! files into place, then writes the manifest (temporary file, fsync, rename) last, and fsyncs
//! the directory. The manifest carries CRC32s and lengths of both files, the database uuid,
//! the space id, the space generation the graph reflects, the point count and a digest of the
//! (entry id, vector checksum) pairs in the graph. A graph is used only when all of these
//! match the store; otherwise it is rebuilt from redb. The check is in two halves: the
//! manifest and the files' lengths at open ([`check`]), the files' checksums just before
//! hnsw_rs loads them, on the graph's first use ([`Persisted::load`]).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use serde::{Deserialize, Serialize};

use super::Graph;
use crate::error::{Error, Result};
use crate::space::SpaceId;

const MANIFEST_FORMAT: u32 = 1;

/// What the store says the graph of a space must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect {
    pub db_uuid: String,
    pub space_id: SpaceId,
    pub generation: u64,
    pub count: u64,
    pub digest: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    db_uuid: String,
    space_id: SpaceId,
    generation: u64,
    count: u64,
    digest: u32,
    graph_crc32: u32,
    graph_len: u64,
    data_crc32: u32,
    data_len: u64,
}

fn base(space_id: SpaceId) -> String {
    format!("space-{space_id}")
}

pub(crate) fn manifest_path(dir: &Path, space_id: SpaceId) -> PathBuf {
    dir.join(format!("{}.manifest.json", base(space_id)))
}
pub(crate) fn graph_path(dir: &Path, space_id: SpaceId) -> PathBuf {
    dir.join(format!("{}.hnsw.graph", base(space_id)))
}
pub(crate) fn data_path(dir: &Path, space_id: SpaceId) -> PathBuf {
    dir.join(format!("{}.hnsw.data", base(space_id)))
}

/// Bytes hashed per rayon task by [`crc_file`].
const CRC_PIECE: u64 = 8 << 20;

/// CRC32 and length of a file: its pieces of [`CRC_PIECE`] bytes are read and hashed on
/// rayon's pool, and the pieces' CRCs combined in order (the CRC32 of the whole file, as one
/// pass would compute it). Graph files are hundreds of MB at 100k entries.
fn crc_file(path: &Path) -> std::io::Result<(u32, u64)> {
    use rayon::prelude::*;
    use std::io::{Seek, SeekFrom};
    let len = fs::metadata(path)?.len();
    let pieces: Vec<u64> = (0..len.div_ceil(CRC_PIECE)).collect();
    let hashes = pieces
        .par_iter()
        .map(|&i| {
            let at = i * CRC_PIECE;
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(at))?;
            let mut buf = vec![0u8; CRC_PIECE.min(len - at) as usize];
            f.read_exact(&mut buf)?;
            let mut h = crc32fast::Hasher::new();
            h.update(&buf);
            Ok(h)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut h = crc32fast::Hasher::new();
    for piece in &hashes {
        h.combine(piece);
    }
    Ok((h.finalize(), len))
}

fn fsync_path(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Saves `graph` atomically as the persisted graph of `expect.space_id`. On any failure (a
/// full disk above all) the temporary files it wrote are removed again, and the files of the
/// graph saved before, if any, are left as they were or replaced whole (the manifest is written
/// last, so a half-replaced pair fails its checksum and is rebuilt).
pub(crate) fn save(dir: &Path, graph: &Graph, expect: &Expect) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp_base = format!(
        "tmp-{}-{}-{nanos}",
        base(expect.space_id),
        std::process::id()
    );
    let mut tmps = Temporaries(Vec::new());
    let r = save_files(dir, graph, expect, &tmp_base, &mut tmps);
    drop(tmps);
    r.map_err(|e| match e {
        Error::DiskFull { path, source, .. } => Error::disk_full(
            path,
            format!("saving the graph of space {}", expect.space_id),
            source,
        ),
        e => e,
    })
}

/// Temporary files of one save, removed on drop (a renamed one is gone already).
struct Temporaries(Vec<PathBuf>);

impl Drop for Temporaries {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// The steps of [`save`]; every temporary file is listed in `tmps` before it is created.
fn save_files(
    dir: &Path,
    graph: &Graph,
    expect: &Expect,
    tmp_base: &str,
    tmps: &mut Temporaries,
) -> Result<()> {
    let dump_files = |b: &str| {
        [
            dir.join(format!("{b}.hnsw.graph")),
            dir.join(format!("{b}.hnsw.data")),
        ]
    };
    tmps.0.extend(dump_files(tmp_base));
    let written = graph.file_dump(dir, tmp_base).map_err(|e| {
        // hnsw_rs wraps the I/O error (a full disk) in anyhow; keep it when it is there.
        let io = e
            .chain()
            .find_map(|c| c.downcast_ref::<std::io::Error>())
            .map(|io| std::io::Error::new(io.kind(), io.to_string()));
        let io = io.unwrap_or_else(|| std::io::Error::other(e.to_string()));
        Error::io(dir.join(format!("{tmp_base}.hnsw.graph")), io)
    })?;
    let [tmp_graph, tmp_data] = dump_files(&written);
    tmps.0.extend([tmp_graph.clone(), tmp_data.clone()]);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(p, e)
    };
    fsync_path(&tmp_graph).map_err(io(&tmp_graph))?;
    fsync_path(&tmp_data).map_err(io(&tmp_data))?;
    let (graph_crc32, graph_len) = crc_file(&tmp_graph).map_err(io(&tmp_graph))?;
    let (data_crc32, data_len) = crc_file(&tmp_data).map_err(io(&tmp_data))?;
    let gp = graph_path(dir, expect.space_id);
    let dp = data_path(dir, expect.space_id);
    fs::rename(&tmp_graph, &gp).map_err(io(&gp))?;
    fs::rename(&tmp_data, &dp).map_err(io(&dp))?;
    let m = Manifest {
        format: MANIFEST_FORMAT,
        db_uuid: expect.db_uuid.clone(),
        space_id: expect.space_id,
        generation: expect.generation,
        count: expect.count,
        digest: expect.digest,
        graph_crc32,
        graph_len,
        data_crc32,
        data_len,
    };
    let mp = manifest_path(dir, expect.space_id);
    let json = serde_json::to_vec_pretty(&m)
        .map_err(|e| Error::Internal(format!("manifest encoding: {e}")))?;
    // The manifest last, atomically (its temporary file is removed on failure; the directory
    // is fsynced, which also makes the two renames above durable).
    crate::files::write_atomic(&mp, &json).map_err(io(&mp))
}

/// Why a persisted graph was not used.
pub(crate) type Reject = String;

/// A persisted graph whose manifest matches the store: what [`Persisted::load`] needs to
/// verify and load it later. Checking a manifest ([`check`]) reads a few hundred bytes and two
/// file lengths; loading reads and checksums every byte of both files, then deserialises
/// them (seconds at 100k entries: docs/PERFORMANCE.md §13).
#[derive(Debug, Clone)]
pub(crate) struct Persisted {
    dir: PathBuf,
    space_id: SpaceId,
    manifest: Manifest,
}

/// The cheap half of the verification, done at open: the manifest must match `expect`
/// exactly (database, space, generation, point count, digest of the points), and both files
/// must have the lengths it records. A missing, foreign, stale or truncated graph is refused
/// here; a damaged byte inside a file only by [`Persisted::load`].
pub(crate) fn check(dir: &Path, expect: &Expect) -> std::result::Result<Persisted, Reject> {
    let mp = manifest_path(dir, expect.space_id);
    let bytes = fs::read(&mp).map_err(|e| format!("manifest unreadable: {e}"))?;
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("manifest corrupt: {e}"))?;
    if m.format != MANIFEST_FORMAT {
        return Err(format!("manifest format {} unknown", m.format));
    }
    if m.db_uuid != expect.db_uuid || m.space_id != expect.space_id {
        return Err("graph belongs to another database or space".into());
    }
    if m.generation != expect.generation {
        return Err(format!(
            "stale: graph reflects generation {}, store is at {}",
            m.generation, expect.generation
        ));
    }
    if m.count != expect.count || m.digest != expect.digest {
        return Err("graph points differ from the store".into());
    }
    for (p, len) in [
        (graph_path(dir, expect.space_id), m.graph_len),
        (data_path(dir, expect.space_id), m.data_len),
    ] {
        let got = fs::metadata(&p)
            .map_err(|e| format!("graph file unreadable: {e}"))?
            .len();
        if got != len {
            return Err(format!(
                "graph files fail their checksum ({} is {got} bytes, the manifest says {len})",
                p.display()
            ));
        }
    }
    Ok(Persisted {
        dir: dir.to_path_buf(),
        space_id: expect.space_id,
        manifest: m,
    })
}

impl Persisted {
    /// The expensive half: both files checksummed against the manifest (before hnsw_rs reads
    /// a byte of them: its loader trusts its input), then loaded. Files changed since
    /// [`check`] are refused here like any other damage.
    pub fn load(&self) -> std::result::Result<Graph, Reject> {
        let (dir, m) = (&self.dir, &self.manifest);
        let gp = graph_path(dir, self.space_id);
        let dp = data_path(dir, self.space_id);
        let (gc, gl) = crc_file(&gp).map_err(|e| format!("graph file unreadable: {e}"))?;
        let (dc, dl) = crc_file(&dp).map_err(|e| format!("data file unreadable: {e}"))?;
        if (gc, gl) != (m.graph_crc32, m.graph_len) || (dc, dl) != (m.data_crc32, m.data_len) {
            return Err("graph files fail their checksum".into());
        }
        // hnsw_rs ties the graph's lifetime to its loader; the loader is a few bytes (no
        // mmap), so it is leaked to give the graph a 'static lifetime.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &base(self.space_id))));
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            #[allow(clippy::redundant_locals)]
            let io = { io };
            io.load_hnsw()
        }));
        let graph: Graph = match loaded {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(format!("hnsw_rs could not load it: {e}")),
            Err(_) => return Err("hnsw_rs panicked loading it".into()),
        };
        if graph.get_nb_point() as u64 != m.count {
            return Err("graph point count differs from the manifest".into());
        }
        Ok(graph)
    }
}

/// Removes persisted files of spaces not in `keep` and stale temporaries.
pub(crate) fn remove_space(dir: &Path, space_id: SpaceId) {
    for p in [
        manifest_path(dir, space_id),
        graph_path(dir, space_id),
        data_path(dir, space_id),
    ] {
        let _ = fs::remove_file(p);
    }
}

/// Removes leftover temporary files from interrupted saves.
pub(crate) fn clean_temporaries(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
