//! Opening input files: format detection, transparent gzip, content hashing.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file format this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
    Tsv,
}

impl Format {
    /// The format's name as used in provenance ("jsonl", "csv", "tsv").
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
        }
    }

    /// Detects the format from the file name: `.jsonl`, `.json`, `.ndjson`, `.csv`, `.tsv`,
    /// each optionally followed by `.gz` (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let stem = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            _ => Err(Error::UnknownFormat {
                path: path.to_path_buf(),
                ext: ext.to_string(),
            }),
        }
    }
}

/// sha256 and size of a file's bytes as stored, and whether it is gzip-compressed.
#[derive(Debug, Clone)]
pub(crate) struct FileDigest {
    pub sha256: [u8; 32],
    pub bytes: u64,
    pub gzip: bool,
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes the file as stored (one streaming pass).
pub(crate) fn digest_file(path: &Path) -> Result<FileDigest> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    let mut head = [0u8; 2];
    let mut head_len = 0;
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        while head_len < 2 && head_len < bytes as usize + n {
            head[head_len] = buf[head_len - bytes as usize];
            head_len += 1;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileDigest {
        sha256: h.finalize().into(),
        bytes,
        gzip: head_len == 2 && head == [0x1f, 0x8b],
    })
}

/// Opens a file for reading, decompressing gzip when the file starts with the gzip
/// magic bytes (whatever its name says).
pub(crate) fn open_maybe_gz(path: &Path) -> Result<(Box<dyn BufRead + Send>, bool)> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let head = r.fill_buf().map_err(|e| io_err(path, e))?;
    let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    if gz {
        Ok((
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(r))),
            true,
        ))
    } else {
        Ok((Box::new(r), false))
    }
}

/// Reads one line (up to and excluding '\n', and a trailing '\r') into `buf`; returns
/// false at EOF. Lines longer than `max` bytes are an error.
pub(crate) fn read_line_bounded<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let n = Read::take(&mut *r, max as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    let too_long = buf.len() > max && buf.last() != Some(&b'\n');
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if too_long {
        // Skip the rest of the line so the caller can report it.
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let m = Read::take(&mut *r, 1 << 16).read_until(b'\n', &mut sink)?;
            if m == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(Some(too_long))
}
