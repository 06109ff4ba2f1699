//! Verification of a snapshot's bytes, offline: the framing, every record's digest, the
//! manifest's leaf list and Merkle root, the history and write-log hashes, the whole-file digest
//! in the footer, and the content itself (dimensions, finite values, non-zero norms, the log's
//! hash chain). Every failure names the entry, space or section.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::format::{self, Frame, RecordKind, FOOTER_LEN, HEADER_LEN, MAGIC, SNAPSHOT_FORMAT};
use super::image::Image;
use super::Manifest;
use crate::error::{Error, Result};

/// One failure found by [`super::Snapshot::verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The entry, space or section: `entry 57 of 200 (sst2@1)`, `space "s"`, `manifest`,
    /// `footer`, `header`, `history`, `write log`, `root`.
    pub what: String,
    /// What is wrong.
    pub detail: String,
}

/// What [`super::Snapshot::verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The file.
    pub path: std::path::PathBuf,
    /// True when nothing failed.
    pub ok: bool,
    /// The content root recomputed from the records (hex), when they could be read.
    pub root: Option<String>,
    /// The root the caller expected (`--root`), if any.
    pub expected_root: Option<String>,
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// Records of each kind that were read.
    pub spaces: u64,
    /// Entry records read.
    pub entries: u64,
    /// Outcome records read.
    pub outcomes: u64,
    /// Write-log records read.
    pub log_records: u64,
    /// Bytes in the file.
    pub bytes: u64,
    /// Every failure; empty when `ok`.
    pub problems: Vec<Problem>,
}

pub(crate) struct Verified {
    pub report: VerifyReport,
    /// The decoded image, when everything passed.
    pub image: Option<Image>,
}

fn p(what: impl Into<String>, detail: impl Into<String>) -> Problem {
    Problem {
        what: what.into(),
        detail: detail.into(),
    }
}

/// Verifies `bytes`, the whole file at `path`. `Err` only when the file is not a snapshot at all
/// or is an intact snapshot of a newer format; damage is a problem in the report.
pub(crate) fn verify_bytes(
    path: &Path,
    bytes: &[u8],
    expected_root: Option<&str>,
) -> Result<Verified> {
    let mut r = VerifyReport {
        path: path.to_path_buf(),
        ok: false,
        root: None,
        expected_root: expected_root.map(str::to_lowercase),
        manifest: None,
        spaces: 0,
        entries: 0,
        outcomes: 0,
        log_records: 0,
        bytes: bytes.len() as u64,
        problems: Vec::new(),
    };
    let Some(shape) = check_shape(path, bytes, &mut r.problems)? else {
        return Ok(Verified {
            report: r,
            image: None,
        });
    };
    let frames = scan(&bytes[..shape.body_end], &shape, &mut r.problems);
    let manifest = read_manifest(&frames, &shape, &mut r.problems);
    let g = group(&frames, manifest.as_ref(), &mut r.problems);
    r.spaces = g.spaces.len() as u64;
    r.entries = g.entries.len() as u64;
    r.outcomes = g.outcomes.len() as u64;
    r.log_records = g.log.len() as u64;
    let leaves: Vec<format::Hash> = g
        .spaces
        .iter()
        .chain(&g.entries)
        .chain(&g.outcomes)
        .map(|f| f.stored)
        .collect();
    let root = hex::encode(format::merkle_root(&leaves));
    if let Some(m) = &manifest {
        check_manifest(m, &g, &root, &mut r.problems);
    }
    if let Some(want) = &r.expected_root {
        if *want != root {
            r.problems.push(p(
                "root",
                format!(
                    "the records' root is {root}, not the expected {want}: this is not the \
                     snapshot that root was published for, or its content was changed"
                ),
            ));
        }
    }
    r.root = Some(root);
    if shape.footer_magic && !shape.file_ok && r.problems.is_empty() {
        r.problems.push(p(
            "footer",
            "the whole-file digest does not match (the header, a record's framing, or the \
             footer itself is damaged)",
        ));
    }
    let mut image = None;
    if g.all_intact && r.problems.is_empty() {
        match (g.history, &manifest) {
            (Some(h), Some(m)) => match decode(m, &g, h) {
                Ok(img) => image = Some(img),
                Err(e) => r.problems.push(e),
            },
            (None, _) => r.problems.push(p("history", "missing")),
            _ => {}
        }
    }
    r.manifest = manifest;
    r.ok = r.problems.is_empty();
    Ok(Verified { report: r, image })
}

/// What the header and footer say about the file.
struct Shape {
    /// The footer's magic is in place (else: truncated, or a damaged footer).
    footer_magic: bool,
    /// The footer's whole-file digest matches.
    file_ok: bool,
    /// Where the records end: the footer, or the end of the file without one.
    body_end: usize,
    /// The manifest's offset as the footer gives it.
    manifest_at: u64,
}

/// The header and footer. `Err` for a file that is not a snapshot or an intact newer one;
/// `None` for a file too short to hold a header and a footer.
fn check_shape(path: &Path, bytes: &[u8], problems: &mut Vec<Problem>) -> Result<Option<Shape>> {
    // The magic: 7 of 8 bytes right is a damaged snapshot, fewer is some other file.
    let n = bytes.len().min(8);
    let same = bytes[..n]
        .iter()
        .zip(&MAGIC)
        .filter(|(a, b)| a == b)
        .count();
    if n == 0 || same < n.saturating_sub(1) {
        return Err(Error::NotTaskDb {
            path: path.to_path_buf(),
            reason: "not a taskdb snapshot either: its first bytes are not TDBSNAP".into(),
        });
    }
    let len = bytes.len();
    if (len as u64) < HEADER_LEN + FOOTER_LEN {
        problems.push(p(
            "file",
            format!(
                "truncated: {len} bytes, fewer than a header and a footer ({})",
                HEADER_LEN + FOOTER_LEN
            ),
        ));
        return Ok(None);
    }
    if same != 8 {
        problems.push(p("header", "its magic bytes are damaged"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let flags = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let footer = &bytes[len - FOOTER_LEN as usize..];
    let footer_magic = footer[40..] == MAGIC;
    let file_ok = footer_magic && {
        let h: [u8; 32] = Sha256::digest(&bytes[..len - 40]).into();
        h[..] == footer[8..40]
    };
    if version != SNAPSHOT_FORMAT {
        if file_ok && version > SNAPSHOT_FORMAT {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                found: version,
                supported: SNAPSHOT_FORMAT,
            });
        }
        problems.push(p(
            "header",
            format!(
                "format version field reads {version} and the file digest does not match: the \
                 header is damaged"
            ),
        ));
    }
    if flags != 0 {
        problems.push(p(
            "header",
            format!("flags field reads {flags:#x}, expected 0"),
        ));
    }
    Ok(Some(Shape {
        footer_magic,
        file_ok,
        body_end: if footer_magic {
            len - FOOTER_LEN as usize
        } else {
            len
        },
        manifest_at: u64::from_le_bytes(footer[..8].try_into().expect("8 bytes")),
    }))
}

/// Frames every record of `body`. Without a footer (truncated, or a damaged footer) the records
/// run to the end of the file, and the scan says where they stop.
fn scan<'a>(body: &'a [u8], shape: &Shape, problems: &mut Vec<Problem>) -> Vec<Frame<'a>> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut at = HEADER_LEN;
    while at < body.len() as u64 {
        match format::frame_at(body, at) {
            Ok(f) => {
                at = f.at + format::FRAME_LEN + f.payload.len() as u64;
                frames.push(f);
            }
            Err(e) => {
                problems.push(p(
                    format!(
                        "record {} (after {} whole records)",
                        frames.len() + 1,
                        frames.len()
                    ),
                    if shape.footer_magic {
                        format!("{e}: a length field is damaged")
                    } else {
                        format!("{e}: the file is truncated (or its footer is damaged)")
                    },
                ));
                break;
            }
        }
    }
    if !shape.footer_magic {
        problems.push(p(
            "footer",
            format!(
                "missing or damaged: the file ends after {} whole records (the last at byte {}); \
                 a snapshot ends with its manifest and footer, so it was truncated or its last \
                 bytes damaged",
                frames.len(),
                frames.last().map(|f| f.at).unwrap_or(HEADER_LEN)
            ),
        ));
    }
    frames
}

/// The manifest: the last record, at the offset the footer gives.
fn read_manifest(
    frames: &[Frame<'_>],
    shape: &Shape,
    problems: &mut Vec<Problem>,
) -> Option<Manifest> {
    match frames.last() {
        Some(f) if f.kind == RecordKind::Manifest as u8 && f.intact() => {
            if shape.footer_magic && f.at != shape.manifest_at {
                problems.push(p(
                    "footer",
                    format!(
                        "it puts the manifest at byte {}, but it is at byte {}",
                        shape.manifest_at, f.at
                    ),
                ));
            }
            match serde_json::from_slice::<Manifest>(f.payload) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(p("manifest", format!("undecodable: {e}")));
                    None
                }
            }
        }
        Some(f) if f.kind == RecordKind::Manifest as u8 => {
            problems.push(p(
                "manifest",
                "its digest does not match its bytes (damaged)",
            ));
            serde_json::from_slice::<Manifest>(f.payload).ok()
        }
        _ => {
            if shape.footer_magic {
                problems.push(p(
                    "manifest",
                    "missing: the last record is not the manifest",
                ));
            }
            None
        }
    }
}

/// The records by kind, in file order.
#[derive(Default)]
struct Groups<'f, 'a> {
    spaces: Vec<&'f Frame<'a>>,
    entries: Vec<&'f Frame<'a>>,
    outcomes: Vec<&'f Frame<'a>>,
    history: Option<&'f Frame<'a>>,
    log: Vec<&'f Frame<'a>>,
    /// Every record's digest matched and every kind was known.
    all_intact: bool,
}

/// Sorts the records by kind, checking each one's digest and the order of kinds.
fn group<'f, 'a>(
    frames: &'f [Frame<'a>],
    manifest: Option<&Manifest>,
    problems: &mut Vec<Problem>,
) -> Groups<'f, 'a> {
    let mut g = Groups {
        all_intact: true,
        ..Groups::default()
    };
    let mut order = 0u8;
    for (i, f) in frames.iter().enumerate() {
        let Some(k) = RecordKind::from_u8(f.kind) else {
            g.all_intact = false;
            problems.push(p(
                format!("record {} at byte {}", i + 1, f.at),
                format!("unknown kind {} (damaged)", f.kind),
            ));
            continue;
        };
        let idx = match k {
            RecordKind::Space => g.spaces.len(),
            RecordKind::Entry => g.entries.len(),
            RecordKind::Outcome => g.outcomes.len(),
            RecordKind::Log => g.log.len(),
            _ => 0,
        };
        let name = || label(k, idx, manifest, f.payload);
        if !f.intact() {
            g.all_intact = false;
            if k != RecordKind::Manifest {
                problems.push(p(
                    name(),
                    format!(
                        "its digest does not match its bytes (damaged at byte {}..{})",
                        f.at,
                        f.at + format::FRAME_LEN + f.payload.len() as u64
                    ),
                ));
            }
        }
        let rank = k as u8;
        let misplaced = rank < order
            || (k == RecordKind::Manifest && i + 1 != frames.len())
            || (k == RecordKind::History && g.history.is_some());
        if misplaced {
            problems.push(p(
                name(),
                "out of order (records go: spaces, entries, outcomes, history, write log, manifest)",
            ));
        }
        order = order.max(rank);
        match k {
            RecordKind::Space => g.spaces.push(f),
            RecordKind::Entry => g.entries.push(f),
            RecordKind::Outcome => g.outcomes.push(f),
            RecordKind::History => g.history = Some(f),
            RecordKind::Log => g.log.push(f),
            RecordKind::Manifest => {}
        }
    }
    g
}

/// How a record is named in a problem: by the manifest's name at its position, else by what
/// the (possibly damaged) payload says.
fn label(k: RecordKind, idx: usize, m: Option<&Manifest>, payload: &[u8]) -> String {
    let listed = m.and_then(|m| match k {
        RecordKind::Space => m
            .spaces
            .get(idx)
            .map(|l| (m.spaces.len(), format!("({:?})", l.name))),
        RecordKind::Entry => m
            .entries
            .get(idx)
            .map(|l| (m.entries.len(), format!("({})", l.name))),
        RecordKind::Outcome => m
            .outcomes
            .get(idx)
            .map(|l| (m.outcomes.len(), format!("({})", l.name))),
        RecordKind::Log => Some((m.log_records as usize, String::new())),
        _ => None,
    });
    match (k, listed) {
        (RecordKind::History | RecordKind::Manifest, _) => k.name().to_string(),
        (RecordKind::Log, _) => format!("write log record {}", idx + 1),
        (_, Some((n, name))) => format!("{} {} of {n} {name}", k.name(), idx + 1),
        (_, None) => {
            // The manifest is unreadable: the entry's own head, if it still parses.
            let guess = (k == RecordKind::Entry && payload.len() > 4)
                .then(|| {
                    let n = u32::from_le_bytes(payload[..4].try_into().ok()?) as usize;
                    let v: serde_json::Value =
                        serde_json::from_slice(payload.get(4..4 + n)?).ok()?;
                    Some(format!(
                        " (reads as {}@{})",
                        v.get("name")?.as_str()?,
                        v.get("version")?
                    ))
                })
                .flatten()
                .unwrap_or_default();
            format!("{} {}{guess}", k.name(), idx + 1)
        }
    }
}

fn check_manifest(m: &Manifest, g: &Groups<'_, '_>, root: &str, problems: &mut Vec<Problem>) {
    if m.format != SNAPSHOT_FORMAT {
        problems.push(p(
            "manifest",
            format!("format {} (header says {SNAPSHOT_FORMAT})", m.format),
        ));
    }
    for (kind, listed, frames) in [
        (RecordKind::Space, &m.spaces, &g.spaces),
        (RecordKind::Entry, &m.entries, &g.entries),
        (RecordKind::Outcome, &m.outcomes, &g.outcomes),
    ] {
        if listed.len() != frames.len() {
            problems.push(p(
                "manifest",
                format!(
                    "it lists {} {} records, the file has {}",
                    listed.len(),
                    kind.name(),
                    frames.len()
                ),
            ));
        }
        for (i, (l, f)) in listed.iter().zip(frames).enumerate() {
            if l.sha256 != hex::encode(f.stored) {
                problems.push(p(
                    format!("{} {} of {} ({})", kind.name(), i + 1, listed.len(), l.name),
                    "its digest differs from the manifest's (the record or the manifest was changed)",
                ));
            }
        }
    }
    if m.root != root {
        problems.push(p(
            "root",
            format!("the manifest says {}, the records give {root}", m.root),
        ));
    }
    match g.history {
        Some(h) if hex::encode(h.stored) != m.history_sha256 => {
            problems.push(p("history", "its digest differs from the manifest's"))
        }
        None => problems.push(p("history", "missing")),
        _ => {}
    }
    if m.log_records != g.log.len() as u64 {
        problems.push(p(
            "write log",
            format!(
                "the manifest lists {} records, the file has {}",
                m.log_records,
                g.log.len()
            ),
        ));
    }
}

fn decode(m: &Manifest, g: &Groups<'_, '_>, history: &Frame<'_>) -> Result<Image, Problem> {
    fn payloads<'a>(fs: &[&Frame<'a>]) -> Vec<&'a [u8]> {
        fs.iter().map(|f| f.payload).collect()
    }
    let bad = |k: RecordKind, i: usize, d: String| {
        let listed = match k {
            RecordKind::Space => m.spaces.get(i),
            RecordKind::Entry => m.entries.get(i),
            RecordKind::Outcome => m.outcomes.get(i),
            _ => None,
        };
        let what = match listed {
            Some(l) => format!("{} {} ({})", k.name(), i + 1, l.name),
            None => k.name().to_string(),
        };
        Error::Corrupt { what, detail: d }
    };
    // Log records carry their sequence number inside; the chain check reads it from there.
    let mut raw = Vec::with_capacity(g.log.len());
    for (i, f) in g.log.iter().enumerate() {
        let seq = crate::store::log::decode(i as u64 + 1, f.payload)
            .map(|r| r.seq)
            .map_err(|e| p(format!("write log record {}", i + 1), e.to_string()))?;
        raw.push((seq, f.payload.to_vec()));
    }
    let chain = crate::store::log::verify_records(
        raw.iter().map(|(k, v)| (*k, v.as_slice())),
        m.log_head.as_deref(),
    );
    if let Some(first) = chain.problems.first() {
        return Err(p("write log", first.clone()));
    }
    let mut img = Image::from_records(
        &payloads(&g.spaces),
        &payloads(&g.entries),
        &payloads(&g.outcomes),
        history.payload,
        raw,
        &bad,
    )
    .map_err(|e| match e {
        Error::Corrupt { what, detail } => p(what, detail),
        other => p("snapshot", other.to_string()),
    })?;
    img.log_head = m.log_head.clone();
    // The manifest's names are what errors and diffs print: they must be the records' own.
    let names = img
        .spaces
        .iter()
        .map(|s| s.def.name.clone())
        .zip(&m.spaces)
        .map(|(n, l)| ("space", n, l))
        .chain(
            img.entries
                .iter()
                .map(|e| format!("{}@{}", e.rec.name, e.rec.version))
                .zip(&m.entries)
                .map(|(n, l)| ("entry", n, l)),
        )
        .chain(
            img.outcomes
                .iter()
                .map(|o| format!("{} -> {}", o.outcome.source, o.outcome.target))
                .zip(&m.outcomes)
                .map(|(n, l)| ("outcome", n, l)),
        );
    for (kind, actual, listed) in names {
        if actual != listed.name {
            return Err(p(
                "manifest",
                format!(
                    "its {kind} list names {:?} where the record holds {actual:?}",
                    listed.name
                ),
            ));
        }
    }
    let last = img.log.last().map(|(seq, _)| *seq).unwrap_or(0);
    if m.log_seq != last {
        return Err(p(
            "manifest",
            format!(
                "its log_seq is {}, but the last write-log record is {last}",
                m.log_seq
            ),
        ));
    }
    Ok(img)
}
