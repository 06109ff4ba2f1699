//! What the taskdb fuzz targets share.

/// libfuzzer-sys's panic hook aborts on every panic, even one that taskdb catches: redb panics
/// on some damaged files (it unwraps UTF-8 decoding of text keys), and taskdb contains those
/// and reports them as corruption (`taskdb::panic_is_contained`). This hook aborts (a crash
/// for libFuzzer) only for a panic taskdb does not contain.
pub fn contained_panics_are_not_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if !taskdb::panic_is_contained() {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

/// A per-process scratch path `taskdb-fuzz-NAME-PID` in RAM (`/dev/shm`) when there is one,
/// else in the temporary directory: every target writes its input there.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("taskdb-fuzz-{name}-{}", std::process::id()))
}
