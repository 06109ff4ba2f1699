//! A matrix space's sketch file: its index ([`FlatSketches`], 4-bit rows) as the scan reads
//! it, saved and verified by [`super::persist`] like a graph file (manifest, checksum, atomic
//! rename); layout in schema/FORMAT.md.

use super::flat::FlatSketches;
use super::persist::{repeated, Cursor, Reject};
use crate::embedding::EntryId;

/// The first 16 bytes of a matrix space's sketch file.
pub(super) const MAGIC: &[u8; 16] = b"taskdb-sketch-1\n";

/// A sketch file (integers little-endian): [`MAGIC`]; rows `n` (u64); sketch width `m`
/// (u32); bytes a row (u32, [`FlatSketches::row_bytes`]); then the rows' entry ids (n × u64),
/// scales (n × f32) and packed codes (n × bytes a row).
pub(super) fn encode(f: &FlatSketches) -> Vec<u8> {
    let (scales, codes) = f.packed();
    let ids = f.ids();
    let row = FlatSketches::row_bytes(f.width());
    let mut b = Vec::with_capacity(32 + ids.len() * 12 + codes.len());
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    b.extend_from_slice(&(f.width() as u32).to_le_bytes());
    b.extend_from_slice(&(row as u32).to_le_bytes());
    for id in ids {
        b.extend_from_slice(&id.to_le_bytes());
    }
    for s in scales {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b.extend_from_slice(codes);
    b
}

/// Reads a sketch file ([`encode`]); every length checked against what is left and
/// against the width, every scale and id checked ([`FlatSketches::from_parts`]).
pub(super) fn decode(bytes: &[u8]) -> std::result::Result<FlatSketches, Reject> {
    let mut c = Cursor(bytes);
    if c.take(MAGIC.len())? != MAGIC {
        return Err("not a taskdb sketch file (bad magic)".into());
    }
    let n64 = c.u64()?;
    let m = c.u32()? as usize;
    let row = c.u32()? as usize;
    if m == 0 || row != FlatSketches::row_bytes(m) {
        return Err(format!("sketch file: {row} bytes a row for width {m}"));
    }
    let n = c.count(n64, 12 + row)?;
    let ids: Vec<EntryId> = c.u64s(n)?;
    let scales = c.f32s(n)?;
    let codes = c.take(n * row)?.to_vec();
    if !c.0.is_empty() {
        return Err(format!("sketch file: {} bytes after its end", c.0.len()));
    }
    if let Some(id) = repeated(&ids) {
        return Err(format!("sketch file: entry {id} twice"));
    }
    FlatSketches::from_parts(m, ids, scales, codes)
        .ok_or_else(|| "sketch file: a row's scale is not a positive number".into())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::index::persist::tests::{bit_flips, refuses_every_cut_and_a_longer_file};

    /// `n` rows of width `m` with ids from 10.
    fn sketches(n: usize, m: usize) -> FlatSketches {
        let mut f = FlatSketches::new(m);
        for i in 0..n {
            let v: Vec<f32> = (0..m)
                .map(|j| ((i * 13 + j * 7) % 17) as f32 - 8.0)
                .collect();
            f.push(10 + i as EntryId, &v);
        }
        f
    }

    pub(crate) fn same_rows(a: &FlatSketches, b: &FlatSketches) -> bool {
        (a.width(), a.ids(), a.packed()) == (b.width(), b.ids(), b.packed())
    }

    #[test]
    fn a_sketch_file_reads_back_as_written_and_a_damaged_one_is_refused() {
        for (n, m) in [(0, 512), (1, 512), (300, 40)] {
            let f = sketches(n, m);
            let bytes = encode(&f);
            assert_eq!(bytes.len(), 32 + n * (12 + FlatSketches::row_bytes(m)));
            assert!(same_rows(&decode(&bytes).unwrap(), &f));
        }
        let bytes = encode(&sketches(120, 40));
        refuses_every_cut_and_a_longer_file(&bytes, |b| decode(b).is_err());
        // A changed width, row size or count, a repeated id, a scale that is not positive.
        for (at, x) in [
            (24, 200u8),
            (28, 33),
            (16, 121),
            (40, 10),
            (32 + 120 * 8 + 3, 0xff),
        ] {
            let mut b = bytes.clone();
            b[at] = x;
            assert!(decode(&b).is_err(), "byte {at} set to {x} read");
        }
        for b in bit_flips(&bytes, 11, 3000) {
            if let Ok(back) = decode(&b) {
                assert_eq!(back.ids().len(), 120);
            }
        }
    }
}
