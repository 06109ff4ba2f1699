//! The built-in reference library (src/data/reference-library-scatter.json) must match what a
//! library-centred scatter space is (`MethodParams::library_centred()`, the default before
//! k-means centring in the whitened space replaced it): the default surrogate, the built-in
//! probe set U and those parameters. Otherwise it silently stops centring such spaces, so this
//! test fails instead: rebuild it with `scripts/build_reference_library.sh`. Today's default
//! scatter space does not use it (it is centred by its own k-means reference).
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
        MethodParams::library_centred(),
        "scatter's library-centred parameters changed: rebuild the built-in reference library"
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
        &MethodParams::library_centred(),
        s.fingerprint(),
        &probe.fingerprint_hex()
    ));
    // Today's default pairs texts differently, so the library's tasks do not fit its spaces.
    assert!(!lib.matches(
        MethodKind::Scatter,
        &MethodParams::default(),
        s.fingerprint(),
        &probe.fingerprint_hex()
    ));
}
