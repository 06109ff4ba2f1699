//! taskdb's task-embedding methods: `(features, targets) -> embedding`, and the exact
//! maths to compare embeddings.
//!
//! Pure maths: no I/O, no printing, no threads, deterministic (the same inputs give
//! bit-identical outputs on one machine). All accumulation is in `f64`; stored results are `f32`.
//!
//! Methods (formulas and the measured reasons in `docs/METHODS.md`):
//! - [`MethodKind::Scatter`] (design B, the default): between-class scatter `(W S_B W)^½` in
//!   the feature space whitened by the probe set's shrunk covariance ([`Whitening`], frozen into
//!   the space); centred by the mean of a reference library of real tasks when one matches the
//!   space (taskdb ships one; see `taskdb::ReferenceLibrary`), else uncentred.
//! - [`MethodKind::Fisher`] (design A): `F^½`, `F = mean g gᵀ`, `g = Wᵀ(q − p)` of a fitted
//!   multinomial logistic head; compared uncentred.
//! - [`MethodKind::Tuned`] (TuPaTE-like): a per-dimension scale fitted on the frozen features.
//! - [`MethodKind::TextEmb`] (baseline, datasets only): the mean feature.
//!
//! Matrix-valued embeddings are low rank (rank ≤ C − 1) and stored exactly as factors
//! ([`LowRank`]); inner products are computed exactly from small products ([`inner`]).
//! Comparisons are cosines after normalising each entry to unit norm and (for the methods where
//! [`MethodKind::uses_reference`]) centring by a [`Reference`] frozen from the probe set, so
//! adding entries never changes stored answers.

// Index loops mirror the formulas; iterator rewrites would obscure them.
#![allow(clippy::needless_range_loop)]

mod error;
mod fisher;
mod linalg;
mod lowrank;
mod reference;
mod rng;
mod scatter;
mod sketch;
mod targets;
mod tuned;
mod whiten;

pub use error::MethodError;
pub use lowrank::{cosine_centred, inner, prepare, Prepared};
pub use reference::{
    build_reference, build_reference_in, library_reference, reference_dots, Reference,
    ReferenceSpec,
};
pub use sketch::{sketch, SketchBasis, Sketcher};
pub use targets::quantile_bins;
pub use whiten::{build_whitening, Whitening};

use serde::{Deserialize, Serialize};

/// Row-major `n × d` surrogate features; every row L2-normalised.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    pub n: usize,
    pub d: usize,
    pub data: &'a [f32],
}

impl<'a> Features<'a> {
    /// Checked constructor: `data.len() == n * d`, `n > 0`, `d > 0`, all values finite.
    pub fn new(n: usize, d: usize, data: &'a [f32]) -> Result<Self, MethodError> {
        let f = Features { n, d, data };
        f.validate()?;
        Ok(f)
    }

    pub(crate) fn validate(&self) -> Result<(), MethodError> {
        if self.n == 0 || self.d == 0 {
            return Err(MethodError::Empty);
        }
        if self.data.len() != self.n * self.d {
            return Err(MethodError::Shape(format!(
                "features: {} values for n = {} rows × d = {} dims (expected {})",
                self.data.len(),
                self.n,
                self.d,
                self.n * self.d
            )));
        }
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(MethodError::NonFinite(format!(
                "feature row {} column {} is {}",
                i / self.d,
                i % self.d,
                self.data[i]
            )));
        }
        Ok(())
    }

    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
}

/// What a task asks of its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Targets {
    /// Hard labels: indices `< n_classes` (their order may depend on label strings: every
    /// method is invariant to it).
    Classes { labels: Vec<u32>, n_classes: usize },
    /// Soft labels: row-major `n × n_classes`, non-negative; rows are normalised to sum to 1.
    Soft { probs: Vec<f32>, n_classes: usize },
    /// Real-valued targets: quantile-binned into `MethodParams::regression_bins` classes.
    Regression { values: Vec<f32> },
}

/// The task-embedding methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// Design B: between-class scatter `(W S_B W)^½` (low rank), `W` the space's frozen
    /// whitening. The default.
    Scatter,
    /// Design A: `F^½` of the gradient second moment of a fitted logistic head (low rank).
    Fisher,
    /// TuPaTE-like per-dimension scale `s − 1` (dense, `d`).
    Tuned,
    /// Mean feature (dense, `d`); label-free, so meaningless for models.
    TextEmb,
}

impl MethodKind {
    /// All methods, in a fixed order.
    pub const ALL: [MethodKind; 4] = [
        MethodKind::Scatter,
        MethodKind::Fisher,
        MethodKind::Tuned,
        MethodKind::TextEmb,
    ];
    /// The measured default (see `docs/METHODS.md`, `docs/QUALITY.md`): scatter in the
    /// whitened feature space, centred by the built-in reference library. It matches every real
    /// classifier of the quality run to a dataset of its task, generalised best on held-out data
    /// in the design study, and costs ~1 ms per task against fisher's ~1.4 s.
    pub const DEFAULT: MethodKind = MethodKind::Scatter;

    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Scatter => "scatter",
            MethodKind::Fisher => "fisher",
            MethodKind::Tuned => "tuned",
            MethodKind::TextEmb => "textemb",
        }
    }

    /// Whether the embedding depends on the targets (false: refuse it for models).
    pub fn uses_targets(self) -> bool {
        !matches!(self, MethodKind::TextEmb)
    }

    /// Whether the configuration centres this method by a frozen [`Reference`] built from
    /// k-means pseudo-tasks on U (tuned, textemb, scatter without whitening, and whitened
    /// scatter with `scatter_kmeans_reference`: yes; fisher: no, it measured best uncentred;
    /// whitened scatter without it: centred by a reference library when one matches, else
    /// not at all; see docs/METHODS.md).
    pub fn uses_reference(self, params: &MethodParams) -> bool {
        match self {
            MethodKind::Fisher => false,
            MethodKind::Scatter => {
                params.scatter_whitening.is_none() || params.scatter_kmeans_reference
            }
            MethodKind::Tuned | MethodKind::TextEmb => true,
        }
    }

    /// Whether this method needs the space's frozen [`Whitening`] (scatter with
    /// `scatter_whitening` set).
    pub fn uses_whitening(self, params: &MethodParams) -> bool {
        self == MethodKind::Scatter && params.scatter_whitening.is_some()
    }

    /// Whether the embedding is a low-rank symmetric matrix (else a dense vector).
    pub fn is_matrix(self) -> bool {
        matches!(self, MethodKind::Scatter | MethodKind::Fisher)
    }
}

impl std::str::FromStr for MethodKind {
    type Err = MethodError;
    fn from_str(s: &str) -> Result<Self, MethodError> {
        MethodKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                MethodError::Params(format!(
                    "unknown method {s:?}; expected one of scatter, fisher, tuned, textemb"
                ))
            })
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of every method (part of a space's definition; serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodParams {
    /// Fisher: L2 penalty of the logistic head (measured: 0.1; ≤ 1e-3 fails).
    pub fisher_lambda: f64,
    /// Fisher: Nesterov iterations from zero.
    pub fisher_iters: u32,
    /// Fisher: multiply features by √d before fitting the head.
    pub fisher_scale_sqrt_d: bool,
    /// Regression targets: number of quantile bins.
    pub regression_bins: u32,
    /// Tuned: pull of `s` towards 1.
    pub tuned_lambda: f64,
    /// Tuned: logit temperature.
    pub tuned_tau: f64,
    /// Tuned: gradient steps from `s = 1`.
    pub tuned_iters: u32,
    /// Matrix methods: keep at most this many eigenpairs (0 = all, exact).
    pub max_rank: u32,
    /// Scatter: whiten features by the probe set's covariance shrunk by this α towards
    /// isotropy before taking the scatter (`None`: raw features, centred by the k-means
    /// reference, the configuration before whitening was measured). Measured: 0.5.
    /// Absent in spaces stored before this field existed, which read as `None`.
    #[serde(default)]
    pub scatter_whitening: Option<f64>,
    /// Scatter with whitening: centre by the mean of k-means pseudo-tasks of U embedded in the
    /// whitened space ([`build_reference_in`]), frozen into the space, instead of by a reference
    /// library (`false`, the configuration of spaces stored before this field existed). Held out
    /// by task family (docs/QUALITY-experiment.md) the library reference generalised worse: it
    /// removes the shared direction of exactly the families it contains.
    #[serde(default)]
    pub scatter_kmeans_reference: bool,
    /// Scatter: how a text pair (NLI, paraphrase) becomes one feature row; see [`PairFeatures`].
    /// Spaces stored before this field existed read as [`PairFeatures::Joint`].
    #[serde(default)]
    pub scatter_pairs: PairFeatures,
}

/// How the rows of a pair task (premise and hypothesis, two questions) become features.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PairFeatures {
    /// The surrogate encodes the two texts together as one input (`[CLS] a [SEP] b`).
    #[default]
    Joint,
    /// Each text is encoded alone and the row is `|h(a) − h(b)|`, L2-normalised (a zero row
    /// when the two texts have the same features): what tells pair tasks apart is how the
    /// two sides relate, which the joint mean-pooled feature mostly averages away
    /// (docs/QUALITY-experiment.md). See [`absdiff_features`].
    AbsDiff,
}

/// Feature rows of a pair task under [`PairFeatures::AbsDiff`]: `|a_i − b_i|` for each row
/// `i` of the two `n × d` row-major side features, L2-normalised in f64 (rows whose difference
/// is exactly zero stay zero).
pub fn absdiff_features(a: &[f32], b: &[f32], d: usize) -> Result<Vec<f32>, MethodError> {
    if d == 0 || a.len() != b.len() || !a.len().is_multiple_of(d) {
        return Err(MethodError::Shape(format!(
            "pair features: {} and {} values for rows of {d}",
            a.len(),
            b.len()
        )));
    }
    let mut out = Vec::with_capacity(a.len());
    for (ra, rb) in a.chunks_exact(d).zip(b.chunks_exact(d)) {
        let z: Vec<f64> = ra
            .iter()
            .zip(rb)
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .collect();
        let nr = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        let nr = if nr > 0.0 { nr } else { 1.0 };
        out.extend(z.iter().map(|v| (v / nr) as f32));
    }
    Ok(out)
}

impl Default for MethodParams {
    fn default() -> Self {
        MethodParams {
            fisher_lambda: 0.1,
            fisher_iters: 300,
            fisher_scale_sqrt_d: true,
            regression_bins: 5,
            tuned_lambda: 1.0,
            tuned_tau: 10.0,
            tuned_iters: 200,
            max_rank: 0,
            scatter_whitening: Some(0.5),
            scatter_kmeans_reference: true,
            scatter_pairs: PairFeatures::AbsDiff,
        }
    }
}

impl MethodParams {
    /// The parameters of spaces made before the k-means reference and pair features of
    /// [`MethodParams::default`] (taskdb ≤ 0.1 defaults: whitened scatter centred by the
    /// reference library, pairs encoded jointly). Kept so such spaces can still be created
    /// and compared with on purpose.
    pub fn library_centred() -> MethodParams {
        MethodParams {
            scatter_kmeans_reference: false,
            scatter_pairs: PairFeatures::Joint,
            ..MethodParams::default()
        }
    }

    /// How `kind` featurises text pairs under these parameters.
    pub fn pair_features(&self, kind: MethodKind) -> PairFeatures {
        match kind {
            MethodKind::Scatter => self.scatter_pairs,
            _ => PairFeatures::Joint,
        }
    }

    /// A short tag naming what these parameters change from the design the method's space
    /// names were first given to (`None`: that design), so that a space of a changed default
    /// gets a new name and never meets the old one: `"kmeans-absdiff"` for the current
    /// scatter default.
    pub fn design_tag(&self, kind: MethodKind) -> Option<String> {
        if kind != MethodKind::Scatter {
            return None;
        }
        let mut parts = Vec::new();
        if self.scatter_kmeans_reference && self.scatter_whitening.is_some() {
            parts.push("kmeans");
        }
        if self.scatter_pairs == PairFeatures::AbsDiff {
            parts.push("absdiff");
        }
        (!parts.is_empty()).then(|| parts.join("-"))
    }

    fn validate(&self) -> Result<(), MethodError> {
        let bad = |m: &str| Err(MethodError::Params(m.to_string()));
        if !(self.fisher_lambda.is_finite() && self.fisher_lambda > 0.0) {
            return bad("fisher_lambda must be finite and > 0");
        }
        if !(self.tuned_lambda.is_finite() && self.tuned_lambda > 0.0) {
            return bad("tuned_lambda must be finite and > 0");
        }
        if !(self.tuned_tau.is_finite() && self.tuned_tau > 0.0) {
            return bad("tuned_tau must be finite and > 0");
        }
        if self.regression_bins < 2 {
            return bad("regression_bins must be >= 2");
        }
        if let Some(a) = self.scatter_whitening {
            if !(a.is_finite() && a > 0.0 && a <= 1.0) {
                return bad("scatter_whitening must be in (0, 1]");
            }
        }
        Ok(())
    }
}

/// A symmetric `dim × dim` matrix `U diag(s) Uᵀ` stored as its factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowRank {
    pub dim: usize,
    /// `dim × r`, column-major, orthonormal columns.
    pub u: Vec<f32>,
    /// `r` eigenvalues, descending.
    pub s: Vec<f32>,
}

impl LowRank {
    pub fn rank(&self) -> usize {
        self.s.len()
    }
    /// Column `j` of `U`.
    pub fn col(&self, j: usize) -> &[f32] {
        &self.u[j * self.dim..(j + 1) * self.dim]
    }
    /// The dense `dim × dim` matrix, row-major (for tests and small dims).
    pub fn to_dense(&self) -> Vec<f64> {
        let d = self.dim;
        let mut m = vec![0.0f64; d * d];
        for (j, &sj) in self.s.iter().enumerate() {
            let c = self.col(j);
            for a in 0..d {
                let ca = c[a] as f64 * sj as f64;
                for b in 0..d {
                    m[a * d + b] += ca * c[b] as f64;
                }
            }
        }
        m
    }
}

/// A task embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskEmbedding {
    Dense(Vec<f32>),
    LowRank(LowRank),
}

impl TaskEmbedding {
    pub fn dim(&self) -> usize {
        match self {
            TaskEmbedding::Dense(v) => v.len(),
            TaskEmbedding::LowRank(l) => l.dim,
        }
    }
}

/// Embed one task. `x` are the task's inputs' features (for a model: the probe set's), `y` the
/// targets (for a model: its labels or score distributions on the probe set).
///
/// For methods that [`MethodKind::uses_whitening`], use [`embed_in`] with the space's
/// whitening; `embed` refuses them rather than silently computing another embedding.
pub fn embed(
    kind: MethodKind,
    params: &MethodParams,
    x: &Features,
    y: &Targets,
) -> Result<TaskEmbedding, MethodError> {
    embed_in(kind, params, None, x, y)
}

/// [`embed`] in a space with a frozen [`Whitening`] (ignored by methods that do not use it).
pub fn embed_in(
    kind: MethodKind,
    params: &MethodParams,
    whitening: Option<&Whitening>,
    x: &Features,
    y: &Targets,
) -> Result<TaskEmbedding, MethodError> {
    x.validate()?;
    params.validate()?;
    let whitening = if kind.uses_whitening(params) {
        Some(whitening.ok_or_else(|| {
            MethodError::Params(format!(
                "{kind} with scatter_whitening = {:?} needs its space's whitening matrix (build_whitening from the probe features)",
                params.scatter_whitening
            ))
        })?)
    } else {
        None
    };
    if kind == MethodKind::TextEmb {
        return Ok(TaskEmbedding::Dense(textemb(x)));
    }
    let q = targets::canonical(x, y, params.regression_bins as usize)?;
    Ok(match kind {
        MethodKind::Scatter => TaskEmbedding::LowRank(scatter::scatter(
            x,
            &q,
            whitening,
            params.max_rank as usize,
        )?),
        MethodKind::Fisher => TaskEmbedding::LowRank(fisher::fisher(x, &q, params)),
        MethodKind::Tuned => TaskEmbedding::Dense(tuned::tuned(x, &q, params)),
        MethodKind::TextEmb => unreachable!(),
    })
}

/// Mean feature.
fn textemb(x: &Features) -> Vec<f32> {
    let mut m = vec![0.0f64; x.d];
    for i in 0..x.n {
        for (a, &v) in m.iter_mut().zip(x.row(i)) {
            *a += v as f64;
        }
    }
    m.iter().map(|v| (v / x.n as f64) as f32).collect()
}
