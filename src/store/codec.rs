//! Record codec: postcard for records (compact, maintained, serde-based, no self-description
//! needed), JSON strings for free-form parts (provenance, space definitions), and a raw
//! little-endian layout with a CRC32 for vectors.

use serde::{Deserialize, Serialize};

use crate::entry::{Embedding, Kind};
use crate::error::{Error, Result};
use crate::space::SpaceId;

/// One vector reference inside an entry record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VecMeta {
    pub method: String,
    pub space: SpaceId,
    /// CRC32 of the encoded vector record (also stored inside it).
    pub crc: u32,
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

pub(crate) fn encode_entry(r: &EntryRecord) -> Result<Vec<u8>> {
    postcard::to_stdvec(r).map_err(|e| Error::Internal(format!("encoding entry record: {e}")))
}

pub(crate) fn decode_entry(id: u64, bytes: &[u8]) -> Result<EntryRecord> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        what: format!("entry record {id}"),
        detail: format!("undecodable: {e}"),
    })
}

const TAG_DENSE: u8 = 0;

/// Encodes a vector: `[tag u8][dim u32 LE][dim × f32 LE][crc32 u32 LE of all preceding bytes]`.
/// Returns the bytes and the CRC.
pub(crate) fn encode_vector(e: &Embedding) -> (Vec<u8>, u32) {
    match e {
        Embedding::Dense(v) => {
            let mut out = Vec::with_capacity(1 + 4 + 4 * v.len() + 4);
            out.push(TAG_DENSE);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            (out, crc)
        }
    }
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
            let v = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            Ok((Embedding::Dense(v), stored))
        }
        t => Err(corrupt(format!("unknown embedding tag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }],
        };
        assert_eq!(decode_entry(1, &encode_entry(&r).unwrap()).unwrap(), r);
    }
}
