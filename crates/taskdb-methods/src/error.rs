use thiserror::Error;

/// Why a task could not be embedded or compared. Messages name the row, class or field.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MethodError {
    #[error("empty input: a task needs at least one row with at least one feature")]
    Empty,
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("non-finite value: {0}")]
    NonFinite(String),
    #[error("a task needs at least 2 classes with examples; found {found} ({detail})")]
    SingleClass { found: usize, detail: String },
    #[error("invalid target: {0}")]
    Target(String),
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("incompatible embeddings: {0}")]
    Incompatible(String),
}
