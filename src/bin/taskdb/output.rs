//! Rendering helpers shared by commands.

use serde::Serialize;

/// Prints `v` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(v: &T) -> taskdb::Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| taskdb::Error::Internal(format!("JSON output: {e}")))?;
    println!("{s}");
    Ok(())
}

/// Parses `key=value`.
pub fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// Formats `key=value,...`.
pub fn tags(t: &std::collections::BTreeMap<String, String>) -> String {
    t.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes `bytes` to `path` atomically (see [`taskdb::files::write_atomic`]): a failed write
/// leaves any existing file as it was.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> taskdb::Result<()> {
    taskdb::files::write_atomic(path, bytes).map_err(|e| taskdb::Error::io(path, e))
}
