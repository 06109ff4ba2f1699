//! The probe set U: the texts every model labels.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::input::{io_err, open_maybe_gz, read_line_bounded};
use crate::prompt::PromptTemplate;

/// The default U, built by `scripts/build_probe_set.py` (see docs/PROBE-SET.md).
static DEFAULT_PROBE_GZ: &[u8] = include_bytes!("../data/probe_default.jsonl.gz");

/// Name of the built-in probe set.
pub const DEFAULT_PROBE_NAME: &str = "taskdb-default-v1";

const MAX_LINE: usize = 16 << 20;

/// One probe text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeText {
    pub id: u32,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text_pair: Option<String>,
}

/// A probe set: texts sorted by id, and a fingerprint of their content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSet {
    pub name: String,
    /// Sorted by id, ids unique.
    pub texts: Vec<ProbeText>,
    /// sha256 of the canonical serialisation (see [`ProbeSet::canonical_bytes`]); the
    /// name is not part of it.
    pub fingerprint: [u8; 32],
}

impl Default for ProbeSet {
    /// The built-in default U (3,000 texts). The embedded file is checked by this crate's
    /// tests, so this cannot fail on a released build.
    fn default() -> Self {
        ProbeSet::builtin().expect("embedded default probe set is valid")
    }
}

impl ProbeSet {
    /// The built-in default U, as a `Result`.
    pub fn builtin() -> Result<ProbeSet> {
        let dec = flate2::read::GzDecoder::new(DEFAULT_PROBE_GZ);
        let mut r = std::io::BufReader::new(dec);
        Self::from_reader(
            DEFAULT_PROBE_NAME,
            Path::new("<built-in probe set>"),
            &mut r,
        )
    }

    /// Reads a user-provided U: JSON lines with "text", optional "id" (non-negative
    /// integer; assigned by position, 0-based, when absent) and optional "text_pair"
    /// (all lines or none). Gzip is detected by magic bytes. Name = file stem.
    pub fn from_file(path: &Path) -> Result<ProbeSet> {
        let (mut r, _) = open_maybe_gz(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "probe".into());
        let name = name
            .trim_end_matches(".gz")
            .trim_end_matches(".jsonl")
            .to_string();
        Self::from_reader(&name, path, r.as_mut())
    }

    /// Reads U from any reader (`path` is only used in error messages).
    pub fn from_reader(name: &str, path: &Path, r: &mut dyn BufRead) -> Result<ProbeSet> {
        let mut buf = Vec::new();
        let mut line = 0u64;
        let mut pos = 0u32;
        let mut texts = Vec::new();
        let mut first_line: BTreeMap<u32, u64> = BTreeMap::new();
        let mut pairs: Option<bool> = None;
        let perr = |line: u64, msg: String| Error::Probe {
            path: path.to_path_buf(),
            line,
            msg,
        };
        while let Some(too_long) =
            read_line_bounded(r, &mut buf, MAX_LINE).map_err(|e| io_err(path, e))?
        {
            line += 1;
            if too_long {
                return Err(perr(line, format!("line longer than {MAX_LINE} bytes")));
            }
            let s = std::str::from_utf8(&buf).map_err(|_| Error::InvalidUtf8 {
                path: path.to_path_buf(),
                line,
            })?;
            let s = s.strip_prefix('\u{feff}').unwrap_or(s);
            if s.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(s).map_err(|e| Error::Json {
                path: path.to_path_buf(),
                line,
                msg: e.to_string(),
                hint: String::new(),
            })?;
            let Value::Object(obj) = v else {
                return Err(perr(
                    line,
                    "not a JSON object; each line must be {\"text\": ...}".into(),
                ));
            };
            let text = match obj.get("text") {
                Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
                Some(Value::String(_)) => {
                    return Err(perr(line, "empty \"text\"; remove the line".into()))
                }
                _ => {
                    return Err(perr(
                        line,
                        "no \"text\" string; each line must be {\"text\": ...}".into(),
                    ))
                }
            };
            let id = match obj.get("id") {
                None | Some(Value::Null) => pos,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(i) if i <= u32::MAX as u64 => i as u32,
                    _ => {
                        return Err(perr(
                            line,
                            format!("\"id\" {n} is not an integer in 0..=4294967295"),
                        ))
                    }
                },
                Some(other) => {
                    return Err(perr(
                        line,
                        format!("\"id\" must be a non-negative integer, found {other}"),
                    ))
                }
            };
            let text_pair = match obj.get("text_pair") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(_) => return Err(perr(line, "\"text_pair\" must be a string".into())),
            };
            match pairs {
                None => pairs = Some(text_pair.is_some()),
                Some(p) if p != text_pair.is_some() => {
                    return Err(perr(
                        line,
                        "\"text_pair\" must be on every line or on none".into(),
                    ))
                }
                _ => {}
            }
            if let Some(&first) = first_line.get(&id) {
                return Err(Error::DuplicateProbeId {
                    path: path.to_path_buf(),
                    line,
                    id,
                    first_line: first,
                });
            }
            first_line.insert(id, line);
            texts.push(ProbeText {
                id,
                text,
                text_pair,
            });
            pos = pos.saturating_add(1);
        }
        Self::from_texts(name, texts)
    }

    /// Builds a probe set from texts (sorted by id here). Errors on duplicate ids or
    /// no texts.
    pub fn from_texts(name: &str, mut texts: Vec<ProbeText>) -> Result<ProbeSet> {
        if texts.is_empty() {
            return Err(Error::EmptyProbeSet);
        }
        texts.sort_by_key(|t| t.id);
        for w in texts.windows(2) {
            if w[0].id == w[1].id {
                return Err(Error::DuplicateProbeId {
                    path: PathBuf::from(format!("<probe set {name}>")),
                    line: 0,
                    id: w[0].id,
                    first_line: 0,
                });
            }
        }
        let mut s = ProbeSet {
            name: name.to_string(),
            texts,
            fingerprint: [0; 32],
        };
        s.fingerprint = Sha256::digest(s.canonical_bytes()).into();
        Ok(s)
    }

    /// The canonical serialisation that the fingerprint hashes: `b"taskdb-probe-v1\n"`,
    /// then per text in id order: id (u32 LE), text length (u64 LE), text bytes, then
    /// 0u8 when there is no pair, or 1u8, pair length (u64 LE), pair bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = b"taskdb-probe-v1\n".to_vec();
        for t in &self.texts {
            out.extend_from_slice(&t.id.to_le_bytes());
            out.extend_from_slice(&(t.text.len() as u64).to_le_bytes());
            out.extend_from_slice(t.text.as_bytes());
            match &t.text_pair {
                None => out.push(0),
                Some(p) => {
                    out.push(1);
                    out.extend_from_slice(&(p.len() as u64).to_le_bytes());
                    out.extend_from_slice(p.as_bytes());
                }
            }
        }
        out
    }

    /// Hex form of the fingerprint.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Whether the texts carry a second text (pair tasks).
    pub fn has_pairs(&self) -> bool {
        self.texts.iter().any(|t| t.text_pair.is_some())
    }

    /// Position of `id` in `texts`, if present.
    pub fn position(&self, id: u32) -> Option<usize> {
        self.texts.binary_search_by_key(&id, |t| t.id).ok()
    }

    /// Writes U as the model input format: one `{"id": N, "text": "..."}` line per text
    /// (plus "text_pair" when present), in id order.
    pub fn export<W: Write>(&self, w: W) -> std::io::Result<()> {
        self.export_with_prompt(w, None)
    }

    /// Like [`ProbeSet::export`], with each text replaced by the filled-in prompt (the
    /// pair goes into the prompt when it uses `{text_pair}`, else stays a field).
    pub fn export_with_prompt<W: Write>(
        &self,
        mut w: W,
        prompt: Option<&PromptTemplate>,
    ) -> std::io::Result<()> {
        for t in &self.texts {
            w.write_all(&input_line(t, prompt))?;
        }
        w.flush()
    }
}

impl PromptTemplate {
    // Defined here, beside the probe set it checks, so that the template module stays below
    // the probe module (no import loop: probe uses prompt, never the reverse).
    /// Errors when the template uses `{text_pair}` but `probe` has no pairs.
    pub fn check(&self, probe: &ProbeSet) -> Result<()> {
        if self.uses_pair() && !probe.has_pairs() {
            return Err(Error::Template {
                msg: format!(
                    "the template uses {{text_pair}} but the probe set {:?} has no text pairs; remove {{text_pair}} or use a probe set with pairs",
                    probe.name
                ),
            });
        }
        Ok(())
    }
}

/// One input line (with '\n') for `t`.
pub(crate) fn input_line(t: &ProbeText, prompt: Option<&PromptTemplate>) -> Vec<u8> {
    let (text, pair) = match prompt {
        Some(p) => {
            let filled = p.render(&t.text, t.text_pair.as_deref());
            let pair = if p.uses_pair() {
                None
            } else {
                t.text_pair.as_deref()
            };
            (filled, pair)
        }
        None => (t.text.clone(), t.text_pair.as_deref()),
    };
    let mut m = serde_json::Map::new();
    m.insert("id".into(), Value::from(t.id));
    m.insert("text".into(), Value::String(text));
    if let Some(p) = pair {
        m.insert("text_pair".into(), Value::String(p.to_string()));
    }
    let mut v = serde_json::to_vec(&Value::Object(m)).unwrap_or_default();
    v.push(b'\n');
    v
}
