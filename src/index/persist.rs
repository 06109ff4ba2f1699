//! Graph persistence: graphs are derived state, saved beside the database for fast open and
//! never trusted blindly.
//!
//! Layout in `<db>.index/`: `space-<id>.graph` and `space-<id>.manifest.json`. The file is
//! taskdb's own format: for a dense space the graph's structure, [`Links`] ([`encode`]); for a
//! matrix space its packed sketch rows, which are its whole index ([`sketch_file`]; a
//! file saved before docs/PERFORMANCE.md §29 holds an hnsw_rs graph over f32 sketches
//! instead, still read, and converted to rows on load). A dense space's file
//! holds no vector: its rows' vectors are the stored ones, read from redb (checksums
//! verified) when the graph is loaded, so the file can never disagree with the store about
//! a vector, and the disk holds each vector once. Saving writes the file under a temporary
//! name, fsyncs it, renames it into place, then writes the manifest (temporary file, fsync,
//! rename) last, and fsyncs the directory. The manifest carries the file's CRC32 and length,
//! the database uuid, the space id, the space generation the graph reflects, the point count
//! and a digest of the (entry id, vector checksum) pairs in the graph. A graph is used only
//! when all of these match the store; otherwise it is rebuilt from redb. The check is in two
//! halves: the manifest and the file's length at open ([`check`]), the file's checksum and
//! structure on the graph's first use ([`Persisted::load`]).
//!
//! Format 1 (taskdb ≤ issue 14's first half) was hnsw_rs's own dump, two files
//! (`.hnsw.graph`, `.hnsw.data`, the latter a second copy of every vector). Its manifests are
//! refused as "saved in an older format": the graph is rebuilt from the store once and saved
//! in this format, and the old files are removed.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::flat::FlatSketches;
use super::links::Links;
use super::sketch_file;
use crate::embedding::EntryId;
use crate::error::{Error, Result};
use crate::space::SpaceId;

const MANIFEST_FORMAT: u32 = 2;

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
    file_crc32: u32,
    file_len: u64,
}

fn base(space_id: SpaceId) -> String {
    format!("space-{space_id}")
}

pub(crate) fn manifest_path(dir: &Path, space_id: SpaceId) -> PathBuf {
    dir.join(format!("{}.manifest.json", base(space_id)))
}
pub(crate) fn graph_path(dir: &Path, space_id: SpaceId) -> PathBuf {
    dir.join(format!("{}.graph", base(space_id)))
}
/// Format 1's two files (hnsw_rs's dump), removed when a graph is saved or dropped.
fn old_paths(dir: &Path, space_id: SpaceId) -> [PathBuf; 2] {
    let b = base(space_id);
    [
        dir.join(format!("{b}.hnsw.graph")),
        dir.join(format!("{b}.hnsw.data")),
    ]
}

/// What an index file holds: a graph, or a matrix space's sketch rows.
pub(crate) enum SavedIndex<'a> {
    Graph(Saved),
    Sketches(&'a FlatSketches),
}

/// An index file read back ([`SavedIndex`]'s counterpart).
#[derive(Debug)]
pub(crate) enum LoadedIndex {
    Graph(Loaded),
    Sketches(FlatSketches),
}

impl LoadedIndex {
    /// The entries it holds.
    pub fn len(&self) -> usize {
        match self {
            LoadedIndex::Graph(l) => l.links.len(),
            LoadedIndex::Sketches(f) => f.ids().len(),
        }
    }
}

/// What a graph file holds: the structure, and the graph's own vectors (`dim` floats a row)
/// where the store cannot give them back (matrix spaces' files before §29; still written by
/// the tests that check those files are read).
pub(crate) struct Saved {
    pub links: Links,
    /// Row-major, `links.len() × dim` (matrix spaces' sketches), or `None` (dense spaces).
    pub vectors: Option<(usize, Vec<f32>)>,
}

/// Saves a graph atomically as the persisted graph of `expect.space_id`. On any failure (a
/// full disk above all) the temporary file it wrote is removed again, and the graph saved
/// before, if any, is left as it was or replaced whole (the manifest is written last, so a
/// file replaced without its manifest fails its checksum and is rebuilt).
pub(crate) fn save(dir: &Path, saved: &SavedIndex, expect: &Expect) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        "tmp-{}-{}-{nanos}.graph",
        base(expect.space_id),
        std::process::id()
    ));
    let r = save_files(dir, saved, expect, &tmp);
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.map_err(|e| match e {
        Error::DiskFull { path, source, .. } => Error::disk_full(
            path,
            format!("saving the graph of space {}", expect.space_id),
            source,
        ),
        e => e,
    })
}

/// The steps of [`save`].
fn save_files(dir: &Path, saved: &SavedIndex, expect: &Expect, tmp: &Path) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(p, e)
    };
    let bytes = match saved {
        SavedIndex::Graph(g) => encode(g)?,
        SavedIndex::Sketches(f) => sketch_file::encode(f),
    };
    let mut f = File::create(tmp).map_err(io(tmp))?;
    f.write_all(&bytes).map_err(io(tmp))?;
    f.sync_all().map_err(io(tmp))?;
    drop(f);
    let gp = graph_path(dir, expect.space_id);
    fs::rename(tmp, &gp).map_err(io(&gp))?;
    let m = Manifest {
        format: MANIFEST_FORMAT,
        db_uuid: expect.db_uuid.clone(),
        space_id: expect.space_id,
        generation: expect.generation,
        count: expect.count,
        digest: expect.digest,
        file_crc32: crc32fast::hash(&bytes),
        file_len: bytes.len() as u64,
    };
    let mp = manifest_path(dir, expect.space_id);
    let json = serde_json::to_vec_pretty(&m)
        .map_err(|e| Error::Internal(format!("manifest encoding: {e}")))?;
    // The manifest last, atomically (its temporary file is removed on failure; the directory
    // is fsynced, which also makes the rename above durable).
    crate::files::write_atomic(&mp, &json).map_err(io(&mp))?;
    for old in old_paths(dir, expect.space_id) {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// The first 16 bytes of a graph file.
const MAGIC: &[u8; 16] = b"taskdb-graph-v2\n";

/// A graph file (all integers little-endian): [`MAGIC`]; rows `n` (u64); vector width `dim`
/// (u32, 0 without vectors); `M`, `ef_construction` (u32 each); entry row (u32, `u32::MAX`
/// for none) and its layer (u8); 1 when vectors follow, else 0 (u8); two zero bytes; then the
/// rows' entry ids (n × u64), top layers (n × u8), layer 0's offsets ((n + 1) × u32, none
/// when n is 0), its neighbour count (u64) and neighbours (u32 each); the upper lists' count
/// (u64), each as layer (u8), row (u32), length (u32) and rows (u32 each), in (layer, row)
/// order; and the vectors (n × dim × f32) when there are.
fn encode(saved: &Saved) -> Result<Vec<u8>> {
    let l = &saved.links;
    let n = l.len();
    let (dim, vecs) = match &saved.vectors {
        Some((d, v)) => (*d, v.as_slice()),
        None => (0, &[][..]),
    };
    if saved.vectors.is_some() && (dim == 0 || vecs.len() != n * dim) {
        return Err(Error::Internal(format!(
            "graph file: {} floats for {n} rows of width {dim}",
            vecs.len()
        )));
    }
    let u32_of = |x: usize, what: &str| {
        u32::try_from(x).map_err(|_| Error::Internal(format!("graph file: {what} {x} too large")))
    };
    let mut upper: Vec<(&(u8, u32), &Vec<u32>)> = l.upper.iter().collect();
    upper.sort_unstable_by_key(|(k, _)| **k);
    let mut b = Vec::with_capacity(64 + n * 13 + l.nbrs.len() * 4 + vecs.len() * 4);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(n as u64).to_le_bytes());
    b.extend_from_slice(&u32_of(dim, "width")?.to_le_bytes());
    b.extend_from_slice(&u32_of(l.m, "M")?.to_le_bytes());
    b.extend_from_slice(&u32_of(l.ef_construction, "ef_construction")?.to_le_bytes());
    let (er, el) = l.entry.unwrap_or((u32::MAX, 0));
    b.extend_from_slice(&er.to_le_bytes());
    b.extend_from_slice(&[el, u8::from(saved.vectors.is_some()), 0, 0]);
    for id in &l.ids {
        b.extend_from_slice(&id.to_le_bytes());
    }
    b.extend_from_slice(&l.levels);
    for x in &l.start {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&(l.nbrs.len() as u64).to_le_bytes());
    for x in &l.nbrs {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.extend_from_slice(&(upper.len() as u64).to_le_bytes());
    for (&(layer, r), list) in upper {
        b.push(layer);
        b.extend_from_slice(&r.to_le_bytes());
        b.extend_from_slice(&u32_of(list.len(), "list length")?.to_le_bytes());
        for x in list {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    for x in vecs {
        b.extend_from_slice(&x.to_le_bytes());
    }
    Ok(b)
}

/// An index file's bytes, by their magic: a sketch file or a graph file.
fn decode_index(bytes: &[u8]) -> std::result::Result<LoadedIndex, Reject> {
    match bytes.starts_with(sketch_file::MAGIC) {
        true => sketch_file::decode(bytes).map(LoadedIndex::Sketches),
        false => decode(bytes).map(LoadedIndex::Graph),
    }
}

/// A graph file read back: its structure, and its vectors (row-major) when it has them.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub links: Links,
    pub vectors: Option<(usize, Vec<f32>)>,
}

/// A reader of a graph file's bytes: every read checked against what is left.
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);
impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Reject> {
        if n > self.0.len() {
            return Err("graph file is shorter than its header says".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(super) fn u8(&mut self) -> std::result::Result<u8, Reject> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> std::result::Result<u32, Reject> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn u64(&mut self) -> std::result::Result<u64, Reject> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// A count of items of `size` bytes each, refused when they cannot all be there.
    pub(super) fn count(&mut self, n: u64, size: usize) -> std::result::Result<usize, Reject> {
        match usize::try_from(n)
            .ok()
            .filter(|&n| n.saturating_mul(size) <= self.0.len())
        {
            Some(n) => Ok(n),
            None => Err("graph file is shorter than its header says".into()),
        }
    }
    /// `n` u64s.
    pub(super) fn u64s(&mut self, n: usize) -> std::result::Result<Vec<u64>, Reject> {
        let n = self.count(n as u64, 8)?;
        Ok(self
            .take(n * 8)?
            .chunks_exact(8)
            .map(|x| {
                let mut a = [0u8; 8];
                a.copy_from_slice(x);
                u64::from_le_bytes(a)
            })
            .collect())
    }
    /// `n` f32s.
    pub(super) fn f32s(&mut self, n: usize) -> std::result::Result<Vec<f32>, Reject> {
        let n = self.count(n as u64, 4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect())
    }
    fn u32s(&mut self, n: usize) -> std::result::Result<Vec<u32>, Reject> {
        let n = self.count(n as u64, 4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Reads a graph file's bytes ([`encode`]'s format); every length is checked against what is
/// left, and the structure by [`Links::validate`], so damaged bytes are an error, never a
/// panic or a wild allocation.
fn decode(bytes: &[u8]) -> std::result::Result<Loaded, Reject> {
    let mut c = Cursor(bytes);
    if c.take(MAGIC.len())? != MAGIC {
        return Err("not a taskdb graph file (bad magic)".into());
    }
    let n64 = c.u64()?;
    let dim = c.u32()? as usize;
    let m = c.u32()? as usize;
    let ef_construction = c.u32()? as usize;
    let er = c.u32()?;
    let el = c.u8()?;
    let has_vectors = match c.u8()? {
        0 => false,
        1 => true,
        x => return Err(format!("graph file: vectors flag {x}")),
    };
    c.take(2)?;
    let n = c.count(n64, 13)?;
    let ids: Vec<EntryId> = c.u64s(n)?;
    let levels = c.take(n)?.to_vec();
    let start = match n {
        0 => Vec::new(),
        _ => c.u32s(n + 1)?,
    };
    let nn = c.u64()?;
    let nn = c.count(nn, 4)?;
    let nbrs = c.u32s(nn)?;
    let nu = c.u64()?;
    let nu = c.count(nu, 9)?;
    let mut upper = std::collections::HashMap::with_capacity(nu);
    for _ in 0..nu {
        let layer = c.u8()?;
        let r = c.u32()?;
        let len = c.u32()? as usize;
        if upper.insert((layer, r), c.u32s(len)?).is_some() {
            return Err(format!("graph file: two lists of row {r} in layer {layer}"));
        }
    }
    let vectors = match has_vectors {
        false => None,
        true => {
            let floats = c.count((n as u64).saturating_mul(dim as u64), 4)?;
            if dim == 0 {
                return Err("graph file: vectors of width 0".into());
            }
            Some((dim, c.f32s(floats)?))
        }
    };
    if !c.0.is_empty() {
        return Err(format!("graph file: {} bytes after its end", c.0.len()));
    }
    let links = Links {
        ids,
        levels,
        start,
        nbrs,
        upper,
        entry: (er != u32::MAX).then_some((er, el)),
        m,
        ef_construction,
    };
    links.validate().map_err(|e| format!("graph file: {e}"))?;
    if let Some(id) = repeated(&links.ids) {
        return Err(format!("graph file: entry {id} twice"));
    }
    Ok(Loaded { links, vectors })
}

/// An entry id that occurs twice in `ids`, if any.
pub(super) fn repeated(ids: &[EntryId]) -> Option<EntryId> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().copied().find(|&id| !seen.insert(id))
}

/// Why a persisted graph was not used.
pub(crate) type Reject = String;

/// A persisted graph whose manifest matches the store: what [`Persisted::load`] needs to
/// verify and load it later. Checking a manifest ([`check`]) reads a few hundred bytes and a
/// file length; loading reads and checksums the file, then decodes it.
#[derive(Debug, Clone)]
pub(crate) struct Persisted {
    dir: PathBuf,
    space_id: SpaceId,
    manifest: Manifest,
}

/// The cheap half of the verification, done at open: the manifest must match `expect`
/// exactly (database, space, generation, point count, digest of the points), and the file
/// must have the length it records. A missing, foreign, stale or truncated graph is refused
/// here; a damaged byte inside the file only by [`Persisted::load`].
pub(crate) fn check(dir: &Path, expect: &Expect) -> std::result::Result<Persisted, Reject> {
    let mp = manifest_path(dir, expect.space_id);
    let bytes = fs::read(&mp).map_err(|e| format!("manifest unreadable: {e}"))?;
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let f: Format = serde_json::from_slice(&bytes).map_err(|e| format!("manifest corrupt: {e}"))?;
    if f.format == 1 {
        return Err("graph saved in an older format (hnsw_rs's dump, manifest format 1)".into());
    }
    if f.format != MANIFEST_FORMAT {
        return Err(format!("manifest format {} unknown", f.format));
    }
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("manifest corrupt: {e}"))?;
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
    let p = graph_path(dir, expect.space_id);
    let got = fs::metadata(&p)
        .map_err(|e| format!("graph file unreadable: {e}"))?
        .len();
    if got != m.file_len {
        return Err(format!(
            "graph file fails its checksum ({} is {got} bytes, the manifest says {})",
            p.display(),
            m.file_len
        ));
    }
    Ok(Persisted {
        dir: dir.to_path_buf(),
        space_id: expect.space_id,
        manifest: m,
    })
}

impl Persisted {
    /// The expensive half: the file read, checksummed against the manifest, and decoded
    /// (its structure validated). A file changed since [`check`] is refused here like any
    /// other damage.
    pub fn load(&self) -> std::result::Result<LoadedIndex, Reject> {
        let m = &self.manifest;
        let p = graph_path(&self.dir, self.space_id);
        let bytes = fs::read(&p).map_err(|e| format!("graph file unreadable: {e}"))?;
        if (crc32fast::hash(&bytes), bytes.len() as u64) != (m.file_crc32, m.file_len) {
            return Err("graph file fails its checksum".into());
        }
        let loaded = decode_index(&bytes)?;
        if loaded.len() as u64 != m.count {
            return Err("graph point count differs from the manifest".into());
        }
        Ok(loaded)
    }
}

/// Removes the persisted files of a space (either format).
pub(crate) fn remove_space(dir: &Path, space_id: SpaceId) {
    let [a, b] = old_paths(dir, space_id);
    for p in [
        manifest_path(dir, space_id),
        graph_path(dir, space_id),
        a,
        b,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::{new_graph, IndexParams};

    fn links(n: usize) -> (Links, Vec<f32>) {
        let g = new_graph(&IndexParams::default(), n);
        let vecs: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let v: Vec<f32> = (0..6)
                    .map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0)
                    .collect();
                crate::unit::unit(&v).unwrap_or_else(|| vec![1.0; 6])
            })
            .collect();
        let refs: Vec<(&Vec<f32>, usize)> = vecs.iter().zip(10..).collect();
        g.parallel_insert(&refs);
        let l = Links::of(&g).unwrap();
        let pi = g.get_point_indexation();
        let flat: Vec<f32> = pi.into_iter().flat_map(|p| p.get_v().to_vec()).collect();
        (l, flat)
    }

    /// Asserts that `refused` holds for every proper prefix of `bytes` and for `bytes` with
    /// one more byte.
    pub(crate) fn refuses_every_cut_and_a_longer_file(
        bytes: &[u8],
        refused: impl Fn(&[u8]) -> bool,
    ) {
        for cut in 0..bytes.len() {
            assert!(refused(&bytes[..cut]), "cut at {cut} read");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(refused(&longer), "a file one byte longer read");
    }

    /// `n` copies of `bytes`, each with one bit flipped at a place drawn from `seed`.
    pub(crate) fn bit_flips(
        bytes: &[u8],
        seed: u64,
        n: usize,
    ) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut s = seed;
        (0..n).map(move |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mut b = bytes.to_vec();
            let at = (s % b.len() as u64) as usize;
            b[at] ^= 1 << ((s >> 40) % 8);
            b
        })
    }

    #[test]
    fn a_graph_file_reads_back_as_written_with_and_without_vectors() {
        let (l, v) = links(400);
        for vectors in [None, Some((6, v))] {
            let saved = Saved {
                links: l.clone(),
                vectors,
            };
            let back = decode(&encode(&saved).unwrap()).unwrap();
            assert_eq!(back.links, l);
            assert_eq!(back.vectors, saved.vectors);
        }
        let empty = encode(&Saved {
            links: Links::default(),
            vectors: None,
        })
        .unwrap();
        assert_eq!(decode(&empty).unwrap().links, Links::default());
    }

    /// Every truncation and many single-byte changes of a file are refused with a reason
    /// (or, where a change keeps the file well-formed, read as some valid structure): never
    /// a panic, never an allocation the file's length does not back. The manifest's CRC
    /// refuses such files before `decode` sees them; this is the second line.
    #[test]
    fn a_damaged_graph_file_is_refused_not_trusted() {
        let (l, v) = links(120);
        let bytes = encode(&Saved {
            links: l,
            vectors: Some((6, v)),
        })
        .unwrap();
        refuses_every_cut_and_a_longer_file(&bytes, |b| decode(b).is_err());
        for b in bit_flips(&bytes, 7, 3000) {
            if let Ok(back) = decode(&b) {
                back.links.validate().unwrap();
            }
        }
        // Counts that claim more than the file holds.
        let mut huge = bytes.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }

    /// A matrix space's graph file from before its sketch file (an hnsw_rs graph over the f32
    /// sketches) becomes the rows a build would have made, marked to be saved again as a
    /// sketch file.
    #[test]
    fn an_older_matrix_graph_file_is_read_as_its_sketch_rows() {
        let (l, v) = links(200);
        let bytes = encode(&Saved {
            links: l.clone(),
            vectors: Some((6, v.clone())),
        })
        .unwrap();
        let loaded = decode_index(&bytes).unwrap();
        let mut no_store = |_: EntryId| -> Option<Vec<f32>> { None };
        let idx =
            crate::index::SpaceIndex::from_loaded(loaded, &mut no_store, false, false).unwrap();
        let mut want = FlatSketches::new(6);
        for (&id, row) in l.ids.iter().zip(v.chunks_exact(6)) {
            want.push(id, row);
        }
        assert!(super::super::sketch_file::tests::same_rows(
            idx.flat(6).unwrap(),
            &want
        ));
        assert_eq!(idx.members(), l.ids.iter().copied().collect());
        assert!(idx.dirty);
        assert!(matches!(idx.to_save(), Some(SavedIndex::Sketches(_))));
    }
}
