//! Vector records stored in parts, so that they pack into redb's pages (format 3, issue 14).
//!
//! redb keeps a table's pairs in leaf pages of 4 KiB; a pair too big to share a page gets a
//! leaf of its own, rounded up to a power of two of pages. Stored whole, a 768-d dense record
//! (3,081 bytes) therefore took a page of its own: 1.33× its bytes, and the database file
//! 1.43× the raw vectors after `compact`. A low-rank record just over a power of two of pages
//! took nearly twice its size.
//!
//! So a record longer than [`part_cap`] is cut into equal parts, each small enough that
//! [`PER_PAGE`] of them fill a leaf: the first under the record's own key `(id, method)`, the
//! others under `(id, method ‖ 0x00 ‖ part index as u16 BE)`, from 1. Entry ids only grow, so
//! new pairs are appended at the tree's right edge, where redb fills each leaf before it
//! starts the next one: measured, 100,000 768-d records take 80,000 leaves in parts against
//! 100,000 whole (docs/PERFORMANCE.md §30).
//!
//! Reading needs nothing but the records themselves. A record's length follows from its header
//! ([`codec::vector_record_len`]), so a reader knows whether the first part is all of it. A
//! method's part keys sort right after its own key and before any other method's (method
//! names have no control characters: [`crate::model::NewEntry::validate`]), so one range read
//! gets them all, and each key is compared with the one expected. A missing, short or extra
//! part leaves a record of the wrong length or checksum (the CRC covers the whole record),
//! which decoding reports as damage, naming the entry and method. Records written whole, by
//! format 2 or for being short, are read as they are.

use redb::{ReadOnlyTable, ReadableTable, StorageError, Table, TableDefinition, WriteTransaction};

use super::codec;
use super::tables::{open_write, storage};
use super::{META, VECTORS};
use crate::error::Result;

/// redb's page size (fixed at 4 KiB outside redb's own tests).
const PAGE: usize = 4096;
/// Parts of one size that fill a leaf page.
const PER_PAGE: usize = 5;
/// A leaf page's header (redb's `RawLeafBuilder::required_bytes`: page type and pair count).
const LEAF_HEADER: usize = 4;
/// Each pair's two end offsets in a leaf (variable-width keys and values).
const PAIR_OFFSETS: usize = 8;
/// Bytes kept free in each leaf, so that a later redb adding a few bytes of header does not
/// push the fifth part of every page onto a page of its own.
const SLACK: usize = 16;
/// Below this part size (a method name of hundreds of bytes), a record is stored whole.
const MIN_PART: usize = 256;

/// The largest part of a record stored under `method`: [`PER_PAGE`] pairs, each an entry id,
/// the method, a 0 and a 2-byte part index, and the part itself, fill a page. `None` when that
/// leaves less than [`MIN_PART`] bytes (a very long method name): such records are stored whole.
pub(crate) fn part_cap(method_len: usize) -> Option<usize> {
    let key = 8 + method_len + 3;
    let per = (PAGE - LEAF_HEADER - SLACK) / PER_PAGE;
    per.checked_sub(PAIR_OFFSETS + key)
        .filter(|&c| c >= MIN_PART)
}

/// The cap a record of `len` bytes under a method of `method_len` bytes is cut at: `None` when
/// it is stored whole (at most [`part_cap`] long, or no cap).
fn cut_at(len: usize, method_len: usize) -> Option<usize> {
    part_cap(method_len).filter(|&c| len > c)
}

/// The byte ranges of a record of `len` bytes under `method`: one when it is at most
/// [`part_cap`] long, else the fewest equal parts (the last may be shorter) of at most the cap.
pub(crate) fn split(len: usize, method_len: usize) -> Vec<std::ops::Range<usize>> {
    let Some(cap) = cut_at(len, method_len) else {
        return std::iter::once(0..len).collect();
    };
    let n = len.div_ceil(cap).min(usize::from(u16::MAX) + 1);
    let size = len.div_ceil(n);
    (0..len)
        .step_by(size)
        .map(|start| start..(start + size).min(len))
        .collect()
}

/// The key of part `i` (from 1) of `method`'s record: `method ‖ 0x00 ‖ i as u16 BE`.
fn part_key(key: &mut Vec<u8>, method: &[u8], i: u16) {
    key.clear();
    key.extend_from_slice(method);
    key.push(0);
    key.extend_from_slice(&i.to_be_bytes());
}

/// The method of a key of the `vectors` table: the key itself, or for a part (a key ending in
/// `0x00` and a 2-byte index), what precedes those three bytes.
pub(crate) fn method_of(key: &[u8]) -> &[u8] {
    match key.len().checked_sub(3) {
        Some(n) if key[n] == 0 => &key[..n],
        _ => key,
    }
}

/// Writes the record `rec` of entry `id` under `method`, in parts where [`split`] cuts it.
/// Every key is new: an entry's vectors are written once, with the entry.
pub(crate) fn insert(
    t: &mut Table<(u64, &'static [u8]), &'static [u8]>,
    id: u64,
    method: &str,
    rec: &[u8],
) -> std::result::Result<(), StorageError> {
    insert_bytes(t, id, method.as_bytes(), rec)
}

/// [`insert`] of a method given as its stored bytes (a key read back from the table).
pub(crate) fn insert_bytes(
    t: &mut Table<(u64, &'static [u8]), &'static [u8]>,
    id: u64,
    m: &[u8],
    rec: &[u8],
) -> std::result::Result<(), StorageError> {
    let mut key = Vec::with_capacity(m.len() + 3);
    for (i, r) in split(rec.len(), m.len()).into_iter().enumerate() {
        match i {
            0 => t.insert((id, m), &rec[r])?,
            _ => {
                part_key(&mut key, m, i as u16);
                t.insert((id, key.as_slice()), &rec[r])?
            }
        };
    }
    Ok(())
}

/// Removes the record of entry `id` under `method` and every part of it. Whether there was one.
pub(crate) fn remove(
    t: &mut Table<(u64, &'static [u8]), &'static [u8]>,
    id: u64,
    method: &str,
) -> std::result::Result<bool, StorageError> {
    let m = method.as_bytes();
    let found = t.remove((id, m))?.is_some();
    let mut key = Vec::with_capacity(m.len() + 3);
    for i in 1..=u16::MAX {
        part_key(&mut key, m, i);
        if t.remove((id, key.as_slice()))?.is_none() {
            break;
        }
    }
    Ok(found)
}

/// The table [`repack`] copies the vectors into and back from, inside one transaction.
const REPACK: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("vectors_repack");

/// Whether the pair `(key, value)` of the `vectors` table is a whole record that [`split`]
/// would cut (written by format 2, or format 1 migrated before format 3).
fn whole_to_cut(key: &[u8], value: &[u8]) -> bool {
    method_of(key) == key
        && codec::vector_record_len(value) == Some(value.len())
        && cut_at(value.len(), key.len()).is_some()
}

/// The `meta` key that says the `vectors` table may hold whole records that [`split`] would
/// cut: set by the migration from format 2 ([`super::upgrade_from_2`]), removed by [`repack`].
/// Files made by format 3 never hold such records, so `compact` does not scan them for any.
pub(crate) const WHOLE_RECORDS: &[u8] = b"whole_records";

/// Rewrites the `vectors` table when `meta` says it may hold whole records that [`split`]
/// would cut ([`WHOLE_RECORDS`]: a file of format 2): every pair is copied in key order into a
/// second table, such records in parts, the table is dropped, and the copy is copied back and
/// dropped, all in `txn` (`compact`'s), which then removes the mark. Copied in key order, pairs
/// are appended, so every leaf is filled; cutting the records where they are would leave each
/// one's parts on its old page. Needs free space for two copies of the table until `compact`
/// shrinks the file. Returns how many records it cut.
pub(crate) fn repack(txn: &WriteTransaction) -> Result<u64> {
    const CTX: &str = "rewriting the vectors table in parts";
    let w = storage(CTX);
    if open_write(txn, META)?
        .remove(WHOLE_RECORDS)
        .map_err(&w)?
        .is_none()
    {
        return Ok(0);
    }
    let mut cut = 0u64;
    {
        let src = open_write(txn, VECTORS)?;
        let mut dst = open_write(txn, REPACK)?;
        for row in src.iter().map_err(&w)? {
            let (k, v) = row.map_err(&w)?;
            let (id, m) = k.value();
            match whole_to_cut(m, v.value()) {
                true => {
                    insert_bytes(&mut dst, id, m, v.value()).map_err(&w)?;
                    cut += 1;
                }
                false => drop(dst.insert((id, m), v.value()).map_err(&w)?),
            }
        }
    }
    txn.delete_table(VECTORS).map_err(storage(CTX))?;
    {
        let src = open_write(txn, REPACK)?;
        let mut dst = open_write(txn, VECTORS)?;
        for row in src.iter().map_err(&w)? {
            let (k, v) = row.map_err(&w)?;
            dst.insert(k.value(), v.value()).map_err(&w)?;
        }
    }
    txn.delete_table(REPACK).map_err(storage(CTX))?;
    Ok(cut)
}

/// `f` of the record of entry `id` under `method` (its parts put together), if there is one.
/// The bytes are those stored: a record that lacks a part, or has one too many, is given as
/// it is, of the wrong length, for the decoder to refuse.
pub(crate) fn read<R>(
    t: &ReadOnlyTable<(u64, &'static [u8]), &'static [u8]>,
    id: u64,
    method: &str,
    f: impl FnOnce(&[u8]) -> R,
) -> std::result::Result<Option<R>, StorageError> {
    let m = method.as_bytes();
    let mut key = Vec::with_capacity(m.len() + 3);
    part_key(&mut key, m, u16::MAX);
    let mut it = t.range((id, m)..=(id, key.as_slice()))?;
    let Some(first) = it.next() else {
        return Ok(None);
    };
    let (k, v) = first?;
    if k.value() != (id, m) {
        return Ok(None);
    }
    let head = v.value();
    let total = match codec::vector_record_len(head) {
        Some(n) if n > head.len() => n,
        _ => return Ok(Some(f(head))),
    };
    // Not `with_capacity(total)`: a damaged header can claim any length.
    let mut rec = Vec::with_capacity(total.min(1 << 20));
    rec.extend_from_slice(head);
    for i in 1..=u16::MAX {
        if rec.len() >= total {
            break;
        }
        let Some(next) = it.next() else {
            break;
        };
        let (k, v) = next?;
        part_key(&mut key, m, i);
        if k.value() != (id, key.as_slice()) {
            break;
        }
        rec.extend_from_slice(v.value());
    }
    Ok(Some(f(&rec)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;
    use redb::{Database, ReadableDatabase, TableDefinition};

    const T: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("vectors");

    fn db() -> Database {
        Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap()
    }

    fn dense(dim: usize, seed: f32) -> Vec<u8> {
        let v: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
        codec::encode_vector(&crate::model::Embedding::Dense(v)).0
    }

    fn low_rank(dim: usize, rank: usize) -> Vec<u8> {
        let u: Vec<f32> = (0..dim * rank).map(|i| (i as f32 * 0.11).cos()).collect();
        let s: Vec<f32> = (0..rank).map(|i| 1.0 / (i + 1) as f32).collect();
        let e = crate::model::Embedding::LowRank(crate::model::LowRank { dim, u, s });
        codec::encode_vector(&e).0
    }

    /// Marks the file as one that may hold whole records (what the format-2 migration does).
    fn mark(txn: &redb::WriteTransaction) {
        txn.open_table(META)
            .unwrap()
            .insert(WHOLE_RECORDS, [1u8].as_slice())
            .unwrap();
    }

    fn write(db: &Database, recs: &[(u64, &str, Vec<u8>)]) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for (id, m, r) in recs {
                insert(&mut t, *id, m, r).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn get(db: &Database, id: u64, m: &str) -> Option<Vec<u8>> {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        read(&t, id, m, |b| b.to_vec()).unwrap()
    }

    #[test]
    fn parts_are_equal_cover_the_record_and_fill_a_page() {
        for method_len in [1, 5, 40, 200] {
            let cap = part_cap(method_len).unwrap();
            // Five parts with their keys and offsets fit one page.
            assert!(LEAF_HEADER + PER_PAGE * (PAIR_OFFSETS + 8 + method_len + 3 + cap) <= PAGE);
            for len in [1, 9, cap, cap + 1, 3_081, 1_545, 15_381, 40_000] {
                let parts = split(len, method_len);
                assert_eq!(parts.first().unwrap().start, 0);
                assert_eq!(parts.last().unwrap().end, len);
                assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
                assert!(parts.iter().all(|r| r.len() <= cap.max(len.min(cap))));
                assert_eq!(parts.len(), len.div_ceil(cap).max(1), "len {len}");
                let big = parts[0].len();
                assert!(parts.iter().all(|r| r.len() + parts.len() > big));
            }
        }
        // A 768-d dense record under a short method: four parts, five to a page.
        assert_eq!(split(3_081, 5).len(), 4);
        // A method name so long that parts would be tiny: whole.
        assert_eq!(part_cap(700), None);
        assert_eq!(split(3_081, 700).len(), 1);
    }

    #[test]
    fn records_read_back_whole_from_their_parts_and_are_removed_with_them() {
        let db = db();
        let recs = vec![
            (1, "bench", dense(768, 0.0)),
            (1, "bench-x", dense(384, 1.0)),
            (1, "small", dense(16, 2.0)),
            (2, "bench", dense(768, 3.0)),
            (2, "scatter", low_rank(384, 10)),
            (3, "scatter", low_rank(384, 1)),
        ];
        write(&db, &recs);
        for (id, m, r) in &recs {
            assert_eq!(get(&db, *id, m).as_ref(), Some(r), "{id} {m}");
            let (e, _) = codec::decode_vector(r, String::new).unwrap();
            let (back, _) = codec::decode_vector(&get(&db, *id, m).unwrap(), String::new).unwrap();
            assert_eq!(back, e);
        }
        assert_eq!(get(&db, 1, "bench-"), None);
        assert_eq!(get(&db, 4, "bench"), None);
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            assert!(remove(&mut t, 1, "bench").unwrap());
            assert!(!remove(&mut t, 1, "bench").unwrap());
            assert!(remove(&mut t, 2, "scatter").unwrap());
        }
        txn.commit().unwrap();
        assert_eq!(get(&db, 1, "bench"), None);
        assert_eq!(get(&db, 2, "scatter"), None);
        assert_eq!(get(&db, 1, "bench-x").as_ref(), Some(&recs[1].2));
        assert_eq!(get(&db, 2, "bench").as_ref(), Some(&recs[3].2));
        // Nothing of the removed records is left behind.
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        let keys: Vec<(u64, Vec<u8>)> = t
            .iter()
            .unwrap()
            .map(|r| {
                let (k, _) = r.unwrap();
                (k.value().0, k.value().1.to_vec())
            })
            .collect();
        assert!(keys
            .iter()
            .all(|(id, m)| !(*id == 1 && m.starts_with(b"bench\0"))));
        assert!(keys
            .iter()
            .all(|(id, m)| !(*id == 2 && m.starts_with(b"scatter"))));
    }

    #[test]
    fn a_missing_or_extra_part_is_refused_by_the_decoder_and_whole_records_still_read() {
        let db = db();
        let rec = dense(768, 0.5);
        write(&db, &[(7, "bench", rec.clone())]);
        let what = || "vector of entry 7".to_string();
        // A record stored whole (as format 2 wrote it) reads as it is, and `repack` cuts it.
        let whole = dense(768, 0.25);
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            t.insert((8, b"bench".as_slice()), whole.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        assert_eq!(get(&db, 8, "bench"), Some(whole.clone()));
        let txn = db.begin_write().unwrap();
        assert_eq!(repack(&txn).unwrap(), 0, "not marked: not scanned");
        mark(&txn);
        assert_eq!(repack(&txn).unwrap(), 1);
        assert_eq!(repack(&txn).unwrap(), 0);
        {
            let mut t = txn.open_table(T).unwrap();
            assert!(t.get((8, b"bench\0\0\x03".as_slice())).unwrap().is_some());
            // Part 2 of entry 7 lost.
            t.remove((7, b"bench\0\0\x02".as_slice())).unwrap();
        }
        txn.commit().unwrap();
        assert_eq!(get(&db, 8, "bench"), Some(whole));
        let short = get(&db, 7, "bench").unwrap();
        assert!(short.len() < rec.len());
        let err = codec::decode_vector(&short, what).unwrap_err().to_string();
        assert!(err.contains("entry 7"), "{err}");
        // A part of another size in its place: the length or checksum is wrong.
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            t.insert((7, b"bench\0\0\x02".as_slice()), [1u8; 900].as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        let bad = get(&db, 7, "bench").unwrap();
        assert!(codec::decode_vector(&bad, what).is_err());
    }

    #[test]
    fn appended_parts_fill_their_pages() {
        // 600 records of 768-d, appended as ingestion appends them: whole, each takes a leaf
        // page; in parts, five parts share one, so four-fifths of a page a record.
        let db = db();
        let rec = dense(768, 0.0);
        for batch in 0..6u64 {
            let recs: Vec<(u64, &str, Vec<u8>)> = (0..100)
                .map(|i| (batch * 100 + i + 1, "bench", rec.clone()))
                .collect();
            write(&db, &recs);
        }
        let leaves = |db: &Database| {
            let txn = db.begin_write().unwrap();
            let n = txn.stats().unwrap().leaf_pages();
            txn.abort().unwrap();
            n
        };
        assert!(leaves(&db) <= 600 * 4 / 5 + 8, "{} leaves", leaves(&db));
        // The same records whole, as format 2 stored them: a page each.
        let whole = self::db();
        let txn = whole.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            for id in 1..=600u64 {
                t.insert((id, b"bench".as_slice()), rec.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        assert!(leaves(&whole) >= 600, "{} leaves", leaves(&whole));
        // `compact` repacks them: the table copied in key order, its records in parts, its
        // leaves as full as those written in parts from the start, the same bytes read back.
        let txn = whole.begin_write().unwrap();
        mark(&txn);
        assert_eq!(repack(&txn).unwrap(), 600);
        txn.commit().unwrap();
        assert!(
            leaves(&whole) <= 600 * 4 / 5 + 8,
            "{} leaves",
            leaves(&whole)
        );
        assert_eq!(get(&whole, 1, "bench"), Some(rec.clone()));
        assert_eq!(get(&whole, 600, "bench"), Some(rec));
    }
}
