//! The snapshot container (`schema/SNAPSHOT.md`): a header, framed records each with its own
//! SHA-256, and a footer with the manifest's offset and the SHA-256 of every byte before it.
//!
//! ```text
//! header   magic "TDBSNAP\0" (8) | format u32 LE | flags u32 LE (0)
//! record*  kind u8 | len u64 LE | payload (len bytes) | digest (32) = SHA-256(0x00 | kind | payload)
//! footer   manifest offset u64 LE | SHA-256 of bytes [0, footer) (32) | magic "TDBSNAP\0" (8)
//! ```
//!
//! A record's digest is also its Merkle leaf hash (RFC 6962 style: leaves prefixed 0x00,
//! nodes 0x01), so the content root is computed from the digests alone.

use std::io::Write;

use sha2::{Digest, Sha256};

/// The first 8 bytes of every snapshot (and the last 8).
pub(crate) const MAGIC: [u8; 8] = *b"TDBSNAP\0";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 16;
pub(crate) const FOOTER_LEN: u64 = 48;
/// Bytes of a record besides its payload: kind, length, digest.
pub(crate) const FRAME_LEN: u64 = 1 + 8 + 32;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Space = 1,
    Entry = 2,
    Outcome = 3,
    History = 4,
    Log = 5,
    Manifest = 6,
}

impl RecordKind {
    pub(crate) fn from_u8(k: u8) -> Option<RecordKind> {
        Some(match k {
            1 => RecordKind::Space,
            2 => RecordKind::Entry,
            3 => RecordKind::Outcome,
            4 => RecordKind::History,
            5 => RecordKind::Log,
            6 => RecordKind::Manifest,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RecordKind::Space => "space",
            RecordKind::Entry => "entry",
            RecordKind::Outcome => "outcome",
            RecordKind::History => "history",
            RecordKind::Log => "write-log",
            RecordKind::Manifest => "manifest",
        }
    }
}

/// A 32-byte SHA-256.
pub(crate) type Hash = [u8; 32];

/// A record's digest, which is also its Merkle leaf hash: SHA-256(0x00 | kind | payload).
pub(crate) fn digest(kind: RecordKind, payload: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8, kind as u8]);
    h.update(payload);
    h.finalize().into()
}

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// The Merkle root over `leaves` (RFC 6962 §2.1): SHA-256 of nothing for no leaf, the leaf for
/// one, else the node over the roots of the first `k` leaves and the rest, `k` the largest
/// power of two below the count.
pub(crate) fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = (n - 1).next_power_of_two();
            if k >= n {
                k /= 2;
            }
            node(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// Writes a snapshot as a stream, hashing every byte for the footer.
pub(crate) struct Writer<'w> {
    out: &'w mut dyn Write,
    file: Sha256,
    offset: u64,
}

impl<'w> Writer<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> std::io::Result<Writer<'w>> {
        let mut w = Writer {
            out,
            file: Sha256::new(),
            offset: 0,
        };
        let mut head = Vec::with_capacity(HEADER_LEN as usize);
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        w.put(&head)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.file.update(b);
        self.offset += b.len() as u64;
        Ok(())
    }

    /// Writes one record; returns its offset and digest.
    pub(crate) fn record(
        &mut self,
        kind: RecordKind,
        payload: &[u8],
    ) -> std::io::Result<(u64, Hash)> {
        let at = self.offset;
        let d = digest(kind, payload);
        self.put(&[kind as u8])?;
        self.put(&(payload.len() as u64).to_le_bytes())?;
        self.put(payload)?;
        self.put(&d)?;
        Ok((at, d))
    }

    /// Writes the footer after the manifest record at `manifest_at`; returns the file size.
    pub(crate) fn finish(mut self, manifest_at: u64) -> std::io::Result<u64> {
        self.put(&manifest_at.to_le_bytes())?;
        let h: Hash = self.file.clone().finalize().into();
        self.out.write_all(&h)?;
        self.out.write_all(&MAGIC)?;
        Ok(self.offset + 32 + 8)
    }
}

/// One framed record as read back, its payload borrowed from the file's bytes.
pub(crate) struct Frame<'a> {
    /// Its offset in the file.
    pub at: u64,
    /// The kind byte as stored (may be unknown on a damaged file).
    pub kind: u8,
    pub payload: &'a [u8],
    /// The digest stored after it.
    pub stored: Hash,
}

impl Frame<'_> {
    /// Whether the stored digest matches the kind and payload.
    pub(crate) fn intact(&self) -> bool {
        match RecordKind::from_u8(self.kind) {
            Some(k) => digest(k, self.payload) == self.stored,
            None => false,
        }
    }
}

/// Reads the frame at `at` of `body` (the file without its footer). `Err` says why it cannot
/// be framed (its length runs past the end).
pub(crate) fn frame_at(body: &[u8], at: u64) -> Result<Frame<'_>, String> {
    let end = body.len() as u64;
    if at + 9 > end {
        return Err(format!(
            "a record header at byte {at} runs past the end of the records ({end})"
        ));
    }
    let a = at as usize;
    let kind = body[a];
    let len = u64::from_le_bytes(body[a + 1..a + 9].try_into().expect("8 bytes"));
    let stop = (at + 9)
        .checked_add(len)
        .and_then(|x| x.checked_add(32))
        .filter(|&x| x <= end)
        .ok_or_else(|| {
            format!("the record at byte {at} claims {len} payload bytes, past the end of the records ({end})")
        })?;
    let p = a + 9;
    let payload = &body[p..p + len as usize];
    let stored: Hash = body[p + len as usize..stop as usize]
        .try_into()
        .expect("32 bytes");
    Ok(Frame {
        at,
        kind,
        payload,
        stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Hash {
        digest(RecordKind::Entry, &[i])
    }

    #[test]
    fn merkle_root_follows_rfc6962_splits() {
        let l: Vec<Hash> = (0..7).map(leaf).collect();
        assert_eq!(merkle_root(&[]), <Hash>::from(Sha256::digest([])));
        assert_eq!(merkle_root(&l[..1]), l[0]);
        assert_eq!(merkle_root(&l[..2]), node(&l[0], &l[1]));
        // 3 leaves: k = 2.
        assert_eq!(merkle_root(&l[..3]), node(&node(&l[0], &l[1]), &l[2]));
        // 4 leaves: k = 2.
        let four = node(&node(&l[0], &l[1]), &node(&l[2], &l[3]));
        assert_eq!(merkle_root(&l[..4]), four);
        // 5 leaves: k = 4.
        assert_eq!(merkle_root(&l[..5]), node(&four, &l[4]));
        // 7 leaves: k = 4, then 3 = 2 + 1.
        assert_eq!(
            merkle_root(&l),
            node(&four, &node(&node(&l[4], &l[5]), &l[6]))
        );
    }

    #[test]
    fn frames_round_trip_and_lengths_are_bounded() {
        let mut buf = Vec::new();
        {
            let mut w = Writer::new(&mut buf).unwrap();
            w.record(RecordKind::Space, b"abc").unwrap();
            w.record(RecordKind::Entry, b"").unwrap();
            w.finish(HEADER_LEN).unwrap();
        }
        let body = &buf[..buf.len() - FOOTER_LEN as usize];
        let f = frame_at(body, HEADER_LEN).unwrap();
        assert_eq!((f.kind, f.payload), (1, &b"abc"[..]));
        assert!(f.intact());
        let g = frame_at(body, HEADER_LEN + FRAME_LEN + 3).unwrap();
        assert_eq!(g.payload.len(), 0);
        assert_eq!(HEADER_LEN + 2 * FRAME_LEN + 3, body.len() as u64);
        // A length past the end is refused, not read.
        let mut bad = body.to_vec();
        bad[HEADER_LEN as usize + 8] = 0xff;
        assert!(frame_at(&bad, HEADER_LEN).is_err());
    }
}
