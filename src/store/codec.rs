//! Record codec: postcard for records (compact, maintained, serde-based, no self-description
//! needed), JSON strings for free-form parts (provenance, space definitions), and a raw
//! little-endian layout with a CRC32 for vectors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Embedding, Kind};
use crate::space::{ScoreConsts, SpaceId};

/// One vector reference inside an entry record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VecMeta {
    pub method: String,
    pub space: SpaceId,
    /// CRC32 of the encoded vector record (also stored inside it).
    pub crc: u32,
    /// Task spaces: the entry's exact-scoring constants `(‖e‖, ⟨e/‖e‖, R⟩)` against the space's
    /// frozen reference R, computed once on write (derived from the vector and the space; `check`
    /// recomputes them). `None` for external spaces.
    pub prep: Option<ScoreConsts>,
}

/// The stored form of an entry (everything but the vectors themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    pub name: String,
    pub version: u32,
    pub kind: u8,
    pub tags: Vec<(String, String)>,
    /// Provenance as a JSON string (stable under additions; postcard cannot hold `Value`).
    pub provenance_json: String,
    pub created_at_ms: u64,
    /// Set when deleted: the record stays as a tombstone until `compact`.
    pub deleted_at_ms: Option<u64>,
    pub vectors: Vec<VecMeta>,
}

impl EntryRecord {
    pub fn kind(&self, id: u64) -> Result<Kind> {
        Kind::from_u8(self.kind).ok_or_else(|| Error::Corrupt {
            what: format!("entry {id}"),
            detail: format!("unknown kind code {}", self.kind),
        })
    }
}

/// Decodes stored text: a key or value of a text table (`meta` keys, `vectors` methods,
/// `names`, `name_seq`, `spaces`, `space_names`), stored as bytes since format 2 so that redb
/// never decodes (and never panics on) a damaged byte. `what` names the table and the key or
/// id (`table spaces, id 3`).
pub(crate) fn text(bytes: &[u8], what: impl FnOnce() -> String) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| Error::Corrupt {
        what: what(),
        detail: format!(
            "not UTF-8 ({e}): the stored bytes are damaged; `taskdb check` lists every \
             damaged record, and the entries it does not name can be exported or compacted \
             as usual"
        ),
    })
}

/// Marks an entry record that ends with its checksum: `[postcard record][ENTRY_CRC_MAGIC][CRC32
/// of the postcard bytes, u32 LE]` (issue 10, defect 10). Records written before it have no
/// trailer and are read as they are (unverified); postcard ignores trailing bytes, so older
/// taskdb versions read the new records too.
const ENTRY_CRC_MAGIC: [u8; 4] = *b"TDc1";

pub(crate) fn encode_entry(r: &EntryRecord) -> Result<Vec<u8>> {
    let mut out = postcard::to_stdvec(r)
        .map_err(|e| Error::Internal(format!("encoding entry record: {e}")))?;
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&ENTRY_CRC_MAGIC);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes an entry record, verifying its checksum when it has one (every record this version
/// writes). A record without a trailer (written before it) must decode to exactly its bytes,
/// so a damaged trailer is not mistaken for an old record.
pub(crate) fn decode_entry(id: u64, bytes: &[u8]) -> Result<EntryRecord> {
    let corrupt = |detail: String| Error::Corrupt {
        what: format!("entry record {id}"),
        detail,
    };
    let n = bytes.len();
    if n >= 8 && bytes[n - 8..n - 4] == ENTRY_CRC_MAGIC {
        let body = &bytes[..n - 8];
        let stored = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes"));
        let actual = crc32fast::hash(body);
        if stored != actual {
            // Name the entry as the damaged record reads, when it still decodes.
            let (named, rm) = match postcard::from_bytes::<EntryRecord>(body) {
                Ok(r) => (
                    format!(
                        ", which reads as {}@{} (possibly damaged too)",
                        r.name, r.version
                    ),
                    format!("`taskdb rm {}@{}`", r.name, r.version),
                ),
                Err(_) => (String::new(), "`taskdb rm` the entry".to_string()),
            };
            return Err(corrupt(format!(
                "checksum mismatch (stored {stored:08x}, computed {actual:08x}){named}: the \
                 record (name, tags, provenance or vector list) was damaged on disk; restore \
                 the database from a backup, or {rm} and ingest or import it again"
            )));
        }
        return postcard::from_bytes(body).map_err(|e| corrupt(format!("undecodable: {e}")));
    }
    match postcard::take_from_bytes::<EntryRecord>(bytes) {
        Ok((r, [])) => Ok(r),
        Ok((_, rest)) => Err(corrupt(format!(
            "{} unexpected bytes after the record (a damaged checksum trailer?)",
            rest.len()
        ))),
        Err(e) => Err(corrupt(format!("undecodable: {e}"))),
    }
}

/// Decodes an entry record without verifying its checksum: for opening (the catalog) and
/// for deleting, so that a database holding a damaged record still opens, `check` reports
/// it, `show` refuses it (through [`decode_entry`]) and `rm` can remove it.
pub(crate) fn decode_entry_unverified(id: u64, bytes: &[u8]) -> Result<EntryRecord> {
    let n = bytes.len();
    let body = if n >= 8 && bytes[n - 8..n - 4] == ENTRY_CRC_MAGIC {
        &bytes[..n - 8]
    } else {
        bytes
    };
    postcard::from_bytes(body).map_err(|e| Error::Corrupt {
        what: format!("entry record {id}"),
        detail: format!("undecodable: {e}"),
    })
}

const TAG_DENSE: u8 = 0;
const TAG_LOW_RANK: u8 = 1;

/// Encodes a vector, then appends a CRC32 of all preceding bytes (u32 LE):
/// - dense: `[0u8][dim u32 LE][dim × f32 LE]`;
/// - low rank: `[1u8][dim u32 LE][rank u32 LE][dim·rank × f32 LE: U column-major][rank × f32 LE: s]`.
///
/// Returns the bytes and the CRC.
pub(crate) fn encode_vector(e: &Embedding) -> (Vec<u8>, u32) {
    let mut out;
    match e {
        Embedding::Dense(v) => {
            out = Vec::with_capacity(1 + 4 + 4 * v.len() + 4);
            out.push(TAG_DENSE);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Embedding::LowRank(l) => {
            out = Vec::with_capacity(1 + 8 + 4 * (l.u.len() + l.s.len()) + 4);
            out.push(TAG_LOW_RANK);
            out.extend_from_slice(&(l.dim as u32).to_le_bytes());
            out.extend_from_slice(&(l.s.len() as u32).to_le_bytes());
            for x in l.u.iter().chain(&l.s) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    (out, crc)
}

/// The length of the whole vector record whose first bytes are `head`, from its header (tag,
/// dimension, rank: [`encode_vector`]'s layout); `None` when `head` is too short to say or its
/// tag is unknown. A record stored in parts ([`super::parts`]) is put together to this length.
pub(crate) fn vector_record_len(head: &[u8]) -> Option<usize> {
    let u32_at = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let floats = match *head.first()? {
        TAG_DENSE => u32_at(1)?,
        TAG_LOW_RANK => u32_at(1)?
            .checked_mul(u32_at(5)?)?
            .checked_add(u32_at(5)?)?,
        _ => return None,
    };
    let header = if head[0] == TAG_DENSE { 5 } else { 9 };
    floats.checked_mul(4)?.checked_add(header + 4)
}

fn f32s(data: &[u8]) -> Vec<f32> {
    crate::bytes::f32_from_le(data).expect("callers pass whole f32 values")
}

/// Decodes and verifies a vector record. `what` names it in errors.
pub(crate) fn decode_vector(bytes: &[u8], what: impl Fn() -> String) -> Result<(Embedding, u32)> {
    let corrupt = |detail: String| Error::Corrupt {
        what: what(),
        detail,
    };
    if bytes.len() < 9 {
        return Err(corrupt(format!(
            "vector record too short ({} bytes)",
            bytes.len()
        )));
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc_bytes.try_into().expect("4 bytes"));
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        )));
    }
    match body[0] {
        TAG_DENSE => {
            let dim = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
            let data = &body[5..];
            if data.len() != dim * 4 {
                return Err(corrupt(format!(
                    "dimension {dim} does not match {} data bytes",
                    data.len()
                )));
            }
            Ok((Embedding::Dense(f32s(data)), stored))
        }
        TAG_LOW_RANK => {
            if body.len() < 9 {
                return Err(corrupt("low-rank record too short".into()));
            }
            let dim = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
            let rank = u32::from_le_bytes(body[5..9].try_into().expect("4 bytes")) as usize;
            let data = &body[9..];
            let want = dim
                .checked_mul(rank)
                .and_then(|n| n.checked_add(rank))
                .and_then(|n| n.checked_mul(4));
            if want != Some(data.len()) {
                return Err(corrupt(format!(
                    "dimension {dim} and rank {rank} do not match {} data bytes",
                    data.len()
                )));
            }
            let all = f32s(data);
            let (u, s) = all.split_at(dim * rank);
            Ok((
                Embedding::LowRank(crate::model::LowRank {
                    dim,
                    u: u.to_vec(),
                    s: s.to_vec(),
                }),
                stored,
            ))
        }
        t => Err(corrupt(format!("unknown embedding tag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_constants_keep_the_bytes_of_the_old_tuple() {
        // Records written before ScoreConsts had a name stored `Option<(f64, f64)>`.
        let named = Some(ScoreConsts {
            norm: 1.5,
            ref_dot: -0.25,
        });
        let old: Option<(f64, f64)> = Some((1.5, -0.25));
        assert_eq!(
            postcard::to_allocvec(&named).unwrap(),
            postcard::to_allocvec(&old).unwrap()
        );
        let back: Option<ScoreConsts> =
            postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
        assert_eq!(back, named);
    }

    #[test]
    fn vector_roundtrip_and_checksum() {
        let e = Embedding::Dense(vec![1.0, -2.5, 3.25]);
        let (mut b, crc) = encode_vector(&e);
        let (d, c2) = decode_vector(&b, || "v".into()).unwrap();
        assert_eq!(d, e);
        assert_eq!(crc, c2);
        b[6] ^= 0x10;
        assert!(matches!(
            decode_vector(&b, || "v".into()),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_record_says_its_own_length() {
        let d = encode_vector(&Embedding::Dense(vec![0.5; 768])).0;
        assert_eq!(vector_record_len(&d), Some(d.len()));
        assert_eq!(vector_record_len(&d[..5]), Some(d.len()));
        let l = encode_vector(&Embedding::LowRank(crate::model::LowRank {
            dim: 3,
            u: vec![1.0, 0.0, 0.0, 0.0, 0.6, 0.8],
            s: vec![2.0, 0.5],
        }))
        .0;
        assert_eq!(vector_record_len(&l), Some(l.len()));
        assert_eq!(vector_record_len(&l[..8]), None);
        assert_eq!(vector_record_len(&[9, 0, 0, 0, 0]), None);
        assert_eq!(vector_record_len(&[]), None);
        // A damaged header can claim any length; one past usize is none.
        assert_eq!(
            vector_record_len(&[1, 255, 255, 255, 255, 255, 255, 255, 255]),
            None
        );
        assert_eq!(
            vector_record_len(&[0, 255, 255, 255, 255]),
            Some(17_179_869_189)
        );
    }

    #[test]
    fn low_rank_roundtrip_and_checksum() {
        let e = Embedding::LowRank(crate::model::LowRank {
            dim: 3,
            u: vec![1.0, 0.0, 0.0, 0.0, 0.6, 0.8],
            s: vec![2.0, 0.5],
        });
        let (mut b, crc) = encode_vector(&e);
        let (d, c2) = decode_vector(&b, || "v".into()).unwrap();
        assert_eq!(d, e);
        assert_eq!(crc, c2);
        b[12] ^= 0x01;
        assert!(matches!(
            decode_vector(&b, || "v".into()),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn entry_roundtrip() {
        let r = EntryRecord {
            name: "a".into(),
            version: 2,
            kind: 1,
            tags: vec![("k".into(), "v".into())],
            provenance_json: "{}".into(),
            created_at_ms: 5,
            deleted_at_ms: None,
            vectors: vec![VecMeta {
                method: "m".into(),
                space: 3,
                crc: 9,
                prep: Some(ScoreConsts {
                    norm: 1.5,
                    ref_dot: -0.25,
                }),
            }],
        };
        let bytes = encode_entry(&r).unwrap();
        assert_eq!(decode_entry(1, &bytes).unwrap(), r);
        // A record written before the checksum (plain postcard) still reads.
        let old = postcard::to_stdvec(&r).unwrap();
        assert_eq!(decode_entry(1, &old).unwrap(), r);
        // Any flipped bit of a new record is a corruption error (or, in the trailer's magic,
        // trailing bytes after an old-style record: an error too).
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            let e = decode_entry(1, &b).expect_err("a flipped bit is detected");
            assert!(e.to_string().contains("entry record 1"), "{e}");
        }
        // The unverified decode (open, delete) reads a record whose checksum fails.
        let mut b = bytes.clone();
        b[bytes.len() - 1] ^= 1;
        assert_eq!(decode_entry_unverified(1, &b).unwrap(), r);
    }

    #[test]
    fn damaged_text_is_corruption_naming_the_record_not_a_panic() {
        let json = br#"{"id":3,"def":{"name":"space_one"}}"#;
        assert_eq!(text(json, || unreachable!()).unwrap().len(), json.len());
        // Every single-byte flip that leaves invalid UTF-8 (here: XOR 0x80 at each byte of an
        // ASCII text) is an error naming the record; none panics.
        for i in 0..json.len() {
            let mut b = json.to_vec();
            b[i] ^= 0x80;
            let e = text(&b, || "table spaces, id 3".into()).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Corrupt { .. }), "{msg}");
            assert!(
                msg.contains("table spaces, id 3") && msg.contains("not UTF-8"),
                "{msg}"
            );
        }
        // A flip that keeps the text UTF-8 is not this decoder's business (the JSON or the
        // lookup that follows finds it).
        assert!(text("naïve".as_bytes(), || unreachable!()).is_ok());
    }
}
