//! The surrogate manifest, `surrogate.json`: which files, which graph inputs and outputs, how to
//! pool. See docs/SURROGATE.md for the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Pooling of token vectors into one vector per input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the tokens whose attention mask is 1 (sentence-transformers' default).
    Mean,
    /// The first token ([CLS]).
    Cls,
}

/// Names of the model's graph inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNames {
    /// Token ids, int64 [batch, sequence].
    pub input_ids: String,
    /// Attention mask, int64 [batch, sequence].
    pub attention_mask: String,
    /// Segment ids, int64 [batch, sequence]; omit when the model has no such input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_ids: Option<String>,
}

/// The manifest as stored in `surrogate.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; 1.
    pub format: u32,
    /// Human-readable model name.
    pub name: String,
    /// Free text (source, licence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ONNX model file, relative to the manifest's directory (or absolute).
    pub model: PathBuf,
    /// tokenizer.json, relative to the manifest's directory (or absolute).
    pub tokenizer: PathBuf,
    /// Graph input names.
    pub inputs: InputNames,
    /// Token-level outputs [batch, sequence, width] to pool; several are concatenated in order.
    pub outputs: Vec<String>,
    /// Pooling.
    pub pooling: Pooling,
    /// Maximum tokens per input, special tokens included; longer inputs are truncated (and counted).
    pub max_length: usize,
    /// Pooled dimension: the sum of the outputs' widths.
    pub dim: usize,
    /// L2-normalise pooled vectors.
    pub normalize: bool,
    /// Optional sha256 of files, keyed by file name as written in `model` / `tokenizer`.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
}

/// The part of the manifest that defines the function texts → vectors (enters the fingerprint).
#[derive(Serialize)]
pub(crate) struct CanonicalConfig<'a> {
    pub inputs: &'a InputNames,
    pub outputs: &'a [String],
    pub pooling: Pooling,
    pub max_length: usize,
    pub dim: usize,
    pub normalize: bool,
}

impl Manifest {
    /// Reads `path`, which may be a manifest file or a directory holding `surrogate.json`.
    /// Returns the manifest and its file path.
    pub fn read(path: &Path) -> Result<(Manifest, PathBuf)> {
        let file = if path.is_dir() {
            path.join("surrogate.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: file.clone(),
            message: format!("{e}"),
        })?;
        m.validate(&file)?;
        Ok((m, file))
    }

    fn validate(&self, file: &Path) -> Result<()> {
        let bad = |message: String| Error::Manifest {
            path: file.to_path_buf(),
            message,
        };
        if self.format != 1 {
            return Err(bad(format!(
                "field `format`: {} is not supported (this build reads format 1)",
                self.format
            )));
        }
        if self.outputs.is_empty() {
            return Err(bad("field `outputs`: list at least one graph output".into()));
        }
        if self.max_length < 2 {
            return Err(bad(format!(
                "field `max_length`: {} is too small (need room for special tokens)",
                self.max_length
            )));
        }
        if self.dim == 0 {
            return Err(bad("field `dim`: must be > 0".into()));
        }
        for (k, v) in &self.sha256 {
            if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!(
                    "field `sha256.{k}`: `{v}` is not a hex sha256"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn canonical(&self) -> CanonicalConfig<'_> {
        CanonicalConfig {
            inputs: &self.inputs,
            outputs: &self.outputs,
            pooling: self.pooling,
            max_length: self.max_length,
            dim: self.dim,
            normalize: self.normalize,
        }
    }
}
