//! `taskdb surrogate embed FILE`: one JSON object a line with "text" (and optionally "id" and
//! "text_pair") in; one `{"id", "vector"}` line per input out, in input order.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::{EmbedStats, Surrogate, TextInput};

/// One input line.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlInput {
    /// The line's `id` if present, else the 1-based line number.
    pub id: serde_json::Value,
    /// `text`.
    pub text: String,
    /// `text_pair`, if present.
    pub text_pair: Option<String>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Parses a JSONL input file. Blank lines are skipped; anything else that is not an object with a
/// string `text` (and optional string `text_pair`) is an error naming the file and line, as is
/// invalid UTF-8.
pub fn read_jsonl_inputs(path: &Path) -> Result<Vec<JsonlInput>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_jsonl(&bytes, &path.display().to_string())
}

pub(crate) fn parse_jsonl(bytes: &[u8], source_name: &str) -> Result<Vec<JsonlInput>> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let bad = |message: String| Error::Input {
            source_name: source_name.to_string(),
            line,
            message,
        };
        let s = std::str::from_utf8(raw).map_err(|e| {
            bad(format!(
                "invalid UTF-8 at byte {} of the line; re-encode the file as UTF-8",
                e.valid_up_to() + 1
            ))
        })?;
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object with a \"text\" field".into()))?;
        let text = match obj.get("text") {
            Some(serde_json::Value::String(t)) => t.clone(),
            Some(_) => return Err(bad("field \"text\" must be a string".into())),
            None => return Err(bad("missing field \"text\"".into())),
        };
        let text_pair = match obj.get("text_pair") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(bad("field \"text_pair\" must be a string".into())),
        };
        let id = obj.get("id").cloned().unwrap_or_else(|| line.into());
        out.push(JsonlInput {
            id,
            text,
            text_pair,
            line,
        });
    }
    Ok(out)
}

/// Embeds every input of `path` and writes one `{"id": .., "vector": [..]}` line per input, in
/// input order, to `out`. Returns the accumulated statistics.
pub fn embed_jsonl(surrogate: &Surrogate, path: &Path, out: &mut dyn Write) -> Result<EmbedStats> {
    let inputs = read_jsonl_inputs(path)?;
    let mut total = EmbedStats::default();
    let out_err = |e: std::io::Error| Error::io("<output>", e);
    for part in inputs.chunks(4096) {
        let items: Vec<TextInput<'_>> = part
            .iter()
            .map(|x| match &x.text_pair {
                Some(p) => TextInput::Pair(&x.text, p),
                None => TextInput::Single(&x.text),
            })
            .collect();
        let e = surrogate.embed_inputs(&items).map_err(|err| match err {
            // map in-memory positions back to file lines
            Error::Input { line, message, .. } => Error::Input {
                source_name: path.display().to_string(),
                line: part.get(line - 1).map_or(line, |x| x.line),
                message,
            },
            other => other,
        })?;
        for (x, v) in part.iter().zip(e.rows()) {
            let rec = serde_json::json!({"id": x.id, "vector": v});
            serde_json::to_writer(&mut *out, &rec).map_err(|e| out_err(e.into()))?;
            out.write_all(b"\n").map_err(out_err)?;
        }
        let s = e.stats;
        total.count += s.count;
        total.truncated += s.truncated;
        total.empty += s.empty;
        total.tokens += s.tokens;
        total.padded_tokens += s.padded_tokens;
        total.batches += s.batches;
        total.tokenize += s.tokenize;
        total.inference += s.inference;
        total.pool += s.pool;
        total.total += s.total;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_line() {
        let bytes = b"{\"text\":\"ok\"}\n{\"text\":\"bad \xff\"}\n";
        let e = parse_jsonl(bytes, "in.jsonl").unwrap_err().to_string();
        assert!(e.contains("in.jsonl: line 2"), "{e}");
        assert!(e.contains("invalid UTF-8"), "{e}");
    }

    #[test]
    fn ids_pairs_blank_lines() {
        let bytes = b"{\"text\":\"a\",\"id\":\"x\"}\n\n{\"text\":\"b\",\"text_pair\":\"c\"}\n";
        let v = parse_jsonl(bytes, "f").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].id, serde_json::json!("x"));
        assert_eq!(v[1].id, serde_json::json!(3));
        assert_eq!(v[1].text_pair.as_deref(), Some("c"));
        let e = parse_jsonl(b"{\"txt\":1}", "f").unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("missing field \"text\""),
            "{e}"
        );
    }
}
