//! ONNX Runtime discovery errors. Its own test binary (= its own process): ORT is loaded at most
//! once per process, and these checks must run before it is.

use std::path::Path;

use taskdb_surrogate::{loaded_runtime, ort_runtime, Error, Options, OrtSource, Surrogate};

#[test]
fn discovery_errors_then_explicit_path_then_load_once() {
    let mut warnings = Vec::new();
    // An explicit path that does not exist: an error naming it and what to do; nothing loaded.
    match ort_runtime(
        Some(Path::new("/nonexistent/libonnxruntime.so")),
        &mut warnings,
    ) {
        Err(Error::OrtLibrary { path, reason }) => {
            assert_eq!(path, Path::new("/nonexistent/libonnxruntime.so"));
            assert!(reason.contains("does not exist"), "{reason}");
        }
        other => panic!("expected OrtLibrary error, got {other:?}"),
    }
    // A shared library that is not ONNX Runtime.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.is_file());
    if let Some(libm) = libm {
        let e = ort_runtime(Some(libm), &mut warnings)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not an ONNX Runtime library") && e.contains("scripts/provision.sh"),
            "{e}"
        );
    }
    assert!(loaded_runtime().is_none());

    // Now the real one, found through the normal discovery (provisioned copy or ORT_DYLIB_PATH).
    let rt = ort_runtime(None, &mut warnings)
        .unwrap_or_else(|e| panic!("ONNX Runtime not found (run scripts/provision.sh): {e}"));
    assert!(rt.version.starts_with("1.31."));
    assert!(matches!(
        rt.source,
        OrtSource::EnvVar | OrtSource::Provisioned | OrtSource::Python
    ));
    assert!(warnings.is_empty());

    // A second, different explicit library is ignored with a warning naming the one in use.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/surrogate/tiny");
    let opts = Options {
        ort_library: Some("/somewhere/else/libonnxruntime.so".into()),
        ..Options::default()
    };
    let s = Surrogate::load(&fx, &opts).unwrap();
    let w = s.info().warnings.join("\n");
    assert!(
        w.contains("already loaded") && w.contains(&rt.path.display().to_string()),
        "{w}"
    );
    assert_eq!(s.info().ort_library, rt.path);
}
