//! Byte-level helpers shared by every codec: little-endian f32 arrays, base64, sha256. One copy
//! each (space parameters, the reference library, vector records and the feature cache all use
//! them). The bottom of the crate: no imports from it.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `values` as little-endian bytes.
pub(crate) fn f32_to_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes as f32 values; `None` when the length is not a multiple of 4.
pub(crate) fn f32_from_le(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Standard base64 (with padding).
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes [`b64_encode`]'s output.
pub(crate) fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// sha256 of `bytes`, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trips_bit_exactly() {
        let v = [0.0f32, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-7];
        let back = f32_from_le(&f32_to_le(&v)).unwrap();
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(f32_from_le(&[1, 2, 3]).is_none());
    }

    #[test]
    fn base64_and_sha256_are_the_standard_ones() {
        assert_eq!(b64_encode(b"taskdb"), "dGFza2Ri");
        assert_eq!(b64_decode("dGFza2Ri").unwrap(), b"taskdb");
        assert!(b64_decode("not base64!").is_err());
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
