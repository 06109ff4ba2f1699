//! The per-machine cache of frozen statistics of U (whitenings, k-means references):
//! `$TASKDB_HOME/references/{prefix}-{key hash}.json`. Derived and verified (checksums) before
//! use; rebuilt when missing or damaged; written atomically, best effort. Once in a space
//! definition, a statistic is part of the database and never read from here again.

use serde_json::json;
use taskdb_methods::{self as methods, PairFeatures};

use super::{method_err, Ingestor, ProbeX};
use crate::error::Result;

impl Ingestor {
    /// A frozen statistic of U (`build` from U's features), cached per machine under
    /// `$TASKDB_HOME/references/` as `{prefix}-{key hash}.json`, keyed by `key` plus the
    /// surrogate and probe-set fingerprints. A cached file is used only if `verify` accepts it
    /// (checksums), else rebuilt; writing the cache is best effort. `mode`: how the space
    /// featurises U's text pairs (part of the key only when U has pairs).
    pub(super) fn frozen<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        mut key: serde_json::Value,
        verify: impl Fn(&T) -> bool,
        (probe_x, mode): (&mut ProbeX, PairFeatures),
        build: impl FnOnce(&methods::Features) -> Result<T>,
    ) -> Result<T> {
        key["surrogate"] = json!(self.surrogate.fingerprint());
        key["probe"] = json!(self.probe.fingerprint_hex());
        if self.probe_mode(mode) != PairFeatures::Joint {
            key["pairs"] = json!(mode);
        }
        let hash = crate::bytes::sha256_hex(key.to_string().as_bytes());
        let file = self
            .reference_cache
            .as_ref()
            .map(|dir| dir.join(format!("{prefix}-{}.json", &hash[..16])));
        if let Some(bytes) = file.as_ref().and_then(|f| std::fs::read(f).ok()) {
            if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
                if verify(&v) {
                    return Ok(v);
                }
            }
        }
        let x = self.probe_x(probe_x, mode)?;
        let d = self.surrogate.dim();
        let f = methods::Features::new(x.len() / d, d, x).map_err(method_err("probe set U"))?;
        let value = build(&f)?;
        // Best effort: a cache that cannot be written only costs time next run.
        if let (Some(dir), Some(file)) = (&self.reference_cache, &file) {
            if let Ok(bytes) = serde_json::to_vec(&value) {
                let _ = std::fs::create_dir_all(dir)
                    .and_then(|_| crate::files::write_atomic(file, &bytes));
            }
        }
        Ok(value)
    }
}
