//! The built-in reference library (src/data/reference-library-scatter.json) must match what a
//! new default scatter space is: the default surrogate, the built-in probe set U and today's
//! default parameters. Otherwise it silently stops centring new spaces, so this test fails
//! instead: rebuild it with `scripts/build_reference_library.sh`.
//!
//! Needs the provisioned default surrogate (`scripts/provision.sh`, as the whole suite does).

use taskdb::{MethodKind, MethodParams, ReferenceLibrary};
use taskdb_surrogate::{default_surrogate_dir, Options, Surrogate};

#[test]
fn builtin_reference_library_matches_the_default_space() {
    let lib = ReferenceLibrary::builtin().expect("the built-in reference library parses");
    assert_eq!(lib.method, MethodKind::Scatter);
    assert!(lib.tasks.len() >= 10, "{} tasks", lib.tasks.len());
    assert_eq!(
        lib.method_params,
        MethodParams::default(),
        "scatter's default parameters changed: rebuild the built-in reference library"
    );
    let probe = taskdb_sources::ProbeSet::builtin().unwrap();
    assert_eq!(
        lib.probe_fingerprint,
        probe.fingerprint_hex(),
        "the built-in probe set changed: rebuild the built-in reference library"
    );
    let dir = default_surrogate_dir();
    assert!(
        dir.join("surrogate.json").is_file(),
        "the default surrogate is not provisioned at {}: run scripts/provision.sh",
        dir.display()
    );
    let s = Surrogate::load(&dir, &Options::default()).unwrap();
    assert_eq!(
        lib.surrogate_fingerprint,
        s.fingerprint(),
        "the default surrogate changed: rebuild the built-in reference library"
    );
    // Its mean is a valid reference: finite, of the surrogate's dimension.
    let r = lib.reference().unwrap();
    assert_eq!(r.dim, s.dim());
    assert!(r.values.iter().all(|v| v.is_finite()));
    assert!(lib.matches(
        MethodKind::Scatter,
        &MethodParams::default(),
        s.fingerprint(),
        &probe.fingerprint_hex()
    ));
}
