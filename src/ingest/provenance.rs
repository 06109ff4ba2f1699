//! The provenance of an ingestion: everything that, with the input, determines its vectors.

use serde_json::json;
use taskdb_methods::MethodKind;

use super::{IngestOptions, Ingestor};

impl Ingestor {
    /// The `params` part of provenance: everything that, with the input, determines the vectors.
    pub(super) fn params_provenance(
        &self,
        opts: &IngestOptions,
        methods_wanted: &[MethodKind],
        source: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut p = json!({
            "method_params": opts.params.as_ref().map_or_else(
                || json!("each space's stored parameters (see details.methods)"),
                |p| json!(p),
            ),
            "methods": methods_wanted.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "surrogate": self.surrogate_provenance(),
            "probe": {
                "name": self.probe.name,
                "fingerprint": self.probe.fingerprint_hex(),
                "size": self.probe.len(),
            },
        });
        if let Some(s) = source {
            p["source"] = s;
        }
        if let Some(n) = opts.probe_limit.filter(|&n| n < self.probe.len()) {
            p["probe"]["subset"] = json!({"limit": n, "seed": super::PROBE_SUBSET_SEED});
        }
        p
    }

    pub(super) fn surrogate_provenance(&self) -> serde_json::Value {
        let i = self.surrogate.info();
        json!({
            "name": i.name, "fingerprint": i.fingerprint, "model_sha256": i.model_sha256,
            "tokenizer_sha256": i.tokenizer_sha256, "dim": i.dim, "max_length": i.max_length,
            "pooling": i.pooling, "normalize": i.normalize,
            "execution_provider": i.execution_provider, "ort_version": i.ort_version,
        })
    }
}
