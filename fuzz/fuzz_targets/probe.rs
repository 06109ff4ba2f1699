//! User-provided probe sets (`--probe FILE`): JSON lines with "text", "id", "text_pair".
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskdb_sources::ProbeSet;

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::BufReader::new(data);
    if let Ok(p) = ProbeSet::from_reader("fuzz", std::path::Path::new("<fuzz>"), &mut r) {
        // A probe set that loads must serialise and reload to the same fingerprint.
        let mut out = Vec::new();
        p.export(&mut out).unwrap();
        let q = ProbeSet::from_reader("fuzz", std::path::Path::new("<fuzz>"), &mut &out[..])
            .expect("an exported probe set reloads");
        assert_eq!(p.fingerprint, q.fingerprint);
    }
});
