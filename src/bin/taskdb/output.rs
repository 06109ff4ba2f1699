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

/// Writes `bytes` to `path` atomically (a temporary file in the same directory, fsync, rename):
/// a failed write leaves any existing file as it was.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> taskdb::Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| taskdb::Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    #[cfg(unix)]
    {
        // NamedTempFile is created 0600; an exported file is meant to be shared.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
