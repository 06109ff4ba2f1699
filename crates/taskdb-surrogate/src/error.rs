//! One error type for the surrogate runtime. Every variant names the file, entry or input it is
//! about and, where there is one, what to do.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading or running a surrogate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No ONNX Runtime shared library was found in any of the places searched.
    #[error("ONNX Runtime {wanted} shared library not found; searched: {}. Run scripts/provision.sh (installs it into the taskdb cache), or `pip install onnxruntime=={wanted}`, or set ORT_DYLIB_PATH to libonnxruntime.so", tried.join("; "))]
    OrtNotFound {
        /// The version this build needs.
        wanted: String,
        /// Each place looked at, with why it was not used.
        tried: Vec<String>,
    },
    /// A library was found but could not be used (wrong version, not ONNX Runtime, dlopen failure).
    #[error("ONNX Runtime library {path}: {reason}. Run scripts/provision.sh or `pip install onnxruntime==1.31.1`, or point ORT_DYLIB_PATH at a 1.31.x libonnxruntime.so")]
    OrtLibrary {
        /// The library file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An error reported by ONNX Runtime.
    #[error("ONNX Runtime error while {context}: {message}")]
    Ort {
        /// What we were doing.
        context: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The surrogate manifest (surrogate.json) is malformed or inconsistent.
    #[error("surrogate manifest {path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A file's sha256 does not match the one recorded in the manifest.
    #[error("{path}: sha256 {actual} does not match the manifest's {expected}; the file is corrupt or was replaced (re-run scripts/provision.sh)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file on disk.
        actual: String,
    },
    /// The ONNX model cannot be loaded, or does not match its manifest.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer cannot be loaded, or does not fit the model.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The requested execution provider cannot be used and strict mode forbids falling back.
    #[error(
        "execution provider {provider} unavailable (strict mode, no fallback to CPU): {reason}"
    )]
    Device {
        /// e.g. `CUDA:0`.
        provider: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Bad options passed by the caller.
    #[error("invalid option {option}: {message}")]
    Options {
        /// The option.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An input (text or input-file line) that cannot be embedded.
    #[error("{source_name}: line {line}: {message}")]
    Input {
        /// File name or `input`.
        source_name: String,
        /// 1-based line (or 1-based index of the text for in-memory inputs).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn ort(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Ort {
            context: context.into(),
            message: e.to_string(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
